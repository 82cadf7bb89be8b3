#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a fixed time each (default 600 s; the first
# argument overrides it, a second argument picks one target), then prints one line per target:
# seconds, executions, and the crashes found (saved under fuzz/artifacts/<target>/).
# Needs the nightly toolchain; installs cargo-fuzz when it is absent. Not part of test.sh.
#
#   scripts/fuzz.sh            # 10 minutes per target
#   scripts/fuzz.sh 60         # 1 minute per target
#   scripts/fuzz.sh 300 sse    # one target
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

seconds=${1:-600}
only=${2:-}
[[ $seconds =~ ^[0-9]+$ ]] || die "seconds per target must be a whole number, not '$seconds'"

ensure_cargo
rustup toolchain list | grep -q '^nightly' || die "cargo-fuzz needs the nightly toolchain: rustup toolchain install nightly"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

cd fuzz
targets=$(cargo +nightly fuzz list)
if [ -n "$only" ]; then
  grep -qx "$only" <<<"$targets" || die "no fuzz target '$only' (targets: $(tr '\n' ' ' <<<"$targets"))"
  targets=$only
fi

log "building the fuzz targets (release, debug assertions, AddressSanitizer)"
for target in $targets; do
  cargo +nightly fuzz build "$target"
done

mkdir -p ../target/fuzz-logs
summary=()
failed=0
for target in $targets; do
  mkdir -p "corpus/$target" "artifacts/$target"
  seeds=()
  [ -d "seeds/$target" ] && seeds=("seeds/$target")
  before=$(find "artifacts/$target" -type f | wc -l)
  log "fuzzing $target for ${seconds} s"
  logfile="../target/fuzz-logs/$target.log"
  started=$(date +%s)
  # -timeout: one input running longer than 10 s counts as a hang (a crash).
  # Corpus first (new inputs go there), read-only seeds second.
  set +e
  cargo +nightly fuzz run "$target" "corpus/$target" "${seeds[@]}" -- \
    -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$logfile" 2>&1
  status=$?
  set -e
  elapsed=$(($(date +%s) - started))
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logfile" | grep -o '[0-9]*$' | tail -1)
  if [ -z "$runs" ]; then
    runs=$(grep -oE '^#[0-9]+' "$logfile" | tail -1 | tr -d '#')
  fi
  after=$(find "artifacts/$target" -type f | wc -l)
  crashes=$((after - before))
  if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    failed=1
    log "$target stopped (exit $status): see $logfile and fuzz/artifacts/$target/"
  fi
  summary+=("$(printf '%-20s %6s s %12s executions %3s crashes' "$target" "$elapsed" "${runs:-?}" "$crashes")")
done

printf '\n%-20s %8s %23s %11s\n' target time executions crashes
printf '%s\n' "${summary[@]}"
exit "$failed"
