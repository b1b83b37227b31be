import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  niceTicks,
  renderLossPng,
  renderLossSvg,
  writeLossPlot,
  type LossPoint,
} from '../../src/train/plot.ts';

interface DecodedPng {
  width: number;
  height: number;
  data: Uint8Array;
}
const { PNG } = createRequire(import.meta.url)('pngjs') as {
  PNG: { sync: { read(bytes: Uint8Array): DecodedPng } };
};

const points: LossPoint[] = [];
for (let step = 1; step <= 40; step++) {
  points.push({ step, loss: 3 * Math.exp(-step / 15) + 1, lr: step < 5 ? step * 1e-4 : 5e-4 });
  if (step % 10 === 0) points.push({ step, eval_loss: 3 * Math.exp(-step / 15) + 1.2 });
}

function pixel(png: DecodedPng, x: number, y: number): [number, number, number] {
  const i = (y * png.width + x) * 4;
  return [png.data[i]!, png.data[i + 1]!, png.data[i + 2]!];
}

test('niceTicks picks 1/2/5 steps that cover the range', () => {
  assert.deepEqual(niceTicks(0, 300), {
    lo: 0,
    hi: 300,
    step: 50,
    ticks: [0, 50, 100, 150, 200, 250, 300],
  });
  const t = niceTicks(0.93, 3.41);
  assert.equal(t.step, 0.5);
  assert.deepEqual(t.ticks, [0.5, 1, 1.5, 2, 2.5, 3, 3.5]);
  assert.deepEqual(niceTicks(2, 2).ticks.length > 1, true); // a flat series still gets an axis
});

test('SVG has axes, tick labels, axis labels, legend and one polyline per series', () => {
  const svg = renderLossSvg(points, { title: 'run <1>' });
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /<title>run &#60;1&#62;<\/title>/);
  for (const label of [
    'step',
    'loss',
    'learning rate',
    'train loss',
    'eval loss',
    '>40<',
    '>4e-4<',
  ])
    assert.ok(svg.includes(label), label);
  assert.ok(
    svg.includes('stroke="#1f77b4"') &&
      svg.includes('stroke="#ff7f0e"') &&
      svg.includes('stroke="#2ca02c"'),
  );
  assert.equal((svg.match(/<circle /g) ?? []).length, 4); // eval points are marked
  assert.ok(!renderLossSvg(points, { showLr: false }).includes('learning rate'));
});

test('PNG decodes to the requested size with a white background and the curves in their colours', () => {
  const png = PNG.sync.read(renderLossPng(points, { width: 640, height: 400, title: 'loss' }));
  assert.equal(png.width, 640);
  assert.equal(png.height, 400);
  assert.deepEqual(pixel(png, 2, 2), [255, 255, 255]);
  const colours = new Set<string>();
  for (let i = 0; i < png.data.length; i += 4)
    colours.add(`${png.data[i]},${png.data[i + 1]},${png.data[i + 2]}`);
  for (const c of ['31,119,180', '255,127,14', '44,160,44', '34,34,34'])
    assert.ok(colours.has(c), `colour ${c} drawn`);
});

test('non-finite losses are skipped and an empty log still renders', () => {
  const withNaN: LossPoint[] = [
    { step: 1, loss: 2 },
    { step: 2, loss: NaN },
    { step: 3, loss: 1.5 },
  ];
  assert.ok(!renderLossSvg(withNaN).includes('NaN'));
  assert.match(renderLossSvg([]), /no data yet/);
  assert.equal(PNG.sync.read(renderLossPng([])).width, 960);
});

test('writeLossPlot writes both files, creating folders', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loraforge-plot-'));
  writeLossPlot(points, {
    svgPath: join(dir, 'a', 'loss.svg'),
    pngPath: join(dir, 'b', 'loss.png'),
    title: 'demo',
  });
  assert.match(readFileSync(join(dir, 'a', 'loss.svg'), 'utf8'), /<\/svg>\n$/);
  assert.deepEqual(
    [...readFileSync(join(dir, 'b', 'loss.png')).subarray(1, 4)],
    [0x50, 0x4e, 0x47],
  ); // "PNG"
});

test('long logs are thinned to a few points per pixel column', () => {
  const long: LossPoint[] = [];
  for (let step = 1; step <= 200_000; step++) long.push({ step, loss: 2 + Math.sin(step) });
  const svg = renderLossSvg(long, { showLr: false });
  const trainLine = svg
    .split('\n')
    .find((l) => l.includes('stroke="#1f77b4"') && l.includes('<polyline'))!;
  const count = trainLine.split(' ').length;
  assert.ok(count < 4 * 960, `${count} points`);
  assert.ok(count > 960, `${count} points`);
});
