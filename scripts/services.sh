#!/usr/bin/env bash
# Starts, on loopback, what sessionflow's tests talk to — PostgreSQL, Redis and the S3-compatible
# server s3s-fs (installed with cargo on first use) — unless each is already up, then waits until
# all three answer; installs ccusage (npm) for the usage comparisons and exports CCUSAGE, and a
# pinned Claude Code (npm) for the real-client test and exports CLAUDE_CODE. Source it to get the
# environment the tests read; run it to just start them.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools=${SESSIONFLOW_TOOLS:-$HOME/.cache/sessionflow-tools}
s3_port=${SESSIONFLOW_S3_PORT:-9000}
s3_data=${SESSIONFLOW_S3_DATA:-$root/target/s3s-data}

export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export AWS_ENDPOINT_URL=${AWS_ENDPOINT_URL:-http://127.0.0.1:$s3_port}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-sessionflow}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-sessionflow-secret}
export AWS_REGION=${AWS_REGION:-us-east-1}

say() { echo "services: $*" >&2; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # name, seconds, command…
  local name=$1 seconds=$2; shift 2
  for _ in $(seq $((seconds * 4))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  say "$name did not come up within ${seconds}s"; return 1
}

start_postgres() {
  if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then return; fi
  say "starting PostgreSQL"
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_for PostgreSQL 30 pg_isready -h 127.0.0.1 -p 5432 -q
}

start_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then return; fi
  say "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  wait_for Redis 15 sh -c 'redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG'
}

install_s3s() {
  if [ -x "$tools/bin/s3s-fs" ]; then return; fi
  say "installing s3s-fs 0.14.1 into $tools (once per machine)"
  cargo install --quiet --locked s3s-fs@0.14.1 --features binary --root "$tools"
}

start_s3s() {
  install_s3s
  # A server left by an earlier run whose data directory is gone would fail every write.
  local pid dir
  for pid in $(pgrep -f "s3s-fs .*--port $s3_port" || true); do
    dir=$(tr '\0' '\n' <"/proc/$pid/cmdline" | tail -n 1)
    if [ ! -d "$dir" ]; then say "stopping s3s-fs $pid (its $dir is gone)"; kill "$pid"; sleep 0.5; fi
  done
  if listening "$s3_port"; then return; fi
  say "starting s3s-fs on 127.0.0.1:$s3_port with data in $s3_data"
  mkdir -p "$s3_data"
  nohup "$tools/bin/s3s-fs" --host 127.0.0.1 --port "$s3_port" \
    --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" \
    "$s3_data" >"$s3_data.log" 2>&1 &
  wait_for s3s-fs 15 listening "$s3_port" || { cat "$s3_data.log" >&2; return 1; }
}

# ccusage, the reference usage tool the usage tests compare with (npm, once per machine).
install_ccusage() {
  local dir=$tools/ccusage
  export CCUSAGE=$dir/node_modules/@ccusage/ccusage-linux-x64/bin/ccusage
  if [ -x "$CCUSAGE" ]; then return; fi
  say "installing ccusage 20.0.24 into $dir (once per machine)"
  mkdir -p "$dir"
  npm install --loglevel=error --no-audit --no-fund --prefix "$dir" ccusage@20.0.24 @ccusage/ccusage-linux-x64@20.0.24 >&2
  chmod +x "$CCUSAGE"
}

# Claude Code itself, pinned, for the test that runs the real client (npm, once per machine).
install_claude_code() {
  local version=2.1.197 dir=$tools/claude-code
  export CLAUDE_CODE=$dir/node_modules/@anthropic-ai/claude-code/bin/claude.exe
  if [ -x "$CLAUDE_CODE" ] && grep -q "\"version\": \"$version\"" "$dir/node_modules/@anthropic-ai/claude-code/package.json"; then
    return
  fi
  say "installing Claude Code $version into $dir (once per machine)"
  mkdir -p "$dir"
  npm install --loglevel=error --no-audit --no-fund --prefix "$dir" "@anthropic-ai/claude-code@$version" >&2
}

start_postgres
start_redis
start_s3s
install_ccusage
install_claude_code
