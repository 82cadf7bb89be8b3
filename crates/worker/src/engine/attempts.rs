//! One step's attempts: its timeout, its retries under `on_error: retry` (paid usage of failed
//! attempts kept), cancellation raced against the work, and the output to go on with when it
//! fails for good.

use serde_json::Value;

use llmflow_core::metrics::names;
use llmflow_core::workflow::{retry_delay, OnError, Step, StepKind};

use super::{Runner, Stop};
use crate::steps::{self, llm::LlmCallCtx, StepFailure, StepOutput};

impl Runner<'_> {
    /// The output to go on with after a failure, per `on_error`; `None` means fail.
    pub(super) fn recover(&self, step: &Step, message: &str) -> Option<Value> {
        match &step.on_error {
            OnError::Fail | OnError::Retry { .. } => None,
            OnError::Continue => {
                tracing::warn!(step = %step.id, error = message, "step failed; continuing");
                Some(Value::Null)
            }
            OnError::Default { value } => {
                tracing::warn!(step = %step.id, error = message, "step failed; using its default");
                Some(value.clone())
            }
        }
    }

    /// Executes a step with its timeout and retry policy, racing cancellation. Usage of failed
    /// attempts is kept: those calls were paid for.
    pub(super) async fn execute_with_policy(
        &self,
        scope: &Value,
        step: &Step,
    ) -> Result<(Result<StepOutput, StepFailure>, i32), Stop> {
        let max_attempts = match &step.on_error {
            OnError::Retry { attempts, .. } => (*attempts).max(1),
            _ => 1,
        };
        let mut paid = Vec::new();
        let mut attempt = 1;
        loop {
            let run = self.execute_once(scope, step, attempt);
            let result = match step.timeout {
                Some(limit) => match tokio::time::timeout(limit, run).await {
                    Ok(r) => r,
                    Err(_) => Err(StepFailure::new(
                        "timeout",
                        format!("took longer than {} ms", limit.as_millis()),
                        true,
                    )),
                },
                None => run.await,
            };
            let result = match result {
                Ok(mut ok) => {
                    paid.append(&mut ok.usage);
                    ok.usage = std::mem::take(&mut paid);
                    Ok(ok)
                }
                Err(mut failure) => {
                    paid.append(&mut failure.usage);
                    if failure.retryable && attempt < max_attempts {
                        if let OnError::Retry { backoff_ms, .. } = &step.on_error {
                            let delay = retry_delay(*backoff_ms, attempt);
                            metrics::counter!(
                                names::STEP_RETRIES,
                                "workflow" => self.job.workflow_name.clone(),
                                "step_kind" => step.kind.name(),
                            )
                            .increment(1);
                            tracing::info!(step = %step.id, attempt, delay_ms = delay.as_millis() as u64, error = %failure.message, "retrying step");
                            tokio::select! {
                                _ = self.cancel.cancelled() => return Err(Stop::Cancelled),
                                _ = tokio::time::sleep(delay) => {}
                            }
                            attempt += 1;
                            continue;
                        }
                    }
                    failure.usage = std::mem::take(&mut paid);
                    Err(failure)
                }
            };
            if matches!(&result, Err(f) if f.kind == "cancelled") {
                return Err(Stop::Cancelled);
            }
            return Ok((result, i32::try_from(attempt).unwrap_or(i32::MAX)));
        }
    }

    async fn execute_once(
        &self,
        scope: &Value,
        step: &Step,
        attempt: u32,
    ) -> Result<StepOutput, StepFailure> {
        let work = async {
            match &step.kind {
                StepKind::Llm(llm) => {
                    // Streamed text goes out as `chunk` events (crate::events).
                    let (chunks, streamed) = if llm.stream {
                        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                        (Some(tx), Some(rx))
                    } else {
                        (None, None)
                    };
                    let cx = LlmCallCtx {
                        job_id: self.job.id,
                        user_id: self.job.user_id,
                        step_id: &step.id,
                        chunks,
                        timeout: step.timeout,
                    };
                    let call = steps::llm::execute(self.engine, llm, scope, &cx);
                    match streamed {
                        Some(rx) => {
                            Box::pin(crate::events::forward_chunks(
                                self.engine,
                                self.job,
                                &step.id,
                                attempt,
                                rx,
                                call,
                            ))
                            .await
                        }
                        None => call.await,
                    }
                }
                StepKind::Transform {
                    input, transform, ..
                } => steps::transform::execute(input.as_ref(), transform, scope),
                StepKind::ExternalApi(call) => {
                    Box::pin(steps::external_api::execute(self.engine, call, scope)).await
                }
                StepKind::Conditional { .. } | StepKind::Parallel { .. } => Err(StepFailure::new(
                    "internal",
                    "a step with nested steps executed as a plain step",
                    false,
                )),
            }
        };
        tokio::select! {
            // Dropping the step's future drops an in-flight provider call.
            _ = self.cancel.cancelled() => Err(StepFailure::new("cancelled", "job cancelled", false)),
            result = work => result,
        }
    }
}
