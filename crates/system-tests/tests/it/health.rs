//! `GET /api/v1/health` before and after a worker starts.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_database_redis_and_workers() {
    let mut app = TestApp::spawn_api(json!({})).await;
    let body: Value = app
        .http
        .get(app.url("/health"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["redis"], "ok");
    assert_eq!(body["status"], "degraded", "no worker yet: {body}");
    app.start_worker().await;
    crate::support::wait_until("a live worker", Duration::from_secs(20), || async {
        let response = app.http.get(app.url("/health")).send().await.ok()?;
        let body: Value = response.json().await.ok()?;
        (body["status"] == "healthy" && body["workers"].as_u64() >= Some(1)).then_some(())
    })
    .await;
}
