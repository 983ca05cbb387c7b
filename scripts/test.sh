#!/usr/bin/env bash
# The whole test suite: starts PostgreSQL, Redis and s3s-fs if they are down, then runs every
# test of the workspace against them. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/sessionflow-target}
# shellcheck source=services.sh
source scripts/services.sh
cargo test --workspace --locked --no-fail-fast "$@"
