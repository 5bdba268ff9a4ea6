#!/usr/bin/env bash
# Installs the software WebGPU stack for headless Linux (Debian 12 "bookworm"), idempotently:
#   - lavapipe (Mesa's Vulkan on llvmpipe) from bookworm-backports: bookworm's own Mesa 22.3
#     is too old for Dawn ("shaderUniform*ArrayDynamicIndexing required"); Mesa 25 works.
#   - Chromium, whose bundled SwiftShader is the second software adapter and the browser
#     for later browser runs.
# The archive address is read from the system's own apt sources, never written down here.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi

have_lavapipe() {
  [ -f /usr/share/vulkan/icd.d/lvp_icd.json ] &&
    dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -qE '^(2[3-9]|[3-9][0-9])\.'
}
have_chromium() { [ -x /usr/bin/chromium ]; }

if have_lavapipe && have_chromium && [ "${SETUP_FORCE:-0}" != 1 ]; then
  echo "setup-headless: lavapipe $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers) and chromium already installed"
  exit 0
fi

codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
backports_list=/etc/apt/sources.list.d/tfjs-fused-distill-backports.sources
if [ ! -f "$backports_list" ] && ! grep -rqs "${codename}-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  # First URIs line of the deb822 sources (the main archive), or of a classic sources.list.
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  if [ -z "$uri" ]; then
    uri=$(awk '$1 == "deb" && $3 == "'"$codename"'" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  fi
  if [ -z "$uri" ]; then
    echo "setup-headless: could not find the Debian archive address in the apt sources" >&2
    exit 1
  fi
  signed_by=/usr/share/keyrings/debian-archive-keyring.gpg
  $SUDO tee "$backports_list" >/dev/null <<SRC
Types: deb
URIs: $uri
Suites: ${codename}-backports
Components: main
Signed-By: $signed_by
SRC
  echo "setup-headless: added ${codename}-backports from $backports_list"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# libdrm from the same suite: Mesa 25 links against the newer one.
$SUDO apt-get install -y -qq --no-install-recommends -t "${codename}-backports" \
  mesa-vulkan-drivers libdrm2 libdrm-amdgpu1 libvulkan1 >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null

have_lavapipe || { echo "setup-headless: lavapipe is still missing after install" >&2; exit 1; }
have_chromium || { echo "setup-headless: chromium is still missing after install" >&2; exit 1; }
echo "setup-headless: lavapipe $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers), $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
