#!/usr/bin/env bash
# The scaled-out system on this machine, every part a real server:
#   PostgreSQL, Redis, two livekit-server nodes sharing that Redis (multi-node), two
#   streamit-server instances on that PostgreSQL, and haproxy in front of them
#   (health-checking /api/health); both LiveKit nodes post their webhooks to haproxy.
# Installs what is missing (scripts/install.sh --scale-out), builds, then runs
# `streamit-cluster` (crates/testkit: the same `Cluster` the tests start), which prints every
# URL and makes an approved creator. Ctrl-C stops everything. Each server is a private process
# on free loopback ports with its own temporary directory (no data survives a stop); the system
# services of these packages are never used.
# Arguments go to streamit-cluster: --port BALANCER_PORT, --creator USERNAME.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

eval "$(scripts/install.sh --scale-out --print-env)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/streamit/target}"
cargo build --quiet -p streamit-server -p streamit-studio -p streamit-testkit --bin streamit-server --bin streamit-studio --bin streamit-cluster
export STREAMIT_SERVER_BIN="$CARGO_TARGET_DIR/debug/streamit-server"
echo "The studio binary: $CARGO_TARGET_DIR/debug/streamit-studio" >&2
exec "$CARGO_TARGET_DIR/debug/streamit-cluster" "$@"
