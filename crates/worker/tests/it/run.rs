//! A job row and its pushed id are all the worker needs: it runs the workflow, commits each step
//! and LLM call, finishes the job and records the webhook the job owes (pushed for the sender).
//! A job Redis never got is pushed by the reconciler.

use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::json;

use llmflow_core::db::{deliveries, jobs};
use llmflow_core::queue::{self, Queues};
use llmflow_core::{DeliveryId, JobId, JobStatus};

use crate::support::WorkerTest;

const HOOK: &str = "http://127.0.0.1:9/hooks";

/// Records and pushes a `bench_pipeline` job that owes a webhook to [`HOOK`], with a budget
/// when given.
async fn submit_hooked(app: &WorkerTest, text: &str, budget: Option<Decimal>) -> JobId {
    app.submit_bench(text, |job| {
        job.webhook_url = Some(HOOK.to_owned());
        job.max_cost_usd = budget;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_job_runs_commits_steps_and_usage_and_records_its_webhook() {
    let app = WorkerTest::spawn(json!({})).await;
    // A high score takes the `refine` branch: two LLM calls.
    let job_id = submit_hooked(&app, "Ship it.\nEMULATOR_SCORE: 80", None).await;
    let job = app
        .wait_for_job(job_id, "completed", Duration::from_secs(30))
        .await;
    let result = job.result.expect("result");
    assert_eq!(result["score"], 80, "{result}");
    assert_eq!(result["branch"], "then");
    assert!(result["refined"].is_string(), "{result}");
    assert_eq!(job.attempts, 1);
    assert!(job.completed_at.is_some());

    let mut conn = app.conn().await;
    let steps = jobs::job_steps(&mut conn, job_id.0).await.expect("steps");
    let ids: Vec<&str> = steps.iter().map(|s| s.step_id.as_str()).collect();
    assert_eq!(ids, ["analyze", "extract", "route", "refine"]);
    assert!(steps.iter().all(|s| s.status == "completed"), "{steps:?}");
    let usage = jobs::job_usage(&mut conn, job_id.0).await.expect("usage");
    let called: Vec<&str> = usage.iter().filter_map(|u| u.step_id.as_deref()).collect();
    assert_eq!(called, ["analyze", "refine"], "one usage row per call");
    assert_eq!(app.emulator.stats().calls, 2);
    let tokens: i64 = usage.iter().map(|u| i64::from(u.input_tokens)).sum();
    let cost: Decimal = usage.iter().map(|u| u.cost_usd).sum();
    assert_eq!(job.total_input_tokens, tokens);
    assert_eq!(job.total_cost_usd, cost);
    assert_eq!(
        result["cost_data"]["total_tokens"],
        usage.iter().map(|u| i64::from(u.total_tokens)).sum::<i64>()
    );

    // The webhook it owes: recorded with the job's end and pushed for the sender (none runs).
    let owed = deliveries::of_job(&mut conn, job_id.0)
        .await
        .expect("deliveries");
    assert_eq!(owed.len(), 1, "{owed:?}");
    let delivery = &owed[0];
    assert_eq!(delivery.url, HOOK);
    assert_eq!(delivery.event_type, "workflow.completed");
    assert_eq!(delivery.status, deliveries::state::PENDING);
    assert_eq!(delivery.attempts, 0);
    assert_eq!(delivery.payload["job_id"], job_id.to_string());
    assert_eq!(delivery.payload["status"], "completed");
    assert_eq!(delivery.payload["result"]["score"], 80);
    let mut redis = queue::connect(&llmflow_testkit::redis::redis_url())
        .await
        .expect("redis");
    let task = queue::delivery_task_id(DeliveryId(delivery.id), 1);
    let alive = queue::task_alive(
        &mut redis,
        &Queues::new(app.namespace.clone()).webhooks(),
        &[task],
    )
    .await
    .expect("task");
    assert_eq!(
        alive,
        [true],
        "the first attempt waits in the webhook queue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_records_a_failed_webhook() {
    let app = WorkerTest::spawn(json!({})).await;
    let budget = Decimal::new(1, 5); // $0.00001: less than any call
    let job_id = submit_hooked(&app, "Too dear.\nEMULATOR_SCORE: 80", Some(budget)).await;
    let job = app
        .wait_for_job(job_id, "failed", Duration::from_secs(30))
        .await;
    let message = job.error_message.expect("error message");
    assert!(message.contains("budget exceeded"), "{message}");
    assert_eq!(app.emulator.stats().calls, 0, "the call was never made");
    let mut conn = app.conn().await;
    let owed = deliveries::of_job(&mut conn, job_id.0)
        .await
        .expect("deliveries");
    assert_eq!(owed.len(), 1, "{owed:?}");
    assert_eq!(owed[0].event_type, "workflow.failed");
    assert_eq!(owed[0].payload["status"], "failed");
    assert_eq!(owed[0].payload["error_message"], message.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_redis_never_got_is_pushed_by_the_reconciler() {
    let app = WorkerTest::spawn(json!({})).await;
    // As the API leaves a job when Redis refused the push.
    let job_id = llmflow_testkit::jobs::insert(
        &app,
        "bench_pipeline",
        json!({"text": "Late.\nEMULATOR_SCORE: 20"}),
        |job| {
            job.status = JobStatus::Pending.as_str().to_owned();
            job.queue_task_id = None;
            job.queued_at = None;
        },
    )
    .await;
    let job = app
        .wait_for_job(job_id, "completed", Duration::from_secs(30))
        .await;
    assert!(
        job.queue_task_id.is_some(),
        "the reconciler records its push"
    );
    assert!(job.queued_at.is_some());
    assert_eq!(job.result.expect("result")["branch"], "else");
}
