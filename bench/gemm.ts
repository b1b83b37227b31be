/**
 * `npm run bench:gemm [-- --device webgpu|native] [--json]`: GEMM throughput on the 0.5B model's
 * shapes, of the wasm CPU runtime (gemm-cpu.ts, the default), of the WebGPU kernels
 * (gemm-webgpu.ts), or of the native variants beside wasm (gemm-native.ts).
 */
const at = process.argv.indexOf('--device');
const device = at >= 0 ? process.argv[at + 1] : 'cpu';
if (device === 'webgpu') await import('./gemm-webgpu.ts');
else if (device === 'cpu') await import('./gemm-cpu.ts');
else if (device === 'native') await import('./gemm-native.ts');
else throw new Error(`bench:gemm: unknown --device ${device} (cpu, webgpu or native)`);

export {};
