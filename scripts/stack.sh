#!/usr/bin/env bash
# A disposable llmflow stack for the JavaScript and browser tests: the API, worker, webhook sender
# and the emulator as the providers, on a fresh database and Redis namespace of their own, from the
# binaries already built (scripts/test.sh builds them once for every test).
#   scripts/stack.sh start DIR   start it; DIR/env then holds what a test needs (see below)
#   scripts/stack.sh stop DIR    stop it and drop its database
# DIR/env is a shell-and-dotenv file of KEY=value lines:
#   LLMFLOW_BASE_URL, LLMFLOW_API_KEY, LLMFLOW_ADMIN_KEY, LLMFLOW_WEBHOOK_SECRET,
#   LLMFLOW_EMULATOR_URL, LLMFLOW_DATABASE_URL, LLMFLOW_REDIS_URL, LLMFLOW_REDIS_NAMESPACE.
# Ports: STACK_API_PORT (default 18000) and STACK_EMULATOR_PORT (default 18100).
# Other settings of the services (CORS_ALLOWED_ORIGINS, …) pass through from the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

usage() { die "usage: scripts/stack.sh start|stop DIR"; }
[ $# -eq 2 ] || usage
action=$1
dir=$2
BIN="${CARGO_TARGET_DIR:-target}/debug"

case "$action" in
start)
  mkdir -p "$dir"
  stop_processes "$dir"
  ensure_postgres
  ensure_redis
  for bin in llmflow llmflow-api llmflow-worker llmflow-webhook llmflow-emulator; do
    [ -x "$BIN/$bin" ] || die "$BIN/$bin is not built: run cargo build --workspace --bins first"
  done
  api_port=${STACK_API_PORT:-18000}
  emulator_port=${STACK_EMULATOR_PORT:-18100}
  database="llmflow_stack_$$"
  namespace="llmflow-stack-$$"
  psql "$PG_ADMIN_URL" -q -c "CREATE DATABASE $database"
  echo "$database" >"$dir/database"

  export PORT=$api_port
  export DATABASE_URL="postgres://postgres:postgres@${PG_HOST}:${PG_PORT}/${database}"
  export REDIS_URL="redis://127.0.0.1:${REDIS_PORT}/0"
  export REDIS_NAMESPACE=$namespace
  export LLM_MICROSERVICE_API_KEY=stack-key
  export ADMIN_API_KEY=stack-admin-key
  export LLM_WEBHOOK_SECRET="whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
  # The tests' receivers listen on loopback, which the address policy blocks unless allowed.
  export WEBHOOK_ALLOWED_CIDRS="${WEBHOOK_ALLOWED_CIDRS:-127.0.0.0/8,::1/128}"
  export LOG_FORMAT="${LOG_FORMAT:-json}"
  export RUST_LOG="${RUST_LOG:-info}"
  # Each process of this stack serves its metrics (if any) on a port of its own, or none.
  export METRICS_ADDR=""

  start_process "$dir" emulator "$BIN/llmflow-emulator" --port "$emulator_port"
  use_emulator "$emulator_port"
  "$BIN/llmflow" migrate >"$dir/migrate.log" 2>&1 || die "migration failed; see $dir/migrate.log"
  start_process "$dir" api "$BIN/llmflow-api"
  start_process "$dir" worker "$BIN/llmflow-worker"
  start_process "$dir" webhook "$BIN/llmflow-webhook"
  wait_for_api "$api_port" "$dir/api.log"

  cat >"$dir/env" <<ENV
LLMFLOW_BASE_URL=http://127.0.0.1:${api_port}
LLMFLOW_API_KEY=${LLM_MICROSERVICE_API_KEY}
LLMFLOW_ADMIN_KEY=${ADMIN_API_KEY}
LLMFLOW_WEBHOOK_SECRET=${LLM_WEBHOOK_SECRET}
LLMFLOW_EMULATOR_URL=http://127.0.0.1:${emulator_port}
LLMFLOW_DATABASE_URL=${DATABASE_URL}
LLMFLOW_REDIS_URL=${REDIS_URL}
LLMFLOW_REDIS_NAMESPACE=${namespace}
ENV
  log "llmflow stack up at http://127.0.0.1:${api_port} (logs and env in $dir)"
  ;;
stop)
  stop_processes "$dir"
  if [ -f "$dir/database" ]; then
    database=$(cat "$dir/database")
    # The services may take a moment to close their connections after the signal.
    for _ in $(seq 1 50); do
      psql "$PG_ADMIN_URL" -q -c "DROP DATABASE IF EXISTS \"$database\"" >/dev/null 2>&1 && break
      sleep 0.2
    done
    rm -f "$dir/database"
  fi
  ;;
*) usage ;;
esac
