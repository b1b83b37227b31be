#!/bin/sh
# Installs Mesa's lavapipe (a CPU Vulkan driver) so that Dawn (the `webgpu` npm package) finds a
# WebGPU adapter on machines without a GPU: CI and developer containers. Run as root; idempotent.
#
# Debian bookworm ships Mesa 22.x, whose lavapipe is too old for Dawn, so the driver comes from
# bookworm-backports. The backports source is derived from the machine's own deb822 sources file
# (its first stanza, with the suite swapped) so that it uses whatever mirror the machine already
# trusts; no repository host is hard-coded here.
set -eu

MIN_MESA_MAJOR=25
SOURCES_DIR=/etc/apt/sources.list.d
MAIN_SOURCES="$SOURCES_DIR/debian.sources"
BACKPORTS_SOURCES="$SOURCES_DIR/debian-backports.sources"

installed_mesa_major() {
  dpkg-query -W -f '${db:Status-Status} ${Version}\n' mesa-vulkan-drivers 2>/dev/null |
    awk '$1 == "installed" { split($2, v, /[.:]/); print (index($2, ":") ? v[2] : v[1]) }'
}

lavapipe_icd_present() {
  ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1
}

major="$(installed_mesa_major)"
if [ -n "$major" ] && [ "$major" -ge "$MIN_MESA_MAJOR" ] && lavapipe_icd_present &&
  dpkg-query -W -f '${db:Status-Status}' libvulkan1 2>/dev/null | grep -q '^installed$'; then
  echo "lavapipe already installed (mesa-vulkan-drivers $major.x); nothing to do"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-lavapipe.sh must run as root (it edits apt sources and installs packages)" >&2
  exit 1
fi

# shellcheck disable=SC1091
. /etc/os-release
codename="${VERSION_CODENAME:-bookworm}"
suite="$codename-backports"

if [ ! -f "$BACKPORTS_SOURCES" ]; then
  if [ ! -f "$MAIN_SOURCES" ]; then
    echo "no $MAIN_SOURCES (deb822 format) to derive the $suite source from" >&2
    exit 1
  fi
  # First paragraph only (the main archive, not the security one); drop comments so the new file
  # holds nothing but the fields apt reads.
  awk 'BEGIN { RS = ""; ORS = "\n" } NR == 1 { print; exit }' "$MAIN_SOURCES" |
    grep -v '^#' |
    sed "s/^Suites:.*/Suites: $suite/" >"$BACKPORTS_SOURCES.tmp"
  if ! grep -q "^Suites: $suite\$" "$BACKPORTS_SOURCES.tmp"; then
    rm -f "$BACKPORTS_SOURCES.tmp"
    echo "the first stanza of $MAIN_SOURCES has no Suites: field" >&2
    exit 1
  fi
  mv "$BACKPORTS_SOURCES.tmp" "$BACKPORTS_SOURCES"
  echo "wrote $BACKPORTS_SOURCES"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends -t "$suite" mesa-vulkan-drivers libvulkan1

major="$(installed_mesa_major)"
if [ -z "$major" ] || [ "$major" -lt "$MIN_MESA_MAJOR" ] || ! lavapipe_icd_present; then
  echo "mesa-vulkan-drivers ${major:-?}.x from $suite has no usable lavapipe (need >= $MIN_MESA_MAJOR)" >&2
  exit 1
fi
echo "lavapipe installed (mesa-vulkan-drivers $major.x)"
