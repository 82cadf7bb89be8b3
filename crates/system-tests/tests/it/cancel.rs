//! `DELETE /api/v1/workflow/{job_id}`: waiting jobs never run, running ones drop their call.

use std::time::Duration;

use serde_json::{json, Value};

use llmflow_emulator::ScriptStep;

use crate::support::{wait_until, TestApp, API_KEY};

async fn cancel(app: &TestApp, job_id: &str, user: Option<&str>) -> (u16, Value) {
    let mut request = app
        .http
        .delete(app.url(&format!("/workflow/{job_id}")))
        .header("X-API-Key", API_KEY);
    if let Some(user) = user {
        request = request.header("X-User-Id", user);
    }
    let response = request.send().await.expect("cancel");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_job_is_cancelled_and_never_runs() {
    let mut app = TestApp::spawn_api(json!({})).await;
    let job_id = app.submit_bench("never run me", false).await;
    let (status, body) = cancel(&app, &job_id, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    app.start_worker().await;
    // Another job behind it runs, so the worker has had its chance at the cancelled one.
    let other = app.submit_bench("run me\nEMULATOR_SCORE: 10", false).await;
    app.wait_for_status(&other, "completed", Duration::from_secs(30))
        .await;
    assert_eq!(app.status(&job_id).await["status"], "cancelled");
    assert_eq!(app.emulator.stats().calls, 1, "only the other job called");
    let (status, body) = cancel(&app, &job_id, None).await;
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
    let (status, body) = cancel(&app, &job_id, None).await;
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
    let (status, _) = cancel(&app, &job_id, None).await;
    assert_eq!(status, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_requests_see_only_their_users_jobs() {
    let app = TestApp::spawn_api(json!({})).await;
    let owner = "0b9f5c4e-6c7e-4a8e-9a57-8a1f3f0e2d11";
    let stranger = "7d3c1a2b-0000-4000-8000-000000000001";
    let response = app
        .http
        .post(app.url("/workflow"))
        .header("X-API-Key", API_KEY)
        .header("X-User-Id", owner)
        .json(&json!({"workflow_name": "bench_pipeline", "input_data": {"text": "mine"}}))
        .send()
        .await
        .expect("submit");
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.expect("json");
    let job_id = body["job_id"].as_str().expect("job id").to_owned();
    for (user, expected) in [(Some(stranger), 404), (Some(owner), 200), (None, 200)] {
        for path in [format!("/status/{job_id}")] {
            let mut request = app.http.get(app.url(&path)).header("X-API-Key", API_KEY);
            if let Some(user) = user {
                request = request.header("X-User-Id", user);
            }
            let response = request.send().await.expect("get");
            assert_eq!(response.status(), expected, "{path} as {user:?}");
        }
    }
    let (status, body) = cancel(&app, &job_id, Some(stranger)).await;
    assert_eq!(status, 404, "{body}");
    let events = app
        .http
        .get(app.url(&format!("/status/{job_id}/events")))
        .header("X-API-Key", API_KEY)
        .header("X-User-Id", stranger)
        .send()
        .await
        .expect("events");
    assert_eq!(events.status(), 404);
    let (status, _) = cancel(&app, &job_id, Some(owner)).await;
    assert_eq!(status, 200);
}
