#!/usr/bin/env bash
# The run command: installs what running needs and is missing (scripts/install.sh --run: the
# build and GUI packages, Node.js for the watch pages, the LiveKit server; the test tools are
# scripts/test.sh's), builds, then `streamit-studio dev` runs the whole
# system locally on built-in defaults — a LiveKit server on loopback, the StreamIt backend
# (the streamit-server binary built here, a child process) on SQLite in your data directory, a
# local approved creator — and opens the studio logged in.
# Without a display it runs headless and prints where everything listens. Ctrl-C stops it all.
# Extra arguments go to `streamit-studio dev` (see `--help`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

eval "$(scripts/install.sh --run --print-env)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/streamit/target}"
# The dev profile shares its build with the tests (dependencies are optimised there too).
cargo build --quiet -p streamit-server -p streamit-studio
export STREAMIT_SERVER_BIN="$CARGO_TARGET_DIR/debug/streamit-server"

args=()
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ] && [ "$(uname)" = Linux ]; then
  echo "No display found: running headless (backend + LiveKit only)." >&2
  args+=(--headless)
fi
echo "The studio binary: $CARGO_TARGET_DIR/debug/streamit-studio (README: putting it on PATH)." >&2
exec "$CARGO_TARGET_DIR/debug/streamit-studio" dev "${args[@]}" "$@"
