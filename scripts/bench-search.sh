#!/usr/bin/env bash
# Search at scale: SESSIONS (default 16 000, over a million messages) generated sessions
# backfilled into a local release daemon twice, each time on a fresh database: with the search
# processor held off (its interval a day) and with it on (every 5 s, the default). Prints the
# ingest rate of each, how long after ingest every session was searchable, the index's size, and
# the latency (p50, p95, max) of 100 searches through the API, twice: single words of every
# frequency, two and three words, phrases, identifiers and paths. QUICK=1: 40 sessions (CI: it
# must work). SEARCHES_ONLY=1: only the searches, on the database a full run left (to compare
# builds of the search without ingesting again). BIN picks another sessionflow binary.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh >/dev/null
set +e
set -uo pipefail
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/sessionflow-target}
sessions=${SESSIONS:-$([ -n "${QUICK:-}" ] && echo 40 || echo 16000)}
port=18083
key=bench-search
corpus=target/bench-search-$sessions
# Quick runs (CI) keep to databases of their own: a full run's stay for a look afterwards.
suffix=$([ -n "${QUICK:-}" ] && echo _quick || true)

if [ -z "${BIN:-}" ]; then
  cargo build --release --locked --quiet || exit 1
  BIN=$CARGO_TARGET_DIR/release/sessionflow
fi
bin=$BIN
if [ ! -d "$corpus/projects" ]; then
  "$bin" gen-corpus --sessions "$sessions" --seed 17 --out "$corpus/projects" || exit 1
  find "$corpus/projects" -type f -exec touch -d '1 hour ago' {} +
fi
echo "corpus: $(find "$corpus/projects" -name '*.jsonl' | wc -l) files, $(du -sm "$corpus/projects" | cut -f1) MB"

daemon=
trap '[ -n "$daemon" ] && kill $daemon 2>/dev/null; wait 2>/dev/null' EXIT
sql() { psql -qtAX -h 127.0.0.1 -U postgres -d "$1" -c "$2"; }

# ingest NAME INTERVALS: a fresh database, a daemon, the backfill (which waits until every
# session is processed); leaves the daemon running.
ingest() {
  local database=sessionflow_bench_search_$1$suffix
  [ -n "$daemon" ] && { kill $daemon; wait $daemon 2>/dev/null; }
  sql postgres "DROP DATABASE IF EXISTS $database WITH (FORCE)"
  rm -rf "target/bench-search-blobs$suffix"
  serve "$1" "$2"
  local start end
  start=$(date +%s.%N)
  "$bin" backfill "$corpus/projects" --server "http://127.0.0.1:$port" --api-key "$key" \
    --wait-timeout 2h >/dev/null 2>&1 || { echo "backfill failed"; exit 1; }
  end=$(date +%s.%N)
  python3 -c "w=$end-$start; print(f'$1: ingest {w:.1f} s, {$sessions/w:.1f} sessions/s')"
}

# serve NAME INTERVALS: a daemon on NAME's database, once it answers.
serve() {
  DATABASE_URL=postgres://postgres@127.0.0.1/sessionflow_bench_search_$1$suffix \
    SESSIONFLOW_API_KEY=$key SESSIONFLOW_LISTEN=127.0.0.1:$port \
    SESSIONFLOW_BLOB=target/bench-search-blobs$suffix SESSIONFLOW_PROCESSOR_INTERVALS=$2 \
    REDIS_URL= "$bin" daemon 2>/dev/null &
  daemon=$!
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
}

database=sessionflow_bench_search_with_search$suffix
if [ -n "${SEARCHES_ONLY:-}" ]; then
  serve with_search ""
else
  ingest without_search search=24h
  ingest with_search ""
  start=$(date +%s.%N)
  total=$(sql "$database" "SELECT count(*) FROM sessions WHERE lifecycle = 'summarized'")
  searchable() { sql "$database" "SELECT count(*) FROM processor_state WHERE processor_name = 'search' AND processed_at IS NOT NULL"; }
  for _ in $(seq 7200); do [ "$(searchable)" -ge "$total" ] && break; sleep 0.5; done
  [ "$(searchable)" -ge "$total" ] || { echo "sessions still not searchable after an hour"; exit 1; }
  end=$(date +%s.%N)
  python3 -c "print(f'every one of $total sessions searchable {$end-$start:.1f} s after ingest ended')"
  sql "$database" "ANALYZE search_entries"
  sql "$database" "SELECT format('messages %s, blocks %s, search entries %s; search_entries %s (its table %s, word index %s, time index %s); content_blocks %s',
      (SELECT count(*) FROM transcript_messages), (SELECT count(*) FROM content_blocks),
      (SELECT count(*) FROM search_entries),
      pg_size_pretty(pg_total_relation_size('search_entries')),
      pg_size_pretty(pg_table_size('search_entries')),
      pg_size_pretty(pg_relation_size('search_entries_terms_idx')),
      pg_size_pretty(pg_relation_size('search_entries_newest_idx')),
      pg_size_pretty(pg_total_relation_size('content_blocks')))"
fi

# 100 searches: words drawn from the corpus's own text (half by frequency, half from its
# distinct words, so mostly rare), pairs and triples, phrases, identifiers and paths.
python3 - "$corpus/projects" "http://127.0.0.1:$port" "$key" <<'PY'
import json, os, random, re, sys, time, urllib.parse, urllib.request
root, url, key = sys.argv[1:]
random.seed(17)
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith('.jsonl'))
sentences = []
for path in random.sample(files, min(60, len(files))):
    for line in open(path, encoding='utf-8', errors='replace'):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        content = (record.get('message') or {}).get('content')
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get('type') == 'text':
                    sentences.append(block['text'])
words = [w for s in sentences for w in re.findall(r'[a-z]{3,}', s)]
distinct = sorted(set(words))
queries = [random.choice(words) for _ in range(20)] + [random.choice(distinct) for _ in range(25)]
queries += [' '.join(random.sample(distinct, 2)) for _ in range(10)]
queries += [' '.join(random.choice(words) for _ in range(2)) for _ in range(10)]
queries += [' '.join(random.choice(words) for _ in range(3)) for _ in range(10)]
for _ in range(15):
    s = re.findall(r'[a-z]{3,}', random.choice(sentences))
    at = random.randrange(max(1, len(s) - 2))
    queries.append('"' + ' '.join(s[at:at + 3]) + '"')
queries += ['src/main.rs', 'println', 'project-17', 'nocapture', 'lifecycle', 'main.rs',
            '"cargo test"', 'undefined', 'E0382', 'parse_bytes']
assert len(queries) == 100, len(queries)
# Twice: the first pass reads what ingest just wrote (pages not yet cached, hint bits not yet
# set), the second is a search history already in use.
for name in ('first pass', 'second pass'):
    times, reached = [], 0
    for q in queries:
        request = urllib.request.Request(
            f"{url}/api/search?{urllib.parse.urlencode({'q': q})}",
            headers={'authorization': f'Bearer {key}'})
        start = time.perf_counter()
        with urllib.request.urlopen(request) as r:
            page = json.load(r)
        times.append((time.perf_counter() - start, q, len(page['hits'])))
        reached += page.get('searched_to') is not None
    ms = sorted(t * 1000 for t, _, _ in times)
    slowest8 = ', '.join(f"{t * 1000:.0f} ms {q!r}" for t, q, _ in sorted(times, reverse=True)[:8])
    slowest = max(times)
    print(f"100 searches through the API, {name}: p50 {ms[49]:.1f} ms, p95 {ms[94]:.1f} ms, "
          f"max {ms[99]:.1f} ms ({slowest[1]!r}, {slowest[2]} hits); "
          f"{sum(1 for t in times if t[2] == 0)} found nothing, {reached} looked back to a time "
          f"only (a phrase's read budget); slowest: {slowest8}")
PY
