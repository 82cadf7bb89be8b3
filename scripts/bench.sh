#!/usr/bin/env bash
# The benchmark: PostgreSQL and Redis (started or reused), a release build, the emulator as the
# LLM provider, llmflow's three services in release mode, and llmflow-loadgen driving them over
# HTTP. Prints one JSON line per scenario and a table (see BENCHMARKS.md).
#
#   scripts/bench.sh                  every scenario at full size (about 10–15 minutes)
#   scripts/bench.sh --quick          small counts: a check anyone can run in a few minutes
#   scripts/bench.sh --scenario 2     only scenario 2 (repeat the flag for several)
#   scripts/bench.sh --latency-ms 200 LLM latency of the pipeline scenarios (default 200)
#   scripts/bench.sh --open-rate 1000 offered submissions/s of scenario 7 (default 1000)
#   scripts/bench.sh --preload 1000000 finished jobs preloaded by scenario 9 (default 1,000,000;
#                                      100,000 with --quick)
#   BENCH_PERF=1 scripts/bench.sh     also record a flat `perf` CPU profile during scenario 2
#   BENCH_HTTP2=false scripts/bench.sh provider calls over HTTP/1.1 instead of HTTP/2
#   DATABASE_STATEMENT_CACHE=false scripts/bench.sh  statements unnamed, as behind a pooler
#   BENCH_SERVICES_BIN=DIR scripts/bench.sh  llmflow, llmflow-api, -worker and -webhook from DIR
#                                      (another commit's release build: a before/after run)
#   BENCH_PG_SETTINGS="-c autovacuum_naptime=1" scripts/bench.sh  extra server settings of the
#                                      benchmark's own cluster
#   BENCH_PG=system scripts/bench.sh   the machine's PostgreSQL instead of the benchmark's own
#                                      cluster (port BENCH_PG_PORT, default 55432), which has
#                                      pg_stat_statements for statements and rows per job
#
# Scenarios: 0 pgbench (this machine's commit rate), 1 submit, 2 pipeline (+ 2b at 100 jobs/s
# offered, open loop: its submit p99 is "submit p99 at 100 jobs/s offered, workers running"),
# 3 backlog, 4 in-flight, 5 overhead, 6 idle (cost per second with no jobs), and, in
# scripts/bench/*.sh:
#   7 open loop      submissions offered at --open-rate/s (default 1,000) whatever the answers'
#                    latency, workers running: submit p50/p99 from each one's due time, rate
#   8 outside        as an outside team measured: a Python aiohttp client (200 in flight, 10,000
#                    jobs), the provider over HTTP/1.1 with keep-alive (single-threaded
#                    emulator), a webhook receiver in its own Python process verifying every
#                    signature, WORKER_CONCURRENCY=1000; CPU per job of every process
#   9 large table    scenario 2 on top of --preload finished jobs (steps, usage, deliveries,
#                    attempts), next to scenario 2 on an empty database when both run
#   10 scale-out     scenario 2 with 1, 2 and 4 worker processes; claim and reconciler cost
#                    per worker (pg_stat_statements)
#   11 pooler pair   scenario 2 with DATABASE_STATEMENT_CACHE=true, then =false
# The default runs 0–6; name the others with --scenario (or --scenario all). Uses its own
# database (llmflow_bench, dropped and recreated per scenario) and Redis namespace; logs and
# results go to .bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

QUICK=0
LATENCY_MS=200
OPEN_RATE=1000
PRELOAD=""
SCENARIOS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --scenario) shift; SCENARIOS+=("${1:?--scenario needs a number}") ;;
    --latency-ms) shift; LATENCY_MS="${1:?--latency-ms needs a number}" ;;
    --open-rate) shift; OPEN_RATE="${1:?--open-rate needs a number}" ;;
    --preload) shift; PRELOAD="${1:?--preload needs a number}" ;;
    -h | --help) sed -n '2,41p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(0 1 2 3 4 5 6)
[ "${SCENARIOS[*]}" != all ] || SCENARIOS=(0 1 2 3 4 5 6 7 8 9 10 11)
for number in "$LATENCY_MS" "$OPEN_RATE" ${PRELOAD:+"$PRELOAD"}; do
  [[ "$number" =~ ^[0-9]+$ ]] || die "not a whole number: $number"
done
wants() { printf '%s\n' "${SCENARIOS[@]}" | grep -qx "$1"; }

# Sizes: full, then --quick.
# S7_SECS: seconds of offered load in scenario 7; S8_JOBS: the outside harness's jobs.
if [ "$QUICK" = 1 ]; then
  S1_JOBS=1000 S2_JOBS=2000 S2B_JOBS=300 S3_JOBS=9000 S4_JOBS=1000 S5_JOBS=200 PGBENCH_SECS=5
  S7_SECS=3 S8_JOBS=2000 S9_PRELOAD=${PRELOAD:-100000}
else
  S1_JOBS=1000 S2_JOBS=20000 S2B_JOBS=3000 S3_JOBS=20000 S4_JOBS=10000 S5_JOBS=1000 PGBENCH_SECS=15
  S7_SECS=10 S8_JOBS=10000 S9_PRELOAD=${PRELOAD:-1000000}
fi

OUT=.bench
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"

API_PORT="${BENCH_API_PORT:-18000}"
EMULATOR_PORT="${BENCH_EMULATOR_PORT:-19100}"
RECEIVER_PORT="${BENCH_RECEIVER_PORT:-19300}"
DB=llmflow_bench
NAMESPACE="llmflow_bench_$$"
TCK=$(getconf CLK_TCK)

ensure_cargo
ensure_postgres
ensure_redis

# The benchmark's own PostgreSQL cluster, with pg_stat_statements loaded, so that statements
# and rows per job are counted without touching the machine's cluster or its settings. It
# runs the Debian binaries of the machine's version with their defaults, on BENCH_PG_PORT.
# BENCH_PG=system uses the machine's cluster instead (no statement counts then).
BENCH_PG_PORT="${BENCH_PG_PORT:-55432}"
BENCH_PGDATA="${BENCH_PGDATA:-/tmp/llmflow-bench-pg}"
STATEMENTS=0
BENCH_PG_STARTED=0
start_bench_postgres() {
  # shellcheck disable=SC2086 # BENCH_PG_SETTINGS is a list of options
  start_own_postgres "$BENCH_PGDATA" "$BENCH_PG_PORT" "$OUT/initdb.log" \
    -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all \
    -c max_connections=200 ${BENCH_PG_SETTINGS:-}
  BENCH_PG_STARTED=1
  PG_PORT=$BENCH_PG_PORT
  PG_ADMIN_URL="postgres://postgres:postgres@${PG_HOST}:${PG_PORT}/postgres"
  psql "$PG_ADMIN_URL" -q -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
  STATEMENTS=1
}
# Stops the benchmark's own cluster, if this run started one.
stop_bench_postgres() {
  [ "$BENCH_PG_STARTED" = 1 ] || return 0
  stop_own_postgres "$BENCH_PGDATA"
}
if [ "${BENCH_PG:-own}" != system ]; then
  log "starting the benchmark's own PostgreSQL on port $BENCH_PG_PORT (pg_stat_statements on)"
  start_bench_postgres
  trap stop_bench_postgres EXIT # until the services' cleanup below takes over
fi
# Debian's /usr/bin/pgbench is a wrapper that fails without the server package's binary.
pgbench --version >/dev/null 2>&1 || { command -v apt-get >/dev/null && apt_install postgresql-contrib; } || true
pgbench --version >/dev/null 2>&1 || PGBENCH_MISSING=1

log "building release binaries"
cargo build --release --locked -p llmflow-api -p llmflow-worker -p llmflow-webhook \
  -p llmflow-emulator -p llmflow-cli --bins
BIN="${CARGO_TARGET_DIR:-target}/release"
# The services under test (and the migration) may come from another build, e.g. an earlier
# commit's, for a before/after run on the same machine: the emulator and the load generator
# stay this checkout's.
SVC_BIN="${BENCH_SERVICES_BIN:-$BIN}"
for bin in llmflow llmflow-api llmflow-worker llmflow-webhook; do
  [ -x "$SVC_BIN/$bin" ] || die "$SVC_BIN/$bin is missing (BENCH_SERVICES_BIN)"
done

# Plaintext on loopback, as before sslmode was read (the default `prefer` takes TLS when the
# server offers it, and Debian's cluster does).
export DATABASE_URL="postgres://postgres:postgres@${PG_HOST}:${PG_PORT}/${DB}?sslmode=disable"
export REDIS_URL="redis://127.0.0.1:${REDIS_PORT}/0"
export REDIS_NAMESPACE="$NAMESPACE"
export PORT="$API_PORT" HOST=127.0.0.1
export LLM_MICROSERVICE_API_KEY=bench-key
export LLM_WEBHOOK_SECRET="whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
export WEBHOOK_ALLOWED_CIDRS="127.0.0.0/8"
export OPENROUTER_API_KEY=emulator OPENAI_API_KEY=emulator ANTHROPIC_API_KEY=emulator GOOGLE_PLACES_API_KEY=emulator
export OPENROUTER_BASE_URL="http://127.0.0.1:${EMULATOR_PORT}/v1" OPENAI_BASE_URL="http://127.0.0.1:${EMULATOR_PORT}/v1"
export ANTHROPIC_BASE_URL="http://127.0.0.1:${EMULATOR_PORT}" GOOGLE_PLACES_BASE_URL="http://127.0.0.1:${EMULATOR_PORT}"
# The providers negotiate HTTP/2 over TLS; the emulator serves plain HTTP, so say it outright.
# BENCH_HTTP2=false measures HTTP/1.1 (one connection per call in flight) instead.
export LLM_HTTP2_PRIOR_KNOWLEDGE="${BENCH_HTTP2:-true}"
export WORKFLOWS_DIR=./workflows PROMPTS_DIR=./prompts
export LOG_FORMAT=json RUST_LOG="${BENCH_RUST_LOG:-warn}"
EMULATOR_URL="http://127.0.0.1:${EMULATOR_PORT}"

declare -A PIDS=()

stop() { # stop NAME...: SIGTERM, then wait for the process to go
  local name pid
  for name in "$@"; do
    pid="${PIDS[$name]:-}"
    [ -n "$pid" ] || continue
    kill -CONT "$pid" 2>/dev/null || true # in case it was paused
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "PIDS[$name]"
  done
}

redis_wipe() {
  redis-cli -p "$REDIS_PORT" --scan --pattern "${NAMESPACE}:*" | xargs -r -n 500 redis-cli -p "$REDIS_PORT" DEL >/dev/null
}

# Every process this run started and still runs.
running() { printf '%s\n' "${!PIDS[@]}"; }

cleanup() {
  # shellcheck disable=SC2046
  stop $(running)
  redis_wipe || true
  stop_bench_postgres
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for port in "$API_PORT" "$EMULATOR_PORT" "$RECEIVER_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port is in use (set BENCH_API_PORT / BENCH_EMULATOR_PORT / BENCH_RECEIVER_PORT)"
  fi
done

start() { # start NAME ENV=VALUE... -- COMMAND...
  local name=$1
  shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  env "${envs[@]}" "$@" >"$OUT/$name.log" 2>&1 &
  PIDS[$name]=$!
}

fresh_database() {
  psql "$PG_ADMIN_URL" -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
  psql "$PG_ADMIN_URL" -q -c "CREATE DATABASE $DB" >/dev/null
  "$SVC_BIN/llmflow" migrate >"$OUT/migrate.log" 2>&1 || die "migration failed; see $OUT/migrate.log"
  redis_wipe
}

wait_http() { # wait_http URL NAME
  for _ in $(seq 1 150); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    kill -0 "${PIDS[$2]}" 2>/dev/null || die "$2 exited; see $OUT/$2.log"
    sleep 0.1
  done
  die "$2 did not answer at $1; see $OUT/$2.log"
}

start_emulator() { # start_emulator LATENCY_MS [THREADS, default 2]
  start emulator -- "$BIN/llmflow-emulator" --port "$EMULATOR_PORT" --latency-ms "$1" --workers "${2:-2}"
  wait_http "$EMULATOR_URL/_emulator/health" emulator
}

start_api() {
  start api "$@" -- "$SVC_BIN/llmflow-api"
  wait_http "http://127.0.0.1:${API_PORT}/api/v1/health" api
}

start_worker() { start worker "$@" -- "$SVC_BIN/llmflow-worker"; }
# start_workers N ENV=VALUE...: N worker processes, named worker, worker2, … workerN.
start_workers() {
  local n=$1 i
  shift
  start_worker "$@"
  for i in $(seq 2 "$n"); do start "worker$i" "$@" -- "$SVC_BIN/llmflow-worker"; done
}
start_webhook() { start webhook "$@" -- "$SVC_BIN/llmflow-webhook"; }

commits() {
  psql "$PG_ADMIN_URL" -tAc "SELECT xact_commit FROM pg_stat_database WHERE datname = '$DB'"
}

load1() { cut -d' ' -f1 /proc/loadavg; }

cpu_s() { # CPU seconds (user + system) of the given PIDs
  local pid total=0
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] || continue
    total=$(awk -v t="$TCK" -v s="$total" '{printf "%.2f", s + ($14 + $15) / t}' "/proc/$pid/stat")
  done
  echo "$total"
}
redis_cpu() { cpu_s $(pgrep -x redis-server); }
pg_backends() { pgrep -f "postgres: .*${DB} " || true; }

# CPU seconds of this shell's waited-for children so far (the load generator, once it has
# exited). `times` runs in this shell, not in a subshell, which would see no children.
children_cpu() {
  times >"$OUT/times"
  awk 'NR == 2 {split($1, u, "m"); split($2, s, "m"); printf "%.2f", u[1] * 60 + u[2] + s[1] * 60 + s[2]}' "$OUT/times"
}

# Rows the database's backends read so far: returned by scans, and fetched by index lookups.
rows_read() {
  psql "$PG_ADMIN_URL" -tA -F' ' -c "SELECT tup_returned, tup_fetched FROM pg_stat_database WHERE datname = '$DB'"
}

# Per job: statements run, rows they returned, and their execution time; the top statements
# by total time go to $OUT/statements-<scenario>.txt. Only with the benchmark's own cluster.
# The batched claim, and the reconciler's statements (its job and delivery candidate pages and
# its release of lost workers' claims), as pg_stat_statements shows them.
CLAIM_SQL="query ~* '^\s*UPDATE\s+\"?llm_workflow_jobs\"?\s+SET\s+\"?status\"?\s*=\s*\\\$[0-9]+,\s*\"?claimed_by\"?\s*=\s*\\\$'"
RECONCILER_SQL="(query ~* 'FROM\s+\"?(llm_workflow_jobs|llm_webhook_deliveries)\"?\s+WHERE\s+\(*\"?(llm_workflow_jobs|llm_webhook_deliveries)?\"?\.?\"?id\"?\s*>\s*\\\$'
  OR query ~* 'NOT EXISTS.*llm_workers')"

statement_figures() { # statement_figures JOBS LABEL WORKER_PROCESSES
  [ "$STATEMENTS" = 1 ] || return 0
  local jobs=$1 workers=${3:-0} file after_returned after_fetched
  file="$OUT/statements-$(printf '%s' "$2" | tr -c 'A-Za-z0-9' '_').txt"
  local where="dbid = (SELECT oid FROM pg_database WHERE datname = '$DB')"
  read -r after_returned after_fetched < <(rows_read)
  psql "$PG_ADMIN_URL" -tA -F' ' -c "SELECT round(sum(calls)::numeric / $jobs, 2),
      round(sum(rows)::numeric / $jobs, 2), round(sum(total_exec_time)::numeric / $jobs, 3)
      FROM pg_stat_statements WHERE $where" >"$OUT/statements.sum"
  read -r per_job rows_per_job exec_ms <"$OUT/statements.sum"
  psql "$PG_ADMIN_URL" -q -P pager=off -c "SELECT calls, round((calls::numeric / $jobs), 2) AS per_job,
      rows, round(total_exec_time::numeric, 1) AS total_ms, round(mean_exec_time::numeric, 3) AS mean_ms,
      shared_blks_hit + shared_blks_read AS blocks, left(regexp_replace(query, '\s+', ' ', 'g'), 160) AS query
      FROM pg_stat_statements WHERE $where ORDER BY total_exec_time DESC LIMIT 20" >"$file"
  # Where the rows read come from: sequential scans and the rows they read, per table.
  psql "postgres://postgres:postgres@${PG_HOST}:${PG_PORT}/${DB}" -q -P pager=off -c "SELECT relname,
      seq_scan, seq_tup_read, idx_scan, idx_tup_fetch, n_tup_upd, n_tup_hot_upd, n_live_tup
      FROM pg_stat_user_tables ORDER BY seq_tup_read DESC" >>"$file"
  echo "--set statements_per_job=$per_job --set statement_rows_per_job=$rows_per_job"
  echo "--set statement_exec_ms_per_job=$exec_ms"
  # The claim's and the reconciler's cost, in all and per worker process.
  local claim_calls claim_ms rec_calls rec_ms
  read -r claim_calls claim_ms rec_calls rec_ms < <(psql "$PG_ADMIN_URL" -tA -F' ' -c "SELECT
      coalesce(sum(calls) FILTER (WHERE $CLAIM_SQL), 0),
      round(coalesce(sum(total_exec_time) FILTER (WHERE $CLAIM_SQL), 0)::numeric, 1),
      coalesce(sum(calls) FILTER (WHERE $RECONCILER_SQL), 0),
      round(coalesce(sum(total_exec_time) FILTER (WHERE $RECONCILER_SQL), 0)::numeric, 1)
      FROM pg_stat_statements WHERE $where")
  echo "--set claim_calls=$claim_calls --set claim_total_ms=$claim_ms"
  echo "--set reconciler_calls=$rec_calls --set reconciler_total_ms=$rec_ms"
  if [ "$workers" -gt 0 ]; then
    awk -v w="$workers" -v cc="$claim_calls" -v cm="$claim_ms" -v rc="$rec_calls" -v rm="$rec_ms" 'BEGIN {
      printf "--set claim_calls_per_worker=%.0f --set claim_ms_per_worker=%.1f ", cc / w, cm / w
      printf "--set reconciler_calls_per_worker=%.0f --set reconciler_ms_per_worker=%.1f\n", rc / w, rm / w }'
  fi
  {
    echo
    echo "The claim and the reconciler's statements:"
    psql "$PG_ADMIN_URL" -q -P pager=off -c "SELECT CASE WHEN $CLAIM_SQL THEN 'claim' ELSE 'reconciler' END AS kind,
        calls, rows, round(total_exec_time::numeric, 1) AS total_ms, left(regexp_replace(query, '\s+', ' ', 'g'), 160) AS query
        FROM pg_stat_statements WHERE $where AND ($CLAIM_SQL OR $RECONCILER_SQL) ORDER BY 1, total_exec_time DESC"
  } >>"$file"
  echo "--set tup_returned_per_job=$(awk -v a="$after_returned" -v b="$RETURNED_BEFORE" -v j="$jobs" 'BEGIN {printf "%.1f", (a - b) / j}')"
  echo "--set tup_fetched_per_job=$(awk -v a="$after_fetched" -v b="$FETCHED_BEFORE" -v j="$jobs" 'BEGIN {printf "%.1f", (a - b) / j}')"
}

# Marks the start of a scenario's measured part.
mark_start() {
  LOAD_BEFORE=$(load1)
  BEFORE=$(commits)
  read -r RETURNED_BEFORE FETCHED_BEFORE < <(rows_read)
  if [ "$STATEMENTS" = 1 ]; then
    psql "$PG_ADMIN_URL" -tAc "SELECT pg_stat_statements_reset()" >/dev/null
  fi
  REDIS_CPU_BEFORE=$(redis_cpu)
  children_cpu >"$OUT/children_before"
}

# Peak RSS (MB) and CPU seconds of each running service, and the CPU seconds of the rest of the
# system under test (the PostgreSQL backends serving llmflow_bench, Redis, the emulator), as
# --set arguments. The backends live as long as the services' pools, so theirs is the
# scenario's whole PostgreSQL CPU (the WAL writer and checkpointer are not counted). With
# several worker processes (worker, worker2, …) `worker_cpu_s` is their sum and
# `worker_rss_mb` the largest. Each process's CPU per job is reported too (`*_cpu_ms_per_job`),
# and that of extra processes a scenario started (an outside receiver) beside them.
process_figures() {
  local name pid jobs=$1 total=0 cpu worker_cpu=0 worker_rss=0 rss
  for name in api worker webhook; do
    pid="${PIDS[$name]:-}"
    [ -n "$pid" ] && [ -r "/proc/$pid/status" ] || continue
    [ "$name" = worker ] && continue # summed over every worker process below
    cpu=$(cpu_s "$pid")
    total=$(awk -v a="$total" -v b="$cpu" 'BEGIN {printf "%.2f", a + b}')
    echo "--set ${name}_rss_mb=$(awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")"
    echo "--set ${name}_cpu_s=$cpu"
    per_job "$name" "$cpu" "$jobs"
  done
  for name in $(running | grep -x 'worker[0-9]*'); do
    pid="${PIDS[$name]}"
    [ -r "/proc/$pid/status" ] || continue
    worker_cpu=$(awk -v a="$worker_cpu" -v b="$(cpu_s "$pid")" 'BEGIN {printf "%.2f", a + b}')
    rss=$(awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
    worker_rss=$(awk -v a="$worker_rss" -v b="$rss" 'BEGIN {print (b > a ? b : a)}')
  done
  if [ "$worker_cpu" != 0 ]; then
    total=$(awk -v a="$total" -v b="$worker_cpu" 'BEGIN {printf "%.2f", a + b}')
    echo "--set worker_rss_mb=$worker_rss --set worker_cpu_s=$worker_cpu"
    echo "--set worker_processes=$(running | grep -cx 'worker[0-9]*')"
    per_job worker "$worker_cpu" "$jobs"
  fi
  local pg redis emulator
  # shellcheck disable=SC2046
  pg=$(cpu_s $(pg_backends))
  redis=$(awk -v a="$(redis_cpu)" -v b="$REDIS_CPU_BEFORE" 'BEGIN {printf "%.2f", a - b}')
  emulator=$(cpu_s "${PIDS[emulator]}")
  echo "--set postgres_cpu_s=$pg --set redis_cpu_s=$redis --set emulator_cpu_s=$emulator"
  per_job postgres "$pg" "$jobs"
  per_job redis "$redis" "$jobs"
  per_job emulator "$emulator" "$jobs"
  for name in $(running | grep -vx 'api\|worker[0-9]*\|webhook\|emulator'); do
    cpu=$(cpu_s "${PIDS[$name]}")
    echo "--set ${name}_cpu_s=$cpu"
    per_job "$name" "$cpu" "$jobs"
  done
  echo "--set cpu_ms_per_job=$(awk -v a="$total" -v p="$pg" -v r="$redis" -v e="$emulator" -v j="$jobs" 'BEGIN {printf "%.2f", (a + p + r + e) * 1000 / j}')"
}
per_job() { # per_job NAME CPU_SECONDS JOBS
  echo "--set ${1}_cpu_ms_per_job=$(awk -v c="$2" -v j="$3" 'BEGIN {printf "%.3f", c * 1000 / j}')"
}

# ERROR lines in the services' logs of this scenario.
log_errors() {
  local n=0 name
  for name in $(running | grep -x 'api\|worker[0-9]*\|webhook'); do
    [ -f "$OUT/$name.log" ] && n=$((n + $(grep -c '"level":"ERROR"' "$OUT/$name.log" || true)))
  done
  echo "$n"
}

# finish SCENARIO_RUN_JSON JOBS COMMITS_BEFORE [extra --set args...]: measures, stops the
# services, and appends the scenario's line.
finish() {
  local run=$1 jobs=$2 before=$3
  shift 3
  local figures errors after loadgen_cpu workers
  figures=$(process_figures "$jobs")
  workers=$(running | grep -cx 'worker[0-9]*' || true)
  # The services still run, so the children waited for since mark_start are the load generator
  # (and a few psql and redis-cli calls).
  children_cpu >"$OUT/children_after"
  loadgen_cpu=$(awk -v a="$(cat "$OUT/children_after")" -v b="$(cat "$OUT/children_before")" 'BEGIN {printf "%.2f", a - b}')
  errors=$(log_errors)
  # shellcheck disable=SC2046
  stop $(running)
  sleep 1 # backends flush their statistics as they exit
  after=$(commits)
  figures="$figures $(statement_figures "$jobs" "$(jq -r .scenario "$run")" "$workers")"
  # shellcheck disable=SC2086
  "$BIN/llmflow-loadgen" report --run "$run" --append "$RESULTS" $figures \
    --set "commits_per_job=$(awk -v a="$after" -v b="$before" -v j="$jobs" 'BEGIN {printf "%.2f", (a - b) / j}')" \
    --set "loadgen_cpu_s=$loadgen_cpu" \
    --set "errors=$errors" --set "log_errors=$errors" --set "load1_before=$LOAD_BEFORE" --set "load1_after=$(load1)" "$@"
}

loadgen() { "$BIN/llmflow-loadgen" run --api "http://127.0.0.1:${API_PORT}" "$@"; }

log "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f MB", $2 / 1024}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"

# 0. This machine's PostgreSQL commit rate, to explain a commit-bound limit.
if wants 0; then
  if [ -n "${PGBENCH_MISSING:-}" ]; then
    log "scenario 0 skipped: pgbench is not installed"
  else
    log "scenario 0: pgbench (-N, simple updates) for ${PGBENCH_SECS}s at 1, 16 and 48 clients"
    LOAD_BEFORE=$(load1)
    psql "$PG_ADMIN_URL" -q -c "DROP DATABASE IF EXISTS ${DB}_pgbench WITH (FORCE)" -c "CREATE DATABASE ${DB}_pgbench" >/dev/null
    PGBENCH_URL="postgres://postgres:postgres@${PG_HOST}:${PG_PORT}/${DB}_pgbench"
    pgbench -q -i -s 4 "$PGBENCH_URL" >"$OUT/pgbench.log" 2>&1
    tps() { pgbench -N -c "$1" -j 2 -T "$PGBENCH_SECS" "$PGBENCH_URL" 2>>"$OUT/pgbench.log" | tee -a "$OUT/pgbench.log" | awk '/^tps/ {printf "%.0f", $3}'; }
    TPS1=$(tps 1)
    TPS16=$(tps 16)
    TPS48=$(tps 48)
    # One-row INSERT transactions at 50 clients, as scenario 1's submissions are: PostgreSQL's
    # own ceiling for acceptance on this machine, with nothing else running.
    psql "$PGBENCH_URL" -q -c "CREATE TABLE accepted (id uuid PRIMARY KEY, body jsonb NOT NULL)" >/dev/null
    echo "INSERT INTO accepted VALUES (gen_random_uuid(), jsonb_build_object('text', repeat('x', 400)));" >"$OUT/pgbench-insert.sql"
    TPS_INSERT=$(pgbench -n -f "$OUT/pgbench-insert.sql" -c 50 -j 2 -T "$PGBENCH_SECS" "$PGBENCH_URL" 2>>"$OUT/pgbench.log" |
      tee -a "$OUT/pgbench.log" | awk '/^tps/ {printf "%.0f", $3}')
    psql "$PG_ADMIN_URL" -q -c "DROP DATABASE IF EXISTS ${DB}_pgbench WITH (FORCE)" >/dev/null
    echo "{\"scenario\":\"0 pgbench\"}" >"$OUT/run0.json"
    "$BIN/llmflow-loadgen" report --run "$OUT/run0.json" --append "$RESULTS" \
      --set "commits_per_s_1_client=$TPS1" --set "commits_per_s_16_clients=$TPS16" \
      --set "commits_per_s_48_clients=$TPS48" --set "insert_commits_per_s_50_clients=$TPS_INSERT" \
      --set "synchronous_commit=$(psql "$PG_ADMIN_URL" -tAc 'SHOW synchronous_commit')" \
      --set "load1_before=$LOAD_BEFORE" --set "load1_after=$(load1)"
  fi
fi

# 1. Submit only: acceptance with the workers stopped.
if wants 1; then
  log "scenario 1: submit $S1_JOBS jobs at 50 in flight, workers stopped"
  fresh_database
  start_emulator 0
  start_api
  mark_start
  loadgen --scenario "1 submit" --jobs "$S1_JOBS" --concurrency 50 --out "$OUT/run1.json"
  finish "$OUT/run1.json" "$S1_JOBS" "$BEFORE"
fi

# run_pipeline LABEL JOBS RATE FRESH WORKERS [ENV=VALUE...]: scenario 2's run: `bench_pipeline`
# jobs (score 80: both LLM steps), 200 in flight (RATE > 0: offered at RATE/s in an open loop),
# webhooks on, WORKERS worker processes; the services get the ENV settings. FRESH=1 starts from
# an empty database, 0 keeps the one in place (scenario 9's preload).
run_pipeline() {
  local label=$1 jobs=$2 rate=$3 fresh=$4 workers=$5 run pace=()
  shift 5
  run="$OUT/run-$(printf '%s' "$label" | tr -c 'A-Za-z0-9' '_').json"
  log "scenario $label: $jobs jobs, LLM latency ${LATENCY_MS} ms, 200 in flight, webhooks on"
  if [ "$fresh" = 1 ]; then fresh_database; else redis_wipe; fi
  [ "$rate" = 0 ] || pace=(--rate "$rate" --open-loop)
  start_emulator "$LATENCY_MS"
  start_api "$@"
  start_workers "$workers" "$@"
  start_webhook "$@"
  mark_start
  PERF=""
  if [ -n "${BENCH_PERF:-}" ] && [ "$label" = "2 pipeline" ] && command -v perf >/dev/null; then
    # A flat CPU profile of the three services (software clock: no hardware counters in VMs).
    perf record -q -e cpu-clock -F 499 -o "$OUT/perf2.data" \
      -p "${PIDS[api]},${PIDS[worker]},${PIDS[webhook]}" >"$OUT/perf.log" 2>&1 &
    PERF=$!
  fi
  loadgen --scenario "$label" --jobs "$jobs" --concurrency 200 "${pace[@]}" --score 80 \
    --webhook-listen "127.0.0.1:${RECEIVER_PORT}" --emulator "$EMULATOR_URL" --out "$run"
  if [ -n "$PERF" ]; then
    kill -INT "$PERF" 2>/dev/null || true
    wait "$PERF" 2>/dev/null || true
    perf report -i "$OUT/perf2.data" --stdio --no-children --sort comm,symbol 2>/dev/null |
      grep -v '^#' | grep -v '^$' | head -60 >"$OUT/perf2.txt" || true
    log "CPU profile of scenario 2 in $OUT/perf2.txt"
  fi
  finish "$run" "$jobs" "$BEFORE" --set "llm_latency_ms=$LATENCY_MS"
}

# 2. The pipeline at saturation, then at 100 jobs/s offered (latency when not saturated; its
# submit p99 is the figure "submit p99 at 100 jobs/s offered, workers running").
if wants 2; then
  run_pipeline "2 pipeline" "$S2_JOBS" 0 1 1
  run_pipeline "2b pipeline 100/s" "$S2B_JOBS" 100 1 1
fi

# 3. Backlog: everything submitted with the workers stopped, then the workers started.
if wants 3; then
  log "scenario 3: backlog of $S3_JOBS jobs submitted with the workers stopped, then started"
  fresh_database
  start_emulator "$LATENCY_MS"
  start_api
  start_webhook
  mark_start
  rm -f "$OUT/submitted3"
  loadgen --scenario "3 backlog" --jobs "$S3_JOBS" --concurrency 200 --score 80 \
    --webhook-listen "127.0.0.1:${RECEIVER_PORT}" --emulator "$EMULATOR_URL" \
    --submitted-marker "$OUT/submitted3" --idle-timeout-secs 60 --out "$OUT/run3.json" &
  LOADGEN=$!
  while [ ! -f "$OUT/submitted3" ]; do
    kill -0 "$LOADGEN" 2>/dev/null || die "llmflow-loadgen stopped before submitting everything"
    sleep 0.1
  done
  DUE=$(redis-cli -p "$REDIS_PORT" LLEN "${NAMESPACE}:jobs:active")
  log "all submitted ($DUE waiting in Redis); starting the worker"
  WORKER_STARTED=$(date +%s.%N)
  start_worker
  wait "$LOADGEN" || die "llmflow-loadgen failed"
  DRAIN=$(awk -v s="$WORKER_STARTED" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}')
  finish "$OUT/run3.json" "$S3_JOBS" "$BEFORE" --set "waiting_in_redis_at_start=$DUE" \
    --set "drain_s=$DRAIN" --set "drain_jobs_per_s=$(awk -v j="$S3_JOBS" -v d="$DRAIN" 'BEGIN {printf "%.0f", j / d}')" \
    --set "llm_latency_ms=$LATENCY_MS"
fi

# 4. In flight: single-step jobs with 5 s LLM latency, one worker that may hold them all.
if wants 4; then
  log "scenario 4: $S4_JOBS single-step jobs, LLM latency 5 s, one worker"
  fresh_database
  start_emulator 5000
  start_api
  start_webhook
  # The worker starts first, on an empty queue, for its idle RSS; it is then paused (SIGSTOP)
  # while every job is submitted, and resumed: all the jobs' LLM calls overlap.
  start_worker WORKER_CONCURRENCY=$((S4_JOBS + 100)) QUEUE_POLL_MS=10
  sleep 2
  IDLE_KB=$(awk '/^VmRSS/ {print $2}' "/proc/${PIDS[worker]}/status")
  kill -STOP "${PIDS[worker]}"
  rm -f "$OUT/submitted4"
  mark_start
  loadgen --scenario "4 in-flight" --workflow bench_single --jobs "$S4_JOBS" --concurrency 200 \
    --webhook-listen "127.0.0.1:${RECEIVER_PORT}" --emulator "$EMULATOR_URL" \
    --submitted-marker "$OUT/submitted4" --idle-timeout-secs 60 --out "$OUT/run4.json" &
  LOADGEN=$!
  while [ ! -f "$OUT/submitted4" ]; do
    kill -0 "$LOADGEN" 2>/dev/null || { kill -CONT "${PIDS[worker]}"; die "llmflow-loadgen stopped before submitting everything"; }
    sleep 0.1
  done
  kill -CONT "${PIDS[worker]}"
  wait "$LOADGEN" || die "llmflow-loadgen failed"
  PEAK_KB=$(awk '/^VmHWM/ {print $2}' "/proc/${PIDS[worker]}/status")
  IN_FLIGHT=$(jq -r '.llm_max_in_flight' "$OUT/run4.json")
  finish "$OUT/run4.json" "$S4_JOBS" "$BEFORE" --set "worker_rss_idle_mb=$(awk -v k="$IDLE_KB" 'BEGIN {printf "%.1f", k / 1024}')" \
    --set "kb_per_in_flight_job=$(awk -v p="$PEAK_KB" -v i="$IDLE_KB" -v n="$IN_FLIGHT" 'BEGIN {printf "%.1f", (p - i) / (n > 0 ? n : 1)}')" \
    --set "llm_latency_ms=5000"
fi

# 5. Overhead: single-step jobs at LLM latency 0, light load, step time against the bare call.
if wants 5; then
  log "scenario 5: $S5_JOBS single-step jobs at LLM latency 0, 50 jobs/s offered"
  fresh_database
  start_emulator 0
  start_api
  start_worker
  start_webhook
  mark_start
  loadgen --scenario "5 overhead" --workflow bench_single --jobs "$S5_JOBS" --concurrency 20 --rate 50 \
    --webhook-listen "127.0.0.1:${RECEIVER_PORT}" --emulator "$EMULATOR_URL" --probe "$S5_JOBS" --out "$OUT/run5.json"
  # Step duration of each LLM step (worker clock, µs resolution) against the bare round trip.
  read -r STEP_P50 STEP_P99 < <(psql "postgres://postgres:postgres@${PG_HOST}:${PG_PORT}/${DB}" -tA -F' ' -c \
    "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY d)::numeric, 3),
            round(percentile_cont(0.99) WITHIN GROUP (ORDER BY d)::numeric, 3)
       FROM (SELECT extract(epoch FROM completed_at - started_at) * 1000 AS d
               FROM llm_job_steps WHERE step_type = 'llm') s")
  PROBE_P50=$(jq -r '.probe_p50_us' "$OUT/run5.json")
  PROBE_P99=$(jq -r '.probe_p99_us' "$OUT/run5.json")
  finish "$OUT/run5.json" "$S5_JOBS" "$BEFORE" --set "llm_step_p50_ms=$STEP_P50" --set "llm_step_p99_ms=$STEP_P99" \
    --set "overhead_p50_ms=$(awk -v s="$STEP_P50" -v p="$PROBE_P50" 'BEGIN {printf "%.3f", s - p / 1000}')" \
    --set "overhead_p99_ms=$(awk -v s="$STEP_P99" -v p="$PROBE_P99" 'BEGIN {printf "%.3f", s - p / 1000}')"
fi

# 6. Idle: the three services running with nothing to do, for the fixed cost per second of
# their polls, reconciler passes and heartbeats, apart from the cost per job.
if wants 6; then
  IDLE_SECS=$([ "$QUICK" = 1 ] && echo 10 || echo 60)
  log "scenario 6: idle for ${IDLE_SECS}s, every service running"
  fresh_database
  start_emulator 0
  start_api
  start_worker
  start_webhook
  sleep 2 # past the services' start-up queries
  mark_start
  sleep "$IDLE_SECS"
  echo "{\"scenario\":\"6 idle\",\"seconds\":$IDLE_SECS}" >"$OUT/run6.json"
  # Per second here: the job count passed to finish is the number of seconds.
  finish "$OUT/run6.json" "$IDLE_SECS" "$BEFORE" --set "per=second"
fi

# 7–11, each in a file of its own.
source scripts/bench/open_loop.sh
source scripts/bench/outside.sh
source scripts/bench/large_table.sh
source scripts/bench/scale_out.sh
source scripts/bench/pooler.sh

echo
"$BIN/llmflow-loadgen" table "$RESULTS"
log "JSON lines in $RESULTS; service logs in $OUT/"
