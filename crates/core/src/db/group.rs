//! Group commit: one writer task per process gathers the writes that many tasks hand it and
//! sends those waiting at that moment together, so under load a group of many writes costs one
//! round trip and one PostgreSQL transaction instead of one each.
//!
//! The writer gathers for `window` after the first write arrives (zero: not at all; writes
//! arriving while a group is being written still go out together next), or until `max` are
//! waiting; up to [`GROUPS_IN_FLIGHT`] groups are written at once. Each caller awaits the answer
//! to its own write before it goes on, exactly as when it wrote alone; a write not yet answered
//! was not acknowledged to anyone, so a crash loses nothing that was.
//!
//! What a group is and how it is written is the [`Group`]'s: the worker's step commits and
//! finishes (`writes::write_group`), the webhook sender's attempt records
//! (`deliveries::record_attempts`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use diesel::result::Error as DieselError;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::{DbError, PgPool, PooledConn};

/// How one kind of write is sent as a group.
pub trait Group: Send + Sync + 'static {
    type Write: Send + 'static;
    type Answer: Send + 'static;

    /// Writes the group; one answer per write, in order.
    fn write(&self, writes: Vec<Self::Write>) -> impl Future<Output = Vec<Self::Answer>> + Send;
}

/// A connection for a group of `n` writes, or the error once for each of them.
pub async fn connection<T>(
    pool: &PgPool,
    n: usize,
) -> Result<PooledConn, Vec<Result<T, Arc<DbError>>>> {
    pool.get().await.map_err(|e| {
        let error = Arc::new(DbError::from(e));
        (0..n).map(|_| Err(error.clone())).collect()
    })
}

/// The answers to a group of `n` writes whose one statement failed: `None` when PostgreSQL
/// refused it (a row broke a constraint, so nothing was written and the caller writes each
/// alone to find the bad one), else the error for every write (a failure that may have reached
/// the server is not retried).
pub fn failed_together<T>(error: DieselError, n: usize) -> Option<Vec<Result<T, Arc<DbError>>>> {
    match error {
        DieselError::DatabaseError(..) if n > 1 => None,
        error => {
            let error = Arc::new(DbError::Query(error));
            Some((0..n).map(|_| Err(error.clone())).collect())
        }
    }
}

/// When the writer sends a group.
#[derive(Clone, Copy, Debug)]
pub struct GroupSettings {
    /// How long to wait for more writes after the first (`DB_BATCH_WINDOW_MS`).
    pub window: Duration,
    /// Most writes in one group (`DB_BATCH_MAX`).
    pub max: usize,
}

/// The writer task stopped (its process is ending): the write was not made.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the group-commit writer has stopped")]
pub struct WriterStopped;

struct Request<G: Group> {
    write: G::Write,
    reply: oneshot::Sender<G::Answer>,
}

/// A handle for writing through one writer task; clones share it. The task ends when every
/// handle is dropped.
pub struct GroupCommit<G: Group> {
    requests: mpsc::UnboundedSender<Request<G>>,
}

impl<G: Group> Clone for GroupCommit<G> {
    fn clone(&self) -> Self {
        GroupCommit {
            requests: self.requests.clone(),
        }
    }
}

impl<G: Group> GroupCommit<G> {
    /// Starts the writer task.
    pub fn start(group: G, settings: GroupSettings) -> GroupCommit<G> {
        let (requests, receiver) = mpsc::unbounded_channel();
        tokio::spawn(write_groups(receiver, Arc::new(group), settings));
        GroupCommit { requests }
    }

    /// Hands one write to the writer with the others waiting, and returns its answer once its
    /// group is written.
    pub async fn write(&self, write: G::Write) -> Result<G::Answer, WriterStopped> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request { write, reply })
            .map_err(|_| WriterStopped)?;
        answer.await.map_err(|_| WriterStopped)
    }
}

/// Groups being written at once. One at a time would leave every group waiting for the previous
/// one's WAL flush; a few in flight let PostgreSQL flush them together.
pub const GROUPS_IN_FLIGHT: usize = 4;

async fn write_groups<G: Group>(
    mut receiver: mpsc::UnboundedReceiver<Request<G>>,
    group: Arc<G>,
    settings: GroupSettings,
) {
    let max = settings.max.max(1);
    let slots = Arc::new(Semaphore::new(GROUPS_IN_FLIGHT));
    let mut waiting: Vec<Request<G>> = Vec::with_capacity(max);
    loop {
        // While every slot is busy, writes keep arriving: the next group takes them all.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        if receiver.recv_many(&mut waiting, max).await == 0 {
            return;
        }
        if !settings.window.is_zero() && waiting.len() < max {
            let window = tokio::time::sleep(settings.window);
            tokio::pin!(window);
            while waiting.len() < max {
                let room = max - waiting.len();
                tokio::select! {
                    () = &mut window => break,
                    received = receiver.recv_many(&mut waiting, room) => {
                        if received == 0 {
                            break;
                        }
                    }
                }
            }
        }
        let requests = std::mem::replace(&mut waiting, Vec::with_capacity(max));
        tokio::spawn(write_one_group(requests, group.clone(), slot));
    }
}

async fn write_one_group<G: Group>(
    requests: Vec<Request<G>>,
    group: Arc<G>,
    _slot: OwnedSemaphorePermit,
) {
    let (writes, replies): (Vec<G::Write>, Vec<oneshot::Sender<G::Answer>>) = requests
        .into_iter()
        .map(|request| (request.write, request.reply))
        .unzip();
    let answers = group.write(writes).await;
    for (reply, answer) in replies.into_iter().zip(answers) {
        // A caller dropped while waiting (handed back, aborted) no longer listens.
        let _ = reply.send(answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records the size of every group it is given and answers each write with itself doubled.
    struct Doubling {
        sizes: Mutex<Vec<usize>>,
        gate: tokio::sync::Notify,
    }

    impl Group for Arc<Doubling> {
        type Write = u32;
        type Answer = u32;

        async fn write(&self, writes: Vec<u32>) -> Vec<u32> {
            self.sizes.lock().expect("sizes").push(writes.len());
            self.gate.notified().await;
            writes.into_iter().map(|w| w * 2).collect()
        }
    }

    #[tokio::test]
    async fn writes_waiting_while_the_slots_are_busy_go_out_as_one_group_each_answered() {
        let group = Arc::new(Doubling {
            sizes: Mutex::new(Vec::new()),
            gate: tokio::sync::Notify::new(),
        });
        let writer = GroupCommit::start(
            group.clone(),
            GroupSettings {
                window: Duration::ZERO,
                max: 64,
            },
        );
        // Fill every slot with a one-write group, held at the gate.
        let mut held = Vec::new();
        for i in 0..GROUPS_IN_FLIGHT as u32 {
            let writer = writer.clone();
            held.push(tokio::spawn(async move { writer.write(i).await }));
            while group.sizes.lock().expect("sizes").len() <= i as usize {
                tokio::task::yield_now().await;
            }
        }
        // These wait for a slot, then go out together.
        let mut later = Vec::new();
        for i in 100..110 {
            let writer = writer.clone();
            later.push(tokio::spawn(async move { writer.write(i).await }));
        }
        tokio::task::yield_now().await;
        // Release the held groups one by one until the waiting ten have been written.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while later.iter().any(|t| !t.is_finished()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "writes never answered"
            );
            group.gate.notify_one();
            tokio::task::yield_now().await;
        }
        for (i, task) in (100..110).zip(later) {
            let answer = task.await.expect("task").expect("writer");
            assert_eq!(answer, i * 2);
        }
        let sizes = group.sizes.lock().expect("sizes").clone();
        assert_eq!(&sizes[..GROUPS_IN_FLIGHT], &[1; GROUPS_IN_FLIGHT]);
        assert_eq!(sizes[GROUPS_IN_FLIGHT], 10, "group sizes {sizes:?}");
    }
}
