#!/usr/bin/env bash
# Rescue and health, measured with release binaries on a Redis of the script's own:
#
# 1. SESSIONS (default 300) generated sessions sent with `backfill --no-wait` to `serve` and two
#    `worker`s; one worker is killed with SIGKILL 1.5 s later. Prints the time from the kill to
#    the last session held by the dead worker taken over, and to every session done.
# 2. The idle cost: a database seeded with IDLE (default 100 000) summarized sessions, `serve`
#    and two idle workers for a minute: transactions per minute (pg_stat_database), Redis
#    commands per minute (INFO commandstats), and /healthz latency (median and p95 of 100).
#
# QUICK=1: 60 sessions, 5 000 idle, 20 s idle (CI: it must still work).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh >/dev/null
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/sessionflow-target}
quick=${QUICK:-}
sessions=${SESSIONS:-$([ -n "$quick" ] && echo 60 || echo 300)}
idle=${IDLE:-$([ -n "$quick" ] && echo 5000 || echo 100000)}
idle_for=$([ -n "$quick" ] && echo 20 || echo 60)
database=sessionflow_bench_rescue
redis_port=16390
port=18084
key=bench-rescue
corpus=target/bench-rescue-$sessions
blobs=target/bench-rescue-blobs

cargo build --release --locked --quiet
bin=$CARGO_TARGET_DIR/release/sessionflow
if [ ! -d "$corpus/projects" ]; then
  "$bin" gen-corpus --sessions "$sessions" --seed 9 --out "$corpus/projects" >/dev/null
  find "$corpus/projects" -type f -exec touch -d '1 hour ago' {} +
fi

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
pids+=($!)
until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.1; done

export DATABASE_URL=postgres://postgres@127.0.0.1/$database REDIS_URL=redis://127.0.0.1:$redis_port \
  SESSIONFLOW_API_KEY=$key SESSIONFLOW_LISTEN=127.0.0.1:$port SESSIONFLOW_BLOB=$blobs
sql() { psql -qtA -h 127.0.0.1 -U postgres -d "$database" -c "$1"; }
now() { date +%s.%N; }
started=""
start() { # mode; its pid in $started (the binary's own: it is started directly)
  "$bin" "$1" 2>/dev/null &
  started=$!
  pids+=("$started")
}
fresh() {
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" 2>/dev/null
  rm -rf "$blobs"
  redis-cli -p "$redis_port" flushall >/dev/null
  "$bin" migrate >/dev/null
}

echo "== kill -9 of one of two workers, $sessions sessions"
fresh
start serve
until curl -sf -o /dev/null "http://127.0.0.1:$port/healthz"; do sleep 0.1; done
start worker
start worker
victim=$started
sleep 1
"$bin" backfill "$corpus/projects" --no-wait --server "http://127.0.0.1:$port" --api-key "$key" >/dev/null &
sleep 1.5
kill -9 "$victim"
killed=$(now)
dead=$(hostname)-$victim
taken=""
while true; do
  held=$(sql "SELECT count(*) FROM sessions WHERE claimed_by = '$dead' OR enqueued_by = '$dead'")
  pending=$(redis-cli -p "$redis_port" xpending sessionflow:events sessionflow-workers - + 100 "$dead" 2>/dev/null | grep -c '^[0-9]*-[0-9]*$' || true)
  if [ -z "$taken" ] && [ "$held" = 0 ] && [ "$pending" = 0 ]; then taken=$(now); fi
  left=$(sql "SELECT count(*) FROM sessions WHERE lifecycle NOT IN ('summarized', 'failed')")
  total=$(sql "SELECT count(*) FROM sessions")
  if [ -n "$taken" ] && [ "$left" = 0 ] && [ "$total" = "$sessions" ]; then break; fi
  if python3 -c "import sys; sys.exit(0 if $(now) - $killed > 600 else 1)"; then
    echo "not done 600 s after the kill: $left left, $held held by the dead worker"; exit 1
  fi
  sleep 0.2
done
done_at=$(now)
python3 -c "print(f'dead worker\'s work taken over {$taken - $killed:.1f} s after the kill; all {$sessions} sessions done {$done_at - $killed:.1f} s after it')"
cleanup
pids=()
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
pids+=($!)
until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.1; done

echo "== idle: $idle sessions, serve and two workers for $idle_for s"
fresh
sql "INSERT INTO workspaces (id) VALUES ('w1');
     INSERT INTO sessions (id, workspace_id, lifecycle, parse_status, transcript_key, summary,
                           created_at, updated_at)
     SELECT format('s-%s', i), 'w1', 'summarized', 'completed', format('transcripts/w1/s-%s/raw.jsonl', i),
            'done', now() - i * interval '1 minute', now() - i * interval '1 minute'
     FROM generate_series(1, $idle) AS i;
     ANALYZE;"
start serve
start worker
start worker
until curl -sf -o /dev/null "http://127.0.0.1:$port/healthz"; do sleep 0.1; done
sleep 5
redis-cli -p "$redis_port" config resetstat >/dev/null
before=$(psql -qtA -h 127.0.0.1 -U postgres -c "SELECT xact_commit FROM pg_stat_database WHERE datname = '$database'")
sleep "$idle_for"
after=$(psql -qtA -h 127.0.0.1 -U postgres -c "SELECT xact_commit FROM pg_stat_database WHERE datname = '$database'")
commands=$(redis-cli -p "$redis_port" info commandstats | awk -F'[:=,]' '/^cmdstat_/ { n += $3 } END { print n + 0 }')
python3 -c "print(f'idle: {($after - $before) * 60 / $idle_for:.0f} transactions per minute, {$commands * 60 / $idle_for:.0f} Redis commands per minute (serve and two workers)')"
for _ in $(seq 100); do
  curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port/healthz"
done | sort -n | awk '{ t[NR] = $1 * 1000 } END { printf "/healthz: median %.1f ms, p95 %.1f ms, max %.1f ms\n", t[int((NR + 1) / 2)], t[int(NR * 0.95)], t[NR] }'
