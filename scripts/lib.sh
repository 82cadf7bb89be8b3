# Shared by scripts/dev.sh, scripts/stack.sh, scripts/test.sh and scripts/bench.sh: make sure
# PostgreSQL and Redis answer on 127.0.0.1, installing them from Debian packages and starting them
# when they do not, and start llmflow's processes in the background.
# shellcheck shell=bash

PG_HOST=127.0.0.1
PG_PORT=5432
REDIS_PORT=6379
# With trust auth the password is ignored; on a fresh install it is the one set below.
PG_ADMIN_URL="postgres://postgres:postgres@${PG_HOST}:${PG_PORT}/postgres"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found: install $* yourself"
  log "installing $* (Debian packages)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

pg_ready() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null; }

ensure_postgres() {
  if command -v pg_isready >/dev/null && pg_ready; then
    return
  fi
  command -v pg_ctlcluster >/dev/null || apt_install postgresql postgresql-client
  local version
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  [ -n "$version" ] || die "PostgreSQL is installed but has no cluster in /etc/postgresql"
  log "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 60); do pg_ready && break; sleep 0.5; done
  pg_ready || die "PostgreSQL did not start on ${PG_HOST}:${PG_PORT}"
  # A fresh cluster asks for passwords over TCP: give the postgres role the one our URLs use.
  as_root su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null 2>&1 || true
}

redis_ready() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

ensure_redis() {
  if command -v redis-cli >/dev/null && redis_ready; then
    return
  fi
  command -v redis-server >/dev/null || apt_install redis-server
  log "starting Redis (nothing kept on disk)"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/llmflow.log
  for _ in $(seq 1 40); do redis_ready && break; sleep 0.25; done
  redis_ready || die "Redis did not start on 127.0.0.1:${REDIS_PORT}"
}

# PgBouncer, for the tests that run llmflow through a transaction-mode pooler (each test starts
# its own; the Debian package's service is not used).
ensure_pgbouncer() {
  command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || apt_install pgbouncer
}

ensure_cargo() {
  command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"
}

# Creates database $1 when it does not exist.
ensure_database() {
  local name=$1
  if ! psql "$PG_ADMIN_URL" -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1; then
    log "creating database $name"
    psql "$PG_ADMIN_URL" -q -c "CREATE DATABASE $name"
  fi
}

# Starts `$2...` in the background with its output in `$1/<name>.log`, its pid appended to
# `$1/pids`. Usage: start_process DIR NAME COMMAND...
start_process() {
  local dir=$1 name=$2
  shift 2
  "$@" >"$dir/$name.log" 2>&1 &
  echo $! >>"$dir/pids"
}

# Stops every process listed in `$1/pids` and waits (up to 30 s) until they have exited, so that
# their ports are free again.
stop_processes() {
  local dir=$1 pid
  [ -f "$dir/pids" ] || return 0
  while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$dir/pids"
  for _ in $(seq 1 150); do
    pid=""
    while read -r p; do kill -0 "$p" 2>/dev/null && pid=$p; done <"$dir/pids"
    [ -z "$pid" ] && break
    sleep 0.2
  done
  rm -f "$dir/pids"
}

# Points the providers at an emulator listening on 127.0.0.1:$1 (keys are placeholders).
use_emulator() {
  local port=$1
  export OPENROUTER_API_KEY=emulator OPENAI_API_KEY=emulator ANTHROPIC_API_KEY=emulator GOOGLE_PLACES_API_KEY=emulator
  export OPENROUTER_BASE_URL=http://127.0.0.1:$port/v1 OPENAI_BASE_URL=http://127.0.0.1:$port/v1
  export ANTHROPIC_BASE_URL=http://127.0.0.1:$port GOOGLE_PLACES_BASE_URL=http://127.0.0.1:$port
}

# Waits until the API on 127.0.0.1:$1 answers its health check; $2 is its log for the error.
wait_for_api() {
  local port=$1 logfile=$2
  for _ in $(seq 1 150); do
    curl -fsS "http://127.0.0.1:${port}/api/v1/health" >/dev/null 2>&1 && return
    sleep 0.2
  done
  die "the API did not come up on :$port; see $logfile"
}

# Debian's Chromium for the browser tests (driven by playwright-core; no browser download).
ensure_chromium() {
  [ -x /usr/bin/chromium ] || apt_install chromium
}

# Node.js and npm for the JavaScript packages and tests.
ensure_node() {
  command -v npm >/dev/null || apt_install nodejs npm
}

# Installs a JavaScript package's dependencies from its committed lockfile when they are absent
# or older than the lockfile.
npm_ci() {
  local dir=$1
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    log "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --silent)
  fi
}

# A PostgreSQL cluster of a script's own (scripts/bench.sh, scripts/chaos.sh), separate from the
# machine's: the Debian server binaries of the newest installed version, initdb'd once into a
# data directory, listening on 127.0.0.1 and a port of its own with trust auth. The server
# processes run as `postgres` when the script runs as root.
run_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

pg_server_bin() {
  local bin
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  [ -x "$bin/initdb" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
  echo "$bin"
}

# start_own_postgres DATA_DIR PORT INITDB_LOG [SERVER_OPTIONS...]: initdb's DATA_DIR when it holds
# no cluster, stops a server left running there by an interrupted run (so this run's options
# hold), and starts it on PORT with SERVER_OPTIONS (e.g. `-c max_connections=200`); its log is
# DATA_DIR/server.log.
start_own_postgres() {
  local data=$1 port=$2 initlog=$3 bin
  shift 3
  bin=$(pg_server_bin)
  if [ ! -f "$data/PG_VERSION" ]; then
    as_root mkdir -p "$data"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$data"
    run_pg "$bin/initdb" -D "$data" -U postgres --auth=trust >"$initlog" 2>&1 ||
      die "initdb failed; see $initlog"
  fi
  run_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1 &&
    run_pg "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
  run_pg "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=/tmp $*" start >/dev/null ||
    die "PostgreSQL did not start on port $port; see $data/server.log"
}

# restart_own_postgres DATA_DIR: a fast restart (connections cut, same options), as a failover
# or a managed database's maintenance would do.
restart_own_postgres() {
  run_pg "$(pg_server_bin)/pg_ctl" -D "$1" -m fast -w -t 60 restart >/dev/null
}

# stop_own_postgres DATA_DIR: stops the cluster if it runs.
stop_own_postgres() {
  run_pg "$(pg_server_bin)/pg_ctl" -D "$1" -m fast -w stop >/dev/null 2>&1 || true
}
