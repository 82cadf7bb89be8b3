//! Losing things: Redis wiped, a worker killed mid-job or during a group commit, Redis
//! restarted.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use llmflow_core::db::jobs;
use llmflow_emulator::ScriptStep;

use crate::processes::WorkerProcess;
use crate::shutdown::{all_complete_once, count, submit_all, two_step_workflow};
use crate::support::{wait_until, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_survive_redis_losing_everything() {
    let mut app = TestApp::spawn_api(json!({})).await;
    let ids = [
        app.submit_bench("first.\nEMULATOR_SCORE: 20", true).await,
        app.submit_bench("second.\nEMULATOR_SCORE: 70", true).await,
    ];
    app.wipe_redis().await;
    app.start_worker().await;
    app.start_webhook().await;
    for id in &ids {
        app.wait_for_status(id, "completed", Duration::from_secs(30))
            .await;
    }
    wait_until("both webhooks", Duration::from_secs(20), || async {
        (app.receiver.requests().len() >= 2).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_leaves_nothing_stuck_and_pays_nothing_twice() {
    let mut app = TestApp::spawn_with(json!({"claim_timeout_secs": 3})).await;
    // analyze answers; refine hangs until the worker is killed.
    app.emulator
        .push_script(vec![ScriptStep::Ok, ScriptStep::Hang]);
    let job_id = app
        .submit_bench("resume me.\nEMULATOR_SCORE: 90", false)
        .await;
    wait_until(
        "the second LLM call in flight",
        Duration::from_secs(20),
        || async {
            let stats = app.emulator.stats();
            (stats.calls == 2 && stats.in_flight == 1).then_some(())
        },
    )
    .await;
    app.worker.take().expect("worker").abort();
    wait_until(
        "the emulator to see the call dropped",
        Duration::from_secs(10),
        || async { (app.emulator.stats().dropped == 1).then_some(()) },
    )
    .await;
    app.start_worker().await;
    let status = app
        .wait_for_status(&job_id, "completed", Duration::from_secs(40))
        .await;
    assert_eq!(status["result"]["branch"], "then");
    let stats = app.emulator.stats();
    assert_eq!(
        stats.calls, 3,
        "analyze once, refine twice (the dropped call and the resumed one)"
    );
    let mut conn = app.conn().await;
    let usage = jobs::job_usage(&mut conn, job_id.parse().expect("uuid"))
        .await
        .expect("usage");
    let steps: Vec<_> = usage.iter().filter_map(|u| u.step_id.as_deref()).collect();
    assert_eq!(
        steps,
        ["analyze", "refine"],
        "one usage row per completed call"
    );
    assert_eq!(
        status["result"]["cost_data"]["steps"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_during_a_group_commit_loses_nothing_acknowledged_and_pays_nothing_twice() {
    const JOBS: usize = 20;
    let (workflow, dir) = two_step_workflow();
    let app = TestApp::spawn_api(json!({"workflows_dir": dir})).await;
    let jobs = submit_all(&app, &workflow, &[0; JOBS]).await;
    // Each group waits 5 s for more writes: the first steps' commits go out together, and the
    // jobs' finishes are still waiting in the writer when the worker is killed.
    let mut first = WorkerProcess::spawn(
        &app,
        &[("DB_BATCH_WINDOW_MS", "5000"), ("DB_BATCH_MAX", "1000")],
    );
    let steps = |id: &'static str| {
        format!("SELECT count(*) AS n FROM llm_job_steps WHERE step_id = '{id}'")
    };
    wait_until(
        "every first step committed and every second call answered",
        Duration::from_secs(60),
        || async {
            let stats = app.emulator.stats();
            let answered = stats.calls == 2 * JOBS as u64 && stats.in_flight == 0;
            (answered && count(&app, &steps("first")).await == JOBS as i64).then_some(())
        },
    )
    .await;
    first.kill();

    // Acknowledged before the kill: every first step, whose output the second call used.
    // Not acknowledged: the finishes, waiting in the writer's window; none of them was written.
    assert_eq!(count(&app, &steps("first")).await, JOBS as i64);
    assert_eq!(
        count(&app, &steps("second")).await,
        0,
        "the finishes were pending"
    );
    let ended = "SELECT count(*) AS n FROM llm_workflow_jobs WHERE status <> 'processing'";
    assert_eq!(count(&app, ended).await, 0);
    let usage = "SELECT count(*) AS n FROM llm_provider_usage";
    assert_eq!(count(&app, usage).await, JOBS as i64);
    let transactions = count(
        &app,
        "SELECT count(DISTINCT xmin::text) AS n FROM llm_job_steps",
    )
    .await;
    assert!(
        transactions < JOBS as i64,
        "{JOBS} jobs' commits written by {transactions} transactions"
    );

    // Another worker resumes each job at its second step once the killed one counts as lost.
    let _second = WorkerProcess::spawn(&app, &[]);
    all_complete_once(&app, JOBS).await;
    assert_eq!(
        app.emulator.stats().calls,
        3 * JOBS as u64,
        "each first call once; each second call again, its finish never acknowledged"
    );
    let doc = app.status(&jobs[0]).await;
    assert_eq!(doc["status"], "completed");
}

/// A Redis server of this test's own, so it can be stopped and started again.
struct PrivateRedis {
    port: u16,
    child: Child,
}

impl PrivateRedis {
    /// A server on a free port, answering.
    async fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("addr")
            .port();
        let redis = PrivateRedis {
            port,
            child: Self::spawn(port),
        };
        redis.wait_ready().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Stops the server (if it still runs) and starts an empty one on the same port.
    async fn restart(&mut self) {
        self.stop();
        self.child = Self::spawn(self.port);
        self.wait_ready().await;
    }

    fn spawn(port: u16) -> Child {
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH")
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn wait_ready(&self) {
        let url = self.url();
        wait_until("redis to answer", Duration::from_secs(10), || async {
            let client = redis::Client::open(url.as_str()).ok()?;
            let mut conn = client.get_multiplexed_async_connection().await.ok()?;
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .ok()
        })
        .await;
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_worker_survives_a_redis_restart() {
    let mut redis = PrivateRedis::start().await;
    let app = TestApp::spawn_with(json!({"redis_url": redis.url()})).await;
    let before = app.submit_bench("before.\nEMULATOR_SCORE: 10", false).await;
    app.wait_for_status(&before, "completed", Duration::from_secs(30))
        .await;

    redis.restart().await;

    // The API's connection reconnects; the worker's consumer is rebuilt by its supervisor.
    let after = wait_until("a submit after the restart", Duration::from_secs(20), || async {
        let response = app
            .submit(json!({"workflow_name": "bench_pipeline", "input_data": {"text": "after.\nEMULATOR_SCORE: 10"}}))
            .await;
        if response.status() != 202 {
            return None;
        }
        let body: serde_json::Value = response.json().await.ok()?;
        body["job_id"].as_str().map(str::to_owned)
    })
    .await;
    app.wait_for_status(&after, "completed", Duration::from_secs(40))
        .await;
    redis.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_submitted_while_redis_is_down_is_kept_and_runs_later() {
    let mut redis = PrivateRedis::start().await;
    let mut app = TestApp::spawn_api(json!({"redis_url": redis.url()})).await;
    redis.stop();

    let response = app
        .submit(json!({"workflow_name": "bench_pipeline", "input_data": {"text": "later.\nEMULATOR_SCORE: 10"}}))
        .await;
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["status"], "pending", "{body}");
    assert!(body["queue_task_id"].is_null(), "{body}");
    let job_id = body["job_id"].as_str().expect("job_id").to_owned();
    let mut conn = app.conn().await;
    let row = jobs::find_job(&mut conn, job_id.parse().expect("uuid"))
        .await
        .expect("query")
        .expect("the job is recorded although Redis refused it");
    assert_eq!(row.status, "pending");
    assert_eq!(row.queue_task_id, None);
    assert_eq!(row.queued_at, None);

    redis.restart().await;
    app.start_worker().await;
    app.wait_for_status(&job_id, "completed", Duration::from_secs(40))
        .await;
    redis.stop();
}
