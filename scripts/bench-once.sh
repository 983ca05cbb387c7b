#!/usr/bin/env bash
# Every benchmark once, small and quick, against the real services: the criterion benches in
# their test mode (each measured routine run once) and each scripts/bench-*.sh with QUICK=1.
# CI runs it so that a change that breaks a benchmark fails there, not months later. The
# figures it prints mean nothing; run the benchmarks without it to measure.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/sessionflow-target}
# shellcheck source=services.sh
source scripts/services.sh
# The release profile: the artifacts scripts/test.sh built for the release binary serve.
cargo bench --profile release --workspace --locked --bench '*' -- --test
for bench in scripts/bench-*.sh; do
  [ "$bench" = scripts/bench-once.sh ] && continue
  echo "== $bench (quick)"
  QUICK=1 "$bench"
done
echo "benchmarks: every one ran"
