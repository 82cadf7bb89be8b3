//! `DELETE /api/v1/workflow/{job_id}` and the other routes of a job, scoped to a user by
//! `X-User-Id`.

use serde_json::{json, Value};

use crate::support::{TestApp, API_KEY};

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
    let (status, body) = app.cancel(&job_id, Some(stranger)).await;
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
    let (status, _) = app.cancel(&job_id, Some(owner)).await;
    assert_eq!(status, 200);
}
