#!/usr/bin/env bash
# The test command: installs what is missing, then checks formatting and lints, runs every
# test against real processes (LiveKit server, backend, Python viewer), and checks that no
# test left a server behind.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

started=$(date +%s)
eval "$(scripts/install.sh --print-env)"
# Builds are cached outside the checkout so a fresh clone (CI) reuses them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/streamit/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Tests start real servers and viewers; two at a time suits a 2-core machine.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-2}"

export STREAMIT_TEST_RUN="$$-$started"
echo "== cargo fmt --check (at $(( $(date +%s) - started )) s)"
cargo fmt --all -- --check
# Clippy lints while the tests build, as `cargo clippy` does it (clippy-driver wraps rustc for
# the workspace's crates, CLIPPY_ARGS carries its arguments). A separate `cargo clippy` would
# compile every dependency a second time, in check mode: 7-15 minutes of a cold run on 2
# cores. All targets are built, benches and examples too (with the test profile, so the
# dependencies are the tests' own); the run below then builds nothing.
echo "== cargo build + clippy, every target, -D warnings (at $(( $(date +%s) - started )) s)"
RUSTC_WORKSPACE_WRAPPER=$(command -v clippy-driver) || {
  echo "clippy-driver not found: rustup component add clippy" >&2
  exit 1
}
export RUSTC_WORKSPACE_WRAPPER
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
cargo test --workspace --all-targets --no-run --quiet
echo "== cargo test (at $(( $(date +%s) - started )) s)"
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "${TMPDIR:-/tmp}/streamit-test.log"
status=${PIPESTATUS[0]}
set -e

# The .deb from the binary the tests just built, run from a scratch root (a few seconds).
echo "== packaging (at $(( $(date +%s) - started )) s)"
if ! packaging/check.sh; then
  echo "FAIL: packaging (packaging/check.sh)" >&2
  status=1
fi

echo "== leftover processes (at $(( $(date +%s) - started )) s)"
# Every process the suite starts inherits this marker, so the check finds exactly the
# suite's own leftovers (servers, viewers, browsers), not a developer's `dev` stack.
leftovers=""
for env in /proc/[0-9]*/environ; do
  pid=${env#/proc/}; pid=${pid%/environ}
  [ "$pid" = "$$" ] && continue
  if { tr '\0' '\n' <"$env"; } 2>/dev/null | grep -qx "STREAMIT_TEST_RUN=$STREAMIT_TEST_RUN"; then
    cmd=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null)
    [ -n "$cmd" ] && leftovers+="$pid $cmd"$'\n'
  fi
done
if [ -n "$leftovers" ]; then
  printf '%s' "$leftovers"
  echo "FAIL: the tests left these processes running" >&2
  status=1
fi

passed=$(grep -Eo '[0-9]+ passed' "${TMPDIR:-/tmp}/streamit-test.log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "${TMPDIR:-/tmp}/streamit-test.log" | awk '{s+=$1} END {print s+0}')
echo "== $(( $(date +%s) - started )) s"
echo "tests: ${passed} passed, ${failed} failed"
exit "$status"
