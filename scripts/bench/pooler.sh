# Scenario 11 of scripts/bench.sh (sourced by it): what the pooler-compatible mode costs.
# Scenario 2 twice, back to back: statements kept prepared per connection
# (DATABASE_STATEMENT_CACHE=true, the default on a direct connection), then none kept
# (DATABASE_STATEMENT_CACHE=false, as behind a transaction-mode pooler such as Supabase's on
# port 6543; here still a direct connection, so only llmflow's side of the cost is measured).
# shellcheck shell=bash

if wants 11; then
  run_pipeline "11 statement cache on" "$S2_JOBS" 0 1 1 DATABASE_STATEMENT_CACHE=true
  run_pipeline "11 statement cache off" "$S2_JOBS" 0 1 1 DATABASE_STATEMENT_CACHE=false
fi
