#!/usr/bin/env bash
# The main job, for now: inspect every Claude Code transcript on this machine
# ($CLAUDE_CONFIG_DIR/projects or ~/.claude/projects); where there are none, generate a corpus
# of 200 synthetic sessions under target/ and inspect that. Extra arguments go to `inspect`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/sessionflow-target}
cargo build --release --locked --quiet
bin=$CARGO_TARGET_DIR/release/sessionflow
projects=${CLAUDE_CONFIG_DIR:-$HOME/.claude}/projects
if [ -z "$(find "$projects" -name '*.jsonl' -print -quit 2>/dev/null)" ]; then
  projects=target/demo-corpus/projects
  echo "no transcripts under ${CLAUDE_CONFIG_DIR:-$HOME/.claude}/projects; inspecting a generated corpus in $projects" >&2
  "$bin" gen-corpus --sessions 200 --seed 1 --out "$projects" >&2
fi
exec "$bin" inspect "$@" "$projects"
