#!/usr/bin/env bash
# Backfill of SESSIONS (default 2 000) generated sessions (~440 MB) into a local release daemon
# on a fresh database: wall time, sessions/s, and how the time splits between sending and
# waiting for the server's pipeline (printed by backfill itself). BIN picks another sessionflow
# binary (to compare builds in one sitting); BLOBS another folder for the blob store (one on
# tmpfs: an ext4 without a journal makes file creation scan the inodes freed in the last 30 s,
# such as the previous run's blobs); EXTRA_ENV more of the daemon's settings (NAME=value …).
# QUICK=1: 60 sessions (CI: it must still work).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh >/dev/null
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/sessionflow-target}
sessions=${SESSIONS:-$([ -n "${QUICK:-}" ] && echo 60 || echo 2000)}
database=sessionflow_bench_backfill
port=18082
key=bench-backfill
corpus=target/bench-backfill-$sessions

if [ -z "${BIN:-}" ]; then
  cargo build --release --locked --quiet
  BIN=$CARGO_TARGET_DIR/release/sessionflow
fi
bin=$BIN
if [ ! -d "$corpus/projects" ]; then
  "$bin" gen-corpus --sessions "$sessions" --seed 5 --out "$corpus/projects"
  find "$corpus/projects" -type f -exec touch -d '1 hour ago' {} +
fi
echo "corpus: $(find "$corpus/projects" -name '*.jsonl' | wc -l) files, $(du -sm "$corpus/projects" | cut -f1) MB"
psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $database WITH (FORCE)"
blobs=${BLOBS:-target/bench-backfill-blobs}
rm -rf "$blobs"
DATABASE_URL=postgres://postgres@127.0.0.1/$database SESSIONFLOW_API_KEY=$key \
  SESSIONFLOW_LISTEN=127.0.0.1:$port SESSIONFLOW_BLOB="$blobs" \
  REDIS_URL= env ${EXTRA_ENV:-} "$bin" daemon 2>/dev/null &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null' EXIT
until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do sleep 0.2; done
start=$(date +%s.%N)
"$bin" backfill "$corpus/projects" --server "http://127.0.0.1:$port" --api-key "$key" 2>&1 | grep -v '^Backfilling: [0-9]*/\|^Processing: [0-9]'
end=$(date +%s.%N)
python3 -c "w=$end-$start; print(f'wall {w:.1f} s, {$sessions/w:.1f} sessions/s')"
