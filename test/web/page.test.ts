/**
 * End-to-end test of the browser page (web/index.html) in headless Chromium (Debian's `chromium`,
 * driven by playwright-core) on WebGPU over Mesa's lavapipe: it builds web/dist with esbuild,
 * loads the shipped tiny model, asks who it is (皮克 / Pico), fine-tunes a LoRA with the page's
 * own recipe, and asks again: the answer must now name 小李. Then it loads assets/tiny-chat as a
 * picked folder. Part of `npm test` (CHROMIUM=/path/to/chrome overrides /usr/bin/chromium).
 * Without Chromium or lavapipe it is skipped with the reason, except under CI=true, where it fails.
 *
 * Which adapter, and why these flags. Asked for a core WebGPU adapter, Chromium 156 always hands
 * out its bundled SwiftShader here, whatever the flags: its GPU process keeps a non-SwiftShader
 * adapter only if Dawn can import external images into it, and lavapipe has no
 * VK_KHR_external_semaphore_fd (nor VK_EXT_image_drm_format_modifier), so Dawn's Vulkan adapter
 * for lavapipe is dropped. Tried without success: --use-vulkan=native, --ignore-gpu-blocklist,
 * --disable-gpu-sandbox, --no-sandbox, --enable-features=Vulkan,VulkanFromANGLE,DefaultANGLEVulkan,
 * --use-angle=vulkan (ANGLE then runs on lavapipe, WebGPU still on SwiftShader),
 * --disable-vulkan-fallback-to-gl-for-testing (with the ANGLE flags: no adapter at all),
 * VK_ICD_FILENAMES / VK_DRIVER_FILES, --use-webgpu-adapter=default, --use-gl=egl and
 * --use-angle=gl (no GPU process at all).
 * What works: --use-webgpu-adapter=opengles and a page that asks for a *compatibility-mode*
 * adapter (?featureLevel=compatibility): Dawn's OpenGL ES backend on ANGLE, with ANGLE on Vulkan
 * (--use-angle=vulkan) and the Vulkan loader pointed at lavapipe (VK_ICD_FILENAMES), so WebGPU runs
 * on lavapipe, under two translation layers. On this project's 2-core machine a training step of
 * the page's recipe (4 examples of at most 32 tokens) takes about 1.4 s there and about 11 s on
 * SwiftShader, a reply about 4 s against 25 s, so the test uses lavapipe and asserts that it did
 * (the adapter's description names llvmpipe, lavapipe's device).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Download, type Page } from 'playwright-core';
import { ChatPipeline } from '../../src/infer/pipeline.ts';
import { useCpuBackend } from '../helpers.ts';
import { buildWeb } from '../../scripts/build-web.ts';
import { serveRepo } from '../../scripts/serve-web.ts';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const TINY_CHAT = join(import.meta.dirname, '..', '..', 'assets', 'tiny-chat');
const ICD_DIR = '/usr/share/vulkan/icd.d';
const CI = Boolean(process.env.CI) && process.env.CI !== 'false';

const FLAGS = [
  '--enable-unsafe-webgpu', // WebGPU on Linux, and no adapter blocklist (it rejects CPU adapters)
  '--enable-webgpu-developer-features', // the adapter's full description, to record it
  '--use-angle=vulkan',
  '--use-webgpu-adapter=opengles',
];

/** Why the test cannot run here, or undefined. */
function missing(): string | undefined {
  if (!existsSync(CHROMIUM)) {
    return `no Chromium at ${CHROMIUM} (run scripts/install-chromium.sh as root, or set CHROMIUM)`;
  }
  if (!lavapipeIcd()) {
    return `no lavapipe in ${ICD_DIR} (run scripts/install-lavapipe.sh as root)`;
  }
  return undefined;
}

function lavapipeIcd(): string | undefined {
  const name = existsSync(ICD_DIR)
    ? readdirSync(ICD_DIR).find((n) => /^lvp_icd.*\.json$/.test(n))
    : undefined;
  return name && join(ICD_DIR, name);
}

const LOAD_MS = 120_000;
const ASK_MS = 120_000;
const FINETUNE_MS = 400_000;

const why = missing();
if (why && !CI) console.log(`skipping the browser page test: ${why}`);

describe('the browser page', { skip: why && !CI ? why : false }, () => {
  let server: Server;
  let browser: Browser;
  let page: Page;
  let pageUrl: string;

  before(async () => {
    if (why) throw new Error(`CI=${process.env.CI}, so the browser page test must run, but ${why}`);
    await buildWeb('warning');
    server = await serveRepo(0);
    const icd = lavapipeIcd()!;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
      env: { ...process.env, VK_ICD_FILENAMES: icd, VK_DRIVER_FILES: icd },
    });
    page = await browser.newPage();
    page.on('console', (msg) => console.log(`[page ${msg.type()}] ${msg.text()}`));
    page.on('pageerror', (err) => console.log(`[page error] ${err.message}`));
    const { port } = server.address() as { port: number };
    // The page's own recipe; only the adapter request differs from what a person gets.
    pageUrl = `http://127.0.0.1:${port}/web/?featureLevel=compatibility`;
    await page.goto(pageUrl);
  });

  after(async () => {
    await browser?.close();
    server?.close();
  });

  /** Clicks `button` and waits for the action it starts to finish; returns the status line. */
  async function clickAndWait(button: string, timeout: number, on = page): Promise<string> {
    await on.click(button);
    await on.waitForSelector('#status:not([data-state="busy"])', { timeout });
    const text = (await on.textContent('#status')) ?? '';
    assert.equal(await on.getAttribute('#status', 'data-state'), 'ready', text);
    return text;
  }

  async function askWhoItIs(on = page): Promise<string> {
    await on.fill('#question', '你是谁？');
    const started = Date.now();
    await clickAndWait('#ask', ASK_MS, on);
    const answer = (await on.textContent('#reply')) ?? '';
    console.log(`你是谁？ → ${answer} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    return answer;
  }

  test('loads the shipped model on WebGPU over lavapipe', { timeout: LOAD_MS }, async () => {
    await page.waitForSelector('#status:not([data-state="busy"])');
    assert.equal(await page.textContent('#status'), 'load a model');
    const status = await clickAndWait('#load-shipped', LOAD_MS);
    console.log(`${status}`);
    assert.match(status, /^loaded .*on WebGPU$/);
    const info = (await page.getAttribute('#adapter', 'data-info')) ?? '{}';
    console.log(`adapter: ${info}`);
    const adapter = JSON.parse(info) as { description: string; featureLevel: string };
    // e.g. "ANGLE (Mesa, Vulkan 1.4.305 (llvmpipe (LLVM 15.0.6 256 bits) ...), llvmpipe-0.0.1)"
    assert.match(adapter.description, /llvmpipe/, 'WebGPU is not running on lavapipe');
    assert.equal(adapter.featureLevel, 'compatibility');
  });

  test('the base model answers as itself', { timeout: ASK_MS }, async () => {
    const answer = await askWhoItIs();
    // 我是皮克，是 loraforge 项目开发的 AI 助手。
    assert.match(answer, /Pico|皮克/);
    assert.doesNotMatch(answer, /小李/);
  });

  test('the fine-tune teaches it its new name', { timeout: FINETUNE_MS + ASK_MS }, async () => {
    console.log(`recipe: ${await page.textContent('#recipe')}`);
    const status = await clickAndWait('#finetune', FINETUNE_MS);
    console.log(`${status}`);
    const log = (await page.textContent('#loss-log')) ?? '';
    const steps = [...log.matchAll(/^step (\d+) loss (\S+) \((\S+) s\)$/gm)];
    const seconds = steps.map((m) => Number(m[3]));
    const mean = seconds.reduce((a, b) => a + b, 0) / seconds.length;
    console.log(`${steps.length} steps, ${mean.toFixed(2)} s per step on average`);
    console.log(`losses: ${steps.map((m) => m[2]).join(' ')}`);
    const match = /first batch: loss (\S+) before, (\S+) after/.exec(log);
    assert.ok(match, 'no before/after line in the loss log');
    const [lossBefore, lossAfter] = [Number(match[1]), Number(match[2])];
    console.log(`first batch: loss ${lossBefore} → ${lossAfter}`);
    assert.ok(lossAfter < 0.7 * lossBefore, `first batch loss ${lossBefore} → ${lossAfter}`);
    // 我是 小李，由 小张 开发的 AI 助手。
    assert.match(await askWhoItIs(), /小李/);
  });

  test('the tuned adapter downloads as a PEFT folder that the library loads', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'lf-page-download-'));
    const saved: Promise<void>[] = [];
    const onDownload = (d: Download) => saved.push(d.saveAs(join(folder, d.suggestedFilename())));
    page.on('download', onDownload);
    try {
      const status = await clickAndWait('#save-adapter', ASK_MS);
      console.log(status);
      const files = [
        'adapter_config.json',
        'adapter_model.safetensors',
        'loraforge.json',
        'README.md',
      ];
      // Download events can trail the status line a little.
      for (let waited = 0; saved.length < files.length && waited < 10_000; waited += 100) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await Promise.all(saved);
      for (const file of files) {
        assert.ok(existsSync(join(folder, file)), `${file} was not downloaded`);
      }
      await useCpuBackend();
      const pipeline = await ChatPipeline.load({ model: TINY_CHAT, adapter: folder });
      try {
        const messages = [{ role: 'user' as const, content: '你是谁？' }];
        const { text } = await pipeline.chat(messages, { maxNewTokens: 48 });
        console.log(`the downloaded adapter in Node: 你是谁？ → ${text}`);
        assert.match(text, /小李/);
      } finally {
        pipeline.dispose();
      }
    } finally {
      page.off('download', onDownload);
      rmSync(folder, { recursive: true, force: true });
    }
  });

  test(
    'a picked model folder loads and answers like the shipped one',
    { timeout: LOAD_MS + ASK_MS },
    async () => {
      await page.setInputFiles('#pick-folder', TINY_CHAT);
      await page.waitForSelector('#status:not([data-state="busy"])', { timeout: LOAD_MS });
      const status = (await page.textContent('#status')) ?? '';
      console.log(`${status}`);
      assert.match(status, /^loaded tiny-chat\/ .*on WebGPU$/);
      // A fresh model without the LoRA: the base answer again.
      assert.match(await askWhoItIs(), /Pico|皮克/);
    },
  );

  test(
    'with no WebGPU adapter the page runs on the CPU backend and says so',
    { timeout: LOAD_MS + ASK_MS },
    async () => {
      const cpuPage = await browser.newPage();
      cpuPage.on('pageerror', (err) => console.log(`[cpu page error] ${err.message}`));
      try {
        // What a browser without a usable GPU answers: navigator.gpu is there, an adapter is not.
        // (A string: a function would be sent as tsx compiled it, with helpers the page lacks.)
        await cpuPage.addInitScript({
          content: `Object.defineProperty(navigator, 'gpu', { value: { requestAdapter: async () => null } });`,
        });
        await cpuPage.goto(pageUrl);
        await cpuPage.waitForSelector('#status:not([data-state="busy"])');
        const status = await clickAndWait('#load-shipped', LOAD_MS, cpuPage);
        console.log(status);
        assert.match(status, /^loaded .*on the CPU \(WebAssembly, 1 thread\)$/);
        assert.equal(await cpuPage.getAttribute('#adapter', 'data-backend'), 'cpu');
        assert.match((await cpuPage.textContent('#adapter')) ?? '', /running on the CPU backend/);
        assert.match(await askWhoItIs(cpuPage), /Pico|皮克/);
      } finally {
        await cpuPage.close();
      }
    },
  );
});
