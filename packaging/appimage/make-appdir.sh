#!/bin/sh
# Assembles the AppDir of the StreamIt Studio AppImage and, when appimagetool is on PATH,
# packs it into StreamIt_Studio-<version>-x86_64.AppImage:
#   packaging/appimage/make-appdir.sh [BINARY] [OUT_DIR]
#   BINARY   default: $CARGO_TARGET_DIR/release/streamit-studio (or target/release/…)
#   OUT_DIR  default: the binary's directory (AppDir: OUT_DIR/StreamItStudio.AppDir)
# AppDir layout (the AppImage spec's "AppDir" format):
#   AppRun                               entry point (runs usr/bin/streamit-studio)
#   streamit-studio.desktop              packaging/linux/streamit-studio.desktop
#   streamit-studio.png, .DirIcon        256 px icon
#   usr/bin/streamit-studio
#   usr/share/applications/, usr/share/icons/hicolor/*, usr/share/metainfo/
# Shared libraries: the binary links libc, libstdc++, libasound and libvpx and dlopens X11,
# xkbcommon, EGL/Vulkan and Wayland. glibc and the graphics stack must come from the host
# (bundling them breaks GPU drivers); build on the oldest distribution to support (glibc
# floor). libvpx.so.7, libasound.so.2 and libwebrtc_audio_processing.so.1 are copied into
# usr/lib when BUNDLE_LIBS=1, since their sonames differ between distributions.
# appimagetool (and its type-2 runtime) is not in Debian and comes only from GitHub releases,
# so scripts/test.sh checks the AppDir (AppRun --version) but cannot produce the .AppImage.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
bin="${1:-$target/release/streamit-studio}"
out="${2:-$(dirname "$bin")}"
[ -x "$bin" ] || { echo "make-appdir: no executable at $bin (cargo build --release first)" >&2; exit 1; }
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n1)"

app="$out/StreamItStudio.AppDir"
rm -rf "$app"
mkdir -p "$app/usr/bin" "$app/usr/lib" "$app/usr/share/applications" "$app/usr/share/metainfo"
cp "$bin" "$app/usr/bin/streamit-studio"
cp "$here/AppRun" "$app/AppRun"
chmod 755 "$app/AppRun" "$app/usr/bin/streamit-studio"
cp "$root/packaging/linux/streamit-studio.desktop" "$app/streamit-studio.desktop"
cp "$root/packaging/linux/streamit-studio.desktop" "$app/usr/share/applications/"
cp "$root/packaging/linux/io.streamit.Studio.metainfo.xml" "$app/usr/share/metainfo/"
cp -R "$root/packaging/linux/icons" "$app/usr/share/"
cp "$root/packaging/linux/icons/hicolor/256x256/apps/streamit-studio.png" "$app/streamit-studio.png"
ln -sf streamit-studio.png "$app/.DirIcon"
if [ "${BUNDLE_LIBS:-0}" = 1 ]; then
  for lib in libvpx.so.7 libasound.so.2 libwebrtc_audio_processing.so.1; do
    path="$(ldd "$bin" | awk -v l="$lib" '$1 == l { print $3 }')"
    [ -n "$path" ] && cp -L "$path" "$app/usr/lib/"
  done
fi

if command -v appimagetool >/dev/null; then
  ARCH=x86_64 appimagetool "$app" "$out/StreamIt_Studio-$version-x86_64.AppImage"
else
  echo "make-appdir: appimagetool not on PATH: AppDir only ($app)" >&2
fi
echo "$app"
