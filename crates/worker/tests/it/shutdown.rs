//! A graceful stop inside one worker: a job fetched but waiting for a run slot goes back to the
//! queue at once, and a job still running when the grace period ends is handed back (claim
//! released, pushed under a fresh task id); another worker then finishes both.

use std::time::Duration;

use serde_json::json;

use llmflow_core::queue::{self, Band, Queues};
use llmflow_core::JobId;
use llmflow_testkit::wait_until;

use crate::support::WorkerTest;

/// Whether the job's recorded task is in its band's queue, under a task id other than its first.
async fn waits_under_a_fresh_task(test: &WorkerTest, job_id: JobId, band: Band) -> bool {
    let job = test.job(job_id).await;
    let Some(task_id) = job.queue_task_id else {
        return false;
    };
    if task_id == job_id.to_string() || !task_id.starts_with(&format!("{job_id}:")) {
        return false;
    }
    let mut redis = queue::connect_to(&test.config.redis_target())
        .await
        .expect("redis");
    let queue = Queues::new(test.config.redis_namespace.clone()).band(band);
    queue::task_alive(&mut redis, &queue, &[task_id])
        .await
        .expect("task_alive")
        == [true]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_pushes_back_what_waits_and_hands_back_what_runs_past_the_grace() {
    let mut test = WorkerTest::spawn(json!({
        "worker_concurrency": 1,
        "shutdown_grace_secs": 1,
        "claim_timeout_secs": 600,
    }))
    .await;
    // One run slot: the high-priority job holds it with a call longer than the grace period.
    let running = test
        .submit_bench("runs.\nEMULATOR_LATENCY_MS: 3000", |job| job.priority = 8)
        .await;
    wait_until("the call in flight", Duration::from_secs(20), || async {
        (test.emulator.stats().in_flight == 1).then_some(())
    })
    .await;
    // The normal-priority job is fetched by its band's consumer and waits for the slot.
    let waiting = test
        .submit_bench("waits.\nEMULATOR_LATENCY_MS: 3000", |job| job.priority = 5)
        .await;
    let normal = Queues::new(test.config.redis_namespace.clone()).band(Band::Normal);
    wait_until(
        "the waiting job fetched",
        Duration::from_secs(20),
        || async {
            let mut redis = queue::connect_to(&test.config.redis_target()).await.ok()?;
            let waiting: i64 = redis::cmd("LLEN")
                .arg(format!("{normal}:active"))
                .query_async(&mut redis)
                .await
                .ok()?;
            (waiting == 0).then_some(())
        },
    )
    .await;

    let stopped = test.worker.take().expect("worker").shutdown().await;
    assert_eq!(stopped.handed_back, 1);
    let job = test.job(waiting).await;
    assert_eq!((job.status.as_str(), job.attempts), ("queued", 0));
    assert!(waits_under_a_fresh_task(&test, waiting, Band::Normal).await);
    let job = test.job(running).await;
    assert_eq!(
        (job.status.as_str(), job.attempts, job.claimed_by.as_deref()),
        ("queued", 1, None),
        "released, not cancelled"
    );
    assert!(waits_under_a_fresh_task(&test, running, Band::High).await);

    test.start_worker().await;
    for job_id in [running, waiting] {
        test.wait_for_job(job_id, "completed", Duration::from_secs(30))
            .await;
    }
}
