//! `DELETE /api/v1/workflow/{job_id}`: waiting jobs never run, running ones drop their call.

use std::time::Duration;

use serde_json::json;

use llmflow_emulator::ScriptStep;

use crate::support::{wait_until, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_job_is_cancelled_and_never_runs() {
    let mut app = TestApp::spawn_api(json!({})).await;
    let job_id = app.submit_bench("never run me", false).await;
    let (status, body) = app.cancel(&job_id, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    app.start_worker().await;
    // Another job behind it runs, so the worker has had its chance at the cancelled one.
    let other = app.submit_bench("run me\nEMULATOR_SCORE: 10", false).await;
    app.wait_for_status(&other, "completed", Duration::from_secs(30))
        .await;
    assert_eq!(app.status(&job_id).await["status"], "cancelled");
    assert_eq!(app.emulator.stats().calls, 1, "only the other job called");
    let (status, body) = app.cancel(&job_id, None).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["detail"]
        .as_str()
        .expect("detail")
        .contains("cancelled"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_drops_its_in_flight_llm_call() {
    // A long claim timeout: the heartbeat (every 20 s) cannot be what stops the job.
    let app = TestApp::spawn_with(json!({"claim_timeout_secs": 60})).await;
    app.emulator.push_script(vec![ScriptStep::Hang]);
    let job_id = app.submit_bench("hang on", false).await;
    wait_until(
        "the LLM call in flight",
        Duration::from_secs(20),
        || async { (app.emulator.stats().in_flight == 1).then_some(()) },
    )
    .await;
    let (status, body) = app.cancel(&job_id, None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["cancel_requested"], true);
    let doc = app
        .wait_for_status(&job_id, "cancelled", Duration::from_secs(10))
        .await;
    assert_eq!(doc["error_message"], "cancelled");
    wait_until(
        "the emulator to see the call dropped",
        Duration::from_secs(10),
        || async { (app.emulator.stats().dropped == 1).then_some(()) },
    )
    .await;
    let (status, _) = app.cancel(&job_id, None).await;
    assert_eq!(status, 409);
}
