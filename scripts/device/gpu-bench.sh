#!/bin/bash
# Issue #7's GPU benchmark, in one call of the `device` tool: loraforge's LoRA training step on
# WebGPU (Dawn over the NVIDIA Vulkan driver) beside Hugging Face Trainer + PEFT (bf16) on the
# same GPU, same shapes: Qwen2-0.5B-shaped random bf16 model, LoRA r=8 (alpha 16, dropout 0) on
# all seven projections, batch 8 x 64 with the first 32 positions of each row labelled -100.
#
# First, here (no GPU needed):  scripts/device/prepare.sh      (fills the ignored .device/)
# Then one `run` call of the device tool (any NVIDIA kind; the card is named in the output):
#   command:   bash scripts/device/gpu-bench.sh
#   carry:     [".device"]
#   timeout_s: 540
# The script ends by itself within DEADLINE seconds (default 420: typically ~3 minutes). The last
# line of its output is one JSON object (also $OUT/summary.json); logs are in $OUT.
#
# Without nvidia-smi (or with LOCAL=1) it runs a local check instead: the same carried node,
# bundle and Dawn on whatever Vulkan driver is here (lavapipe), on the tiny shape, with the HF
# baseline on the CPU only if python3 has torch, transformers and peft.
#
# Environment (all optional): SHAPE=0.5b|tiny, STEPS (timed steps per phase, after 1 warm-up),
# MAX_SECONDS (per timed phase), DEADLINE, CPU_BASELINE=1 (also time loraforge's CPU backend, one
# step), LF_TIMEOUT (cap on the loraforge run, default 240 s), OUT (default /tmp/gpu-bench-out).
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
D=$ROOT/.device
OUT=${OUT:-/tmp/gpu-bench-out}
mkdir -p "$OUT"

main() {
if [ -z "${LOCAL:-}" ] && command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  MODE=gpu
else
  MODE=local
fi
if [ $MODE = gpu ]; then
  SHAPE=${SHAPE:-0.5b} STEPS=${STEPS:-10} MAX_SECONDS=${MAX_SECONDS:-60} HF_DEVICE=cuda
else
  SHAPE=${SHAPE:-tiny} STEPS=${STEPS:-2} MAX_SECONDS=${MAX_SECONDS:-30} HF_DEVICE=cpu
fi
DEADLINE=${DEADLINE:-420}
say() { echo "[gpu-bench $(printf '%3d' $SECONDS)s] $*"; }
# Seconds a phase may take: at most $1, leaving $2 for the phases after it, and at least 20.
budget() {
  local b=$((DEADLINE - SECONDS - $2))
  [ $b -gt "$1" ] && b=$1
  [ $b -lt 20 ] && b=20
  echo $b
}
say "mode $MODE, shape $SHAPE, $STEPS timed steps per phase (max ${MAX_SECONDS}s each), deadline ${DEADLINE}s"
[ -s "$D/node.xz" ] && [ -s "$D/app/bench-train.mjs" ] || {
  say "no .device/: run scripts/device/prepare.sh first and carry .device"
  exit 1
}

unxz_to() { # unxz_to SRC DST: xz, or Python's lzma where xz is missing
  xz -dc "$1" >"$2.tmp" 2>/dev/null ||
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2.tmp"
  mv "$2.tmp" "$2"
}

# 1. The GPU, the Vulkan loader (the device README's recipe) and NVIDIA's Vulkan driver.
{
  echo "== uname"; uname -a
  if [ $MODE = gpu ]; then
    echo "== nvidia-smi"; nvidia-smi
  fi
} >"$OUT/env.txt" 2>&1
GPU_NAME=
if [ $MODE = gpu ]; then
  GPU_NAME=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)
  say "GPU: $GPU_NAME"
  if ! ldconfig -p | grep -q 'libvulkan\.so\.1' || ! ldconfig -p | grep -q 'libGLdispatch\.so\.0'; then
    say "unpacking the Vulkan loader and glvnd (.device/debs)"
    for f in "$D"/debs/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && [ -f $ICD ] &&
    ! ls /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/nvidia_icd*.json >/dev/null 2>&1; then
    export VK_DRIVER_FILES=$ICD VK_ICD_FILENAMES=$ICD
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  fi
  [ -d /usr/local/nvidia/lib64 ] && export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}/usr/local/nvidia/lib64
  say "VK_DRIVER_FILES=${VK_DRIVER_FILES:-(unset)}"
fi

# 2. Node and Dawn's native module, unpacked from .device.
NODE_DIR=/tmp/loraforge-node
mkdir -p $NODE_DIR
unxz_to "$D/node.xz" $NODE_DIR/node && chmod +x $NODE_DIR/node
NODE=$NODE_DIR/node
DAWN=$D/app/node_modules/webgpu/dist/linux-x64/dawn.node
[ -s "$DAWN" ] || unxz_to "$DAWN.xz" "$DAWN"
say "node $($NODE --version); bundled from $(head -1 "$D/source.txt" 2>/dev/null)$([ "$(wc -l <"$D/source.txt" 2>/dev/null)" -gt 1 ] && echo ' with uncommitted changes')"

# 3. WebGPU adapter probe (a failure still lets the HF baseline run, with diagnostics in env.txt).
PROBE="
  const { create } = await import('$D/app/node_modules/webgpu/index.js');
  const a = await create(['enable-dawn-features=allow_unsafe_apis']).requestAdapter({ powerPreference: 'high-performance' });
  const i = a?.info;
  const matrices = [...(i?.subgroupMatrixConfigs ?? [])].map((c) => c.componentType + '>' + c.resultComponentType + ' ' + c.M + 'x' + c.N + 'x' + c.K);
  console.log(i ? JSON.stringify({ vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description, subgroupMatrices: matrices }) : 'no adapter');
  process.exit(a ? 0 : 1);"
ADAPTER=$(timeout 60 $NODE --input-type=module -e "$PROBE" 2>&1 | tail -1)
WEBGPU_OK=$?
say "WebGPU adapter: $ADAPTER"
if [ $MODE = gpu ] && [ $WEBGPU_OK -eq 0 ] && ! echo "$ADAPTER" | grep -qi nvidia; then
  say "warning: the WebGPU adapter is not NVIDIA's GPU; loraforge's figure is not the GPU's"
fi
if [ $WEBGPU_OK -ne 0 ]; then
  {
    echo "== probe with VK_LOADER_DEBUG=error,warn,driver"
    VK_LOADER_DEBUG=error,warn,driver timeout 60 $NODE --input-type=module -e "$PROBE"
    echo "== ICD files"; ls -l /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/nvidia/share/vulkan/icd.d
    echo "== ldconfig"; ldconfig -p | grep -iE 'vulkan|nvidia|GLdispatch|GLX'
  } >>"$OUT/env.txt" 2>&1
  say "no WebGPU adapter: diagnostics in \$OUT/env.txt; going on with the HF baseline"
fi

# 4. The random model (numpy: seconds; in memory where /dev/shm has room).
MODELS=/tmp/loraforge-bench-models
shm_kib=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')
if [ "${shm_kib:-0}" -gt 3000000 ]; then
  MODELS=/dev/shm/loraforge-bench-models
fi
MODEL=$MODELS/qwen2-$SHAPE-random-bf16
python3 bench/gpu/write_random_model.py "$MODEL" "$SHAPE" || say "writing the model failed"

# 5. loraforge on WebGPU: forward + backward, then the Trainer's whole step (clip + AdamW).
# The baseline multiplies in bf16, so loraforge may round GEMM operands to f16 (f16 tiles and the
# tensor cores' subgroup matrices, f32 accumulation): LORAFORGE_WEBGPU_F16=0 keeps f32 operands.
export LORAFORGE_WEBGPU_F16=${LORAFORGE_WEBGPU_F16:-1}
if [ $WEBGPU_OK -eq 0 ]; then
  extra=(--no-baseline)
  [ -n "${CPU_BASELINE:-}" ] && extra=(--threads "$(nproc)")
  t=$(budget "${LF_TIMEOUT:-240}" 150)
  say "loraforge webgpu (timeout ${t}s)"
  timeout -k 10 "$t" $NODE "$D/app/bench-train.mjs" \
    --device webgpu --model "$MODEL" --steps "$STEPS" --max-seconds "$MAX_SECONDS" --optimizer \
    "${extra[@]}" --json --progress 2>&1 | tee "$OUT/loraforge.out"
  say "loraforge exit ${PIPESTATUS[0]}"
fi

# 5b. loraforge's WebGPU GEMM on the 0.5B shapes (old and tuned kernels), for TFLOP/s and the
# share of the card's peak (bench/gpu/peaks.mjs).
if [ $WEBGPU_OK -eq 0 ] && [ -s "$D/app/bench-gemm.mjs" ]; then
  t=$(budget 90 150)
  say "loraforge webgpu GEMM (timeout ${t}s)"
  timeout -k 10 "$t" $NODE --experimental-wasm-relaxed-simd "$D/app/bench-gemm.mjs" \
    --device webgpu --json 2>&1 | tee "$OUT/gemm.out"
  say "loraforge GEMM exit ${PIPESTATUS[0]}"
fi

# 6. Hugging Face Trainer + PEFT, bf16 (then its plain PyTorch loop, if time is left).
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
HF_VERSIONS=
if python3 -c 'import torch, transformers, peft' 2>/dev/null; then
  HF_VERSIONS=$(python3 -c 'import torch, transformers, peft; print(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}")')
  say "$HF_VERSIONS"
  tiny=()
  [ "$SHAPE" = tiny ] && tiny=(--tiny)
  t=$(budget 150 10)
  say "HF Trainer + PEFT, $HF_DEVICE bf16 (timeout ${t}s)"
  timeout -k 10 "$t" python3 bench/gpu/hf_peft_lora_bench.py --device $HF_DEVICE --dtype bf16 \
    --trainer --steps 20 --warmup 3 "${tiny[@]}" 2>&1 | tee "$OUT/hf_trainer.out"
  say "HF Trainer exit ${PIPESTATUS[0]}"
  if [ $((DEADLINE - SECONDS)) -ge 90 ]; then
    t=$(budget 120 10)
    say "HF + PEFT plain loop, $HF_DEVICE bf16 autocast (timeout ${t}s)"
    timeout -k 10 "$t" python3 bench/gpu/hf_peft_lora_bench.py --device $HF_DEVICE --dtype bf16 \
      --steps 20 --warmup 3 "${tiny[@]}" 2>&1 | tee "$OUT/hf_loop.out"
    say "HF loop exit ${PIPESTATUS[0]}"
  fi
else
  say "python3 lacks torch / transformers / peft: no HF baseline"
fi

# 7. One JSON line: both tokens/s, the ratios, the card.
SOURCE=$(paste -sd ';' "$D/source.txt" 2>/dev/null) F16=$LORAFORGE_WEBGPU_F16 MODE=$MODE SHAPE=$SHAPE GPU_NAME=$GPU_NAME ADAPTER=$ADAPTER HF_VERSIONS=$HF_VERSIONS ELAPSED=$SECONDS \
  $NODE --input-type=module -e "
  import { existsSync, readFileSync, writeFileSync } from 'node:fs';
  const { gpuPeak } = await import('$ROOT/bench/gpu/peaks.mjs');
  const out = process.argv[1];
  const last = (name) => {
    const f = out + '/' + name;
    if (!existsSync(f)) return null;
    // The last line that parses as a JSON object (the Trainer also prints Python dicts).
    for (const line of readFileSync(f, 'utf8').split('\n').reverse()) {
      if (!line.startsWith('{')) continue;
      try { return JSON.parse(line); } catch {}
    }
    return null;
  };
  const lf = last('loraforge.out'), hfT = last('hf_trainer.out'), hfL = last('hf_loop.out');
  const gm = last('gemm.out');
  const r = (a, b) => (a && b ? +(a / b).toFixed(4) : null);
  const e = process.env;
  const probed = (() => { try { return JSON.parse(e.ADAPTER); } catch { return e.ADAPTER || null; } })();
  const summary = {
    bench: 'loraforge-vs-hf-peft-lora-train', mode: e.MODE, shape: e.SHAPE, source: e.SOURCE || null,
    gpu: e.GPU_NAME || hfT?.device_name || null, webgpuAdapter: lf?.webgpuAdapter ?? probed,
    workload: 'LoRA r=8 alpha=16 all 7 projections, batch 8x64, first 32 positions -100, bf16 frozen weights',
    loraforgeF16Operands: e.F16 === '1',
    loraforge: lf && {
      trainerTokensPerSecond: lf.trainerTokensPerSecond, trainerSecondsPerStep: lf.trainerSecondsPerStep,
      forwardBackwardTokensPerSecond: lf.tokensPerSecond, forwardBackwardSecondsPerStep: lf.secondsPerStep,
      firstStepSeconds: lf.firstStepSeconds, stepSeconds: lf.stepSeconds, trainerStepSeconds: lf.trainerStepSeconds,
      cpuBaselineSecondsPerStep: lf.baselineSecondsPerStep, peakRssBytes: lf.peakRssBytes, node: lf.machine?.node,
    },
    hfTrainer: hfT && { tokensPerSecond: hfT.tokens_per_s, medianStepSeconds: hfT.median_step_s, peakGpuMiB: hfT.peak_gpu_mb, device: hfT.device_name },
    hfLoop: hfL && { tokensPerSecond: hfL.tokens_per_s, medianStepSeconds: hfL.median_step_s, peakGpuMiB: hfL.peak_gpu_mb },
    hfVersions: e.HF_VERSIONS || null,
    gemm: gm && (() => {
      const peak = gpuPeak(e.GPU_NAME || hfT?.device_name);
      const best = Math.max(...gm.results.map((x) => x.newGflops)) / 1000;
      return {
        plan: gm.plan, shapes: gm.results.map((x) => ({ shape: x.shape, newTflops: x.newGflops / 1000, oldTflops: x.oldGflops / 1000, speedup: x.speedup })),
        bestTflops: best, peak, shareOfTensorPeak: peak ? best / peak.tensor16 : null, shareOfFp32Peak: peak ? best / peak.fp32 : null,
      };
    })(),
    ratioVsHfTrainer: r(lf?.trainerTokensPerSecond, hfT?.tokens_per_s),
    ratioVsHfLoop: r(lf?.trainerTokensPerSecond, hfL?.tokens_per_s),
    elapsedSeconds: +e.ELAPSED,
  };
  writeFileSync(out + '/summary.json', JSON.stringify(summary, null, 2) + '\n');
  const f = (x) => (x == null ? 'n/a' : x.toFixed(1));
  console.log('loraforge webgpu (Trainer step): ' + f(lf?.trainerTokensPerSecond) + ' tok/s; forward+backward only: ' + f(lf?.tokensPerSecond) + ' tok/s');
  console.log('HF Trainer + PEFT bf16: ' + f(hfT?.tokens_per_s) + ' tok/s; HF plain loop: ' + f(hfL?.tokens_per_s) + ' tok/s');
  if (summary.gemm) console.log('loraforge GEMM: ' + summary.gemm.bestTflops.toFixed(2) + ' TFLOP/s at best' + (summary.gemm.peak ? ' = ' + (100 * summary.gemm.shareOfTensorPeak).toFixed(1) + '% of the ' + summary.gemm.peak.name + ' bf16 tensor peak (' + summary.gemm.peak.tensor16 + '), ' + (100 * summary.gemm.shareOfFp32Peak).toFixed(1) + '% of its FP32 peak (' + summary.gemm.peak.fp32 + ')' : ' (card not in bench/gpu/peaks.mjs)'));
  console.log('ratio loraforge / HF Trainer: ' + (summary.ratioVsHfTrainer ?? 'n/a') + ' on ' + (summary.gpu ?? 'unknown GPU'));
  console.log(JSON.stringify(summary));
" "$OUT"
}

main 2>&1 | tee -a "$OUT/gpu-bench.log"
