/**
 * `npm run bench:gemm [-- --device webgpu] [--json]`: GEMM throughput on the 0.5B model's shapes,
 * of the wasm CPU runtime (gemm-cpu.ts, the default) or of the WebGPU kernels (gemm-webgpu.ts).
 */
const at = process.argv.indexOf('--device');
const device = at >= 0 ? process.argv[at + 1] : 'cpu';
if (device === 'webgpu') await import('./gemm-webgpu.ts');
else if (device === 'cpu') await import('./gemm-cpu.ts');
else throw new Error(`bench:gemm: unknown --device ${device} (cpu or webgpu)`);

export {};
