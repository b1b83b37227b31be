// Dense peak throughput of known GPUs in TFLOP/s, for the GPU benchmark's "share of peak"
// (scripts/device/gpu-bench.sh). `tensor16`: bf16 / f16 tensor-core dense peak (what HF + PEFT
// bf16 reaches for); `fp32`: plain FP32 CUDA-core peak (what WGSL without subgroup matrices can
// use). Sources: NVIDIA's data sheets, halving the figures quoted "with sparsity":
//   H100 SXM / H200 SXM: https://www.nvidia.com/en-us/data-center/h100/ and /h200/ (BF16/FP16
//     Tensor Core 1,979 TFLOPS with sparsity -> 989 dense; FP32 67 TFLOPS)
//   H100 PCIe: same page (1,513 sparse -> 756 dense; FP32 51)
//   A100 SXM/PCIe: https://www.nvidia.com/en-us/data-center/a100/ (BF16 312 dense; FP32 19.5)
//   L40S: https://www.nvidia.com/en-us/data-center/l40s/ (BF16 733 sparse -> 366 dense; FP32 91.6)
//   L4: https://www.nvidia.com/en-us/data-center/l4/ (BF16 242 sparse -> 121 dense; FP32 30.3)
//   A10: https://www.nvidia.com/en-us/data-center/products/a10-gpu/ (BF16 125 dense; FP32 31.2)
export const GPU_PEAKS = [
  { match: /H200/i, name: 'H200 SXM', tensor16: 989, fp32: 67 },
  { match: /H100.*PCIe/i, name: 'H100 PCIe', tensor16: 756, fp32: 51 },
  { match: /H100/i, name: 'H100 SXM', tensor16: 989, fp32: 67 },
  { match: /A100/i, name: 'A100', tensor16: 312, fp32: 19.5 },
  { match: /L40S/i, name: 'L40S', tensor16: 366, fp32: 91.6 },
  { match: /\bL4\b/i, name: 'L4', tensor16: 121, fp32: 30.3 },
  { match: /\bA10G?\b/i, name: 'A10', tensor16: 125, fp32: 31.2 },
];

export function gpuPeak(gpuName) {
  return GPU_PEAKS.find((p) => p.match.test(gpuName ?? '')) ?? null;
}
