#!/bin/sh
# Assembles "StreamIt Studio.app" from a built streamit-studio binary:
#   packaging/macos/make-app.sh [BINARY] [OUT_DIR]
#   BINARY   default: $CARGO_TARGET_DIR/release/streamit-studio (or target/release/…)
#   OUT_DIR  default: the binary's directory
# On macOS (release): cargo build --release && packaging/macos/make-app.sh
#   - the .icns is made from assets/icon.png with sips + iconutil;
#   - the bundle is signed with the hardened runtime and entitlements.plist (camera, microphone,
#     network) as $CODESIGN_IDENTITY ("Developer ID Application: …"), or ad hoc without it;
#   - MAKE_DMG=1 also writes StreamIt Studio-<version>.dmg next to it (hdiutil).
# Notarisation (xcrun notarytool submit … --wait; xcrun stapler staple) needs Apple credentials
# and is left to the release job. The script also runs on Linux (scripts/test.sh checks the
# bundle layout that way); the macOS-only steps are skipped there.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
bin="${1:-$target/release/streamit-studio}"
out="${2:-$(dirname "$bin")}"
[ -x "$bin" ] || { echo "make-app: no executable at $bin (cargo build --release first)" >&2; exit 1; }
# The first `version = "…"` in the root Cargo.toml is [workspace.package]'s.
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n1)"
[ -n "$version" ] || { echo "make-app: no version in Cargo.toml" >&2; exit 1; }

app="$out/StreamIt Studio.app"
rm -rf "$app"
mkdir -p "$app/Contents/MacOS" "$app/Contents/Resources"
cp "$bin" "$app/Contents/MacOS/streamit-studio"
sed "s/@VERSION@/$version/g" "$here/Info.plist" >"$app/Contents/Info.plist"
printf 'APPL????' >"$app/Contents/PkgInfo"

if command -v iconutil >/dev/null && command -v sips >/dev/null; then
  set_dir="$(mktemp -d)/streamit-studio.iconset"
  mkdir -p "$set_dir"
  for n in 16 32 64 128 256; do
    sips -z "$n" "$n" "$root/assets/icon.png" --out "$set_dir/icon_${n}x${n}.png" >/dev/null
  done
  # @2x variants are the next size up (the source is 256 px, so 256@2x is omitted).
  cp "$set_dir/icon_32x32.png" "$set_dir/icon_16x16@2x.png"
  cp "$set_dir/icon_64x64.png" "$set_dir/icon_32x32@2x.png"
  cp "$set_dir/icon_256x256.png" "$set_dir/icon_128x128@2x.png"
  rm "$set_dir/icon_64x64.png"
  iconutil -c icns "$set_dir" -o "$app/Contents/Resources/streamit-studio.icns"
  rm -rf "$(dirname "$set_dir")"
else
  echo "make-app: iconutil/sips not found (not macOS): bundle has no .icns" >&2
fi

if command -v codesign >/dev/null; then
  # A real identity gets a secure timestamp (notarisation wants it); ad hoc ("-") cannot.
  if [ -n "${CODESIGN_IDENTITY:-}" ]; then ts=--timestamp; else ts=--timestamp=none; fi
  codesign --force --options runtime "$ts" \
    --entitlements "$here/entitlements.plist" --sign "${CODESIGN_IDENTITY:--}" "$app"
  codesign --verify --strict --verbose=1 "$app"
else
  echo "make-app: codesign not found (not macOS): bundle is unsigned" >&2
fi

if [ "${MAKE_DMG:-0}" = 1 ] && command -v hdiutil >/dev/null; then
  hdiutil create -volname "StreamIt Studio" -srcfolder "$app" -ov -format UDZO \
    "$out/StreamIt Studio-$version.dmg"
fi
echo "$app"
