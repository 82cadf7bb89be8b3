//! Terminal webhooks always fire, and every webhook names the job's user: `workflow.cancelled`
//! for a job cancelled while queued or while running, `workflow.failed` with the stale reason
//! for a job marked stale by cleanup (the admin route and the worker's maintenance pass).

use std::time::Duration;

use diesel_async::RunQueryDsl;
use serde_json::{json, Value};

use llmflow_emulator::ScriptStep;

use crate::support::{wait_until, TestApp, ADMIN_KEY};

const USER: &str = "0b0e1d8c-6f3a-4a57-9a51-6a0d4c1e2f30";

/// Submits `bench_pipeline` for `USER` with its webhooks sent to the test's receiver.
async fn submit_for_user(app: &TestApp, text: &str, events: Value) -> String {
    app.submit_accepted(json!({
        "workflow_name": "bench_pipeline",
        "input_data": {"text": text},
        "user_id": USER,
        "webhook_url": app.receiver.url,
        "webhook_events": events,
    }))
    .await
}

/// Waits for the webhook of type `event` about `job_id` and returns its body.
async fn webhook(app: &TestApp, job_id: &str, event: &str) -> Value {
    wait_until(
        &format!("the {event} webhook of job {job_id}"),
        Duration::from_secs(30),
        || async {
            app.receiver
                .requests()
                .iter()
                .map(|r| r.json())
                .find(|b| b["type"] == event && b["job_id"] == job_id)
        },
    )
    .await
}

/// Backdates a job's last update, as if it had been stuck for `hours`.
async fn backdate(app: &TestApp, job_id: &str, hours: i64) {
    let mut conn = app.conn().await;
    diesel::sql_query(format!(
        "UPDATE llm_workflow_jobs SET updated_at = now() - interval '{hours} hours' \
         WHERE id = '{job_id}'"
    ))
    .execute(&mut conn)
    .await
    .expect("backdate the job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_and_progress_webhooks_carry_the_user_id() {
    let app = TestApp::spawn().await;
    let job_id = submit_for_user(
        &app,
        "user\nEMULATOR_SCORE: 10",
        json!(["workflow.progress"]),
    )
    .await;
    let done = webhook(&app, &job_id, "workflow.completed").await;
    assert_eq!(done["user_id"], USER, "{done:#}");
    assert_eq!(done["status"], "completed");
    assert_eq!(done["retry_count"], 0);
    let bodies: Vec<Value> = app.receiver.requests().iter().map(|r| r.json()).collect();
    let progress: Vec<&Value> = bodies
        .iter()
        .filter(|b| b["type"] == "workflow.progress")
        .collect();
    assert!(!progress.is_empty());
    assert!(
        progress.iter().all(|b| b["user_id"] == USER),
        "{progress:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_while_queued_sends_workflow_cancelled() {
    // No worker: the job stays queued until it is cancelled.
    let mut app = TestApp::spawn_api(json!({})).await;
    app.start_webhook().await;
    let job_id = submit_for_user(&app, "never run", json!([])).await;
    let (status, body) = app.cancel(&job_id, None).await;
    assert_eq!(status, 200, "{body}");
    let hook = webhook(&app, &job_id, "workflow.cancelled").await;
    assert_eq!(hook["status"], "cancelled");
    assert_eq!(hook["user_id"], USER);
    assert_eq!(hook["error_message"], "cancelled before it started");
    let doc = app.status(&job_id).await;
    assert_eq!(
        doc["webhook"]["event_type"], "workflow.cancelled",
        "{doc:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_cancelled_sends_workflow_cancelled() {
    let app = TestApp::spawn_with(json!({"claim_timeout_secs": 60})).await;
    app.emulator.push_script(vec![ScriptStep::Hang]);
    let job_id = submit_for_user(&app, "hang on", json!([])).await;
    wait_until(
        "the LLM call in flight",
        Duration::from_secs(20),
        || async { (app.emulator.stats().in_flight == 1).then_some(()) },
    )
    .await;
    let (status, body) = app.cancel(&job_id, None).await;
    assert_eq!(status, 202, "{body}");
    let hook = webhook(&app, &job_id, "workflow.cancelled").await;
    assert_eq!(hook["status"], "cancelled");
    assert_eq!(hook["user_id"], USER);
    assert!(hook["cost_data"].is_object(), "{hook:#}");
    let cancelled = app
        .receiver
        .requests()
        .iter()
        .filter(|r| r.json()["type"] == "workflow.cancelled")
        .count();
    assert_eq!(cancelled, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_marked_stale_by_the_admin_cleanup_sends_workflow_failed_with_the_reason() {
    let mut app = TestApp::spawn_api(json!({})).await;
    app.start_webhook().await;
    let stuck = submit_for_user(&app, "stuck", json!([])).await;
    let fresh = submit_for_user(&app, "fresh", json!([])).await;
    backdate(&app, &stuck, 100).await;
    let response = app
        .http
        .post(app.url("/admin/cleanup/stale"))
        .header("X-API-Key", ADMIN_KEY)
        .json(&json!({"older_than_hours": 72}))
        .send()
        .await
        .expect("cleanup");
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.expect("json");
    assert_eq!(report["marked_stale"], 1, "{report:#}");
    let hook = webhook(&app, &stuck, "workflow.failed").await;
    assert_eq!(hook["status"], "failed");
    assert_eq!(hook["user_id"], USER);
    assert_eq!(hook["is_stale"], true);
    assert_eq!(hook["stale_reason"], report["reason"]);
    assert_eq!(hook["error_message"], report["reason"]);
    let doc = app.status(&stuck).await;
    assert_eq!(doc["status"], "failed");
    assert_eq!(doc["is_stale"], true);
    assert_eq!(app.status(&fresh).await["status"], "queued");
    assert!(
        app.receiver
            .requests()
            .iter()
            .all(|r| r.json()["job_id"] != fresh.as_str()),
        "the fresh job owes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_marked_stale_by_the_maintenance_pass_sends_workflow_failed() {
    let mut app = TestApp::spawn_api(json!({})).await;
    app.start_webhook().await;
    let stuck = submit_for_user(&app, "stuck", json!([])).await;
    backdate(&app, &stuck, 24 * 30).await;
    let state = llmflow_worker::WorkerState::connect(app.config.clone())
        .await
        .expect("worker state");
    let report = llmflow_worker::maintenance::run_once(&state)
        .await
        .expect("maintenance pass")
        .expect("the lock was free");
    assert_eq!(report.stale.total, 1);
    let hook = webhook(&app, &stuck, "workflow.failed").await;
    assert_eq!(hook["user_id"], USER);
    assert_eq!(hook["is_stale"], true);
    let reason = hook["stale_reason"].as_str().expect("stale reason");
    assert!(reason.starts_with("stale: "), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_died_with_a_cancellation_pending_sends_workflow_cancelled() {
    // No worker yet: the job is left as a worker that died mid-run, after the cancellation was
    // requested, leaves it. The next worker's claim finds it cancelled.
    let mut app = TestApp::spawn_api(json!({})).await;
    app.start_webhook().await;
    let job_id = submit_for_user(&app, "orphan", json!([])).await;
    let mut conn = app.conn().await;
    diesel::sql_query(format!(
        "UPDATE llm_workflow_jobs SET status = 'processing', cancel_requested = true, \
         claimed_by = 'gone', attempts = 1, heartbeat_at = now() - interval '1 hour' \
         WHERE id = '{job_id}'"
    ))
    .execute(&mut conn)
    .await
    .expect("orphan the job");
    drop(conn);
    app.start_worker().await;
    let hook = webhook(&app, &job_id, "workflow.cancelled").await;
    assert_eq!(hook["status"], "cancelled");
    assert_eq!(hook["user_id"], USER);
    assert_eq!(app.status(&job_id).await["status"], "cancelled");
    assert_eq!(app.emulator.stats().calls, 0, "a cancelled job never runs");
}
