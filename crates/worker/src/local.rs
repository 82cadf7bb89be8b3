//! Running one workflow in this process, without PostgreSQL or Redis (`llmflow run`): the
//! worker's engine, with every step, condition, branch, retry, repair and stream as in a
//! worker, but its records kept in memory, its events handed to a watcher, and no shared
//! limits or cache. The job exists only here: it is never claimed, resumed or delivered.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use llmflow_core::config::Config;
use llmflow_core::db::models::{JobRow, StepRow};
use llmflow_core::llm::retry::RetryPolicy;
use llmflow_core::llm::Providers;
use llmflow_core::pricing::PriceTable;
use llmflow_core::workflow::LoadedWorkflow;
use llmflow_core::JobStatus;

use crate::engine::{new_scope, Runner, Stop};
pub use crate::records::Ended;
use crate::records::{Memory, Records};
use crate::{events, external, Engine, RunError, StartError};

/// What a local run's watcher sees, as it happens.
#[derive(Debug)]
pub enum RunEvent {
    /// A step is about to run.
    StepStarted { step_id: String, kind: &'static str },
    /// A step finished: its row as recorded (status, attempts, duration, tokens, cost, error).
    StepFinished(Box<StepRow>),
    /// Text a streaming step received, as it arrived.
    Text { step_id: String, text: String },
}

/// How a local run ended, with every step's row.
#[derive(Debug)]
pub struct Outcome {
    pub ended: Ended,
    pub steps: Vec<StepRow>,
}

/// An engine for one local run.
pub struct LocalRun {
    engine: Engine,
    memory: Arc<Memory>,
}

impl LocalRun {
    /// The engine with `providers`, sending its events to `watcher`.
    pub fn new(
        config: Config,
        providers: Providers,
        pricing: PriceTable,
        watcher: UnboundedSender<RunEvent>,
    ) -> Result<LocalRun, StartError> {
        let memory = Arc::new(Memory::default());
        let external = external::ExternalApis::new(&config).map_err(StartError::ExternalClient)?;
        let engine = Engine {
            retry: RetryPolicy::from_config(&config),
            config,
            providers,
            pricing,
            limiter: None,
            external,
            records: Records::Memory(memory.clone()),
            events: events::Events::Local(watcher),
        };
        Ok(LocalRun { engine, memory })
    }

    /// Runs `workflow` on `input` to its end, or until `cancel` (the run then ends
    /// `cancelled`). The input is taken as given: check it first (`Workflow::check_input`).
    pub async fn run(
        self,
        workflow: &LoadedWorkflow,
        input: Value,
        cancel: CancellationToken,
    ) -> Result<Outcome, RunError> {
        let job = local_job(workflow, input);
        let runner = Runner::new(&self.engine, &job, HashMap::new(), cancel);
        let mut scope = new_scope(&job.input_data);
        let outcome = match runner
            .run_steps(&mut scope, &workflow.workflow.steps, true)
            .await
        {
            Ok(()) => runner.output(&scope, workflow).map_err(Stop::Failed),
            Err(stop) => Err(stop),
        };
        runner.finish(outcome).await?;
        let ended = self.memory.ended().unwrap_or_else(|| Ended {
            // `finish` records an end for every outcome it returns `Ok` from; this is only
            // the shape of one that could not be recorded.
            status: JobStatus::Failed,
            result: None,
            error: Some("the run ended without an outcome".to_owned()),
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: Decimal::ZERO,
        });
        Ok(Outcome {
            ended,
            steps: self.memory.steps(),
        })
    }
}

/// The job record a local run stands on: in memory only, with no webhook and no budget.
fn local_job(workflow: &LoadedWorkflow, input: Value) -> JobRow {
    let now = Utc::now();
    JobRow {
        id: Uuid::now_v7(),
        user_id: None,
        workflow_name: workflow.workflow.name.clone(),
        workflow_version: workflow.workflow.version.clone(),
        workflow_hash: workflow.hash.clone(),
        status: JobStatus::Processing.to_string(),
        priority: 0,
        input_data: input,
        result: None,
        error_message: None,
        webhook_url: None,
        webhook_secret: None,
        queue_task_id: None,
        current_step: None,
        steps_completed: 0,
        steps_planned: i32::try_from(workflow.workflow.planned_steps()).unwrap_or(i32::MAX),
        cancel_requested: false,
        idempotency_key: None,
        attempts: 1,
        claimed_by: None,
        claimed_at: Some(now),
        heartbeat_at: None,
        total_input_tokens: 0,
        total_output_tokens: 0,
        total_cost_usd: Decimal::ZERO,
        is_stale: false,
        stale_reason: None,
        created_at: now,
        queued_at: None,
        started_at: Some(now),
        completed_at: None,
        updated_at: now,
        webhook_events: None,
        max_cost_usd: None,
        idempotency_hash: None,
        traceparent: None,
        idempotency_expires_at: None,
        estimated_wait_seconds: None,
        retry_count: 0,
        retry_history: json!([]),
    }
}
