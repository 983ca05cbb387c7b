#!/usr/bin/env bash
# The server side of the monitor's sessions view over 50 000 sessions: a release daemon on a
# database seeded with SESSIONS rows, and the time of the 200-row window queries the view makes
# as the operator scrolls, jumps, sorts and filters (median and max of 20, curl's time_total).
# The drawing side is `cargo bench -p sessionflow-tui --bench frames`. QUICK=1: 2 000 rows, two
# calls each (CI: it must still work).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh >/dev/null
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/sessionflow-target}
sessions=${SESSIONS:-$([ -n "${QUICK:-}" ] && echo 2000 || echo 50000)}
repeats=$([ -n "${QUICK:-}" ] && echo 2 || echo 20)
database=sessionflow_bench_monitor
port=18081
key=bench-monitor

cargo build --release --locked --quiet
bin=$CARGO_TARGET_DIR/release/sessionflow
psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $database WITH (FORCE)"
DATABASE_URL=postgres://postgres@127.0.0.1/$database "$bin" migrate >/dev/null
psql -q -h 127.0.0.1 -U postgres -d "$database" <<SQL
INSERT INTO workspaces (id) VALUES ('w1');
INSERT INTO sessions (id, workspace_id, lifecycle, parse_status, total_messages, tokens_out,
                      cost_estimate_usd, initial_prompt, cwd, created_at)
SELECT format('%s-%s', md5(i::text), i), 'w1',
       (ARRAY['summarized','parsed','failed','ended'])[1 + i % 4],
       (ARRAY['completed','completed','failed','pending'])[1 + i % 4],
       i % 400, (i * 37) % 100000, (i % 997) * 0.013,
       format('refactor module %s so the persist stage writes group %s at once', i % 300, i),
       format('/home/dev/project-%s', i % 50),
       now() - i * interval '1 minute'
FROM generate_series(1, $sessions) AS i;
ANALYZE sessions;
SQL
DATABASE_URL=postgres://postgres@127.0.0.1/$database SESSIONFLOW_API_KEY=$key \
  SESSIONFLOW_LISTEN=127.0.0.1:$port SESSIONFLOW_BLOB=target/bench-monitor-blobs \
  REDIS_URL= "$bin" daemon 2>/dev/null &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null' EXIT
until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do sleep 0.2; done

echo "sessions: $sessions; window queries of 200 rows (ms, median / max of $repeats)"
for query in \
  "offset=0" "offset=25000" "offset=49800" \
  "sort=cost&offset=0" "sort=cost&offset=25000" "sort=messages&order=asc&offset=49800" \
  "q=module%2017&offset=0" "q=project-7&sort=tokens&offset=2000"; do
  for _ in $(seq "$repeats"); do
    curl -s -o /dev/null -w '%{time_total}\n' -H "authorization: Bearer $key" \
      "http://127.0.0.1:$port/api/sessions?limit=200&$query"
  done | sort -n | awk -v q="$query" '{t[NR]=$1*1000} END {printf "  %-40s %6.1f / %6.1f\n", q, t[int((NR+1)/2)], t[NR]}'
done
