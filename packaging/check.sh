#!/usr/bin/env bash
# Packaging check, run by scripts/test.sh after the cargo tests (which built the dev-profile
# binary it packages; nothing is compiled here). Takes a few seconds:
#   1. builds the .deb from that binary (cargo deb --no-build --profile dev --fast),
#   2. checks that every package in its Depends exists here (installed; alternatives: any one),
#   3. unpacks it into a scratch root (dpkg-deb -x: no root, no dpkg database change, nothing
#      left behind) and runs `streamit-studio --version` and `streamit-studio devices` from there,
#   4. validates the desktop entry, the AppStream metadata, the macOS plists, the Windows
#      manifest and WiX source, and the Flatpak manifest,
#   5. assembles the AppImage AppDir and the macOS .app with their scripts and runs AppRun.
# Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target="${CARGO_TARGET_DIR:-target}"
bin="$target/debug/streamit-studio"
[ -x "$bin" ] || { echo "FAIL: $bin missing (cargo test builds it)" >&2; exit 1; }
scratch="$(mktemp -d "${TMPDIR:-/tmp}/streamit-packaging.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
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
echo "packaging: ok"
