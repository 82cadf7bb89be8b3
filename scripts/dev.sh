#!/usr/bin/env bash
# Local development: PostgreSQL and Redis (started or installed when absent), the database
# migrated, and llmflow's processes running in the background with logs in .dev/.
# Without provider keys it starts llmflow-emulator as the LLM provider and says so.
#   scripts/dev.sh          start everything, print the URL and a curl that submits a job
#   scripts/dev.sh stop     stop what it started
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

DEV=.dev
mkdir -p "$DEV"

stop_all() {
  if [ -f "$DEV/pids" ]; then
    stop_processes "$DEV"
    log "stopped"
  fi
}

if [ "${1:-}" = "stop" ]; then
  stop_all
  exit 0
fi
stop_all

ensure_cargo
ensure_postgres
ensure_redis
ensure_database llmflow

export PORT="${PORT:-8000}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:${PG_PORT}/llmflow}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:${REDIS_PORT}/0}"
export LLM_MICROSERVICE_API_KEY="${LLM_MICROSERVICE_API_KEY:-dev-key}"
export ADMIN_API_KEY="${ADMIN_API_KEY:-dev-admin-key}"
export LLM_WEBHOOK_SECRET="${LLM_WEBHOOK_SECRET:-whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD}"
# Local receivers live on loopback, which the SSRF rules block unless allowed.
export WEBHOOK_ALLOWED_CIDRS="${WEBHOOK_ALLOWED_CIDRS:-127.0.0.0/8,::1/128}"
# The app (Next.js dev server) that mission_generation loads its bundle catalog from.
export APP_BASE_URL="${APP_BASE_URL:-http://127.0.0.1:3000}"
export LOG_FORMAT="${LOG_FORMAT:-pretty}"
export RUST_LOG="${RUST_LOG:-info}"

log "building"
cargo build --workspace --bins --locked
BIN="${CARGO_TARGET_DIR:-target}/debug"

start() { start_process "$DEV" "$@"; }

if [ -z "${OPENROUTER_API_KEY:-}${OPENAI_API_KEY:-}${ANTHROPIC_API_KEY:-}" ]; then
  log "no provider API key set: starting llmflow-emulator on :9100 as the LLM provider (test equipment, not a real model)"
  start emulator $BIN/llmflow-emulator --port 9100
  use_emulator 9100
fi

log "migrating"
$BIN/llmflow migrate

start api $BIN/llmflow-api
start worker $BIN/llmflow-worker
start webhook $BIN/llmflow-webhook
start receiver $BIN/llmflow listen --address 127.0.0.1:9200 --secret "$LLM_WEBHOOK_SECRET"

wait_for_api "$PORT" "$DEV/api.log"

cat <<INFO

llmflow is running at http://127.0.0.1:${PORT}   (logs in $DEV/, stop with scripts/dev.sh stop)
Webhooks go to a local receiver that verifies signatures: tail -f $DEV/receiver.log

Submit a job:
  curl -s -X POST http://127.0.0.1:${PORT}/api/v1/workflow \\
    -H 'X-API-Key: ${LLM_MICROSERVICE_API_KEY}' -H 'Content-Type: application/json' \\
    -d '{"workflow_name": "bench_pipeline", "input_data": {"text": "Ship the quarterly report by Friday."}, "webhook_url": "http://127.0.0.1:9200/hooks/llmflow"}'

Then poll it:
  curl -s -H 'X-API-Key: ${LLM_MICROSERVICE_API_KEY}' http://127.0.0.1:${PORT}/api/v1/status/<job_id>
INFO
