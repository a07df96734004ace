#!/usr/bin/env bash
# The run command: installs what is missing, then runs the whole system locally on embedded
# defaults — a LiveKit server on loopback and the StreamIt backend on SQLite in your data
# directory — and prints where they listen. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

eval "$(scripts/install.sh --print-env)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/streamit/target}"
# The dev profile shares its build with the tests (dependencies are optimised there too).
cargo build --quiet -p streamit-server -p streamit-studio
bin="$CARGO_TARGET_DIR/debug"

# A key pair made for this run only: it lives in this process's environment, never in a file.
export LIVEKIT_API_KEY="dev$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export LIVEKIT_API_SECRET="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
lk_port="${STREAMIT_LIVEKIT_PORT:-7880}"
export LIVEKIT_URL="http://127.0.0.1:$lk_port"
export LIVEKIT_WS_URL="ws://127.0.0.1:$lk_port"
export STREAMIT_BIND="${STREAMIT_BIND:-127.0.0.1:8080}"
export LIVEKIT_KEYS="$LIVEKIT_API_KEY: $LIVEKIT_API_SECRET"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$STREAMIT_LIVEKIT_SERVER" --bind 127.0.0.1 --node-ip 127.0.0.1 --port "$lk_port" \
  --config-body "rtc: {tcp_port: 7881, udp_port: 7882, use_external_ip: false, enable_loopback_candidate: true}
webhook: {api_key: $LIVEKIT_API_KEY, urls: [\"http://$STREAMIT_BIND/api/livekit/webhook\"]}" \
  2> >(sed 's/^/[livekit] /' >&2) &
pids+=($!)
until curl -fsS "$LIVEKIT_URL" >/dev/null 2>&1; do
  kill -0 "${pids[0]}" 2>/dev/null || { echo "livekit-server failed to start (is port $lk_port taken?)" >&2; exit 1; }
  sleep 0.2
done

announce() {
  while read -r line; do
    case "$line" in
      STREAMIT_SERVER_LISTENING*)
        echo
        echo "StreamIt is running:"
        echo "  backend API     ${line#STREAMIT_SERVER_LISTENING } (OpenAPI at /api/openapi.json)"
        echo "  LiveKit server  $LIVEKIT_WS_URL"
        echo "Press Ctrl-C to stop."
        ;;
      *) echo "$line" ;;
    esac
  done
}
"$bin/streamit-server" serve > >(announce) &
pids+=($!)
wait "${pids[@]}"
