//! `WorkerTest`: the worker alone, in-process, against the real PostgreSQL and Redis on the
//! test's own database and Redis namespace, with the emulator as the LLM provider (from
//! `llmflow_testkit`). Jobs are written and pushed the way the API writes and pushes them; no
//! API or webhook sender runs.

use std::ops::Deref;
use std::time::Duration;

use serde_json::{json, Value};

use llmflow_core::db::models::{JobRow, NewJob};
use llmflow_core::JobId;
use llmflow_testkit::{jobs, wait_until, TestEnv};

pub struct WorkerTest {
    env: TestEnv,
    pub worker: Option<llmflow_worker::WorkerHandle>,
}

/// The test's rooms, its configuration and the emulator.
impl Deref for WorkerTest {
    type Target = TestEnv;

    fn deref(&self) -> &Self::Target {
        &self.env
    }
}

impl WorkerTest {
    /// The rooms and a running worker, with configuration overrides.
    pub async fn spawn(overrides: Value) -> WorkerTest {
        let mut test = Self::without_worker(overrides).await;
        test.start_worker().await;
        test
    }

    /// The rooms only: jobs pushed now wait for `start_worker`.
    pub async fn without_worker(overrides: Value) -> WorkerTest {
        WorkerTest {
            env: TestEnv::start(overrides).await,
            worker: None,
        }
    }

    pub async fn start_worker(&mut self) {
        let state = llmflow_worker::WorkerState::connect(self.config.clone())
            .await
            .expect("worker state");
        self.worker = Some(llmflow_worker::start(state));
    }

    /// Records a `bench_pipeline` job for `text` (after `edit`) and pushes its id.
    pub async fn submit_bench(&self, text: &str, edit: impl FnOnce(&mut NewJob)) -> JobId {
        let mut priority = 0;
        let job_id = jobs::insert(self, "bench_pipeline", json!({"text": text}), |job| {
            edit(job);
            priority = job.priority;
        })
        .await;
        jobs::push(self, job_id, priority, &job_id.to_string()).await;
        job_id
    }

    pub async fn job(&self, job_id: JobId) -> JobRow {
        let mut conn = self.conn().await;
        llmflow_core::db::jobs::find_job(&mut conn, job_id.0)
            .await
            .expect("query")
            .expect("job row")
    }

    /// Waits for the job's row to reach `status` and returns it.
    pub async fn wait_for_job(&self, job_id: JobId, status: &str, deadline: Duration) -> JobRow {
        wait_until(
            &format!("job {job_id} to be {status}"),
            deadline,
            || async {
                let job = self.job(job_id).await;
                (job.status == status).then_some(job)
            },
        )
        .await
    }
}
