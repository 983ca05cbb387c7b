#!/usr/bin/env bash
# What accepting an event costs `serve`: EVENTS (default 20 000) session.start events sent to
# POST /api/events/ingest, 100 per request, 4 requests at a time (curl), against a release
# `serve` on a fresh database and a Redis of the script's own, no worker. Prints events/s
# accepted. BIN picks another sessionflow binary (to compare builds in one sitting).
# QUICK=1: 2 000 events (CI: it must still work).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh >/dev/null
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/sessionflow-target}
events=${EVENTS:-$([ -n "${QUICK:-}" ] && echo 2000 || echo 20000)}
database=sessionflow_bench_ingest
redis_port=16391
port=18085
key=bench-ingest
bodies=target/bench-ingest-bodies

if [ -z "${BIN:-}" ]; then
  cargo build --release --locked --quiet
  BIN=$CARGO_TARGET_DIR/release/sessionflow
fi
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
pids+=($!)
until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.1; done
psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" 2>/dev/null
DATABASE_URL=postgres://postgres@127.0.0.1/$database REDIS_URL=redis://127.0.0.1:$redis_port \
  SESSIONFLOW_API_KEY=$key SESSIONFLOW_LISTEN=127.0.0.1:$port SESSIONFLOW_BLOB=target/bench-ingest-blobs \
  "$BIN" serve 2>/dev/null &
pids+=($!)
until curl -sf -o /dev/null "http://127.0.0.1:$port/healthz"; do sleep 0.1; done

rm -rf "$bodies"
mkdir -p "$bodies"
python3 - "$bodies" "$events" <<'PY'
import json, os, sys, time
out, total = sys.argv[1], int(sys.argv[2])
stamp = int(time.time() * 1000)
alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
def ulid(n):
    t, r, s = stamp, n, ""
    for _ in range(10):
        s = alphabet[t % 32] + s
        t //= 32
    tail = ""
    for _ in range(16):
        tail = alphabet[r % 32] + tail
        r //= 32
    return s + tail
for request in range(total // 100):
    events = []
    for i in range(100):
        n = request * 100 + i
        session = f"s-{n}"
        events.append({"id": ulid(n), "type": "session.start", "timestamp": "2026-12-01T10:00:00Z",
                       "device_id": f"d-{n % 10}", "workspace_id": f"w-{n % 5}", "session_id": session,
                       "data": {"cc_session_id": session, "source": "startup"}})
    with open(os.path.join(out, f"{request:05d}.json"), "w") as f:
        json.dump({"events": events}, f)
PY
start=$(date +%s.%N)
find "$bodies" -name '*.json' | sort | xargs -P 4 -I{} curl -sf -o /dev/null \
  -H "authorization: Bearer $key" -H 'content-type: application/json' \
  --data-binary @{} "http://127.0.0.1:$port/api/events/ingest"
end=$(date +%s.%N)
accepted=$(redis-cli -p "$redis_port" xlen sessionflow:events)
python3 -c "w = $end - $start; print(f'{$events} events in {w:.2f} s: {$events / w:.0f} events/s accepted ({$accepted} in the stream)')"
