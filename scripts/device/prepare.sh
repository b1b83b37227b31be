#!/bin/bash
# Fills .device/ (ignored by .gitignore) with what scripts/device/gpu-bench.sh needs on the
# `device` tool's GPU machine, which has no Node.js, no node_modules and (maybe) no Vulkan loader.
# Run here, in the repository root, before the device call; then carry `.device` (see the run
# invocation at the top of gpu-bench.sh). Idempotent: node.xz and the .debs are kept if present.
#   scripts/device/prepare.sh
#
# .device/
#   node.xz                                  this machine's node binary (x86-64, xz -9)
#   source.txt                               the commit bundled, and uncommitted changes if any
#   debs/*.deb                               Vulkan loader + glvnd (the device README's recipe)
#   app/bench-train.mjs                      bench/train.ts, bundled (scripts/device/bundle.mjs)
#   app/bench-gemm.mjs                       bench/gemm.ts (the WebGPU GEMM, old and tuned kernels)
#   app/src/engine/cpu/worker.mjs            the CPU pool's worker, beside the bundles' CPU URL
#   app/build/*.wasm                         the CPU kernels (npm run build:wasm)
#   app/node_modules/webgpu/                 the package's index.js + package.json, and
#     dist/linux-x64/dawn.node.xz            Dawn's native module (unpacked by gpu-bench.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."

[ "$(uname -m)" = x86_64 ] || { echo "prepare.sh: the device machine is x86-64; run this on x86-64" >&2; exit 1; }
D=.device
APP=$D/app
mkdir -p "$D/debs"
rm -rf "$APP"
mkdir -p "$APP/src/engine/cpu" "$APP/build" "$APP/node_modules/webgpu/dist/linux-x64"

# 1. node: the binary that runs here (Node 20, glibc >= 2.28, libstdc++), compressed.
NODE_BIN=$(readlink -f "$(command -v node)")
if [ ! -s "$D/node.xz" ] || [ "$(cat "$D/node.version" 2>/dev/null)" != "$(node --version)" ]; then
  echo "compressing $NODE_BIN ($(node --version)) ..."
  xz -9 -T0 -c "$NODE_BIN" >"$D/node.xz.tmp" && mv "$D/node.xz.tmp" "$D/node.xz"
  node --version >"$D/node.version"
fi

# 2. The bundle, and what it loads at run time. It is built from the working tree as it is: name
#    the commit and any uncommitted source changes, which gpu-bench.sh prints with its results.
dirty=$(git status --porcelain -- src bench | grep -v '^??' || true)
{
  git rev-parse --short HEAD
  [ -z "$dirty" ] || echo "$dirty"
} >"$D/source.txt"
if [ -n "$dirty" ]; then
  echo "prepare.sh: note, bundling uncommitted changes:"
  echo "$dirty"
fi
[ -s build/loraforge.wasm ] || npm run build:wasm
node scripts/device/bundle.mjs "$APP"
cp src/engine/cpu/worker.mjs "$APP/src/engine/cpu/"
cp build/*.wasm "$APP/build/"
W=node_modules/webgpu
cp "$W/package.json" "$W/index.js" "$APP/node_modules/webgpu/"
xz -6 -T0 -c "$W/dist/linux-x64/dawn.node" >"$APP/node_modules/webgpu/dist/linux-x64/dawn.node.xz"

# 3. Vulkan loader and glvnd for the NVIDIA ICD (device README: unpacked with dpkg -x there).
if ! ls "$D"/debs/libvulkan1_*.deb >/dev/null 2>&1; then
  mkdir -p /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  # shellcheck disable=SC2086
  apt-get $o update >/dev/null
  # shellcheck disable=SC2086
  (cd "$D/debs" && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi

# 4. What travels: the working tree (tracked + untracked-not-ignored) and .device, 64 MiB at most.
tree_bytes=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
device_bytes=$(du -sb "$D" | cut -f1)
total=$((tree_bytes + device_bytes))
du -sh "$D"/node.xz "$D"/debs "$APP"
printf 'travels: working tree %.1f MiB + .device %.1f MiB = %.1f MiB (limit 64 MiB)\n' \
  "$(echo "$tree_bytes / 1048576" | bc -l)" "$(echo "$device_bytes / 1048576" | bc -l)" \
  "$(echo "$total / 1048576" | bc -l)"
[ "$total" -lt $((60 * 1048576)) ] || { echo "prepare.sh: over 60 MiB; the device tool takes 64 MiB at most" >&2; exit 1; }
