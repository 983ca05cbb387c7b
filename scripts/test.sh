#!/usr/bin/env bash
# The whole test suite: starts PostgreSQL, Redis and s3s-fs if they are down, builds the release
# binary (the README's main job, which a test runs in a scrubbed environment), then runs every
# test of the workspace against them and ends with one summary line. Extra arguments go to
# `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/sessionflow-target}
# shellcheck source=services.sh
source scripts/services.sh
# The README's main job runs the release binary; a test runs it as a newcomer would.
cargo build --release --locked --bin sessionflow
export SESSIONFLOW_RELEASE_BIN=$CARGO_TARGET_DIR/release/sessionflow
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# A hung test must fail the suite, not hold CI until its own limit: the whole run gets
# SESSIONFLOW_TEST_TIMEOUT (40 minutes; it takes about 7 on 2 cores).
limit=${SESSIONFLOW_TEST_TIMEOUT:-40m}
timeout --kill-after=30s "$limit" \
    cargo test --workspace --all-features --locked --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "tests: did not finish within $limit (a test hung: see the last 'has been running' lines)"
fi
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
