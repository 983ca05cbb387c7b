#!/usr/bin/env bash
# The usage processor over SESSIONS (default 10 000) generated sessions: a database seeded with
# parsed sessions whose transcripts sit in a local blob directory (hard links to the generated
# files), a `sessionflow serve` (no worker, so no scheduler runs behind our back), and two runs
# through POST /api/admin/run-session-processor: wall time, and transactions per session from
# pg_stat_database (autocommit statements count one each); then the usage report through
# GET /api/usage and `sessionflow usage`, twice each with nothing new in between (the second
# answer is the kept report). QUICK=1: 100 sessions (CI: it must still work).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh >/dev/null
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/sessionflow-target}
sessions=${SESSIONS:-$([ -n "${QUICK:-}" ] && echo 100 || echo 10000)}
database=sessionflow_bench_usage
port=18083
key=bench-usage
corpus=target/bench-usage-$sessions
blobs=target/bench-usage-blobs

cargo build --release --locked --quiet
bin=$CARGO_TARGET_DIR/release/sessionflow
[ -d "$corpus/projects" ] || "$bin" gen-corpus --sessions "$sessions" --seed 21 --out "$corpus/projects"
rm -rf "$blobs"
psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $database WITH (FORCE)"
DATABASE_URL=postgres://postgres@127.0.0.1/$database "$bin" migrate >/dev/null
find "$corpus/projects" -mindepth 2 -maxdepth 2 -name '*.jsonl' | while read -r f; do
  ws=$(basename "$(dirname "$f")"); id=$(basename "$f" .jsonl)
  mkdir -p "$blobs/transcripts/$ws/$id"
  ln "$f" "$blobs/transcripts/$ws/$id/raw.jsonl"
  echo "$id,$ws,transcripts/$ws/$id/raw.jsonl,$(sha256sum "$f" | cut -d' ' -f1)"
done >"$corpus.csv"
echo "seeded: $(wc -l <"$corpus.csv") sessions, $(du -sm "$corpus/projects" | cut -f1) MB"
psql -q -h 127.0.0.1 -U postgres -d "$database" <<SQL
CREATE TEMP TABLE seed (id text, ws text, key text, sha text);
\copy seed FROM '$corpus.csv' WITH (FORMAT csv)
INSERT INTO workspaces (id) SELECT DISTINCT ws FROM seed;
INSERT INTO sessions (id, workspace_id, lifecycle, parse_status, transcript_key, transcript_sha256)
SELECT id, ws, 'summarized', 'completed', key, sha FROM seed;
SQL
DATABASE_URL=postgres://postgres@127.0.0.1/$database SESSIONFLOW_API_KEY=$key \
  SESSIONFLOW_LISTEN=127.0.0.1:$port SESSIONFLOW_BLOB=$blobs SESSIONFLOW_STREAM=bench-usage-$$ \
  "$bin" serve 2>/dev/null &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' EXIT
until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do sleep 0.2; done

commits() {
  sleep 1.5
  psql -qtA -h 127.0.0.1 -U postgres -c "SELECT xact_commit FROM pg_stat_database WHERE datname = '$database'"
}
for run in first second; do
  before=$(commits)
  start=$(date +%s.%N)
  result=$(curl -sf -X POST -H "authorization: Bearer $key" \
    "http://127.0.0.1:$port/api/admin/run-session-processor?processor=usage")
  end=$(date +%s.%N)
  after=$(commits)
  python3 -c "import sys; w=$end-$start; print(f'$run run: {w:.2f} s, {($after-$before)/$sessions:.2f} transactions per session; ' + sys.argv[1])" "$result"
done

# Reports: the first computes (and keeps) the report, the second finds nothing new to process
# and answers the kept one.
for by in daily session device; do
  for call in first second; do
    curl -s -o /dev/null -w "GET /api/usage?by=$by ($call): %{time_total} s\n" \
      -H "authorization: Bearer $key" "http://127.0.0.1:$port/api/usage?by=$by&timezone=UTC"
  done
done
for call in first second; do
  start=$(date +%s.%N)
  DATABASE_URL=postgres://postgres@127.0.0.1/$database SESSIONFLOW_BLOB=$blobs \
    "$bin" usage monthly --json --timezone Europe/Paris >/dev/null
  end=$(date +%s.%N)
  python3 -c "print(f'sessionflow usage monthly ($call, whole process): {$end-$start:.3f} s')"
done
