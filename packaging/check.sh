#!/usr/bin/env bash
# Packaging check, run by scripts/test.sh after the cargo tests (which built the dev-profile
# binary it packages; nothing is compiled here). Takes a few seconds:
#   1. builds the .deb from that binary (cargo deb --no-build --profile dev --fast),
#   2. checks that every package in its Depends exists here (installed; alternatives: any one),
#   3. unpacks it into a scratch root (dpkg-deb -x: no root, no dpkg database change, nothing
#      left behind) and runs `streamit-studio --version` and `streamit-studio devices` from there,
#   4. validates the desktop entry, the AppStream metadata, the macOS plists, the Windows
#      manifest and WiX source, and the Flatpak manifest,
#   5. assembles the AppImage AppDir and the macOS .app with their scripts and runs AppRun,
#   6. builds the backend's separate .deb (streamit-server + the watch pages), checks that the
#      studio's holds no backend and that `dev` from the studio's alone says how to get one, and
#      serves the packaged watch pages from an unpacked server .deb.
# Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target="${CARGO_TARGET_DIR:-target}"
bin="$target/debug/streamit-studio"
[ -x "$bin" ] || { echo "FAIL: $bin missing (cargo test builds it)" >&2; exit 1; }
scratch="$(mktemp -d "${TMPDIR:-/tmp}/streamit-packaging.XXXXXX")"
server_pid=""
trap '[ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null || true; rm -rf "$scratch"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. The .deb (cargo-deb warns that dev profiles are meant for testing only; that is the point).
cargo deb --no-build --profile dev --fast --quiet -o "$target/debian/" >"$scratch/deb-path" \
  || fail "cargo deb"
deb="$(tail -n1 "$scratch/deb-path")"
[ -f "$deb" ] || fail "cargo deb wrote no package ($deb)"
echo "deb: $deb ($(du -h "$deb" | cut -f1))"
depends="$(dpkg-deb -f "$deb" Depends)"
echo "Depends: $depends"

# 2. Every dependency names a real package of this distribution.
IFS=',' read -ra deps <<<"$depends"
for dep in "${deps[@]}"; do
  ok=""
  IFS='|' read -ra alts <<<"$dep"
  for alt in "${alts[@]}"; do
    name="$(sed -E 's/\(.*\)//; s/[[:space:]]//g' <<<"$alt")"
    dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed" && ok=1
  done
  [ -n "$ok" ] || fail "Depends: none of '$dep' is installed here"
done

# 3. Installed layout and the binary from the installed path.
root="$scratch/root"
dpkg-deb -x "$deb" "$root"
for f in usr/bin/streamit-studio usr/share/applications/streamit-studio.desktop \
  usr/share/icons/hicolor/256x256/apps/streamit-studio.png \
  usr/share/icons/hicolor/16x16/apps/streamit-studio.png \
  usr/share/metainfo/io.streamit.Studio.metainfo.xml; do
  [ -e "$root/$f" ] || fail "$f is not in the .deb"
done
version="$("$root/usr/bin/streamit-studio" --version)" || fail "installed streamit-studio --version"
echo "installed: $version"
[ "$version" = "streamit-studio $(dpkg-deb -f "$deb" Version | cut -d- -f1)" ] \
  || fail "--version says '$version', the package is $(dpkg-deb -f "$deb" Version)"
if ! timeout 60 "$root/usr/bin/streamit-studio" devices >"$scratch/devices.out" 2>"$scratch/devices.err"; then
  cat "$scratch/devices.out" "$scratch/devices.err" >&2
  fail "installed streamit-studio devices"
fi
grep -q '^video sources:' "$scratch/devices.out" || fail "devices printed no video sources"
grep -q '^audio sources:' "$scratch/devices.out" || fail "devices printed no audio sources"
echo "installed: streamit-studio devices ok ($(grep -c . "$scratch/devices.out") lines)"

# 4. Desktop integration and the other platforms' definitions (static checks).
desktop-file-validate --no-hints "$root/usr/share/applications/streamit-studio.desktop" \
  || fail "desktop entry"
python3 - <<'PY' || fail "platform definitions"
import plistlib, xml.etree.ElementTree as ET
info = plistlib.load(open("packaging/macos/Info.plist", "rb"))
for k in ("CFBundleIdentifier", "CFBundleExecutable", "NSCameraUsageDescription",
          "NSMicrophoneUsageDescription", "LSMinimumSystemVersion", "NSHighResolutionCapable"):
    assert info.get(k), f"Info.plist: {k} missing"
assert info["CFBundleExecutable"] == "streamit-studio"
ent = plistlib.load(open("packaging/macos/entitlements.plist", "rb"))
for k in ("com.apple.security.device.camera", "com.apple.security.device.audio-input",
          "com.apple.security.network.client"):
    assert ent.get(k) is True, f"entitlements.plist: {k} missing"
for f in ("packaging/windows/main.wxs", "packaging/windows/streamit-studio.exe.manifest",
          "packaging/linux/io.streamit.Studio.metainfo.xml"):
    ET.parse(f)
try:
    import yaml
except ImportError:
    yaml = None
if yaml:
    fp = yaml.safe_load(open("packaging/flatpak/io.streamit.Studio.yml"))
    assert fp["id"] == "io.streamit.Studio" and fp["command"] == "streamit-studio"
PY

# 5. AppImage AppDir and macOS bundle layout (packing and signing need tools this OS lacks).
appdir="$(packaging/appimage/make-appdir.sh "$bin" "$scratch" 2>/dev/null | tail -n1)"
[ "$("$appdir/AppRun" --version)" = "$version" ] || fail "AppDir AppRun --version"
app="$(packaging/macos/make-app.sh "$bin" "$scratch" 2>/dev/null | tail -n1)"
[ -x "$app/Contents/MacOS/streamit-studio" ] || fail ".app has no executable"
grep -q "<string>${version#streamit-studio }</string>" "$app/Contents/Info.plist" \
  || fail ".app Info.plist has no version"

# 6. The backend: not in the studio's package; its own package with the watch pages.
if dpkg-deb -c "$deb" | grep -qE 'streamit-server|share/streamit-server'; then
  fail "the studio's .deb contains the backend"
fi
# `dev` from the studio's package alone (no server beside it, none on PATH) says how to get one,
# before it starts anything.
if env -u STREAMIT_SERVER_BIN PATH=/nonexistent STREAMIT_STUDIO_NO_KEYRING=1 \
  "$root/usr/bin/streamit-studio" dev --headless --data-dir "$scratch/dev" \
  >"$scratch/dev.out" 2>"$scratch/dev.err"; then
  fail "dev without a streamit-server succeeded"
fi
grep -q "streamit-server.*not found" "$scratch/dev.err" \
  && grep -q "Install the streamit-server package" "$scratch/dev.err" \
  || { cat "$scratch/dev.err" >&2; fail "dev without a streamit-server did not say how to get one"; }
echo "installed: dev without a backend says: $(grep -m1 "not found" "$scratch/dev.err" | cut -c1-120)…"
sbin="$target/debug/streamit-server"
[ -x "$sbin" ] || fail "$sbin missing (cargo test builds it)"
[ -f crates/server/web/dist/index.html ] \
  || fail "crates/server/web/dist is not built (scripts/install.sh builds it)"
cargo deb -p streamit-server --no-build --profile dev --fast --quiet -o "$target/debian/" \
  >"$scratch/server-deb-path" || fail "cargo deb -p streamit-server"
sdeb="$(tail -n1 "$scratch/server-deb-path")"
[ -f "$sdeb" ] || fail "cargo deb wrote no server package ($sdeb)"
echo "server deb: $sdeb ($(du -h "$sdeb" | cut -f1))"
sroot="$scratch/server-root"
dpkg-deb -x "$sdeb" "$sroot"
web="$sroot/usr/share/streamit-server/web"
for f in usr/bin/streamit-server usr/share/streamit-server/web/index.html \
  usr/share/streamit-server/web/assets/app.js usr/share/streamit-server/web/assets/app.css; do
  [ -e "$sroot/$f" ] || fail "$f is not in the server .deb"
done
ls "$web/assets/fonts/"*.otf >/dev/null 2>&1 || fail "the server .deb has no fonts"
"$sroot/usr/bin/streamit-server" --version >/dev/null || fail "installed streamit-server --version"
# The packaged pages, served by the packaged server (the directory its default finds next to
# an installed binary, named explicitly: on a build machine the sources' web/dist comes first).
HOME="$scratch/home" STREAMIT_BIND=127.0.0.1:0 STREAMIT_WEB_DIR="$web" \
  "$sroot/usr/bin/streamit-server" >"$scratch/server.out" 2>"$scratch/server.err" &
server_pid=$!
url=""
for _ in $(seq 1 300); do
  url="$(sed -n 's/^STREAMIT_SERVER_LISTENING //p' "$scratch/server.out")"
  [ -n "$url" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
page_ok=""
if [ -n "$url" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/")" = 200 ] \
  && [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/assets/app.js")" = 200 ]; then
  page_ok=1
fi
kill -TERM "$server_pid" 2>/dev/null || true
wait "$server_pid" 2>/dev/null || true
[ -n "$page_ok" ] || { tail -n 20 "$scratch/server.err" >&2; fail "the packaged server did not serve the packaged watch pages"; }
echo "installed: streamit-server serves the packaged watch pages"
echo "packaging: ok"
