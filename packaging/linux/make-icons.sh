#!/bin/sh
# Renders the icons every installer ships from assets/icon.png (256x256, drawn by
# assets/make-icon.sh). The results are committed, so building a package never needs
# ImageMagick; run this again after the icon changes. Needs ImageMagick (Debian: imagemagick).
#   linux/icons/hicolor/<N>x<N>/apps/streamit-studio.png  (.deb, AppImage, Flatpak)
#   windows/streamit-studio.ico                            (WiX installer and shortcut)
# macOS: packaging/macos/make-app.sh builds the .icns from the same PNG on the Mac (iconutil).
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
src="$here/../../assets/icon.png"
for n in 16 22 24 32 48 64 128 256; do
  d="$here/icons/hicolor/${n}x${n}/apps"
  mkdir -p "$d"
  # -strip: no timestamps in the PNG, so re-running leaves the committed files unchanged.
  convert "$src" -filter Lanczos -resize "${n}x${n}" -strip "PNG32:$d/streamit-studio.png"
done
convert "$src" -define icon:auto-resize=256,64,48,32,24,16 "$here/../windows/streamit-studio.ico"
