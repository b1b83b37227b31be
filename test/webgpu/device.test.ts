// WebGPU device acquisition, and what the kernel tests do when no adapter exists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { acquireWebGpu } from '../../src/engine/webgpu/device.ts';

const skip =
  !process.env.CI && process.env.LORAFORGE_SKIP_WEBGPU === '1' && 'LORAFORGE_SKIP_WEBGPU=1';
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** Runs `args` under node+tsx with Vulkan pointed at no driver, so Dawn finds no adapter. */
function runWithoutAdapter(args: string[], env: Record<string, string | undefined>) {
  // NODE_TEST_CONTEXT would make a nested `node --test` report to this runner instead of exiting.
  const {
    CI: _ci,
    LORAFORGE_SKIP_WEBGPU: _skip,
    NODE_TEST_CONTEXT: _context,
    ...inherited
  } = process.env;
  return spawnSync(process.execPath, ['--import', 'tsx', ...args], {
    cwd: repoRoot,
    env: { ...inherited, VK_ICD_FILENAMES: '/nonexistent/icd.json', ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
}

test('acquires a device with the adapter limits and reports the adapter', { skip }, async () => {
  const context = await acquireWebGpu();
  try {
    console.log(
      `# ${context.adapterInfo.description || context.adapterInfo.device}: shader-f16=${context.shaderF16} ` +
        `subgroups=${context.subgroups} maxStorageBufferBindingSize=${context.limits.maxStorageBufferBindingSize}`,
    );
    assert.equal(typeof context.adapterInfo.vendor, 'string');
    assert.equal(context.shaderF16, context.device.features.has('shader-f16'));
    // Above WebGPU's default (128 MiB) wherever the adapter allows it.
    assert.equal(context.limits.maxBufferSize, context.device.limits.maxBufferSize);
    assert.ok(context.limits.maxComputeWorkgroupStorageSize >= 16384);
  } finally {
    context.destroy();
  }
});

test('no adapter is a LoraforgeError with a hint', { skip: process.platform !== 'linux' }, () => {
  const script =
    "import { acquireWebGpu } from './src/engine/webgpu/device.ts';" +
    'acquireWebGpu().then(() => console.log("ADAPTER"), (e) => console.log(e.name + ": " + e.message + " | " + e.hint));';
  const result = runWithoutAdapter(['--input-type=module', '-e', script], {});
  if (result.stdout.includes('ADAPTER')) return; // a non-Vulkan backend answered; nothing to check
  assert.match(result.stdout, /LoraforgeError: WebGPU: no GPU adapter found.*install-lavapipe\.sh/);
});

test(
  'without an adapter the kernel tests fail under CI and skip only on request',
  { skip: process.platform !== 'linux' },
  () => {
    const file = 'test/webgpu/kernels.test.ts';
    const args = ['--test', '--test-name-pattern=adapter is available', file];
    const probe = runWithoutAdapter(
      [
        '--input-type=module',
        '-e',
        'import("webgpu").then(async ({create}) => console.log(await create([]).requestAdapter().catch(() => null) ? "ADAPTER" : "NONE"))',
      ],
      {},
    );
    if (probe.stdout.includes('ADAPTER')) return; // a non-Vulkan backend answered; nothing to check
    assert.notEqual(runWithoutAdapter(args, { CI: '1', LORAFORGE_SKIP_WEBGPU: '1' }).status, 0);
    assert.notEqual(runWithoutAdapter(args, {}).status, 0);
    assert.equal(runWithoutAdapter(args, { LORAFORGE_SKIP_WEBGPU: '1' }).status, 0);
  },
);
