#!/bin/sh
# Draws assets/icon.png (256x256): a rounded violet-to-pink tile with a white "on air" mark
# (a dot with two broadcast arcs on each side). Needs ImageMagick (Debian: imagemagick).
set -eu
cd "$(dirname "$0")"
convert -size 256x256 -define gradient:angle=135 gradient:'#8b5cf6-#db2777' \
  \( -size 256x256 xc:black -fill white -draw "roundrectangle 6,6 249,249 56,56" \) \
  -alpha off -compose copy_opacity -composite -compose over \
  -fill none -stroke white -strokewidth 16 -draw "stroke-linecap round path 'M 166.6,93.2 A 52,52 0 0,1 166.6,162.8 M 89.4,93.2 A 52,52 0 0,0 89.4,162.8 M 191.9,70.5 A 86,86 0 0,1 191.9,185.5 M 64.1,70.5 A 86,86 0 0,0 64.1,185.5'" \
  -stroke none -fill white -draw "circle 128,128 128,104" \
  -depth 8 icon.png
