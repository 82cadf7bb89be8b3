# Scenario 10 of scripts/bench.sh (sourced by it): scale-out on this box. Scenario 2 (S2_JOBS
# jobs, 200 in flight) with 1, 2 and 4 worker processes, each with the default settings. Besides
# scenario 2's figures, each line has the batched claim's and the reconciler's statements from
# pg_stat_statements: calls and total execution ms, in all and per worker process
# (`claim_calls_per_worker`, `reconciler_ms_per_worker`, …), and the CPU per job of each kind of
# process (`worker_cpu_ms_per_job` sums the worker processes).
# shellcheck shell=bash

if wants 10; then
  for workers in 1 2 4; do
    run_pipeline "10 scale-out, $workers worker$([ "$workers" = 1 ] || echo s)" "$S2_JOBS" 0 1 "$workers"
  done
fi
