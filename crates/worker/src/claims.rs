//! Batched claims. Every job a consumer takes from Redis must be claimed in PostgreSQL before it
//! runs; claimed one by one, a burst of thousands of jobs waits on one commit each. Here the
//! claims of all jobs that arrive while a claim is being written are gathered and written as one
//! conditional UPDATE (`db::jobs::claim_many`): when idle a claim is written at once, under load
//! a batch costs one round trip and one commit.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use llmflow_core::db::jobs::{self, Claim};
use llmflow_core::db::{DbError, PgPool};

/// Most claims written in one statement.
const MAX_BATCH: usize = 200;

use crate::RunError;

type Reply = oneshot::Sender<Result<Claim, Arc<DbError>>>;

/// A handle for claiming jobs; clones share one writer task.
#[derive(Clone)]
pub struct Claimer {
    requests: mpsc::UnboundedSender<(Uuid, Reply)>,
}

impl Claimer {
    /// Starts the writer task. It ends when every handle is dropped.
    pub fn start(pool: PgPool, worker: String, claim_timeout: Duration) -> Claimer {
        let (requests, receiver) = mpsc::unbounded_channel();
        tokio::spawn(write_claims(receiver, pool, worker, claim_timeout));
        Claimer { requests }
    }

    /// Claims one job (see `db::jobs::claim`).
    pub async fn claim(&self, id: Uuid) -> Result<Claim, RunError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((id, reply))
            .map_err(|_| RunError::ClaimWriterStopped)?;
        answer
            .await
            .map_err(|_| RunError::ClaimWriterStopped)?
            .map_err(RunError::Claim)
    }
}

async fn write_claims(
    mut receiver: mpsc::UnboundedReceiver<(Uuid, Reply)>,
    pool: PgPool,
    worker: String,
    claim_timeout: Duration,
) {
    let mut batch: Vec<(Uuid, Reply)> = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let ids: Vec<Uuid> = batch.iter().map(|(id, _)| *id).collect();
        let written = async {
            let mut conn = pool.get().await.map_err(DbError::from)?;
            jobs::claim_many(&mut conn, &ids, &worker, claim_timeout).await
        }
        .await;
        match written {
            Ok(claims) => {
                for ((_, reply), (_, claim)) in batch.drain(..).zip(claims) {
                    let _ = reply.send(Ok(claim));
                }
            }
            Err(e) => {
                let error = Arc::new(e);
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}
