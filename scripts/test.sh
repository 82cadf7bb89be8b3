#!/usr/bin/env bash
# The whole test suite: starts (or installs) PostgreSQL and Redis (and installs PgBouncer, which
# the pooler tests start themselves), builds once, checks that each
# binary refuses to start without its database, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_cargo
ensure_postgres
ensure_redis
ensure_pgbouncer

export TEST_DATABASE_URL="$PG_ADMIN_URL"
export TEST_REDIS_URL="redis://127.0.0.1:${REDIS_PORT}/0"

log "dropping test databases left by earlier runs (those still in use are kept)"
psql "$PG_ADMIN_URL" -tAc "SELECT datname FROM pg_database WHERE datname LIKE 'llmflow_t\_%'" |
  while read -r db; do
    [ -n "$db" ] && psql "$PG_ADMIN_URL" -q -c "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1 || true
  done
BIN="${CARGO_TARGET_DIR:-target}/debug"

log "checking the Prometheus configuration and alert rules (promtool)"
command -v promtool >/dev/null || apt_install prometheus
promtool check rules deploy/prometheus/alerts.yml
(cd deploy/prometheus && promtool test rules alerts.test.yml)
# prometheus.yml names its rule file where the compose service mounts it.
PROM_CHECK=$(mktemp -d)
cp deploy/prometheus/alerts.yml "$PROM_CHECK/alerts.yml"
sed "s#/etc/prometheus/alerts.yml#$PROM_CHECK/alerts.yml#" deploy/prometheus/prometheus.yml >"$PROM_CHECK/prometheus.yml"
promtool check config "$PROM_CHECK/prometheus.yml"
# Every query of the Grafana dashboard must parse: each becomes a recording rule (a rule file in
# JSON is YAML too), with Grafana's variables given values.
python3 - deploy/grafana/llmflow.json >"$PROM_CHECK/dashboard-rules.yml" <<'PY'
import json, sys
dashboard = json.load(open(sys.argv[1]))
rules = [
    {"record": "dashboard:panel%d:%s" % (panel["id"], target["refId"]),
     "expr": target["expr"].replace("$__rate_interval", "5m").replace("$workflow", ".*")}
    for panel in dashboard["panels"] for target in panel.get("targets", [])
]
assert rules, "the dashboard has no queries"
json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, sys.stdout)
PY
promtool check rules "$PROM_CHECK/dashboard-rules.yml"
rm -rf "$PROM_CHECK"

log "building the workspace (tests included)"
cargo build --workspace --all-targets --locked

log "each service exits non-zero, naming the cause, when PostgreSQL or Redis is unreachable"
check_refuses() {
  local bin=$1 db=$2 redis=$3 expect=$4 out status
  set +e
  out=$(env -i PATH="$PATH" DATABASE_URL="$db" REDIS_URL="$redis" LLM_MICROSERVICE_API_KEY=k \
    LOG_FORMAT=pretty timeout 60 "$BIN/$bin" 2>&1)
  status=$?
  set -e
  if [ "$status" -eq 0 ] || [ "$status" -eq 124 ] || ! grep -q "$expect" <<<"$out"; then
    die "$bin with an unreachable service: exit $status, output: $out"
  fi
}
good_db="postgres://postgres:postgres@127.0.0.1:${PG_PORT}/postgres"
for bin in llmflow-api llmflow-worker llmflow-webhook; do
  check_refuses "$bin" "postgres://postgres@127.0.0.1:1/none" "redis://127.0.0.1:${REDIS_PORT}/0" "PostgreSQL"
  check_refuses "$bin" "$good_db" "redis://127.0.0.1:1/0" "Redis"
done

log "installing Mermaid's parser for the diagram checks (scripts/mermaid), when missing"
[ -d scripts/mermaid/node_modules/mermaid ] && [ -e scripts/mermaid/node_modules/.bin/tsc ] ||
  npm ci --prefix scripts/mermaid --no-audit --no-fund --silent >/dev/null

log "running the test suite"
cargo test --workspace --locked --no-fail-fast

# The JavaScript and browser tests: each suite gets a fresh stack (API, worker, webhook sender,
# emulator on a new database) started from the binaries built above, and reads its URLs and keys
# from $LLMFLOW_STACK_ENV. A suite's `stack.env` (KEY=value lines) adds settings of its own.
# The dashboard's browser test; the TypeScript client; the Next.js example (its route handler and
# browser test).
JS_SUITES=(tests/dashboard clients/typescript examples/nextjs)
ensure_node
ensure_chromium
# What every suite's stack allows: the browser tests' page origin may read job events (CORS), and
# the client test's `tight` rate-limit tier allows one submit a minute per user.
export BROWSER_TEST_ORIGIN="${BROWSER_TEST_ORIGIN:-http://127.0.0.1:18300}"
export CORS_ALLOWED_ORIGINS="${CORS_ALLOWED_ORIGINS:-$BROWSER_TEST_ORIGIN}"
export RATE_LIMITS="${RATE_LIMITS:-tight=1}"
STACK_DIR=$(mktemp -d)
trap 'bash scripts/stack.sh stop "$STACK_DIR"; rm -rf "$STACK_DIR"' EXIT
export LLMFLOW_STACK_ENV="$STACK_DIR/env"
for suite in "${JS_SUITES[@]}"; do
  npm_ci "$suite"
  settings=()
  [ -f "$suite/stack.env" ] && mapfile -t settings < <(grep -v '^#' "$suite/stack.env" | grep .)
  env "${settings[@]}" bash scripts/stack.sh start "$STACK_DIR"
  log "JavaScript tests: $suite"
  (cd "$suite" && npm test) || die "the JavaScript tests in $suite failed (stack logs in $STACK_DIR)"
  bash scripts/stack.sh stop "$STACK_DIR"
done
rm -rf "$STACK_DIR"
trap - EXIT

log "verifying captured webhook deliveries with the official npm and PyPI standardwebhooks packages"
VERIFY_DIR=.cache/verify
[ -d "$VERIFY_DIR/node/node_modules/standardwebhooks" ] ||
  npm install --prefix "$VERIFY_DIR/node" --no-audit --no-fund --silent 'standardwebhooks@^1' >/dev/null
[ -d "$VERIFY_DIR/py/standardwebhooks" ] ||
  python3 -m pip install --quiet --disable-pip-version-check --target "$VERIFY_DIR/py" 'standardwebhooks>=1,<2'
CAPTURE_DIR=$(mktemp -d)
trap 'rm -rf "$CAPTURE_DIR"' EXIT
# Captured just before verifying: the verifiers refuse timestamps older than five minutes.
LLMFLOW_CAPTURE_DIR="$CAPTURE_DIR" cargo test -p llmflow-system-tests --test it --locked -- --exact \
  webhooks::captured_deliveries_verify_with_each_key
node scripts/verify-webhooks.mjs "$CAPTURE_DIR" || die "the npm standardwebhooks verifier failed"
python3 scripts/verify_webhooks.py "$CAPTURE_DIR" || die "the PyPI standardwebhooks verifier failed"
