//! Runs one job: claim it, resume after its last committed step, execute the rest, finish.
//!
//! Persistence: a step that called an LLM or an external API is committed (with its usage rows)
//! as soon as it finishes, so a crash never runs or bills it again. Pure steps (transforms,
//! conditions, the parallel step's own row) are deterministic and free, so their rows are
//! buffered and written with the next commit: after a crash they are simply recomputed. The
//! step that ends the job's path is the exception: its rows go into the finish's transaction,
//! which follows at once. Every commit is conditional on this worker still owning the job, and
//! returns whether cancellation was requested. Where the rows go is the engine's `records`
//! (`records.rs`): PostgreSQL in a worker, memory in a local run (`local.rs`).
//!
//! How one step's attempts run (timeout, retries, cancellation, `on_error`) is in `attempts.rs`.
//!
//! The runner's methods take `&self`: the branches of a `parallel` step (`steps/parallel.rs`)
//! run concurrently on one runner, each with its own scope, recording into a shared journal.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::BoxFuture;
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use llmflow_core::db;
use llmflow_core::db::jobs::{Claim, CommitOutcome, StepBatch};
use llmflow_core::db::models::{JobRow, StepRow, UsageRow};
use llmflow_core::metrics::names;
use llmflow_core::telemetry::Chain;
use llmflow_core::workflow::{LoadedWorkflow, OnError, Step, StepKind};
use llmflow_core::{JobId, JobStatus};

use crate::local::RunEvent;
use crate::records::Closing;
use crate::steps::StepOutput;
use crate::{Engine, RunError, WorkerState};

mod attempts;

/// Claims and runs a job. `Ok` also when there was nothing to do (claimed elsewhere, finished).
/// `Err` means the run was interrupted (database unreachable…): the job stays claimed and is
/// re-run once the claim lapses.
pub async fn run_job(state: &WorkerState, job_id: JobId) -> Result<(), RunError> {
    let span = crate::spans::job(job_id, &state.worker_name);
    async move {
        // Registered before the claim, so a cancellation announced after it is not missed.
        let registration = state.cancels.register(job_id.0);
        let claim = state.claimer.claim(job_id.0).await?;
        let job = match claim {
            Claim::Claimed(job) => {
                crate::spans::join_submit_trace(&job);
                *job
            }
            Claim::Cancelled => {
                tracing::info!("job cancelled before it started");
                return Box::pin(crate::cancel::push_cancelled(state, job_id)).await;
            }
            Claim::NotClaimable => {
                tracing::debug!("job not claimable (running elsewhere or finished)");
                return Ok(());
            }
        };
        let workflow = match Box::pin(state.workflow(&job.workflow_hash)).await {
            Ok(w) => w,
            // The database away is no fault of the job: the run is interrupted, and the job
            // handed back to run again.
            Err(e @ (RunError::Database(_) | RunError::Queue(_))) => return Err(e),
            Err(e) => {
                let runner = Runner::new(
                    &state.engine,
                    &job,
                    HashMap::new(),
                    CancellationToken::new(),
                );
                let message = Chain(&e).to_string();
                return runner.finish(Err(Stop::Failed(message))).await;
            }
        };
        // Only an earlier claim can have committed steps: a first claim skips the read.
        let done = if job.attempts > 1 {
            Box::pin(async {
                let mut conn = state.pool.get().await?;
                db::jobs::job_steps(&mut conn, job.id).await
            })
            .await?
        } else {
            Vec::new()
        };
        let done: HashMap<String, StepRow> =
            done.into_iter().map(|r| (r.step_id.clone(), r)).collect();
        let workflow_label = job.workflow_name.clone();
        metrics::counter!(names::JOBS_STARTED, "workflow" => workflow_label.clone()).increment(1);
        if job.attempts <= 1 && job.retry_count == 0 {
            let waited = (Utc::now() - job.created_at).to_std().unwrap_or_default();
            metrics::histogram!(names::JOB_QUEUE_WAIT, "workflow" => workflow_label)
                .record(waited.as_secs_f64());
        }
        if !done.is_empty() {
            metrics::counter!(names::JOB_RESUMES).increment(1);
            tracing::info!(steps = done.len(), "resuming after committed steps");
        }
        let cancel = registration.token();
        let runner = Runner::new(&state.engine, &job, done, cancel.clone());
        let mut scope = new_scope(&job.input_data);
        let outcome = tokio::select! {
            outcome = runner.run_steps(&mut scope, &workflow.workflow.steps, true) => outcome,
            never = heartbeat(state, job.id, cancel) => match never {},
        };
        let outcome = match outcome {
            Ok(()) => runner.output(&scope, &workflow).map_err(Stop::Failed),
            Err(Stop::Cancelled) if state.cancels.handing_back() => {
                // Stopped by the worker shutting down, not by a cancel request: its claim is
                // released with the others' (`handback::release_all`) and another resumes it.
                return Ok(());
            }
            Err(stop) => Err(stop),
        };
        runner.finish(outcome).await
    }
    .instrument(span)
    .await
}

/// Keeps the claim alive for long jobs, and turns a cancellation request (or a lost claim)
/// into the token the runner races every step against. Short jobs never reach the first beat,
/// so they cost no extra writes. Never returns; it is dropped when the run ends.
async fn heartbeat(
    state: &WorkerState,
    job_id: Uuid,
    cancel: CancellationToken,
) -> std::convert::Infallible {
    let every = (state.engine.config.claim_timeout() / 3).max(Duration::from_secs(1));
    loop {
        tokio::time::sleep(every).await;
        // Boxed: this future lives as long as the job, the round trip only for a moment.
        let beat = Box::pin(async {
            let mut conn = state.pool.get().await.map_err(db::DbError::from)?;
            db::jobs::heartbeat(&mut conn, job_id, &state.worker_name).await
        });
        match beat.await {
            Ok(Some(false)) => {}
            Ok(Some(true)) => {
                tracing::info!("cancellation requested");
                cancel.cancel();
            }
            Ok(None) => {
                tracing::warn!("claim lost");
                cancel.cancel();
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}

/// Why a run stopped before the end.
#[derive(Debug)]
pub(crate) enum Stop {
    /// A step failed (its `on_error` said fail) or the output could not be built.
    Failed(String),
    Cancelled,
    /// Another worker owns the job now: write nothing more.
    LostClaim,
    /// Infrastructure failed (database): leave the job for the reconciler.
    Interrupted(RunError),
}

impl From<db::DbError> for Stop {
    fn from(e: db::DbError) -> Self {
        Stop::Interrupted(e.into())
    }
}

impl From<RunError> for Stop {
    fn from(e: RunError) -> Self {
        Stop::Interrupted(e)
    }
}

/// What the buffered part of a run has recorded and not yet written.
#[derive(Default)]
struct Journal {
    pending: StepBatch,
    planned_delta: i32,
    position: i32,
    /// Every LLM call of this run, for `cost_data`.
    usage: Vec<UsageRow>,
}

/// One run of one job. Its methods take `&self`, so the branches of a `parallel` step run
/// concurrently on the same runner: each branch has its own scope, and every record goes
/// through the shared journal.
pub(crate) struct Runner<'a> {
    pub(crate) engine: &'a Engine,
    job: &'a JobRow,
    done: HashMap<String, StepRow>,
    cancel: CancellationToken,
    journal: Mutex<Journal>,
    resumed: bool,
    started: Instant,
}

/// `{"input": …, "steps": {id: {"output": …}}}`: what templates and conditions see.
pub(crate) fn new_scope(input: &Value) -> Value {
    json!({"input": input, "steps": {}})
}

/// Records a step's output in a scope.
pub(crate) fn set_output(scope: &mut Value, id: &str, output: Value) {
    if let Some(steps) = scope.get_mut("steps").and_then(Value::as_object_mut) {
        steps.insert(id.to_owned(), json!({ "output": output }));
    }
}

impl<'a> Runner<'a> {
    pub(crate) fn new(
        engine: &'a Engine,
        job: &'a JobRow,
        done: HashMap<String, StepRow>,
        cancel: CancellationToken,
    ) -> Self {
        let resumed = !done.is_empty();
        let journal = Journal {
            position: i32::try_from(done.len()).unwrap_or(i32::MAX),
            ..Journal::default()
        };
        Runner {
            engine,
            job,
            done,
            cancel,
            journal: Mutex::new(journal),
            resumed,
            started: Instant::now(),
        }
    }

    fn journal(&self) -> MutexGuard<'_, Journal> {
        // A panic while holding the lock cannot leave a half-written journal behind (every
        // change is a push or a swap), so a poisoned lock is still usable.
        self.journal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs steps in order. `tail` says that nothing runs after the last of them (they end the
    /// job's path, outside any parallel branch): that step's rows can wait for the finish.
    pub(crate) async fn run_steps(
        &self,
        scope: &mut Value,
        steps: &[Step],
        tail: bool,
    ) -> Result<(), Stop> {
        for (i, step) in steps.iter().enumerate() {
            if self.cancel.is_cancelled() {
                return Err(Stop::Cancelled);
            }
            let last = tail && i + 1 == steps.len();
            let span = crate::spans::step(step);
            let ran = Box::pin(self.run_step(scope, step, last))
                .instrument(span.clone())
                .await;
            if let Err(Stop::Failed(message)) = &ran {
                crate::spans::step_failed(&span, message);
            }
            ran?;
        }
        Ok(())
    }

    /// The committed row of a step, if an earlier run finished it.
    pub(crate) fn done_row(&self, id: &str) -> Option<&StepRow> {
        self.done.get(id)
    }

    /// Runs one step. `last`: nothing runs after it, so a commit of its rows would be followed
    /// at once by the finish, which writes them in its own transaction instead.
    async fn run_step(&self, scope: &mut Value, step: &Step, last: bool) -> Result<(), Stop> {
        // A committed step is never run again: its recorded output (or failure) stands.
        if let Some(row) = self.done.get(&step.id) {
            if row.status == "failed"
                && matches!(step.on_error, OnError::Fail | OnError::Retry { .. })
            {
                // Only inside a collect-all parallel branch does a run go on past such a row.
                return Err(Stop::Failed(format!(
                    "step `{}` failed: {}",
                    step.id,
                    row.error_message.as_deref().unwrap_or("error")
                )));
            }
            let output = row.output.clone().unwrap_or(Value::Null);
            set_output(scope, &step.id, output.clone());
            match &step.kind {
                StepKind::Conditional {
                    then, otherwise, ..
                } => {
                    let branch = if output["branch"] == "then" {
                        then
                    } else {
                        otherwise
                    };
                    return self.run_steps(scope, branch, last).await;
                }
                StepKind::Parallel { branches, .. } => {
                    self.restore_branches(scope, branches);
                    return Ok(());
                }
                StepKind::Llm(_) | StepKind::Transform { .. } | StepKind::ExternalApi(_) => {}
            }
            return Ok(());
        }
        match &step.kind {
            StepKind::Conditional {
                condition,
                then,
                otherwise,
            } => {
                let started = Utc::now();
                self.log_started(step);
                let taken = condition.evaluate(scope).map_err(|e| Chain(&e).to_string());
                let (output, status, error) = match taken {
                    Ok(result) => (
                        json!({"branch": if result { "then" } else { "else" }, "result": result}),
                        "completed",
                        None,
                    ),
                    Err(message) => match self.recover(step, &message) {
                        Some(output) => (output, "failed", Some(message)),
                        None => {
                            return Err(Stop::Failed(format!(
                                "step `{}` failed: {message}",
                                step.id
                            )))
                        }
                    },
                };
                self.record(step, status, output.clone(), error, 1, Vec::new(), started);
                set_output(scope, &step.id, output.clone());
                let branch = match output["branch"].as_str() {
                    Some("then") => then.as_slice(),
                    Some("else") => otherwise.as_slice(),
                    _ => &[],
                };
                let planned = llmflow_core::workflow::certain_steps(branch);
                self.journal().planned_delta += i32::try_from(planned).unwrap_or(0);
                return self.run_steps(scope, branch, last).await;
            }
            StepKind::Parallel {
                branches,
                fail_fast,
            } => {
                // Its branches' steps were counted with the path it is on (`certain_steps`).
                let started = Utc::now();
                self.log_started(step);
                let run = self.run_parallel(scope, branches, *fail_fast);
                let result = match step.timeout {
                    Some(limit) => tokio::time::timeout(limit, run).await.unwrap_or_else(|_| {
                        Err(Stop::Failed(format!(
                            "timeout: took longer than {} ms",
                            limit.as_millis()
                        )))
                    }),
                    None => run.await,
                };
                let (output, status, error) = match result {
                    Ok(output) => (output, "completed", None),
                    Err(Stop::Failed(message)) => match self.recover(step, &message) {
                        Some(output) => (output, "failed", Some(message)),
                        None => {
                            self.record(
                                step,
                                "failed",
                                Value::Null,
                                Some(message.clone()),
                                1,
                                Vec::new(),
                                started,
                            );
                            self.commit(None).await?;
                            return Err(Stop::Failed(format!(
                                "step `{}` failed: {message}",
                                step.id
                            )));
                        }
                    },
                    Err(other) => return Err(other),
                };
                self.record(step, status, output.clone(), error, 1, Vec::new(), started);
                set_output(scope, &step.id, output);
                return Ok(());
            }
            StepKind::Llm(_) | StepKind::Transform { .. } | StepKind::ExternalApi(_) => {}
        }

        let started = Utc::now();
        if let StepKind::Llm(llm) = &step.kind {
            let run_usage = self.journal().usage.clone();
            crate::budget::check(self.engine, self.job, &run_usage, &step.id, llm, scope)
                .map_err(Stop::Failed)?;
        }
        self.log_started(step);
        crate::events::step_started(self.engine, self.job, step).await;
        let (result, attempts) = self.execute_with_policy(scope, step).await?;
        let (output, status, error, usage) = match result {
            Ok(StepOutput { output, usage }) => (output, "completed", None, usage),
            Err(failure) => {
                let message = format!("{}: {}", failure.kind, failure.message);
                match self.recover(step, &message) {
                    Some(output) => (output, "failed", Some(message), failure.usage),
                    None => {
                        self.record(
                            step,
                            "failed",
                            Value::Null,
                            Some(message.clone()),
                            attempts,
                            failure.usage,
                            started,
                        );
                        let finished = self.journal().pending.steps.last().cloned();
                        crate::events::step_finished(self.engine, self.job, finished.as_ref())
                            .await;
                        if !last {
                            self.commit(None).await?;
                        }
                        return Err(Stop::Failed(format!(
                            "step `{}` failed: {message}",
                            step.id
                        )));
                    }
                }
            }
        };
        // LLM calls are paid for and external calls may have effects: commit them at once
        // (the last step of the path is committed by the finish, in one transaction).
        let effectful = !usage.is_empty() || matches!(step.kind, StepKind::ExternalApi(_));
        self.record(
            step,
            status,
            output.clone(),
            error,
            attempts,
            usage,
            started,
        );
        let finished = self.journal().pending.steps.last().cloned();
        crate::events::step_finished(self.engine, self.job, finished.as_ref()).await;
        set_output(scope, &step.id, output);
        if effectful && !last {
            self.commit(Some(&step.id)).await?;
        }
        Ok(())
    }

    /// The per-step log line of a step about to run.
    fn log_started(&self, step: &Step) {
        tracing::info!(
            job_id = %self.job.id,
            workflow_name = %self.job.workflow_name,
            step_id = %step.id,
            step_kind = step.kind.name(),
            "step started"
        );
        self.engine.events.local(|| RunEvent::StepStarted {
            step_id: step.id.clone(),
            kind: step.kind.name(),
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        step: &Step,
        status: &str,
        output: Value,
        error: Option<String>,
        attempts: i32,
        usage: Vec<UsageRow>,
        started: chrono::DateTime<Utc>,
    ) {
        let completed = Utc::now();
        let (input_tokens, output_tokens, cost) =
            usage
                .iter()
                .fold((0i64, 0i64, Decimal::ZERO), |(i, o, c), u| {
                    (
                        i + i64::from(u.input_tokens),
                        o + i64::from(u.output_tokens),
                        c + u.cost_usd,
                    )
                });
        let duration_ms = (completed - started).num_milliseconds().max(0);
        metrics::histogram!(
            names::STEP_DURATION,
            "workflow" => self.job.workflow_name.clone(),
            "step_kind" => step.kind.name(),
            "outcome" => status.to_owned(),
        )
        .record(duration_ms as f64 / 1000.0);
        tracing::info!(
            job_id = %self.job.id,
            workflow_name = %self.job.workflow_name,
            step_id = %step.id,
            step_kind = step.kind.name(),
            status,
            attempts,
            duration_ms,
            input_tokens,
            output_tokens,
            cost_usd = %cost,
            error = error.as_deref().unwrap_or(""),
            "step finished"
        );
        let mut journal = self.journal();
        let position = journal.position;
        journal.pending.steps.push(StepRow {
            id: Uuid::now_v7(),
            job_id: self.job.id,
            step_id: step.id.clone(),
            step_type: step.kind.name().to_owned(),
            position,
            status: status.to_owned(),
            input: None,
            output: Some(output),
            error_kind: error
                .as_ref()
                .map(|e| e.split(':').next().unwrap_or("error").to_owned()),
            error_message: error,
            attempts,
            input_tokens,
            output_tokens,
            cost_usd: cost,
            started_at: started,
            completed_at: completed,
            duration_ms: i32::try_from((completed - started).num_milliseconds())
                .unwrap_or(i32::MAX),
        });
        journal.position += 1;
        if let Some(row) = journal.pending.steps.last() {
            self.engine
                .events
                .local(|| RunEvent::StepFinished(Box::new(row.clone())));
        }
        journal.usage.extend(usage.iter().cloned());
        journal.pending.usage.extend(usage);
    }

    /// Writes buffered steps and usage now (whichever branch recorded them). Boxed, as are the
    /// finish, the streamed and external calls and the progress webhooks: a future holds room
    /// for its largest await, and every job in flight waits on its LLM call inside one. Their
    /// round trips, laid out inline, more than doubled it (BENCHMARKS.md, "In flight").
    fn commit<'s>(&'s self, current_step: Option<&'s str>) -> BoxFuture<'s, Result<(), Stop>> {
        Box::pin(self.commit_inline(current_step))
    }

    async fn commit_inline(&self, current_step: Option<&str>) -> Result<(), Stop> {
        let (batch, planned) = {
            let mut journal = self.journal();
            (
                std::mem::take(&mut journal.pending),
                std::mem::take(&mut journal.planned_delta),
            )
        };
        match self
            .engine
            .records
            .commit(self.job.id, batch, current_step, planned)
            .await?
        {
            CommitOutcome::Committed {
                cancel_requested: true,
            } => Err(Stop::Cancelled),
            CommitOutcome::Committed {
                cancel_requested: false,
            } => Ok(()),
            CommitOutcome::LostClaim => Err(Stop::LostClaim),
        }
    }

    /// The job's result: the workflow's `output` rendered over the scope (default: every step's
    /// output by id), with `cost_data` added.
    pub(crate) fn output(&self, scope: &Value, workflow: &LoadedWorkflow) -> Result<Value, String> {
        let rendered = match &workflow.workflow.output {
            Some(template) => template
                .render(scope)
                .map_err(|e| format!("cannot build the output: {e}"))?
                .unwrap_or(Value::Null),
            None => {
                let outputs: Map<String, Value> = scope["steps"]
                    .as_object()
                    .map(|steps| {
                        steps
                            .iter()
                            .map(|(k, v)| (k.clone(), v["output"].clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                Value::Object(outputs)
            }
        };
        Ok(rendered)
    }

    /// Ends the job: its terminal state, result and `cost_data`, and the webhook it owes. Boxed
    /// (see `commit`).
    pub(crate) fn finish(
        self,
        outcome: Result<Value, Stop>,
    ) -> BoxFuture<'a, Result<(), RunError>> {
        Box::pin(self.finish_inline(outcome))
    }

    async fn finish_inline(self, outcome: Result<Value, Stop>) -> Result<(), RunError> {
        let journal = self
            .journal
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let (status, output, error) = match outcome {
            Ok(output) => (JobStatus::Completed, Some(output), None),
            Err(Stop::Failed(message)) => (JobStatus::Failed, None, Some(message)),
            Err(Stop::Cancelled) => (JobStatus::Cancelled, None, Some("cancelled".to_owned())),
            Err(Stop::LostClaim) => {
                metrics::counter!(names::CLAIM_LOSSES).increment(1);
                tracing::warn!("job was claimed by another worker; stopping without writing");
                return Ok(());
            }
            Err(Stop::Interrupted(e)) => return Err(e),
        };
        let closing = Closing {
            job: self.job,
            status,
            output,
            error: error.clone(),
            batch: journal.pending,
            planned_delta: journal.planned_delta,
            usage: journal.usage,
            resumed: self.resumed,
            duration_ms: self.started.elapsed().as_millis() as u64,
        };
        let duration_ms = closing.duration_ms;
        let Some(closed) = self.engine.records.finish(closing).await? else {
            metrics::counter!(names::CLAIM_LOSSES).increment(1);
            tracing::warn!("job was claimed by another worker; its result was not written");
            return Ok(());
        };
        crate::events::job_ended(
            self.engine,
            self.job,
            status,
            closed.result.as_ref(),
            error.as_deref(),
        )
        .await;
        let outcome = status.to_string();
        let workflow = self.job.workflow_name.clone();
        metrics::counter!(names::JOBS_FINISHED, "workflow" => workflow.clone(), "outcome" => outcome.clone())
            .increment(1);
        metrics::histogram!(names::JOB_RUN_DURATION, "workflow" => workflow, "outcome" => outcome)
            .record(self.started.elapsed().as_secs_f64());
        tracing::info!(status = %status, duration_ms, error = error.as_deref().unwrap_or(""), "job finished");
        self.engine
            .records
            .push_deliveries(&closed.deliveries)
            .await;
        Ok(())
    }
}

/// The result object: the workflow's output with `cost_data` beside it (an output that is not
/// an object is placed under `output`).
pub(crate) fn with_cost_data(output: Value, cost_data: &Value) -> Value {
    let mut object = match output {
        Value::Object(map) => map,
        other => {
            let mut map = Map::new();
            map.insert("output".to_owned(), other);
            map
        }
    };
    object.insert("cost_data".to_owned(), cost_data.clone());
    Value::Object(object)
}
