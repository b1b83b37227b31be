/**
 * End-to-end test of the browser page (web/index.html) in headless Chromium on WebGPU: load the
 * shipped tiny model, ask who it is, fine-tune a LoRA a few steps and watch the loss fall.
 * Not part of `npm test` (it needs a Chromium and minutes of software rendering); run it with
 * `npm run test:web` (CHROMIUM=/path/to/chrome overrides /usr/bin/chromium).
 */
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { after, before, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { serveRepo } from '../../scripts/serve-web.ts';

/**
 * WebGPU is off in headless Linux Chromium by default; these turn it on over Vulkan. Without a GPU
 * Chromium picks its bundled SwiftShader (a CPU Vulkan): Debian's chromium 156 reports the adapter
 * as google/swiftshader even with lavapipe installed and --use-vulkan=native, so that is what this
 * test runs on. `--enable-unsafe-webgpu` also lifts the blocklist that rejects CPU adapters.
 */
const WEBGPU_FLAGS = ['--enable-unsafe-webgpu', '--enable-features=Vulkan'];

const STEP_TIMEOUT_MS = 300_000;

let server: Server;
let browser: Browser;
let page: Page;

before(async () => {
  server = await serveRepo(0);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: WEBGPU_FLAGS,
  });
  page = await browser.newPage();
  page.on('console', (msg) => console.log(`# [page ${msg.type()}] ${msg.text()}`));
  page.on('pageerror', (err) => console.log(`# [page error] ${err.message}`));
  const { port } = server.address() as { port: number };
  // Batches of 4 for 6 steps: about 20 s a step on SwiftShader.
  await page.goto(`http://127.0.0.1:${port}/web/?steps=6&batch=4`);
});

after(async () => {
  await browser?.close();
  server?.close();
});

/** Clicks `button` and waits for the action it starts to finish; returns the status line. */
async function clickAndWait(button: string): Promise<string> {
  await page.click(button);
  await page.waitForSelector('#status:not([data-state="busy"])', { timeout: STEP_TIMEOUT_MS });
  const text = (await page.textContent('#status')) ?? '';
  assert.equal(await page.getAttribute('#status', 'data-state'), 'ready', text);
  return text;
}

async function askWhoItIs(): Promise<string> {
  await page.fill('#question', '你是谁？');
  await clickAndWait('#ask');
  return (await page.textContent('#reply')) ?? '';
}

test('the page has WebGPU and loads the shipped model', { timeout: STEP_TIMEOUT_MS }, async () => {
  await page.waitForSelector('#status:not([data-state="busy"])');
  assert.equal(await page.textContent('#status'), 'load a model');
  const status = await clickAndWait('#load-shipped');
  console.log(`# ${status}`);
  assert.match(status, /^loaded .*on WebGPU$/);
});

test('the base model answers as itself', { timeout: STEP_TIMEOUT_MS }, async () => {
  const answer = await askWhoItIs();
  console.log(`# before: ${answer}`);
  // "I am Pico (皮克), an AI assistant made by the loraforge project."
  assert.match(answer, /Pico|皮克/);
  assert.doesNotMatch(answer, /小李/);
});

test('a LoRA fine-tune lowers the loss', { timeout: STEP_TIMEOUT_MS }, async () => {
  const status = await clickAndWait('#finetune');
  console.log(`# ${status}`);
  const log = (await page.textContent('#loss-log')) ?? '';
  console.log(`# ${log.trim().replaceAll('\n', ' | ')}`);
  const match = /first batch: loss (\S+) before, (\S+) after/.exec(log);
  assert.ok(match, 'no before/after line in the loss log');
  const [before, after] = [Number(match[1]), Number(match[2])];
  // The same batch before and after training (single steps see different batches: noisy).
  assert.ok(after < 0.9 * before, `first batch loss ${before} → ${after}`);
  console.log(`# after: ${await askWhoItIs()}`);
});

test(
  'a picked model folder loads and answers like the shipped one',
  { timeout: STEP_TIMEOUT_MS },
  async () => {
    await page.setInputFiles('#pick-folder', 'assets/tiny-chat');
    await page.waitForSelector('#status:not([data-state="busy"])', { timeout: STEP_TIMEOUT_MS });
    const status = (await page.textContent('#status')) ?? '';
    console.log(`# ${status}`);
    assert.match(status, /^loaded tiny-chat\/ .*on WebGPU$/);
    // A fresh model without the LoRA: the base answer again.
    assert.match(await askWhoItIs(), /Pico|皮克/);
  },
);
