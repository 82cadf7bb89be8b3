//! Group commit of the jobs' writes. Every step commit and finish of the jobs running in this
//! process goes through one writer task, which sends the writes waiting at that moment as one
//! statement (`db::writes::write_group`): under load a group of many jobs costs one round trip
//! and one PostgreSQL transaction instead of one each.
//!
//! The writer gathers for `DB_BATCH_WINDOW_MS` after the first write arrives (0: not at all;
//! writes arriving while a group is being written still go out together next), or until
//! `DB_BATCH_MAX` are waiting; up to four groups are written at once. Each job awaits the answer to its own write before it goes on, so
//! a step is committed before its output is used, exactly as when each job wrote alone; a write
//! not yet answered was not acknowledged to anyone, so a crash loses nothing that was.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use llmflow_core::db::jobs::CommitOutcome;
use llmflow_core::db::writes::{self, JobWrite, WriteResult};
use llmflow_core::db::{DbError, PgPool};

use crate::RunError;

struct Request {
    write: JobWrite,
    reply: oneshot::Sender<WriteResult>,
}

/// When the writer sends a group.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GroupSettings {
    /// How long to wait for more writes after the first (`DB_BATCH_WINDOW_MS`).
    pub(crate) window: Duration,
    /// Most writes in one group (`DB_BATCH_MAX`).
    pub(crate) max: usize,
}

/// A handle for writing through the group commit; clones share one writer task.
#[derive(Clone)]
pub(crate) struct Writer {
    requests: mpsc::UnboundedSender<Request>,
}

impl Writer {
    /// Starts the writer task. It ends when every handle is dropped.
    pub(crate) fn start(pool: PgPool, worker: String, settings: GroupSettings) -> Writer {
        let (requests, receiver) = mpsc::unbounded_channel();
        tokio::spawn(write_groups(receiver, pool, worker, settings));
        Writer { requests }
    }

    /// Writes one job's write with the others waiting, and returns once it is committed (or
    /// refused).
    pub(crate) async fn write(&self, write: JobWrite) -> Result<CommitOutcome, RunError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request { write, reply })
            .map_err(|_| RunError::WriterStopped)?;
        answer
            .await
            .map_err(|_| RunError::WriterStopped)?
            .map_err(RunError::Write)
    }
}

/// Groups being written at once. One at a time would leave every group waiting for the previous
/// one's WAL flush; a few in flight let PostgreSQL flush them together.
const GROUPS_IN_FLIGHT: usize = 4;

async fn write_groups(
    mut receiver: mpsc::UnboundedReceiver<Request>,
    pool: PgPool,
    worker: String,
    settings: GroupSettings,
) {
    let max = settings.max.max(1);
    let slots = Arc::new(Semaphore::new(GROUPS_IN_FLIGHT));
    let worker: Arc<str> = worker.into();
    let mut group: Vec<Request> = Vec::with_capacity(max);
    loop {
        // While every slot is busy, writes keep arriving: the next group takes them all.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        if receiver.recv_many(&mut group, max).await == 0 {
            return;
        }
        if !settings.window.is_zero() && group.len() < max {
            let window = tokio::time::sleep(settings.window);
            tokio::pin!(window);
            while group.len() < max {
                let room = max - group.len();
                tokio::select! {
                    () = &mut window => break,
                    received = receiver.recv_many(&mut group, room) => {
                        if received == 0 {
                            break;
                        }
                    }
                }
            }
        }
        let requests = std::mem::replace(&mut group, Vec::with_capacity(max));
        tokio::spawn(write_one_group(
            requests,
            pool.clone(),
            worker.clone(),
            slot,
        ));
    }
}

async fn write_one_group(
    requests: Vec<Request>,
    pool: PgPool,
    worker: Arc<str>,
    _slot: OwnedSemaphorePermit,
) {
    let (writes, replies): (Vec<JobWrite>, Vec<oneshot::Sender<WriteResult>>) = requests
        .into_iter()
        .map(|request| (request.write, request.reply))
        .unzip();
    let results = match pool.get().await {
        Ok(mut conn) => writes::write_group(&mut conn, &worker, &writes).await,
        Err(e) => {
            let error = Arc::new(DbError::from(e));
            writes.iter().map(|_| Err(error.clone())).collect()
        }
    };
    for (reply, result) in replies.into_iter().zip(results) {
        // A job dropped while waiting (handed back, aborted) no longer listens.
        let _ = reply.send(result);
    }
}
