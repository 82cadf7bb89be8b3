# Scenario 7 of scripts/bench.sh (sourced by it): submit latency as users meet it. Submissions
# are offered at OPEN_RATE per second (--open-rate, default 1,000) for S7_SECS seconds in an open
# loop: each is sent at its due time whatever the answers before it are doing, and its latency
# counts from that due time, so a stall shows in the figures instead of slowing the sender. The
# workers and the webhook sender run, so the API shares the machine with the pipeline; every
# job's webhook is awaited (errors count lost or failed jobs too). Reports submit p50/p99/max,
# the achieved rate, the most submissions in flight at once and the sender's own lag.
# shellcheck shell=bash

if wants 7; then
  jobs=$((OPEN_RATE * S7_SECS))
  label="7 open loop ${OPEN_RATE}/s"
  log "scenario $label: $jobs submissions offered at ${OPEN_RATE}/s, workers running"
  fresh_database
  start_emulator "$LATENCY_MS"
  start_api
  start_worker
  start_webhook
  mark_start
  loadgen --scenario "$label" --jobs "$jobs" --rate "$OPEN_RATE" --open-loop --concurrency 1000 \
    --score 80 --webhook-listen "127.0.0.1:${RECEIVER_PORT}" --emulator "$EMULATOR_URL" \
    --out "$OUT/run7.json"
  finish "$OUT/run7.json" "$jobs" "$BEFORE" --set "llm_latency_ms=$LATENCY_MS"
fi
