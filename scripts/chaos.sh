#!/usr/bin/env bash
# The reliability run (see RELIABILITY.md): llmflow's services in release mode on infrastructure
# of the run's own — a PostgreSQL cluster (initdb, port CHAOS_PG_PORT, default 55433) and a
# redis-server (port CHAOS_REDIS_PORT, default 56379) — with the emulator as the LLM provider
# and a webhook receiver that checks every Standard Webhooks signature. Jobs are submitted over
# the API at a steady rate while the run breaks things:
#   - a worker process is kill -9'd every 3 s (two run; they take turns) and started again;
#   - the webhook sender is kill -9'd every 6 s and started again;
#   - the API is kill -9'd once and started again 2 s later;
#   - the emulator answers 30 % of LLM calls with errors for a while (429 with Retry-After,
#     500, connections closed without an answer: every 10 calls, 3 fail);
#   - Redis is flushed once (FLUSHALL);
#   - PostgreSQL is restarted once (pg_ctl restart -m fast);
#   - the webhook receiver is kill -9'd and stays down for a minute.
# Then it waits for every job to end and its webhook to arrive, and reports: lost, stuck and
# double-billed jobs, webhooks per job and duplicates, how fast a killed worker's (and sender's)
# claims were taken up again, end-to-end latencies and the time to drain. It prints a table,
# writes .chaos/report.json, and exits non-zero when a job was lost, stuck or paid twice, a
# webhook is missing or failed its signature check, or one job got two different webhook ids.
#
#   scripts/chaos.sh                 5,000 jobs at 25 per second (about 6–8 minutes)
#   scripts/chaos.sh --jobs 2000     another count
#   scripts/chaos.sh --quick         300 jobs at 10 per second, receiver down 20 s: a check of
#                                    the script itself in about 2 minutes
#   scripts/chaos.sh --rate 40       jobs offered per second
#   scripts/chaos.sh --latency-ms 200  LLM latency at the emulator (default 200)
#   CHAOS_PROFILE=debug scripts/chaos.sh  unoptimised binaries (quicker to build)
#
# Never touches the machine's PostgreSQL or Redis. Logs and results go to .chaos/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

JOBS=""
RATE=""
QUICK=0
LATENCY_MS=200
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) shift; JOBS="${1:?--jobs needs a number}" ;;
    --rate) shift; RATE="${1:?--rate needs a number}" ;;
    --quick) QUICK=1 ;;
    --latency-ms) shift; LATENCY_MS="${1:?--latency-ms needs a number}" ;;
    -h | --help) sed -n '2,28p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done
if [ "$QUICK" = 1 ]; then
  JOBS="${JOBS:-300}" RATE="${RATE:-10}" RECEIVER_DOWN=20 DRAIN_LIMIT=300
else
  JOBS="${JOBS:-5000}" RATE="${RATE:-25}" RECEIVER_DOWN=60 DRAIN_LIMIT=900
fi
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || die "--jobs must be a positive whole number"
[[ "$RATE" =~ ^[1-9][0-9]*$ ]] || die "--rate must be a positive whole number"
[[ "$LATENCY_MS" =~ ^[0-9]+$ ]] || die "--latency-ms must be a whole number"

OUT=.chaos
mkdir -p "$OUT"
rm -f "$OUT"/*.log "$OUT"/*.csv "$OUT"/report.json "$OUT"/submit.json

API_PORT="${CHAOS_API_PORT:-18300}"
EMULATOR_PORT="${CHAOS_EMULATOR_PORT:-19500}"
RECEIVER_PORT="${CHAOS_RECEIVER_PORT:-19501}"
CHAOS_PG_PORT="${CHAOS_PG_PORT:-55433}"
CHAOS_REDIS_PORT="${CHAOS_REDIS_PORT:-56379}"
CHAOS_PGDATA="${CHAOS_PGDATA:-/tmp/llmflow-chaos-pg}"
DB=llmflow_chaos

ensure_cargo
command -v redis-server >/dev/null || apt_install redis-server
command -v psql >/dev/null || apt_install postgresql postgresql-client
for port in "$API_PORT" "$EMULATOR_PORT" "$RECEIVER_PORT" "$CHAOS_PG_PORT" "$CHAOS_REDIS_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port is in use (see the CHAOS_*_PORT settings in $0)"
  fi
done

# CHAOS_PROFILE=debug runs unoptimised binaries (a quicker build; slower services, so the
# latency figures do not compare with a release run's).
PROFILE="${CHAOS_PROFILE:-release}"
case "$PROFILE" in
  release) PROFILE_FLAG=(--release) PROFILE_DIR=release ;;
  debug) PROFILE_FLAG=() PROFILE_DIR=debug ;;
  *) die "CHAOS_PROFILE must be release or debug" ;;
esac
log "building $PROFILE binaries"
cargo build "${PROFILE_FLAG[@]}" --locked -p llmflow-api -p llmflow-worker -p llmflow-webhook \
  -p llmflow-emulator -p llmflow-cli --bins
BIN="${CARGO_TARGET_DIR:-target}/$PROFILE_DIR"

declare -A PIDS=()
STARTED_PG=0

# start NAME COMMAND...: in the background, its output appended to $OUT/NAME.log (a restarted
# process keeps one log).
start() {
  local name=$1
  shift
  "$@" >>"$OUT/$name.log" 2>&1 &
  PIDS[$name]=$!
}

# kill9 NAME: SIGKILL, and the exit reaped.
kill9() {
  local pid="${PIDS[$1]:-}"
  [ -n "$pid" ] || return 0
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "PIDS[$1]"
}

cleanup() {
  local name pid
  for name in "${!PIDS[@]}"; do
    pid=${PIDS[$name]}
    kill "$pid" 2>/dev/null || true
  done
  for name in "${!PIDS[@]}"; do
    pid=${PIDS[$name]}
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  [ "$STARTED_PG" = 1 ] && stop_own_postgres "$CHAOS_PGDATA"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting the run's own PostgreSQL (port $CHAOS_PG_PORT) and Redis (port $CHAOS_REDIS_PORT)"
start_own_postgres "$CHAOS_PGDATA" "$CHAOS_PG_PORT" "$OUT/initdb.log" -c max_connections=300
STARTED_PG=1
ADMIN_URL="postgres://postgres@127.0.0.1:${CHAOS_PG_PORT}/postgres"
DB_URL="postgres://postgres@127.0.0.1:${CHAOS_PG_PORT}/${DB}"
start redis redis-server --bind 127.0.0.1 --port "$CHAOS_REDIS_PORT" --save "" --appendonly no
for _ in $(seq 1 40); do
  redis-cli -p "$CHAOS_REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
  sleep 0.25
done
redis-cli -p "$CHAOS_REDIS_PORT" ping 2>/dev/null | grep -q PONG || die "Redis did not start; see $OUT/redis.log"

export DATABASE_URL="${DB_URL}?sslmode=disable"
export REDIS_URL="redis://127.0.0.1:${CHAOS_REDIS_PORT}/0"
export REDIS_NAMESPACE=llmflow_chaos
export PORT="$API_PORT" HOST=127.0.0.1
export LLM_MICROSERVICE_API_KEY=chaos-key
export LLM_WEBHOOK_SECRET="whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
export WEBHOOK_ALLOWED_CIDRS="127.0.0.0/8"
export LLM_HTTP2_PRIOR_KNOWLEDGE=true
export WORKFLOWS_DIR=./workflows PROMPTS_DIR=./prompts
# No metrics listeners (two workers would want the same port); the reconciler's releases logged.
export METRICS_ADDR=""
export LOG_FORMAT=json RUST_LOG="${CHAOS_RUST_LOG:-warn,llmflow_worker::reconciler=info}"
use_emulator "$EMULATOR_PORT"
EMULATOR_URL="http://127.0.0.1:${EMULATOR_PORT}"

psql "$ADMIN_URL" -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
"$BIN/llmflow" migrate >"$OUT/migrate.log" 2>&1 || die "migration failed; see $OUT/migrate.log"
# The run's own bookkeeping, beside llmflow's tables: the claims each kill left behind, and
# when another process took each of them up again.
psql "$DB_URL" -q -c "CREATE TABLE chaos_held (kind text NOT NULL, killed_at timestamptz NOT NULL,
  holder text NOT NULL, id uuid NOT NULL, resumed_at timestamptz)" >/dev/null

wait_http() { # wait_http URL NAME
  for _ in $(seq 1 150); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "$2 did not answer at $1; see $OUT/$2.log"
}

start_receiver() {
  start receiver "$BIN/llmflow-loadgen" receive --listen "127.0.0.1:${RECEIVER_PORT}" --out "$OUT/received.csv"
}
start_api() { start api "$BIN/llmflow-api"; }

start emulator "$BIN/llmflow-emulator" --port "$EMULATOR_PORT" --latency-ms "$LATENCY_MS" --workers 2
wait_http "$EMULATOR_URL/_emulator/health" emulator
start_receiver
start_api
wait_http "http://127.0.0.1:${API_PORT}/api/v1/health" api
start worker1 "$BIN/llmflow-worker"
start worker2 "$BIN/llmflow-worker"
start webhook "$BIN/llmflow-webhook"

q() { psql "$DB_URL" -X -q -tA -c "$1" 2>>"$OUT/psql.log"; }
now_s() { date +%s.%N; }
since() { awk -v a="$(now_s)" -v b="$1" 'BEGIN {printf "%.1f", a - b}'; }

# record_held KIND NAME PID: the claims a process just killed still holds (its registry name
# starts with `<kind>-<pid>-`). Missed when PostgreSQL is down at that moment (counted).
MISSED_SNAPSHOTS=0
record_held() {
  local kind=$1 pid=$2 sql
  if [ "$kind" = worker ]; then
    sql="INSERT INTO chaos_held SELECT 'worker', now(), claimed_by, id, NULL FROM llm_workflow_jobs
         WHERE status = 'processing' AND claimed_by LIKE 'worker-${pid}-%'"
  else
    sql="INSERT INTO chaos_held SELECT 'webhook', now(), claimed_by, id, NULL FROM llm_webhook_deliveries
         WHERE status = 'delivering' AND claimed_by LIKE 'webhook-${pid}-%'"
  fi
  q "$sql" >/dev/null || MISSED_SNAPSHOTS=$((MISSED_SNAPSHOTS + 1))
}

# Marks the held claims taken up again since: a job claimed anew (its `claimed_at` is the new
# claim's), a delivery claimed by another sender or recorded. Polled every second, so a claim
# taken over twice between two polls counts with the later time (an overestimate).
poll_resumed() {
  q "UPDATE chaos_held h SET resumed_at = j.claimed_at FROM llm_workflow_jobs j
     WHERE h.kind = 'worker' AND h.resumed_at IS NULL AND j.id = h.id AND j.claimed_at > h.killed_at;
     UPDATE chaos_held h SET resumed_at = d.updated_at FROM llm_webhook_deliveries d
     WHERE h.kind = 'webhook' AND h.resumed_at IS NULL AND d.id = h.id AND d.updated_at > h.killed_at
       AND d.status <> 'pending' AND d.claimed_by IS DISTINCT FROM h.holder" >/dev/null || true
}

# The emulator's fault window: every 10 LLM calls, 3 fail (a 429 with Retry-After: 1, a 500,
# a connection closed without an answer). Pushed as a script of steps, one per call; the window
# ends when the script is cleared (or used up).
fault_script() {
  local n=$1 i
  printf '['
  for ((i = 0; i < n; i++)); do
    [ "$i" -gt 0 ] && printf ','
    printf '{"type":"status","status":429,"retry_after":1},"ok","ok",{"type":"status","status":500},"ok","ok","drop_mid_stream","ok","ok","ok"'
  done
  printf ']'
}

SUBMIT_SECS=$(((JOBS + RATE - 1) / RATE))
pct() { echo $((SUBMIT_SECS * $1 / 100)); }
T_API=$(pct 15)
T_ERRORS=$(pct 20)
T_FLUSH=$(pct 35)
T_ERRORS_END=$(pct 45)
T_PG=$(pct 55)
T_RECEIVER=$(pct 60)
T_RECEIVER_BACK=$((T_RECEIVER + RECEIVER_DOWN))
CHAOS_END=$((T_RECEIVER_BACK > SUBMIT_SECS ? T_RECEIVER_BACK : SUBMIT_SECS))
# LLM calls in the fault window, generously: two per job and their retries.
FAULT_CYCLES=$(((T_ERRORS_END - T_ERRORS + 1) * RATE * 4 / 10 + 1))

log "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
log "submitting $JOBS jobs at $RATE/s (${SUBMIT_SECS} s); LLM latency ${LATENCY_MS} ms"
log "faults: workers every 3 s, sender every 6 s, API at ${T_API} s, LLM errors ${T_ERRORS}–${T_ERRORS_END} s," \
  "Redis flush at ${T_FLUSH} s, PostgreSQL restart at ${T_PG} s, receiver down ${T_RECEIVER}–${T_RECEIVER_BACK} s"
RUN_START=$(now_s)
"$BIN/llmflow-loadgen" run --scenario chaos --api "http://127.0.0.1:${API_PORT}" --jobs "$JOBS" \
  --concurrency 50 --rate "$RATE" --score 80 --retry-secs 120 \
  --webhook-url "http://127.0.0.1:${RECEIVER_PORT}/hooks/chaos" \
  --accepted-out "$OUT/accepted.csv" --out "$OUT/submit.json" >"$OUT/loadgen.log" 2>&1 &
LOADGEN=$!

event() { log "[$(since "$RUN_START") s] $*"; echo "$(since "$RUN_START") $*" >>"$OUT/events.log"; }
WORKER_KILLS=0 SENDER_KILLS=0 NEXT_WORKER=1
# Each pass of the loop is one tick; a fault is due when the wall-clock second it is set for has
# come (on a busy machine a tick's work can take longer than a second, and none is skipped).
NEXT_WORKER_KILL=3 NEXT_SENDER_KILL=6 done_at=()
due() { # due AT KEY: whether the fault KEY set for AT is due now, once
  if ((t >= $1)) && [ -z "${done_at[$2]:-}" ]; then
    done_at[$2]=1
    return 0
  fi
  return 1
}
t=0
while ((t < CHAOS_END)); do
  sleep 0.5
  t=$(awk -v s="$RUN_START" -v n="$(now_s)" 'BEGIN {printf "%d", n - s}')
  if ((t >= NEXT_WORKER_KILL)); then
    NEXT_WORKER_KILL=$((t + 3))
    name="worker$NEXT_WORKER" pid="${PIDS[worker$NEXT_WORKER]}"
    kill9 "$name"
    record_held worker "$pid"
    start "$name" "$BIN/llmflow-worker"
    WORKER_KILLS=$((WORKER_KILLS + 1))
    NEXT_WORKER=$((3 - NEXT_WORKER))
  fi
  if ((t >= NEXT_SENDER_KILL)); then
    NEXT_SENDER_KILL=$((t + 6))
    pid="${PIDS[webhook]}"
    kill9 webhook
    record_held webhook "$pid"
    start webhook "$BIN/llmflow-webhook"
    SENDER_KILLS=$((SENDER_KILLS + 1))
  fi
  if due "$T_API" 0; then
    event "API kill -9"
    kill9 api
    sleep 2
    start_api
    event "API started again"
  fi
  if due "$T_ERRORS" 1; then
    fault_script "$FAULT_CYCLES" >"$OUT/fault-script.json"
    curl -fsS -X POST -H 'content-type: application/json' --data-binary "@$OUT/fault-script.json" \
      "$EMULATOR_URL/_emulator/script" >/dev/null
    event "emulator: 30 % errors on (a script of $((FAULT_CYCLES * 10)) calls)"
  fi
  if due "$T_ERRORS_END" 2; then
    left=$(curl -fsS "$EMULATOR_URL/_emulator/script" | jq -r .pending)
    curl -fsS -X POST "$EMULATOR_URL/_emulator/reset" >/dev/null
    event "emulator: errors off ($left scripted calls left unused)"
  fi
  if due "$T_FLUSH" 3; then
    redis-cli -p "$CHAOS_REDIS_PORT" FLUSHALL >/dev/null
    event "Redis FLUSHALL"
  fi
  if due "$T_PG" 4; then
    event "PostgreSQL restart (fast)"
    restart_own_postgres "$CHAOS_PGDATA"
    event "PostgreSQL back"
  fi
  if due "$T_RECEIVER" 5; then
    kill9 receiver
    event "webhook receiver kill -9 (down ${RECEIVER_DOWN} s)"
  fi
  if due "$T_RECEIVER_BACK" 6; then
    start_receiver
    event "webhook receiver started again"
  fi
  poll_resumed
done
CHAOS_DONE=$(now_s)
FAULTS_S=$(since "$RUN_START")
event "faults over: $WORKER_KILLS worker kills, $SENDER_KILLS sender kills"
wait "$LOADGEN" || die "the load generator failed; see $OUT/loadgen.log"

# Drain: every accepted job ended and its webhook received, or the limit passed.
ACCEPTED=$(wc -l <"$OUT/accepted.csv")
psql "$DB_URL" -q -c "CREATE TABLE chaos_accepted (job_id uuid NOT NULL, sent_ms bigint NOT NULL)" \
  -c "\\copy chaos_accepted FROM '$OUT/accepted.csv' WITH (FORMAT csv)" >/dev/null
psql "$DB_URL" -q -c "CREATE TABLE chaos_received (job_id text, webhook_id text, received_ms bigint,
  verified boolean, status text)" >/dev/null
load_received() { # whole lines only: a kill -9 may have cut the receiver's last one
  touch "$OUT/received.csv"
  grep -E '^[^,]*,[^,]*,[0-9]+,(true|false),[^,]*$' "$OUT/received.csv" >"$OUT/received-lines.csv" || true
  q "TRUNCATE chaos_received" >/dev/null
  psql "$DB_URL" -q -c "\\copy chaos_received FROM '$OUT/received-lines.csv' WITH (FORMAT csv)" >/dev/null
}
pending() {
  load_received
  q "SELECT (SELECT count(*) FROM chaos_accepted a JOIN llm_workflow_jobs j ON j.id = a.job_id
             WHERE j.status IN ('pending', 'queued', 'processing'))
          + (SELECT count(*) FROM chaos_accepted a WHERE NOT EXISTS (SELECT 1 FROM chaos_received r
             WHERE r.verified AND r.job_id = a.job_id::text))"
}
log "waiting for $ACCEPTED jobs and their webhooks (at most ${DRAIN_LIMIT} s)"
left=$(pending)
while [ "$left" != 0 ] && [ "$(awk -v s="$(since "$CHAOS_DONE")" -v l="$DRAIN_LIMIT" 'BEGIN {print (s < l)}')" = 1 ]; do
  sleep 2
  poll_resumed
  left=$(pending)
done
DRAINED=$(since "$CHAOS_DONE")
poll_resumed
load_received
LAST_WEBHOOK_MS=$(q "SELECT coalesce(max(received_ms), 0) FROM chaos_received")
ERRORS=0
for name in api worker webhook; do
  n=$(cat "$OUT"/${name}*.log 2>/dev/null | grep -c '"level":"ERROR"' || true)
  ERRORS=$((ERRORS + n))
done

# The figures, in one JSON object.
q "WITH acc AS (SELECT DISTINCT job_id, sent_ms FROM chaos_accepted),
  j AS (SELECT acc.job_id, acc.sent_ms, jobs.status, jobs.completed_at, jobs.attempts
        FROM acc LEFT JOIN llm_workflow_jobs jobs ON jobs.id = acc.job_id),
  first_hook AS (SELECT r.job_id, min(r.received_ms) AS at FROM chaos_received r WHERE r.verified GROUP BY r.job_id),
  hooks AS (SELECT r.job_id, count(*) AS n, count(DISTINCT r.webhook_id) AS ids FROM chaos_received r
            WHERE r.verified GROUP BY r.job_id),
  e2e AS (SELECT (f.at - j.sent_ms) / 1000.0 AS webhook_s,
                 extract(epoch FROM j.completed_at) - j.sent_ms / 1000.0 AS done_s
          FROM j LEFT JOIN first_hook f ON f.job_id = j.job_id::text),
  held AS (SELECT kind, extract(epoch FROM resumed_at - killed_at) AS s FROM chaos_held)
SELECT json_build_object(
  'profile', '$PROFILE', 'jobs_requested', $JOBS, 'rate', $RATE, 'latency_ms', $LATENCY_MS,
  'accepted', (SELECT count(*) FROM acc),
  'submit_errors', $JOBS - (SELECT count(*) FROM acc),
  'in_database', (SELECT count(*) FROM j WHERE status IS NOT NULL),
  'lost', (SELECT count(*) FROM j WHERE status IS NULL),
  'stuck', (SELECT count(*) FROM j WHERE status IN ('pending', 'queued', 'processing')),
  'completed', (SELECT count(*) FROM j WHERE status = 'completed'),
  'failed', (SELECT count(*) FROM j WHERE status = 'failed'),
  'cancelled', (SELECT count(*) FROM j WHERE status = 'cancelled'),
  'job_runs_over_one', (SELECT count(*) FROM j WHERE attempts > 1),
  'double_billed', (SELECT count(*) FROM (SELECT 1 FROM llm_provider_usage u JOIN acc ON acc.job_id = u.job_id
                    GROUP BY u.job_id, u.step_id HAVING count(*) > 1) d),
  'steps_recorded_twice', (SELECT count(*) FROM (SELECT 1 FROM llm_job_steps s JOIN acc ON acc.job_id = s.job_id
                    GROUP BY s.job_id, s.step_id HAVING count(*) > 1) d),
  'usage_rows', (SELECT count(*) FROM llm_provider_usage u JOIN acc ON acc.job_id = u.job_id),
  'webhooks_verified_jobs', (SELECT count(*) FROM hooks WHERE hooks.job_id IN (SELECT job_id::text FROM acc)),
  'webhooks_missing', (SELECT count(*) FROM acc WHERE job_id::text NOT IN (SELECT job_id FROM hooks)),
  'webhooks_received', (SELECT count(*) FROM chaos_received),
  'webhooks_rejected', (SELECT count(*) FROM chaos_received WHERE NOT verified),
  'webhook_duplicates_same_id', (SELECT coalesce(sum(n - 1), 0) FROM hooks WHERE ids = 1),
  'jobs_with_two_webhook_ids', (SELECT count(*) FROM hooks WHERE ids > 1),
  'deliveries_dead', (SELECT count(*) FROM llm_webhook_deliveries d JOIN acc ON acc.job_id = d.job_id WHERE d.status = 'dead'),
  'worker_kills', $WORKER_KILLS, 'sender_kills', $SENDER_KILLS, 'missed_snapshots', $MISSED_SNAPSHOTS,
  'killed_worker_jobs', (SELECT count(*) FROM held WHERE kind = 'worker'),
  'killed_worker_jobs_not_resumed', (SELECT count(*) FROM chaos_held WHERE kind = 'worker' AND resumed_at IS NULL),
  'worker_resume_p50_s', (SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY s)::numeric, 1) FROM held WHERE kind = 'worker'),
  'worker_resume_max_s', (SELECT round(max(s)::numeric, 1) FROM held WHERE kind = 'worker'),
  'killed_sender_deliveries', (SELECT count(*) FROM held WHERE kind = 'webhook'),
  'killed_sender_deliveries_not_resumed', (SELECT count(*) FROM chaos_held WHERE kind = 'webhook' AND resumed_at IS NULL),
  'sender_resume_p50_s', (SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY s)::numeric, 1) FROM held WHERE kind = 'webhook'),
  'sender_resume_max_s', (SELECT round(max(s)::numeric, 1) FROM held WHERE kind = 'webhook'),
  'e2e_done_p50_s', (SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY done_s)::numeric, 1) FROM e2e),
  'e2e_done_p99_s', (SELECT round(percentile_cont(0.99) WITHIN GROUP (ORDER BY done_s)::numeric, 1) FROM e2e),
  'e2e_done_max_s', (SELECT round(max(done_s)::numeric, 1) FROM e2e),
  'e2e_webhook_p50_s', (SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY webhook_s)::numeric, 1) FROM e2e),
  'e2e_webhook_p99_s', (SELECT round(percentile_cont(0.99) WITHIN GROUP (ORDER BY webhook_s)::numeric, 1) FROM e2e),
  'e2e_webhook_max_s', (SELECT round(max(webhook_s)::numeric, 1) FROM e2e),
  'faults_s', $FAULTS_S,
  'drain_s', $DRAINED,
  'last_webhook_after_faults_s', round(($LAST_WEBHOOK_MS / 1000.0 - $(awk -v s="$CHAOS_DONE" 'BEGIN {printf "%.3f", s}'))::numeric, 1),
  'log_errors', $ERRORS,
  'load1_after', $(cut -d' ' -f1 /proc/loadavg))" >"$OUT/report.json"
[ -s "$OUT/report.json" ] || die "the report query failed; see $OUT/psql.log"

jq -r 'to_entries[] | "\(.key)\t\(.value)"' "$OUT/report.json" | column -t -s $'\t'
log "report: $OUT/report.json; events: $OUT/events.log; logs: $OUT/*.log"

FAILED=$(jq '(.lost > 0) or (.stuck > 0) or (.double_billed > 0) or (.steps_recorded_twice > 0)
  or (.webhooks_missing > 0) or (.webhooks_rejected > 0) or (.jobs_with_two_webhook_ids > 0)' "$OUT/report.json")
if [ "$FAILED" = true ]; then
  printf '\033[1;31mchaos run failed:\033[0m lost, stuck, double-billed, or a webhook missing or unverified\n' >&2
  exit 1
fi
log "chaos run clean"
