//! Prompt cancellation. The API sets `cancel_requested` on the job row and announces the job id
//! on the pub/sub channel `{namespace}:cancel`; every worker listens, and the one running that
//! job cancels its token at once, which drops the step in flight (and with it the provider
//! call). The row flag stays the truth: commits and heartbeats still see it if a message is
//! missed (Redis pub/sub does not keep messages for a disconnected listener).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use llmflow_core::{db, events, queue, JobId};

use crate::{RunError, WorkerState};

/// The cancellation tokens of the jobs this process is running. Each is a child of one
/// hand-back token: a stopping worker cancels that once its grace period is over, which stops
/// every job at its next step boundary (dropping calls in flight) to be handed back.
#[derive(Default)]
pub struct Registry {
    tokens: Mutex<HashMap<Uuid, CancellationToken>>,
    hand_back: CancellationToken,
}

/// A job's registration; dropping it unregisters the job.
pub struct Registration<'a> {
    registry: &'a Registry,
    job_id: Uuid,
    token: CancellationToken,
}

impl Registration<'_> {
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if let Ok(mut tokens) = self.registry.tokens.lock() {
            tokens.remove(&self.job_id);
        }
    }
}

impl Registry {
    /// Registers a job before it is claimed, so that no announcement after the claim is missed.
    pub fn register(&self, job_id: Uuid) -> Registration<'_> {
        let token = self.hand_back.child_token();
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(job_id, token.clone());
        }
        Registration {
            registry: self,
            job_id,
            token,
        }
    }

    /// Stops every job running here, and any registered later, to hand them back.
    pub fn hand_back_all(&self) {
        self.hand_back.cancel();
    }

    /// Whether the jobs are being handed back (a stop past its grace period): a job stopped
    /// now is released, not cancelled.
    pub fn handing_back(&self) -> bool {
        self.hand_back.is_cancelled()
    }

    /// Cancels the job if it runs here; whether it did.
    pub fn cancel(&self, job_id: Uuid) -> bool {
        let token = self
            .tokens
            .lock()
            .ok()
            .and_then(|tokens| tokens.get(&job_id).cloned());
        match token {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }
}

/// Listens for cancellation announcements until `shutdown`, reconnecting after errors.
pub async fn listen(state: Arc<WorkerState>, shutdown: CancellationToken) {
    let channel = events::cancel_channel(state.queues.namespace());
    let mut backoff = Duration::from_millis(250);
    loop {
        let session = async {
            let client = state.engine.config.redis_target().client()?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                let Ok(text) = message.get_payload::<String>() else {
                    continue;
                };
                if let Ok(job_id) = Uuid::parse_str(text.trim()) {
                    if state.cancels.cancel(job_id) {
                        tracing::info!(%job_id, "cancellation announced; stopping the job");
                    }
                }
            }
            Ok::<(), llmflow_core::queue::QueueError>(())
        };
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            outcome = session => outcome,
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "cancellation listener lost Redis; reconnecting");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Pushes the `workflow.cancelled` webhook of a job whose claim found it cancelled (its worker
/// had died with the cancellation pending); the claim recorded the delivery with the job's end.
pub async fn push_cancelled(state: &WorkerState, job_id: JobId) -> Result<(), RunError> {
    let owed = {
        let mut conn = state.pool.get().await?;
        db::deliveries::of_job(&mut conn, job_id.0).await?
    };
    let ids: Vec<Uuid> = owed
        .iter()
        .filter(|d| d.event_type == "workflow.cancelled" && d.attempts == 0)
        .map(|d| d.id)
        .collect();
    let mut storage = state.delivery_storage();
    queue::push_new_deliveries(&mut storage, &ids).await;
    Ok(())
}
