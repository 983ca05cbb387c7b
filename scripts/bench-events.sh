#!/usr/bin/env bash
# How fast events are accepted, recorded and handled: EVENTS (default 20 000) session.start
# events, a tenth of them sent twice (duplicates), to POST /api/events/ingest, 100 per request,
# 4 requests at a time, against a release build on a fresh database each time:
#   - `serve` with no worker: how fast the API records and streams what it accepts;
#   - the embedded `daemon` (the request records and handles its events before it answers);
#   - `serve` with 1, then 2 `worker`s over a Redis of the script's own (the API records, the
#     workers handle from the stream).
# Prints events/s: accepted (the first), from the first request until every event is handled
# (the others), and checks that each is recorded once. BIN picks another sessionflow binary (to compare builds in one
# sitting). QUICK=1: 2 000 events (CI: it must still work).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh >/dev/null
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/sessionflow-target}
events=${EVENTS:-$([ -n "${QUICK:-}" ] && echo 2000 || echo 20000)}
database=sessionflow_bench_events$([ -n "${QUICK:-}" ] && echo _quick || true)
redis_port=16392
port=18086
key=bench-events-key-0123456789abcdef
bodies=target/bench-events-bodies

if [ -z "${BIN:-}" ]; then
  cargo build --release --locked --quiet
  BIN=$CARGO_TARGET_DIR/release/sessionflow
fi
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}
trap stop_all EXIT
sql() { psql -qtAX -h 127.0.0.1 -U postgres -d "$database" -c "$1"; }

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
requests = total // 100
for request in range(requests):
    events = []
    for i in range(100):
        n = request * 100 + i
        session = f"s-{n}"
        events.append({"id": ulid(n), "type": "session.start", "timestamp": "2026-12-01T10:00:00Z",
                       "device_id": f"d-{n % 10}", "workspace_id": f"w-{n % 5}", "session_id": session,
                       "data": {"cc_session_id": session, "source": "startup", "cwd": f"/work/p{n % 5}"}})
    body = json.dumps({"events": events})
    with open(os.path.join(out, f"{request:05d}.json"), "w") as f:
        f.write(body)
    # Every tenth request again, later: its events are duplicates.
    if request % 10 == 0:
        with open(os.path.join(out, f"{request:05d}-again.json"), "w") as f:
            f.write(body)
PY

# start MODE WORKERS: a fresh database, the server (and workers, alive before the clock starts).
start() {
  local mode=$1 workers=$2
  stop_all
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" 2>/dev/null
  local redis=
  if [ "$mode" = serve ]; then
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
    pids+=($!)
    until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.1; done
    redis=redis://127.0.0.1:$redis_port
  fi
  local env=(DATABASE_URL=postgres://postgres@127.0.0.1/$database REDIS_URL=$redis
    SESSIONFLOW_API_KEY=$key SESSIONFLOW_LISTEN=127.0.0.1:$port
    SESSIONFLOW_BLOB=target/bench-events-blobs)
  env "${env[@]}" "$BIN" "$mode" 2>/dev/null &
  pids+=($!)
  until curl -sf -o /dev/null "http://127.0.0.1:$port/healthz"; do sleep 0.1; done
  for _ in $(seq "$workers"); do
    env "${env[@]}" "$BIN" worker 2>/dev/null &
    pids+=($!)
  done
  until [ "$(sql "SELECT count(*) FROM workers WHERE mode = 'worker'")" -ge "$workers" ]; do sleep 0.1; done
}

send() {
  find "$bodies" -name '*.json' | sort | xargs -P 4 -I{} curl -sf -o /dev/null \
    -H "authorization: Bearer $key" -H 'content-type: application/json' \
    --data-binary @{} "http://127.0.0.1:$port/api/events/ingest"
}

# accepted: `serve` with no worker; prints how fast it accepted (recorded and streamed) them.
accepted() {
  start serve 0
  local begin end streamed recorded
  begin=$(date +%s.%N)
  send
  end=$(date +%s.%N)
  streamed=$(redis-cli -p "$redis_port" xlen sessionflow:events)
  recorded=$(sql "SELECT count(*) FROM events")
  [ "$streamed" -eq "$events" ] && [ "$recorded" -eq "$events" ] ||
    { echo "serve: $recorded events recorded, $streamed streamed for $events"; exit 1; }
  python3 -c "w = $end - $begin; print(f'serve, no worker: {$events} events (and duplicates) accepted in {w:.2f} s: {$events / w:.0f} events/s')"
}

# run NAME MODE WORKERS: every body sent; prints the rate at which the events were handled.
run() {
  local name=$1
  start "$2" "$3"
  local begin end handled
  begin=$(date +%s.%N)
  send
  for _ in $(seq 6000); do
    handled=$(sql "SELECT count(*) FROM events WHERE handled_at IS NOT NULL")
    [ "$handled" -ge "$events" ] && break
    sleep 0.05
  done
  end=$(date +%s.%N)
  local recorded sessions
  recorded=$(sql "SELECT count(*) FROM events")
  sessions=$(sql "SELECT count(*) FROM sessions")
  [ "$handled" -ge "$events" ] || { echo "$name: only $handled of $events handled"; exit 1; }
  [ "$recorded" -eq "$events" ] && [ "$sessions" -eq "$events" ] ||
    { echo "$name: $recorded events, $sessions sessions recorded for $events"; exit 1; }
  python3 -c "w = $end - $begin; print(f'$name: {$events} events (and duplicates) handled in {w:.2f} s: {$events / w:.0f} events/s')"
}

accepted
run "daemon (embedded)" daemon 0
run "serve + 1 worker" serve 1
run "serve + 2 workers" serve 2
stop_all
psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" 2>/dev/null
