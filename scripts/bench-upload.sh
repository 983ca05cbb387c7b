#!/usr/bin/env bash
# Upload throughput and the capture client's memory: COUNT (default 10) sessions of SIZE_MB
# (default 190, under the server's 200 MiB limit) MB each, backfilled at once (10 at a time)
# into a release `serve` whose events wait in Redis (no worker: only the upload is measured).
# Prints MB/s and the backfill's peak RSS, which must stay flat whatever the transcripts' size.
# BIN=path measures another build.
# QUICK=1: 10 sessions of 4 MB (CI: it must still work).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh >/dev/null
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/sessionflow-target}
count=${COUNT:-10}
size_mb=${SIZE_MB:-$([ -n "${QUICK:-}" ] && echo 4 || echo 190)}
database=sessionflow_bench_upload
port=18086
key=bench-upload-key-0123456789abcdef0123
corpus=target/bench-upload-$count-$size_mb
stream=sessionflow:bench-upload:$$

if [ -z "${BIN:-}" ]; then
  cargo build --release --locked --quiet --bin sessionflow
  BIN=$CARGO_TARGET_DIR/release/sessionflow
fi
if [ ! -d "$corpus/projects" ]; then
  python3 - "$corpus/projects/-home-dev-big" "$count" "$size_mb" <<'PY'
import json, os, sys, uuid
out, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) * 1024 * 1024
os.makedirs(out, exist_ok=True)
text = "x" * 900
for n in range(count):
    sid = str(uuid.UUID(int=n + 1))
    with open(os.path.join(out, sid + ".jsonl"), "w") as f:
        written, i = 0, 0
        while written < size:
            role = "user" if i % 2 == 0 else "assistant"
            line = json.dumps({"type": role, "sessionId": sid, "uuid": str(uuid.uuid4()),
                               "timestamp": "2026-11-30T10:00:%02d.000Z" % (i % 60),
                               "cwd": "/home/dev/big", "version": "2.1.197",
                               "message": {"role": role, "content": text}}) + "\n"
            f.write(line)
            written += len(line)
            i += 1
PY
  find "$corpus/projects" -type f -exec touch -d '1 hour ago' {} +
fi
mb=$(du -sm "$corpus/projects" | cut -f1)
echo "corpus: $count files, $mb MB"
psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $database WITH (FORCE)"
rm -rf target/bench-upload-blobs
DATABASE_URL=postgres://postgres@127.0.0.1/$database SESSIONFLOW_API_KEY=$key \
  SESSIONFLOW_LISTEN=127.0.0.1:$port SESSIONFLOW_BLOB=target/bench-upload-blobs \
  REDIS_URL=redis://127.0.0.1:6379 SESSIONFLOW_STREAM=$stream "$BIN" serve 2>/dev/null &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; redis-cli -q DEL "$stream" >/dev/null 2>&1 || true' EXIT
until curl -s -o /dev/null "http://127.0.0.1:$port/healthz"; do sleep 0.2; done
start=$(date +%s.%N)
/usr/bin/time -f '%M' -o target/bench-upload-rss "$BIN" backfill "$corpus/projects" \
  --server "http://127.0.0.1:$port" --api-key "$key" --no-wait >/dev/null
end=$(date +%s.%N)
stored=$(find target/bench-upload-blobs -name raw.jsonl | wc -l)
[ "$stored" -eq "$count" ] || { echo "only $stored of $count transcripts stored"; exit 1; }
python3 -c "w=$end-$start; print(f'upload: {$mb} MB in {w:.1f} s = {$mb/w:.0f} MB/s; backfill peak RSS {int(open(\"target/bench-upload-rss\").read())/1024:.0f} MB')"
