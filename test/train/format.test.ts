// util/format.ts lives below train/, but its tests sit here with the other training utilities.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatBytes,
  formatCount,
  formatDuration,
  formatFloat,
  formatRate,
  formatSi,
} from '../../src/util/format.ts';

test('formatCount groups thousands', () => {
  assert.equal(formatCount(4399104), '4,399,104');
  assert.equal(formatCount(999), '999');
  assert.equal(formatCount(-1234567.6), '-1,234,568');
  assert.equal(formatCount(0), '0');
});

test('formatBytes uses binary units', () => {
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(4.2e9), '3.9 GiB');
  assert.equal(formatBytes(300 * 1024 * 1024), '300 MiB');
});

test('formatDuration picks a readable unit', () => {
  assert.equal(formatDuration(0.85), '850ms');
  assert.equal(formatDuration(42), '42.0s');
  assert.equal(formatDuration(59.97), '1m00s');
  assert.equal(formatDuration(185), '3m05s');
  assert.equal(formatDuration(2 * 3600 + 7 * 60 + 20), '2h07m');
  assert.equal(formatDuration(3 * 86400 + 4 * 3600), '3d04h');
  assert.equal(formatDuration(Infinity), '?');
});

test('formatSi, formatRate and formatFloat', () => {
  assert.equal(formatSi(1234), '1.23k');
  assert.equal(formatSi(5.6e6), '5.60M');
  assert.equal(formatSi(12), '12.0');
  assert.equal(formatSi(999.7), '1.00k');
  assert.equal(formatRate(1234.5, 'tok'), '1.23k tok/s');
  assert.equal(formatRate(0.02, 'step'), '50.0s/step');
  assert.equal(formatRate(0), '? it/s');
  assert.equal(formatFloat(0.000123), '1.23e-4');
  assert.equal(formatFloat(2e-4), '2e-4');
  assert.equal(formatFloat(1.23456e-5), '1.235e-5');
  assert.equal(formatFloat(3e7), '3e7');
  assert.equal(formatFloat(2.345678), '2.346');
  assert.equal(formatFloat(0), '0');
  assert.equal(formatFloat(NaN), 'NaN');
});
