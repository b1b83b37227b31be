#!/bin/bash
# Runs the subgroup-matrix GEMM tests (test/webgpu/kernels.test.ts) on a lavapipe that has
# cooperative matrices. Debian 12's lavapipe (Mesa 25.0, scripts/install-lavapipe.sh) has none, so
# there those tests are skipped; Mesa 26's lavapipe offers 8x8x8 f16 -> f32 subgroup matrices to
# Dawn. It needs a newer glibc than Debian 12's, so it runs in a Debian 13 chroot with Mesa from
# trixie-backports, this checkout bound at the same path and this machine's node binary.
#
#   sudo scripts/subgroup-matrix-check.sh [CHROOT]     (default /var/tmp/loraforge-trixie)
#
# The first run builds the chroot (debootstrap, ~5 minutes, ~400 MB); later runs reuse it. The
# Debian mirror is the one this machine's apt uses. Extra arguments for the test runner go in
# TEST_ARGS (default: only the subgroup-matrix tests).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
root=${1:-/var/tmp/loraforge-trixie}
[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap, mount, chroot)" >&2; exit 2; }

mirror=$(grep -hs -E '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/* |
  grep -oE 'https?://[^ ]+/debian/?' | head -1 || true)
[ -n "$mirror" ] || { echo "no Debian mirror in this machine's apt sources" >&2; exit 2; }

mounted=()
cleanup() {
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount "${mounted[$i]}" || true; done
}
trap cleanup EXIT
bind() { # bind SRC DST
  mkdir -p "$2"
  mountpoint -q "$2" || { mount --bind "$1" "$2" && mounted+=("$2"); }
}

if [ ! -x "$root/usr/bin/vulkaninfo" ]; then
  command -v debootstrap >/dev/null || apt-get install -y -q debootstrap
  debootstrap --variant=minbase --include=libvulkan1,ca-certificates trixie "$root" "$mirror"
  printf 'deb %s trixie main\ndeb %s trixie-backports main\n' "$mirror" "$mirror" \
    >"$root/etc/apt/sources.list"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  bind /dev "$root/dev"
  chroot "$root" sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q -t trixie-backports mesa-vulkan-drivers vulkan-tools'
fi
bind /dev "$root/dev"
mountpoint -q "$root/proc" || { mount -t proc proc "$root/proc" && mounted+=("$root/proc"); }
bind /sys "$root/sys"
bind "$repo" "$root$repo"
mkdir -p "$root/usr/local/bin"
cp "$(readlink -f "$(command -v node)")" "$root/usr/local/bin/node"

chroot "$root" sh -c 'vulkaninfo 2>/dev/null | grep -E "deviceName|VK_KHR_cooperative_matrix" || true'
chroot "$root" env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root \
  MESA_SHADER_CACHE_DIR=/var/tmp/mesa-shader-cache \
  sh -c 'cd "$1" && shift && exec node --import tsx --test --test-reporter=spec "$@" test/webgpu/kernels.test.ts' \
  sh "$repo" ${TEST_ARGS:---test-name-pattern=subgroup-matrix}
