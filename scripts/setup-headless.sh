#!/usr/bin/env bash
# Makes sure Node has a WebGPU adapter for the tests and benchmarks, and installs the software
# stack for headless Linux only where one is missing and the system is Debian-like.
#
#   bash scripts/setup-headless.sh            # what `npm test` and `npm run bench` run first
#   bash scripts/setup-headless.sh --install  # CI (.ci/run), `npm run setup:headless`
#
# Default: look for an adapter first (tools/find-adapter.ts, Dawn as the tests use it).
#   - One found (a GPU, or a software adapter already installed): say which, install nothing.
#   - None found, Debian-like system (apt-get, /etc/os-release ID or ID_LIKE debian): say what
#     will be installed, install the software stack below, check that the adapter now exists.
#   - None found elsewhere: say what to install, exit 1.
# --install: install the software stack without looking for an adapter (Node's dependencies
#   need not be installed yet), idempotently; SETUP_FORCE=1 reinstalls it even if present. CI
#   needs all of it: lavapipe for the Node tests, and Chromium for test/browser.test.ts and
#   SwiftShader, the second software adapter.
#
# The software stack (Debian 12 "bookworm" and other Debian-like systems):
#   - lavapipe (Mesa's Vulkan on llvmpipe), Mesa >= 23: bookworm's own Mesa 22.3 is too old for
#     Dawn ("shaderUniform*ArrayDynamicIndexing required"), so on Debian it comes from the
#     release's backports suite (Mesa 25 works).
#   - Chromium, whose bundled SwiftShader is the second software adapter, and the browser of
#     test/browser.test.ts.
# The archive address is read from the system's own apt sources, never written down here.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup-headless: $*"; }
fail() {
  echo "setup-headless: $*" >&2
  exit 1
}

mode=check
for arg in "$@"; do
  case "$arg" in
    --install) mode=install ;;
    -h | --help)
      awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
      exit 0
      ;;
    *) fail "unknown argument '$arg' (expected --install or --help)" ;;
  esac
done
[ "${SETUP_FORCE:-0}" = 1 ] && mode=install

# ---------------------------------------------------------------------------------------------
# Is there an adapter already?

find_adapter() {
  if [ ! -d node_modules/webgpu ] || [ ! -d node_modules/tsx ]; then
    fail "Node's dependencies are not installed: run \`npm ci\` first"
  fi
  # Dawn's harmless start-up warnings are filtered from stderr; the exit status is node's.
  { node --import tsx tools/find-adapter.ts 2>&1 1>&3 3>&- |
    grep -vE 'artificially reduced|XDG_RUNTIME_DIR' >&2 3>&-; } 3>&1
  return "${PIPESTATUS[0]}"
}

if [ "$mode" = check ]; then
  set +e
  find_adapter
  status=$?
  set -e
  case "$status" in
    0) exit 0 ;; # an adapter exists: nothing to install
    2) ;;        # none: install below, or say what to do
    *) fail "the adapter check failed (exit status $status; see above)" ;;
  esac
fi

# ---------------------------------------------------------------------------------------------
# No adapter (or --install): install where we know how, else say what to do.

os_id= os_like= codename=
if [ -r /etc/os-release ]; then
  os_id=$(. /etc/os-release && echo "${ID:-}")
  os_like=$(. /etc/os-release && echo "${ID_LIKE:-}")
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
fi
debian_like=0
if command -v apt-get >/dev/null 2>&1 && [[ " $os_id $os_like " == *" debian "* ]]; then
  debian_like=1
fi

if [ "$debian_like" != 1 ]; then
  echo >&2
  case "$(uname -s)" in
    Darwin)
      echo "WebGPU in Node (Dawn) runs on Metal on macOS: it needs a Mac whose GPU supports Metal and" >&2
      echo "nothing else installed. Virtual machines and CI runners without GPU access have none." >&2
      ;;
    MINGW* | MSYS* | CYGWIN* | Windows_NT)
      echo "WebGPU in Node (Dawn) runs on Direct3D 12 or Vulkan on Windows: install or update your GPU" >&2
      echo "vendor's driver. Virtual machines and remote sessions without GPU access have none." >&2
      ;;
    Linux)
      echo "WebGPU in Node (Dawn) runs on Vulkan on Linux: install the Vulkan loader (libvulkan) and a" >&2
      echo "Vulkan driver, either your GPU vendor's or Mesa's (Mesa >= 23; its lavapipe driver is a" >&2
      echo "software adapter that needs no GPU, e.g. Fedora's mesa-vulkan-drivers, Arch's vulkan-swrast)." >&2
      echo "FUSED_DISTILL_ADAPTER=lavapipe|swiftshader or VK_ICD_FILENAMES pick a Vulkan driver by hand." >&2
      ;;
    *)
      echo "WebGPU in Node (Dawn) needs Metal (macOS), Direct3D 12 (Windows) or Vulkan (Linux)." >&2
      ;;
  esac
  echo >&2
  if [ "$mode" = install ]; then
    fail "--install knows how to install the software stack on Debian-like systems only (apt-get)"
  fi
  fail "no WebGPU adapter found, and this is not a Debian-like system where this script can install one"
fi

if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi

mesa_version() { dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true; }
have_lavapipe() {
  { [ -f /usr/share/vulkan/icd.d/lvp_icd.json ] || [ -f /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ]; } &&
    mesa_version | grep -qE '^(1:)?(2[3-9]|[3-9][0-9])\.'
}
have_chromium() { [ -x /usr/bin/chromium ]; }

if [ "$mode" = install ] && have_lavapipe && have_chromium && [ "${SETUP_FORCE:-0}" != 1 ]; then
  say "lavapipe $(mesa_version) and chromium already installed"
  exit 0
fi

backports=0
[ "$os_id" = debian ] && [ -n "$codename" ] && backports=1

if [ "$mode" = check ]; then
  say "no WebGPU adapter found: installing the software WebGPU stack with ${SUDO:+sudo }apt-get:"
else
  say "--install: installing the software WebGPU stack with ${SUDO:+sudo }apt-get:"
fi
if [ "$backports" = 1 ]; then
  say "  - lavapipe, Mesa's software Vulkan driver: mesa-vulkan-drivers libdrm2 libdrm-amdgpu1 libvulkan1"
  say "    from ${codename}-backports (added to the apt sources if missing: ${codename}'s own Mesa may be too old)"
else
  say "  - lavapipe, Mesa's software Vulkan driver: mesa-vulkan-drivers libvulkan1 (Mesa >= 23 needed)"
fi
say "  - chromium (the browser of test/browser.test.ts; its SwiftShader is a second software adapter)"

export DEBIAN_FRONTEND=noninteractive
if [ "$backports" = 1 ]; then
  backports_list=/etc/apt/sources.list.d/tfjs-fused-distill-backports.sources
  if [ ! -f "$backports_list" ] && ! grep -rqs "${codename}-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # First URIs line of the deb822 sources (the main archive), or of a classic sources.list.
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    if [ -z "$uri" ]; then
      uri=$(awk '$1 == "deb" && $3 == "'"$codename"'" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    fi
    [ -n "$uri" ] || fail "could not find the Debian archive address in the apt sources"
    signed_by=/usr/share/keyrings/debian-archive-keyring.gpg
    $SUDO tee "$backports_list" >/dev/null <<SRC
Types: deb
URIs: $uri
Suites: ${codename}-backports
Components: main
Signed-By: $signed_by
SRC
    say "added ${codename}-backports in $backports_list"
  fi
  $SUDO apt-get update -qq
  # libdrm from the same suite: Mesa 25 links against the newer one.
  $SUDO apt-get install -y -qq --no-install-recommends -t "${codename}-backports" \
    mesa-vulkan-drivers libdrm2 libdrm-amdgpu1 libvulkan1 >/dev/null
else
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null
fi
have_lavapipe || fail "lavapipe (mesa-vulkan-drivers >= 23) is still missing after the install (got '$(mesa_version)')"

# Debian's chromium is a real package; elsewhere it may be missing or a snap wrapper.
if [ "$mode" = install ]; then
  $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
elif apt-cache show chromium >/dev/null 2>&1; then
  $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null ||
    say "chromium could not be installed (see above)"
fi
if have_chromium; then
  say "lavapipe $(mesa_version), $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
elif [ "$mode" = install ]; then
  fail "chromium is still missing after the install"
else
  say "lavapipe $(mesa_version); no chromium package here: test/browser.test.ts needs a Chromium or Chrome (or CHROMIUM_PATH)"
fi

if [ "$mode" = check ]; then
  find_adapter || fail "still no WebGPU adapter after installing lavapipe"
fi
