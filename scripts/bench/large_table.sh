# Scenario 9 of scripts/bench.sh (sourced by it): steady as the tables grow. S9_PRELOAD finished
# jobs (--preload; 1,000,000, or 100,000 with --quick) are loaded with their steps, usage,
# deliveries and attempts, copied by scripts/bench/preload.sql from 200 jobs run through the
# services first, then VACUUM ANALYZE; scenario 2 then runs on top. Its throughput and submit
# latency are set beside those of scenario 2 on an empty database in the same invocation (run
# first here when `--scenario 2` was not asked for): `*_vs_empty` is large ÷ empty.
# shellcheck shell=bash

if wants 9; then
  if ! jq -se 'any(.[]; .scenario == "2 pipeline")' "$RESULTS" >/dev/null 2>&1; then
    run_pipeline "2 pipeline" "$S2_JOBS" 0 1 1
  fi
  log "scenario 9: 200 template jobs through the services, then $S9_PRELOAD copies"
  fresh_database
  start_emulator 0
  start_api
  start_worker
  start_webhook
  loadgen --scenario "9 templates" --jobs 200 --concurrency 50 --score 80 \
    --webhook-listen "127.0.0.1:${RECEIVER_PORT}" --out "$OUT/run9-templates.json"
  [ "$(jq -r .errors "$OUT/run9-templates.json")" = 0 ] || die "the template jobs failed; see $OUT/run9-templates.json"
  # shellcheck disable=SC2046
  stop $(running)
  BENCH_DB_URL="postgres://postgres:postgres@${PG_HOST}:${PG_PORT}/${DB}"
  PRELOAD_STARTED=$(date +%s.%N)
  psql "$BENCH_DB_URL" -q -v n="$S9_PRELOAD" -f scripts/bench/preload.sql >"$OUT/preload.log" 2>&1 ||
    die "the preload failed; see $OUT/preload.log"
  psql "$BENCH_DB_URL" -q -c "VACUUM ANALYZE" -c "CHECKPOINT" >>"$OUT/preload.log" 2>&1
  PRELOAD_S=$(awk -v s="$PRELOAD_STARTED" -v e="$(date +%s.%N)" 'BEGIN {printf "%.0f", e - s}')
  DB_MB=$(psql "$PG_ADMIN_URL" -tAc "SELECT pg_database_size('$DB') / 1048576")
  log "preloaded $S9_PRELOAD finished jobs in ${PRELOAD_S}s (database $DB_MB MB)"
  label="9 large table"
  run_pipeline "$label" "$S2_JOBS" 0 0 1
  # Beside the empty database's run: the large run's line, with its ratios, replaces itself.
  LARGE=$(tail -n 1 "$RESULTS")
  EMPTY=$(jq -c 'select(.scenario == "2 pipeline")' "$RESULTS" | tail -n 1)
  head -n -1 "$RESULTS" >"$RESULTS.tmp"
  jq -c --argjson e "$EMPTY" --argjson n "$S9_PRELOAD" --argjson s "$PRELOAD_S" --argjson mb "$DB_MB" \
    '. + {preloaded_jobs: $n, preload_s: $s, database_mb: $mb,
          e2e_throughput_vs_empty: ((.e2e_throughput / $e.e2e_throughput * 1000 | round) / 1000),
          submit_p50_vs_empty: ((.submit_p50_ms / $e.submit_p50_ms * 1000 | round) / 1000),
          submit_p99_vs_empty: ((.submit_p99_ms / $e.submit_p99_ms * 1000 | round) / 1000),
          tup_returned_per_job_empty: $e.tup_returned_per_job}' <<<"$LARGE" >>"$RESULTS.tmp"
  mv "$RESULTS.tmp" "$RESULTS"
  tail -n 1 "$RESULTS"
fi
