//! Group commit of the jobs' writes (`llmflow_core::db::group`). Every step commit and finish
//! of the jobs running in this process goes through one writer task, which sends the writes
//! waiting at that moment as one statement (`db::writes::write_group`).
//!
//! Each job awaits the answer to its own write before it goes on, so a step is committed before
//! its output is used, exactly as when each job wrote alone; a write not yet answered was not
//! acknowledged to anyone, so a crash loses nothing that was.

use llmflow_core::db::group::{self, Group, GroupCommit, GroupSettings};
use llmflow_core::db::jobs::CommitOutcome;
use llmflow_core::db::writes::{self, JobWrite, WriteResult};
use llmflow_core::db::PgPool;

use crate::RunError;

/// The jobs' writes of one worker process.
struct JobWrites {
    pool: PgPool,
    worker: String,
}

impl Group for JobWrites {
    type Write = JobWrite;
    type Answer = WriteResult;

    async fn write(&self, writes: Vec<JobWrite>) -> Vec<WriteResult> {
        match group::connection(&self.pool, writes.len()).await {
            Ok(mut conn) => writes::write_group(&mut conn, &self.worker, &writes).await,
            Err(errors) => errors,
        }
    }
}

/// A handle for writing through the group commit; clones share one writer task.
#[derive(Clone)]
pub(crate) struct Writer {
    group: GroupCommit<JobWrites>,
}

impl Writer {
    /// Starts the writer task. It ends when every handle is dropped.
    pub(crate) fn start(pool: PgPool, worker: String, settings: GroupSettings) -> Writer {
        Writer {
            group: GroupCommit::start(JobWrites { pool, worker }, settings),
        }
    }

    /// Writes one job's write with the others waiting, and returns once it is committed (or
    /// refused).
    pub(crate) async fn write(&self, write: JobWrite) -> Result<CommitOutcome, RunError> {
        self.group
            .write(write)
            .await
            .map_err(|_| RunError::WriterStopped)?
            .map_err(RunError::Write)
    }
}
