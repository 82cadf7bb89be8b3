//! The job's budget (`max_cost_usd`): before each LLM call the worker estimates the call's cost
//! at table prices (prompt tokens ≈ characters / 4, plus all of `max_tokens`) and stops the job
//! when the cost so far plus that estimate would exceed the budget.

use rust_decimal::Decimal;
use serde_json::Value;

use llmflow_core::db::models::{JobRow, UsageRow};
use llmflow_core::estimate;
use llmflow_core::pricing::round_usd;
use llmflow_core::workflow::LlmStep;

use crate::Engine;

/// `Err(reason)` when the call would take the job past its budget. `run_usage` holds this
/// run's calls; `job.total_cost_usd` what earlier runs committed.
pub fn check(
    state: &Engine,
    job: &JobRow,
    run_usage: &[UsageRow],
    step_id: &str,
    step: &LlmStep,
    scope: &Value,
) -> Result<(), String> {
    let Some(budget) = job.max_cost_usd else {
        return Ok(());
    };
    let spent: Decimal = job.total_cost_usd + run_usage.iter().map(|u| u.cost_usd).sum::<Decimal>();
    let Some(estimate) = estimate::estimate_call(&state.pricing, step, scope) else {
        return Ok(());
    };
    if spent + estimate.max_usd > budget {
        return Err(format!(
            "budget exceeded: step `{step_id}` was not run; its call is estimated at up to ${} \
             and ${} of the ${} budget (max_cost_usd) is spent",
            round_usd(estimate.max_usd).normalize(),
            round_usd(spent).normalize(),
            budget.normalize()
        ));
    }
    Ok(())
}
