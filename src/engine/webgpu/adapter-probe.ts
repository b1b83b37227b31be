/**
 * Whether WebGPU offers a hardware adapter, for `--device auto`. A software adapter (lavapipe /
 * llvmpipe, SwiftShader) is correct but slower than the wasm CPU backend, so it counts as none.
 *
 * In Node the adapter is asked for in a child process: Dawn logs warnings straight to the
 * process's stderr while enumerating some adapters (lavapipe's limits), which would garble a
 * command's output, and a broken driver that crashes Dawn only takes the child down.
 */
import { execFile } from 'node:child_process';

const SOFTWARE_RENDERERS = /llvmpipe|lavapipe|swiftshader/i;
const PROBE_TIMEOUT_MS = 15_000;

interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter?: boolean;
}

function isSoftware(info: AdapterSummary): boolean {
  return (
    info.isFallbackAdapter === true ||
    info.architecture === 'software' ||
    SOFTWARE_RENDERERS.test(`${info.vendor} ${info.device} ${info.description}`)
  );
}

/** Prints the adapter's info as JSON (`null`: none); argv[1] is the URL of the webgpu package. */
const CHILD_SCRIPT = `
const { create } = await import(process.argv[1]);
const adapter = await create([]).requestAdapter({ powerPreference: 'high-performance' }).catch(() => null);
const info = adapter && adapter.info;
console.log(JSON.stringify(info && {
  vendor: info.vendor, architecture: info.architecture, device: info.device,
  description: info.description, isFallbackAdapter: info.isFallbackAdapter,
}));
process.exit(0);
`;

function probeInChild(): Promise<AdapterSummary | null> {
  let dawn: string;
  try {
    dawn = import.meta.resolve('webgpu');
  } catch {
    return Promise.resolve(null);
  }
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', CHILD_SCRIPT, dawn],
      { timeout: PROBE_TIMEOUT_MS },
      (error, stdout) => {
        if (error) return resolve(null);
        try {
          resolve(JSON.parse(stdout.trim().split('\n').at(-1) ?? 'null') as AdapterSummary | null);
        } catch {
          resolve(null);
        }
      },
    );
  });
}

export async function hasHardwareAdapter(): Promise<boolean> {
  const browserGpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  const info = browserGpu
    ? ((await browserGpu.requestAdapter().catch(() => null))?.info ?? null)
    : await probeInChild();
  return info !== null && !isSoftware(info);
}
