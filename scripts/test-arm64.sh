#!/usr/bin/env bash
# The native tests on the arm64 (NEON) build, under qemu-aarch64 on an x86-64 machine:
# cross-compiles prebuilds/linux-arm64/ (Debian: apt-get install g++-aarch64-linux-gnu qemu-user),
# fetches an arm64 Node (scripts/node-versions.mjs --arch arm64) and runs with it the native GEMM
# test on small shapes (emulation is slow), the native kernel suites, and every golden test and
# gradient check on the NEON variant. Node transforms the tests' TypeScript itself (tsx's esbuild
# binary is the host's), and each file runs in-process (no --test, no build from the test): under
# qemu-user an arm64 Node cannot start a child Node. Not part of CI (26 minutes on
# the 2-core machine under load).
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
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The cross toolchain's C and C++ libraries serve the arm64 Node.
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu
export LORAFORGE_SKIP_NATIVE_BUILD=1 LORAFORGE_NATIVE_ISA=neon NATIVE_GEMM_TEST_SMALL=1
status=0
for file in test/engine/native-gemm.test.ts test/engine/native-kernels.test.ts \
  test/engine/native-backend.test.ts test/engine/registry-kernels.test.ts test/engine/gemm.test.ts \
  $(grep -l forEachCpuBackend -r test --include='*.test.ts' | sort); do
  printf 'test-arm64: %s  ' "$file"
  qemu-aarch64 "$node" --experimental-transform-types --no-warnings "$file" >"$log" 2>&1 || {
    status=1
    cat "$log"
  }
  grep -E '^# (pass|fail|skipped) ' "$log" | tr '\n' ' '
  echo
done
exit $status
