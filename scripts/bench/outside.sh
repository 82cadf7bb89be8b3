# Scenario 8 of scripts/bench.sh (sourced by it): the harness an outside team used (issue 18).
# - The client is Python aiohttp (scripts/bench/outside_client.py), not llmflow-loadgen: S8_JOBS
#   `bench_pipeline` jobs (10,000; 2,000 with --quick), 200 submissions in flight.
# - The provider is reached over plain HTTP/1.1 with keep-alive (LLM_HTTP2_PRIOR_KNOWLEDGE=false),
#   and the emulator runs one thread, as their single-threaded stand-in did.
# - The webhook receiver is a Python process of its own (scripts/bench/outside_receiver.py)
#   that verifies every signature with the PyPI `standardwebhooks` package.
# - WORKER_CONCURRENCY=1000; every other setting is the default.
# The Python packages are pinned in scripts/bench/requirements.txt and installed into
# .cache/bench/py on first use. Reports e2e jobs/s, submit p50/p99, the CPU per job of every
# process from /proc (the client's as loadgen_cpu_s), PostgreSQL CPU, statements and rows per job.
# shellcheck shell=bash

if wants 8; then
  PY_DIR=.cache/bench/py
  if ! PYTHONPATH="$PY_DIR" python3 -c 'import aiohttp, standardwebhooks' 2>/dev/null ||
    [ scripts/bench/requirements.txt -nt "$PY_DIR" ]; then
    command -v python3 >/dev/null || apt_install python3 python3-pip
    log "installing the outside harness's Python packages into $PY_DIR"
    rm -rf "$PY_DIR"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$PY_DIR" \
      -r scripts/bench/requirements.txt || die "pip install of scripts/bench/requirements.txt failed"
  fi
  label="8 outside harness"
  log "scenario $label: $S8_JOBS jobs from a Python client, 200 in flight, provider over HTTP/1.1"
  fresh_database
  start_emulator "$LATENCY_MS" 1
  start_api LLM_HTTP2_PRIOR_KNOWLEDGE=false
  start_worker LLM_HTTP2_PRIOR_KNOWLEDGE=false WORKER_CONCURRENCY=1000
  start_webhook LLM_HTTP2_PRIOR_KNOWLEDGE=false
  start receiver PYTHONPATH="$PY_DIR" -- python3 scripts/bench/outside_receiver.py --port "$RECEIVER_PORT"
  wait_http "http://127.0.0.1:${RECEIVER_PORT}/_stats" receiver
  curl -fsS -X POST "$EMULATOR_URL/_emulator/reset" >/dev/null
  mark_start
  PYTHONPATH="$PY_DIR" python3 scripts/bench/outside_client.py --scenario "$label" \
    --api "http://127.0.0.1:${API_PORT}" --receiver "http://127.0.0.1:${RECEIVER_PORT}" \
    --jobs "$S8_JOBS" --concurrency 200 --out "$OUT/run8.json" || die "the outside client failed"
  finish "$OUT/run8.json" "$S8_JOBS" "$BEFORE" --set "llm_latency_ms=$LATENCY_MS" \
    --set "provider_http=1.1" --set "worker_concurrency=1000" \
    --set "llm_calls=$(curl -fsS "$EMULATOR_URL/_emulator/stats" | jq -r .calls)"
fi
