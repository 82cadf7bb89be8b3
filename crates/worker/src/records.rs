//! Where a run's records go. A worker writes them to PostgreSQL, each write conditional on its
//! claim of the job, and pushes the webhook deliveries they owe to Redis; a local run
//! (`llmflow run`) keeps them in memory, claims nothing and owes no webhooks. The engine
//! decides what to write and when (`engine/`); this is only the place it goes.

use std::sync::{Arc, Mutex, PoisonError};

use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use llmflow_core::db::ending::{self, cost_data, Ending};
use llmflow_core::db::jobs::{CommitOutcome, Finish, StepBatch};
use llmflow_core::db::models::{JobRow, StepRow, UsageRow};
use llmflow_core::db::writes::{Change, JobWrite};
use llmflow_core::db::{self, deliveries, PgPool};
use llmflow_core::queue::{self, DeliveryMessage, DeliveryStorage};
use llmflow_core::JobStatus;

use crate::writer::Writer;
use crate::RunError;

/// Where a run's step rows, usage and end are written.
pub(crate) enum Records {
    /// PostgreSQL, as the worker holding the job's claim.
    Database(Box<Database>),
    /// This process's memory: a local run.
    Memory(Arc<Memory>),
}

/// The worker's records: PostgreSQL for rows, Redis for the deliveries they owe.
pub(crate) struct Database {
    pub(crate) pool: PgPool,
    /// The group commit every step commit and finish goes through, each conditional on this
    /// worker's claim of its job.
    pub(crate) writer: Writer,
    pub(crate) deliveries: DeliveryStorage,
}

/// A local run's records: every step row, and how the run ended.
#[derive(Default)]
pub struct Memory {
    steps: Mutex<Vec<StepRow>>,
    ended: Mutex<Option<Ended>>,
}

/// How a local run ended.
#[derive(Clone, Debug)]
pub struct Ended {
    pub status: JobStatus,
    /// The result (with `cost_data`) of a completed run.
    pub result: Option<Value>,
    pub error: Option<String>,
    /// The run's totals over its LLM calls.
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: Decimal,
}

impl Memory {
    /// Every step row recorded, in the order the steps finished.
    pub fn steps(&self) -> Vec<StepRow> {
        self.steps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How the run ended, once it has.
    pub fn ended(&self) -> Option<Ended> {
        self.ended
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn keep(&self, batch: StepBatch) {
        self.steps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(batch.steps);
    }
}

/// What the engine hands over when a run ends.
pub(crate) struct Closing<'a> {
    pub(crate) job: &'a JobRow,
    pub(crate) status: JobStatus,
    pub(crate) output: Option<Value>,
    pub(crate) error: Option<String>,
    /// Rows not yet written.
    pub(crate) batch: StepBatch,
    pub(crate) planned_delta: i32,
    /// This run's LLM calls; a resumed run's earlier calls are read back.
    pub(crate) usage: Vec<UsageRow>,
    pub(crate) resumed: bool,
    pub(crate) duration_ms: u64,
}

/// A run's end as written: its result, and the deliveries to push.
pub(crate) struct Closed {
    pub(crate) result: Option<Value>,
    pub(crate) deliveries: Vec<Uuid>,
}

impl Records {
    /// Writes finished steps and their usage.
    pub(crate) async fn commit(
        &self,
        job_id: Uuid,
        batch: StepBatch,
        current_step: Option<&str>,
        planned_delta: i32,
    ) -> Result<CommitOutcome, RunError> {
        match self {
            Records::Database(database) => {
                let change = Change::Progress {
                    batch,
                    current_step: current_step.map(str::to_owned),
                    planned_delta,
                };
                database.writer.write(JobWrite { job_id, change }).await
            }
            Records::Memory(memory) => {
                memory.keep(batch);
                Ok(CommitOutcome::Committed {
                    cancel_requested: false,
                })
            }
        }
    }

    /// Ends the job: its terminal state, result and `cost_data`, and the webhook it owes.
    /// `None` when the job is no longer this worker's (nothing was written).
    pub(crate) async fn finish(&self, closing: Closing<'_>) -> Result<Option<Closed>, RunError> {
        match self {
            Records::Database(database) => database.finish(closing).await,
            Records::Memory(memory) => {
                let cost_data = cost_data(&closing.usage);
                let result = closing
                    .output
                    .map(|output| crate::engine::with_cost_data(output, &cost_data));
                let usage = &closing.usage;
                let ended = Ended {
                    status: closing.status,
                    result: result.clone(),
                    error: closing.error,
                    input_tokens: usage.iter().map(|u| i64::from(u.input_tokens)).sum(),
                    output_tokens: usage.iter().map(|u| i64::from(u.output_tokens)).sum(),
                    cost_usd: usage.iter().map(|u| u.cost_usd).sum(),
                };
                memory.keep(closing.batch);
                *memory.ended.lock().unwrap_or_else(PoisonError::into_inner) = Some(ended);
                Ok(Some(Closed {
                    result,
                    deliveries: Vec::new(),
                }))
            }
        }
    }

    /// Pushes the deliveries a finish recorded.
    pub(crate) async fn push_deliveries(&self, ids: &[Uuid]) {
        if let Records::Database(database) = self {
            let mut storage = database.deliveries.clone();
            queue::push_new_deliveries(&mut storage, ids).await;
        }
    }

    /// Records and pushes one progress or chunk webhook. A local run has no webhook URL, so
    /// it never owes one.
    pub(crate) async fn event_webhook(
        &self,
        job_id: Uuid,
        url: &str,
        event_type: &str,
        payload: Value,
    ) {
        let Records::Database(database) = self else {
            return;
        };
        let recorded = async {
            let mut conn = database.pool.get().await.map_err(db::DbError::from)?;
            deliveries::enqueue_event(&mut conn, job_id, url, event_type, payload).await
        }
        .await;
        match recorded {
            Ok(id) => {
                let mut storage = database.deliveries.clone();
                let message = DeliveryMessage {
                    delivery_id: id,
                    attempt: 1,
                };
                if let Err(e) =
                    queue::push_delivery(&mut storage, message, std::time::Duration::ZERO).await
                {
                    // The row is due now: the reconciler pushes it.
                    tracing::warn!(delivery_id = %id, error = %e, "push of event webhook failed");
                }
            }
            Err(e) => tracing::warn!(%job_id, error = %e, "cannot record event webhook"),
        }
    }
}

impl Database {
    async fn finish(&self, closing: Closing<'_>) -> Result<Option<Closed>, RunError> {
        let Closing {
            job,
            status,
            output,
            error,
            batch,
            planned_delta,
            mut usage,
            resumed,
            duration_ms,
        } = closing;
        if resumed {
            // A resumed run's `cost_data` counts the calls of the runs before it.
            let mut conn = self.pool.get().await?;
            usage = db::jobs::job_usage(&mut conn, job.id).await?;
            usage.extend(batch.usage.iter().cloned());
        }
        let cost_data = cost_data(&usage);
        let result = output.map(|output| crate::engine::with_cost_data(output, &cost_data));
        let ending = Ending {
            status,
            result: result.as_ref(),
            error_message: error.as_deref(),
            cost_data: &cost_data,
            duration_ms: Some(duration_ms),
        };
        let deliveries: Vec<_> = ending::terminal_delivery(job, &ending)
            .into_iter()
            .collect();
        let delivery_ids: Vec<Uuid> = deliveries.iter().map(|d| d.id).collect();
        let result_for_event = result.clone();
        let finish = Finish {
            status,
            result,
            error_message: error,
            batch,
            planned_delta,
            deliveries,
        };
        let write = JobWrite {
            job_id: job.id,
            change: Change::Finish(finish),
        };
        match self.writer.write(write).await? {
            CommitOutcome::LostClaim => Ok(None),
            CommitOutcome::Committed { .. } => Ok(Some(Closed {
                result: result_for_event,
                deliveries: delivery_ids,
            })),
        }
    }
}
