#!/usr/bin/env bash
# The native GEMM test on the arm64 (NEON) build, under qemu-aarch64 on an x86-64 machine:
# cross-compiles prebuilds/linux-arm64/ (Debian: apt-get install g++-aarch64-linux-gnu qemu-user),
# fetches an arm64 Node (scripts/node-versions.mjs --arch arm64) and runs
# test/engine/native-gemm.test.ts with it on small shapes (emulation is slow). Node strips the
# test's types itself (tsx's esbuild binary is the host's), and the file runs in-process (no
# --test, no build from the test): under qemu-user an arm64 Node cannot start a child Node.
# Not part of CI.
#   bash scripts/test-arm64.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in aarch64-linux-gnu-g++ qemu-aarch64; do
  command -v "$tool" >/dev/null || {
    echo "test-arm64: $tool missing (apt-get install g++-aarch64-linux-gnu qemu-user)" >&2
    exit 1
  }
done
node scripts/build-native.mjs --arch arm64
node=$(node scripts/node-versions.mjs --arch arm64 22 | cut -d' ' -f2)
# The cross toolchain's C and C++ libraries serve the arm64 Node.
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu
NATIVE_GEMM_TEST_SMALL=1 LORAFORGE_SKIP_NATIVE_BUILD=1 \
  qemu-aarch64 "$node" --experimental-strip-types --no-warnings test/engine/native-gemm.test.ts
