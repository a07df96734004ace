#!/usr/bin/env bash
# Installs what StreamIt Studio needs to build, run and test, skipping what is already there.
# Safe to run any number of times. Prints `export` lines for the paths it settled on when
# called with --print-env (scripts/test.sh and scripts/dev.sh use that).
# --run: only what building and running needs (scripts/dev.sh): the build and GUI packages,
# Node.js for the watch pages and the LiveKit server; not PostgreSQL, the test viewer's venv,
# Chromium, cargo-deb or the other test tools.
# --scale-out: what --run installs, plus the servers scripts/scale-out.sh starts (Debian's
# postgresql, redis-server and haproxy; run as private processes, never as system services).
set -euo pipefail

mode=test
print_env=0
scale_out=0
for arg in "$@"; do
  case "$arg" in
    --run) mode=run ;;
    --scale-out) mode=run; scale_out=1 ;;
    --print-env) print_env=1 ;;
    *) echo "usage: scripts/install.sh [--run | --scale-out] [--print-env]" >&2; exit 2 ;;
  esac
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
# shellcheck source=versions.env
source "$here/versions.env"

cache="${XDG_CACHE_HOME:-$HOME/.cache}/streamit"
mkdir -p "$cache"
log() { printf '[install] %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------------------------
# Build: nasm (openh264 asm), cmake, pkg-config, libvpx-dev, libopus-dev, libclang-dev (bindgen),
# libasound2-dev (cpal), libwebrtc-audio-processing-dev (automatic gain, crates/media/src/gain.rs),
# libpipewire-0.3-dev (Wayland screen share, crates/media/src/screen/portal.rs).
# Tests: postgresql (backend suite), pulseaudio + ALSA pulse plugin (real
# microphone path), ffmpeg (media fixtures and benchmark anchor), xvfb/xauth (GUI screenshots),
# procps (pgrep check), ca-certificates. GUI at run time (winit/eframe load these): Mesa GL/EGL,
# xkbcommon-x11, X cursors; GUI screenshots: x11-apps (xwd), x11-utils (xwininfo: window titles)
# and imagemagick (import).
# Packaging (packaging/check.sh): desktop-file-utils (desktop-file-validate).
# Watch pages: nodejs (with npm: builds them with esbuild), chromium (Debian's, the headless
# browser the browser tests drive through playwright-core; never a Playwright browser download).
# Scale-out (scripts/scale-out.sh and the Cluster tests, test mode only; dev.sh needs neither):
# redis-server (LiveKit's multi-node bus, run as a private process, never the system service)
# and haproxy (the load balancer in front of the backends).
# Wayland screen share (crates/testkit/src/portal.rs): dbus-daemon, pipewire (+ pipewire-bin's
# pw-dump), wireplumber and xdg-desktop-portal, each run as a private process of the test.
apt_packages=(
  build-essential pkg-config cmake nasm clang libclang-dev
  libvpx-dev libopus-dev libasound2-dev libwebrtc-audio-processing-dev libpipewire-0.3-dev
  ca-certificates curl git
  libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libxcursor1 libxrandr2 libxi6 libx11-xcb1
  nodejs
)
if [ "$mode" = test ]; then
  apt_packages+=(
    postgresql pulseaudio pulseaudio-utils libasound2-plugins alsa-utils ffmpeg
    xvfb xauth procps x11-apps x11-utils imagemagick desktop-file-utils chromium iproute2
    redis-server haproxy
    dbus-daemon pipewire pipewire-bin wireplumber xdg-desktop-portal
  )
elif [ "$scale_out" = 1 ]; then
  apt_packages+=(postgresql redis-server haproxy)
fi
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "apt: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "apt: all ${#apt_packages[@]} packages present"
fi

# --- Rust toolchain components ---------------------------------------------------------------
for tool in cargo rustfmt cargo-clippy; do
  command -v "$tool" >/dev/null || { echo "error: $tool is missing (install Rust with rustup, components rustfmt and clippy)" >&2; exit 1; }
done

# --- cargo-deb (builds the .deb in packaging/check.sh; pinned) --------------------------------
if [ "$mode" = run ]; then
  : # packaging is the test command's job
elif [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
  log "installing cargo-deb $CARGO_DEB_VERSION (once)"
  cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION" --quiet
else
  log "cargo-deb $CARGO_DEB_VERSION present"
fi

# --- LiveKit server (built from the Go module, pinned) ---------------------------------------
lk_dir="$cache/livekit-server-$LIVEKIT_SERVER_VERSION"
lk_bin="$lk_dir/bin/livekit-server"
if [ ! -x "$lk_bin" ]; then
  command -v go >/dev/null || { echo "error: Go is needed to build livekit-server" >&2; exit 1; }
  log "building livekit-server $LIVEKIT_SERVER_VERSION with $(go version | cut -d' ' -f3) (once)"
  mkdir -p "$lk_dir/bin"
  tmp_bin="$(mktemp -d)"
  ( cd "$tmp_bin" && CGO_ENABLED=0 GOBIN="$tmp_bin" \
      go install "github.com/livekit/livekit-server/cmd/server@$LIVEKIT_SERVER_VERSION" )
  mv "$tmp_bin/server" "$lk_bin.partial" && mv "$lk_bin.partial" "$lk_bin"
  rm -rf "$tmp_bin"
else
  log "livekit-server $LIVEKIT_SERVER_VERSION present"
fi

# --- Python test tools: the viewer (official LiveKit Python SDK) and schemathesis -----------
req="$root/tests/viewer/requirements.txt"
req_hash="$(sha256sum "$req" | cut -c1-12)"
venv="$cache/viewer-venv-$req_hash"
if [ "$mode" = run ]; then
  : # the test viewer and schemathesis are for the tests only
elif [ ! -f "$venv/.complete" ]; then
  log "creating the test venv at $venv (once)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
  "$venv/bin/python" -c "import livekit.rtc, livekit.api" # the native core must load
  "$venv/bin/schemathesis" --version >/dev/null
  touch "$venv/.complete"
else
  log "test venv present"
fi

# --- npm packages (pinned exactly, committed package-lock.json) --------------------------------
# Installed with `npm ci` into the cache, one directory per lock-file hash (the stamp file
# .complete says the install finished), like the venv: the watch pages' livekit-client and
# esbuild (crates/server/web), and the browser tests' playwright-core (tests/browser).
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
command -v npm >/dev/null || { echo "error: npm is missing (it comes with Node.js 18 or newer)" >&2; exit 1; }
npm_install() { # <package dir> <cache name>; prints the node_modules path
  local pkg="$1" name="$2" hash dir
  hash="$(sha256sum "$pkg/package-lock.json" | cut -c1-12)"
  dir="$cache/$name-$hash"
  if [ ! -f "$dir/.complete" ]; then
    log "npm ci for $name into $dir (once per lock file)"
    rm -rf "$dir" && mkdir -p "$dir"
    cp "$pkg/package.json" "$pkg/package-lock.json" "$dir/"
    ( cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2 )
    touch "$dir/.complete"
  else
    log "$name node modules present"
  fi
  printf '%s\n' "$dir/node_modules"
}
web_modules="$(npm_install "$root/crates/server/web" web-node)"
if [ "$mode" = test ]; then
  browser_modules="$(npm_install "$root/tests/browser" browser-node)"
fi

# The watch pages: bundled into crates/server/web/dist (gitignored) in well under a second,
# so on every run; streamit-server serves that directory.
STREAMIT_WEB_NODE_MODULES="$web_modules" node "$root/crates/server/web/build.mjs" >&2

if [ "$mode" = test ]; then
  chromium_bin="$(command -v chromium || true)"
  [ -n "$chromium_bin" ] || { echo "error: Debian's chromium is not installed" >&2; exit 1; }
fi

if [ "$print_env" = 1 ]; then
  echo "export STREAMIT_LIVEKIT_SERVER='$lk_bin'"
  echo "export STREAMIT_WEB_NODE_MODULES='$web_modules'"
  if [ "$mode" = test ]; then
    echo "export STREAMIT_VIEWER_PYTHON='$venv/bin/python'"
    echo "export STREAMIT_CHROMIUM='$chromium_bin'"
    echo "export STREAMIT_BROWSER_NODE_MODULES='$browser_modules'"
  fi
fi
