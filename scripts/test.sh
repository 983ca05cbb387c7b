#!/usr/bin/env bash
# The whole test suite: starts PostgreSQL, Redis and s3s-fs if they are down, then runs every
# test of the workspace against them and ends with one summary line. Extra arguments go to
# `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/sessionflow-target}
# shellcheck source=services.sh
source scripts/services.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
