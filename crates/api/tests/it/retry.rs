//! `POST /api/v1/workflow/{job_id}/retry` and `GET /api/v1/status/{job_id}/steps/{step_id}`
//! on the API alone: the answers for each state, user scoping, and what a retry changes in
//! the record (no worker runs: a failed job is written as the worker would leave it).

use diesel_async::RunQueryDsl;
use serde_json::{json, Value};

use crate::support::{TestApp, API_KEY};

const OWNER: &str = "0b9f5c4e-6c7e-4a8e-9a57-8a1f3f0e2d11";
const STRANGER: &str = "7d3c1a2b-0000-4000-8000-000000000001";

async fn send(request: reqwest::RequestBuilder, user: Option<&str>) -> (u16, Value) {
    let mut request = request.header("X-API-Key", API_KEY);
    if let Some(user) = user {
        request = request.header("X-User-Id", user);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json body"))
}

async fn retry(app: &TestApp, job_id: &str, user: Option<&str>) -> (u16, Value) {
    let url = app.url(&format!("/workflow/{job_id}/retry"));
    send(app.http.post(url), user).await
}

async fn step(app: &TestApp, job_id: &str, step_id: &str, user: Option<&str>) -> (u16, Value) {
    let url = app.url(&format!("/status/{job_id}/steps/{step_id}"));
    send(app.http.get(url), user).await
}

/// Leaves the job as a worker leaves one whose first step, `analyze` (retry policy), failed.
async fn fail_at_analyze(app: &TestApp, job_id: &str) {
    let mut conn = app.conn().await;
    for sql in [
        format!(
            "UPDATE llm_workflow_jobs SET status = 'failed', attempts = 1, steps_completed = 1, \
             error_message = 'step `analyze` failed: server: boom', completed_at = now() \
             WHERE id = '{job_id}'"
        ),
        format!(
            "INSERT INTO llm_job_steps (id, job_id, step_id, step_type, position, status, output, \
             error_kind, error_message, attempts, started_at, completed_at, duration_ms) VALUES \
             (gen_random_uuid(), '{job_id}', 'analyze', 'llm', 0, 'failed', 'null', 'server', \
             'server: boom', 2, now(), now(), 5)"
        ),
    ] {
        diesel::sql_query(sql)
            .execute(&mut conn)
            .await
            .expect("write the failed run");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_failed_job_is_retried_once_and_only_by_its_user() {
    let app = TestApp::spawn_api(json!({})).await;
    let job_id = app
        .submit_accepted(
            json!({"workflow_name": "bench_pipeline", "input_data": {"text": "x"},
                                "user_id": OWNER}),
        )
        .await;

    let (status, body) = retry(&app, &job_id, None).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"].as_str().expect("detail").contains("queued"),
        "{body}"
    );
    let (status, body) = retry(&app, "not-a-uuid", None).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = retry(&app, &uuid::Uuid::now_v7().to_string(), None).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["detail"].is_string());

    let (status, body) = step(&app, &job_id, "analyze", None).await;
    assert_eq!(status, 404, "not run yet: {body}");

    fail_at_analyze(&app, &job_id).await;
    let (status, body) = step(&app, &job_id, "analyze", Some(OWNER)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed");
    assert_eq!(body["error"], "server: boom");
    assert_eq!(body["attempts"], 2);
    assert_eq!(body["calls"], json!([]));
    let (status, _) = step(&app, &job_id, "analyze", Some(STRANGER)).await;
    assert_eq!(status, 404);
    let (status, body) = retry(&app, &job_id, Some(STRANGER)).await;
    assert_eq!(status, 404, "{body}");

    // Two retries at once: one wins.
    let (first, second) = tokio::join!(retry(&app, &job_id, None), retry(&app, &job_id, None));
    let mut statuses = [first.0, second.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [202, 409], "{first:?} {second:?}");
    let accepted = if first.0 == 202 { &first.1 } else { &second.1 };
    assert_eq!(accepted["retry_count"], 1);
    assert_eq!(accepted["status"], "queued");

    let doc = app.status(&job_id).await;
    assert_eq!(doc["status"], "queued", "{doc:#}");
    assert_eq!(doc["retry_count"], 1);
    assert!(doc["error_message"].is_null());
    assert_eq!(
        doc["steps"],
        json!([]),
        "the failure that stopped the run is cleared"
    );
    let history = &doc["retry_history"];
    assert_eq!(history.as_array().map(Vec::len), Some(1), "{history:#}");
    assert_eq!(history[0]["retry"], 1);
    assert_eq!(
        history[0]["error_message"],
        "step `analyze` failed: server: boom"
    );
    assert_eq!(history[0]["failed_steps"][0]["step_id"], "analyze");
    assert_eq!(history[0]["failed_steps"][0]["attempts"], 2);
    let (status, _) = step(&app, &job_id, "analyze", None).await;
    assert_eq!(status, 404);
}
