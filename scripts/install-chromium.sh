#!/bin/sh
# Installs Debian's `chromium` package, which test/web/page.test.ts (part of `npm test`) drives
# headless with playwright-core to test the browser page on WebGPU. Run as root; idempotent.
# The test also needs lavapipe (scripts/install-lavapipe.sh), installed first so that Chromium's
# Mesa dependencies (libgbm1, ...) resolve against the backported Mesa.
set -eu

CHROMIUM=/usr/bin/chromium

installed_version() {
  dpkg-query -W -f '${db:Status-Status} ${Version}\n' chromium 2>/dev/null |
    awk '$1 == "installed" { print $2 }'
}

version="$(installed_version)"
if [ -n "$version" ] && [ -x "$CHROMIUM" ]; then
  echo "chromium already installed ($version); nothing to do"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-chromium.sh must run as root (it installs a package)" >&2
  exit 1
fi

# Where scripts/install-lavapipe.sh added the backports suite, prefer it for Chromium's Mesa
# dependencies (libgbm1 ...), so they match the backported Mesa rather than bookworm's 22.x
# (chromium itself is not in backports and still comes from the main or security suite).
# shellcheck disable=SC1091
. /etc/os-release
target=""
if [ -f /etc/apt/sources.list.d/debian-backports.sources ]; then
  target="-t ${VERSION_CODENAME:-bookworm}-backports"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $target chromium

version="$(installed_version)"
if [ -z "$version" ] || [ ! -x "$CHROMIUM" ]; then
  echo "apt-get installed no usable chromium at $CHROMIUM" >&2
  exit 1
fi
echo "chromium installed ($version)"
