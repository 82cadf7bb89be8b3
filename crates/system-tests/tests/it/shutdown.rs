//! Stopping and losing worker processes with jobs in flight: a worker sent SIGTERM finishes what
//! it can within `SHUTDOWN_GRACE_SECS` and hands the rest back at once; a worker killed with
//! SIGKILL has its claims released as soon as its registry heartbeat lapses. In both cases a
//! second worker process resumes the jobs long before `CLAIM_TIMEOUT_SECS` (600 s here), and no
//! finished step runs or is paid for twice. A killed webhook sender's attempt in flight is given
//! back as soon as its heartbeat lapses, too.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use diesel_async::RunQueryDsl;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::processes::WorkerProcess;
use crate::support::{wait_until, TestApp};

/// Two LLM steps; the second waits `input.latency_ms` at the emulator.
pub(crate) fn two_step_workflow() -> (String, PathBuf) {
    let name = "handback".to_owned();
    let definition = json!({
        "name": name,
        "steps": [
            {"id": "first", "type": "llm", "provider": "openrouter", "model": "openai/gpt-4o-mini",
             "prompt": "First look at job {{ input.n }}."},
            {"id": "second", "type": "llm", "provider": "openrouter", "model": "openai/gpt-4o-mini",
             "prompt": "Second look at job {{ input.n }}.\nEMULATOR_LATENCY_MS: {{ input.latency_ms }}"}
        ]
    });
    let dir = std::env::temp_dir().join(format!("llmflow-wf-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("workflow dir");
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_vec_pretty(&definition).expect("json"),
    )
    .expect("write workflow");
    (name, dir)
}

/// Submits one job per latency, in order; answers their ids.
pub(crate) async fn submit_all(app: &TestApp, workflow: &str, latencies: &[u64]) -> Vec<String> {
    futures::stream::iter(latencies.iter().enumerate())
        .map(|(n, latency)| {
            app.submit_accepted(json!({
                "workflow_name": workflow,
                "input_data": {"n": n, "latency_ms": latency},
            }))
        })
        .buffered(16)
        .collect()
        .await
}

#[derive(diesel::QueryableByName, Debug)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

pub(crate) async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut conn = app.conn().await;
    diesel::sql_query(sql)
        .get_result::<Count>(&mut conn)
        .await
        .expect("count")
        .n
}

async fn live_workers(app: &TestApp) -> i64 {
    count(
        app,
        "SELECT count(*) AS n FROM llm_workers WHERE kind = 'worker' \
         AND last_heartbeat > now() - interval '5 seconds'",
    )
    .await
}

/// Waits (a minute at most) until all `jobs` are completed, then checks none paid twice.
pub(crate) async fn all_complete_once(app: &TestApp, jobs: usize) {
    wait_until("every job to complete", Duration::from_secs(60), || async {
        let done = count(
            app,
            "SELECT count(*) AS n FROM llm_workflow_jobs WHERE status = 'completed'",
        )
        .await;
        (done == jobs as i64).then_some(())
    })
    .await;
    assert_all_completed_once(app, jobs).await;
}

/// Every job completed, each step recorded once and paid once.
async fn assert_all_completed_once(app: &TestApp, jobs: usize) {
    let completed = count(
        app,
        "SELECT count(*) AS n FROM llm_workflow_jobs WHERE status = 'completed'",
    )
    .await;
    assert_eq!(completed, jobs as i64);
    let repeated_steps = count(
        app,
        "SELECT count(*) AS n FROM (SELECT job_id, step_id FROM llm_job_steps \
         GROUP BY job_id, step_id HAVING count(*) > 1) s",
    )
    .await;
    assert_eq!(repeated_steps, 0, "a finished step was recorded twice");
    let usage = count(app, "SELECT count(*) AS n FROM llm_provider_usage").await;
    assert_eq!(usage, 2 * jobs as i64, "one usage row per step");
    let paid_twice = count(
        app,
        "SELECT count(*) AS n FROM (SELECT job_id, step_id FROM llm_provider_usage \
         GROUP BY job_id, step_id HAVING count(*) > 1) s",
    )
    .await;
    assert_eq!(paid_twice, 0, "a step was paid twice");
}

const GRACE_SECS: u64 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_what_it_can_and_hands_the_rest_back_at_once() {
    const JOBS: usize = 500;
    // Half of the second calls end within the grace period, half take longer than it.
    const FAST_MS: u64 = 3_000;
    const SLOW_MS: u64 = 8_000;
    let (workflow, dir) = two_step_workflow();
    let app = TestApp::spawn_api(json!({"workflows_dir": dir})).await;
    let latencies: Vec<u64> = (0..JOBS)
        .map(|n| if n % 2 == 0 { FAST_MS } else { SLOW_MS })
        .collect();
    // Submitted before any worker runs, so that the first worker takes all of them.
    let jobs = submit_all(&app, &workflow, &latencies).await;
    let grace = GRACE_SECS.to_string();
    let mut first = WorkerProcess::spawn(&app, &[("SHUTDOWN_GRACE_SECS", &grace)]);
    wait_until(
        "every job's second call in flight at the first worker",
        Duration::from_secs(60),
        || async { (app.emulator.stats().in_flight == JOBS as u64).then_some(()) },
    )
    .await;
    let _second = WorkerProcess::spawn(&app, &[("SHUTDOWN_GRACE_SECS", &grace)]);
    first.terminate();
    let signalled = Instant::now();

    let status = wait_until(
        "the first worker to exit",
        Duration::from_secs(GRACE_SECS + 10),
        || {
            let exited = first.exited();
            async move { exited }
        },
    )
    .await;
    let took = signalled.elapsed();
    assert!(status.success(), "the stopped worker exits 0: {status:?}");
    assert!(
        took <= Duration::from_secs(GRACE_SECS + 1),
        "the worker exits within the grace period and a second: {took:?}"
    );

    // Far sooner than the 600 s claim timeout: the slow jobs run again at once, for SLOW_MS.
    all_complete_once(&app, JOBS).await;

    // The fast half finished in the first worker within the grace period; the slow half was
    // handed back once and finished by the second worker.
    let mut conn = app.conn().await;
    let mut handed_back = 0;
    for (n, job_id) in jobs.iter().enumerate() {
        let row = llmflow_core::db::jobs::find_job(&mut conn, job_id.parse().expect("uuid"))
            .await
            .expect("query")
            .expect("job");
        let expected = if latencies[n] == FAST_MS { 1 } else { 2 };
        assert_eq!(row.attempts, expected, "job {n} ({} ms)", latencies[n]);
        if row.attempts == 2 {
            handed_back += 1;
        }
    }
    assert_eq!(handed_back, JOBS / 2);
    let stats = app.emulator.stats();
    assert_eq!(
        stats.calls,
        (2 * JOBS + JOBS / 2) as u64,
        "each first call once; each second call once, and the handed-back ones again"
    );
    assert_eq!(
        stats.dropped,
        (JOBS / 2) as u64,
        "the slow calls were dropped at hand-back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_jobs_resume_within_seconds() {
    const JOBS: usize = 50;
    let (workflow, dir) = two_step_workflow();
    let app = TestApp::spawn_api(json!({"workflows_dir": dir})).await;
    // The second calls outlast the first worker; resumed, they take as long again.
    let jobs = submit_all(&app, &workflow, &[4_000; JOBS]).await;
    let mut first = WorkerProcess::spawn(&app, &[]);
    wait_until(
        "every job's second call in flight at the first worker",
        Duration::from_secs(60),
        || async { (app.emulator.stats().in_flight == JOBS as u64).then_some(()) },
    )
    .await;
    let _second = WorkerProcess::spawn(&app, &[]);
    wait_until(
        "the second worker registered",
        Duration::from_secs(30),
        || async { (live_workers(&app).await == 2).then_some(()) },
    )
    .await;
    first.kill();
    let killed = Instant::now();

    // Resumed means: claimed again (attempt 2) by the second worker, second call in flight.
    wait_until(
        "the killed worker's jobs running again",
        Duration::from_secs(15),
        || async {
            let resumed = count(
                &app,
                "SELECT count(*) AS n FROM llm_workflow_jobs WHERE attempts = 2",
            )
            .await;
            (resumed == JOBS as i64).then_some(())
        },
    )
    .await;
    let resumed_after = killed.elapsed();
    all_complete_once(&app, JOBS).await;
    let stats = app.emulator.stats();
    assert_eq!(
        stats.calls,
        (3 * JOBS) as u64,
        "first calls once; second calls dropped by the kill and made again"
    );
    let doc: Value = app.status(&jobs[0]).await;
    assert_eq!(doc["status"], "completed");
    tracing::info!(?resumed_after, "jobs resumed after the kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_webhook_sender_hands_its_attempt_in_flight_back() {
    use llmflow_core::db::deliveries;
    use llmflow_testkit::{Reply, Scripted};

    let mut app = TestApp::spawn_with(json!({
        "shutdown_grace_secs": 1,
        "claim_timeout_secs": 600,
        "webhook_request_timeout_secs": 300,
    }))
    .await;
    // The first attempt is held open by the receiver; the next one is answered.
    let receiver = Scripted::spawn(vec![Reply::Stall, Reply::Status(200)]).await;
    let job_id: uuid::Uuid = app
        .submit_accepted(json!({
            "workflow_name": "bench_pipeline",
            "input_data": {"text": "Hello.\nEMULATOR_SCORE: 20"},
            "webhook_url": receiver.url,
        }))
        .await
        .parse()
        .expect("uuid");
    receiver.wait_hits(1, Duration::from_secs(30)).await;

    let stopping = Instant::now();
    let handed_back = app.webhook.take().expect("webhook sender").shutdown().await;
    let took = stopping.elapsed();
    assert_eq!(handed_back, 1);
    assert!(
        took < Duration::from_secs(2),
        "stopped within the grace period and a second: {took:?}"
    );
    let mut conn = app.conn().await;
    let row = deliveries::terminal_of_job(&mut conn, job_id)
        .await
        .expect("query")
        .expect("delivery");
    assert_eq!(
        (row.status.as_str(), row.attempts),
        ("pending", 0),
        "the attempt is given back, not counted"
    );
    drop(conn);

    // Another sender takes it at once, not after the 600 s claim timeout.
    app.start_webhook().await;
    let hits = receiver.wait_hits(2, Duration::from_secs(20)).await;
    assert_eq!(
        hits[0].header("webhook-id"),
        hits[1].header("webhook-id"),
        "the same webhook-id on the repeated attempt"
    );
    let row = wait_until("the delivery recorded", Duration::from_secs(10), || async {
        let mut conn = app.conn().await;
        let row = deliveries::terminal_of_job(&mut conn, job_id)
            .await
            .ok()??;
        (row.status == "delivered").then_some(row)
    })
    .await;
    assert_eq!(row.attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_webhook_senders_attempt_goes_out_again_within_seconds() {
    use llmflow_core::db::deliveries;
    use llmflow_testkit::{Reply, Scripted};

    // The claim timeout is far beyond the test's deadlines: only the lapsed registry heartbeat
    // of the killed sender can bring its attempt back in time.
    let mut app = TestApp::spawn_with(json!({
        "claim_timeout_secs": 600,
        "webhook_request_timeout_secs": 300,
        "worker_heartbeat_secs": 1,
        "worker_lost_secs": 3,
        "reconcile_interval_secs": 1,
    }))
    .await;
    // The first attempt is held open by the receiver; the next one is answered.
    let receiver = Scripted::spawn(vec![Reply::Stall, Reply::Status(200)]).await;
    let job_id: uuid::Uuid = app
        .submit_accepted(json!({
            "workflow_name": "bench_pipeline",
            "input_data": {"text": "Hello.\nEMULATOR_SCORE: 20"},
            "webhook_url": receiver.url,
        }))
        .await
        .parse()
        .expect("uuid");
    receiver.wait_hits(1, Duration::from_secs(30)).await;
    let mut conn = app.conn().await;
    let claimed = deliveries::terminal_of_job(&mut conn, job_id)
        .await
        .expect("query")
        .expect("delivery");
    assert_eq!(
        (claimed.status.as_str(), claimed.attempts),
        ("delivering", 1)
    );
    drop(conn);

    // Killed, as a crash: no hand-back, its registry row left to lapse.
    app.webhook.take().expect("webhook sender").abort();
    let killed = Instant::now();
    app.start_webhook().await;
    let hits = receiver.wait_hits(2, Duration::from_secs(20)).await;
    let took = killed.elapsed();
    assert_eq!(
        hits[0].header("webhook-id"),
        hits[1].header("webhook-id"),
        "the same webhook-id on the repeated attempt"
    );
    let row = wait_until("the delivery recorded", Duration::from_secs(10), || async {
        let mut conn = app.conn().await;
        let row = deliveries::terminal_of_job(&mut conn, job_id)
            .await
            .ok()??;
        (row.status == "delivered").then_some(row)
    })
    .await;
    assert_eq!(row.attempts, 1, "the same attempt, made again");
    tracing::info!(?took, "a killed sender's attempt went out again");
}
