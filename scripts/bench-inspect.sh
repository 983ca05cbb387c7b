#!/usr/bin/env bash
# `sessionflow inspect --json` against the reference `ccusage session --json --offline` over the
# same generated ~400 MB tree: wall time side by side with hyperfine, peak memory with GNU time,
# and the token totals of both, which must agree. Installs ccusage 20.0.24 under target/ and
# hyperfine from Debian's packages when missing. SESSIONS sets the corpus size; QUICK=1 runs it
# once on a small corpus (CI: it must still work).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/sessionflow-target}
quick=${QUICK:-}
sessions=${SESSIONS:-$([ -n "$quick" ] && echo 40 || echo 1830)}
runs=$([ -n "$quick" ] && echo '-w 0 -r 1' || echo '-w 2 -r 10')
corpus=target/bench-corpus-$sessions
ccusage_dir=target/ccusage

cargo build --release --locked --quiet
bin=$CARGO_TARGET_DIR/release/sessionflow
[ -d "$corpus/projects" ] || "$bin" gen-corpus --sessions "$sessions" --seed 1 --out "$corpus/projects"
echo "corpus: $(find "$corpus/projects" -name '*.jsonl' | wc -l) files, $(du -sm "$corpus/projects" | cut -f1) MB"

if [ ! -x "$ccusage_dir/node_modules/@ccusage/ccusage-linux-x64/bin/ccusage" ]; then
  npm install --silent --prefix "$ccusage_dir" ccusage@20.0.24 @ccusage/ccusage-linux-x64@20.0.24
  chmod +x "$ccusage_dir/node_modules/@ccusage/ccusage-linux-x64/bin/ccusage"
fi
ccusage=$(pwd)/$ccusage_dir/node_modules/@ccusage/ccusage-linux-x64/bin/ccusage
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine time; }

export CLAUDE_CONFIG_DIR=$(pwd)/$corpus
# shellcheck disable=SC2086
hyperfine -N $runs \
  -n "sessionflow inspect --json" "$bin inspect --json $CLAUDE_CONFIG_DIR/projects" \
  -n "ccusage session --json --offline" "$ccusage session --json --offline"
for _ in $(seq "$([ -n "$quick" ] && echo 1 || echo 3)"); do
  /usr/bin/time -f "peak memory: sessionflow %M KB (%e s)" "$bin" inspect --json "$CLAUDE_CONFIG_DIR/projects" >/dev/null
  /usr/bin/time -f "peak memory: ccusage %M KB (%e s)" "$ccusage" session --json --offline >/dev/null
done

echo "token totals (input output cache-write cache-read), deduplicated across files:"
"$bin" inspect "$CLAUDE_CONFIG_DIR/projects" | grep '^TOTAL' | awk '{ print "  sessionflow", $8, $9, $10, $11 }'
"$ccusage" session --json --offline | python3 -c '
import json, sys
t = json.load(sys.stdin)["totals"]
print("  ccusage    ", *("{:,}".format(t[k]) for k in ("inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens")))'
