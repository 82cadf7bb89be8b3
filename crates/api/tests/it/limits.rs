//! Idempotency keys, per-user rate limits and stale cleanup.

use diesel_async::RunQueryDsl;
use serde_json::{json, Value};

use crate::support::{TestApp, ADMIN_KEY, API_KEY};

async fn submit_with(app: &TestApp, headers: &[(&str, &str)], body: Value) -> reqwest::Response {
    let mut request = app
        .http
        .post(app.url("/workflow"))
        .header("X-API-Key", API_KEY);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.json(&body).send().await.expect("submit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_returns_the_same_job_and_refuses_another_body() {
    let app = TestApp::spawn_api(json!({})).await;
    let body = json!({"workflow_name": "bench_pipeline", "input_data": {"text": "once"}});
    let key = [("Idempotency-Key", "order-42")];
    let first = submit_with(&app, &key, body.clone()).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.expect("json");
    // The queue grows before the replay: its wait estimate must still be the first answer's.
    for _ in 0..200 {
        let filler = json!({"workflow_name": "bench_pipeline", "input_data": {"text": "filler"}});
        assert_eq!(app.submit(filler).await.status(), 202);
    }
    let again = submit_with(&app, &key, body.clone()).await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.expect("json");
    assert_eq!(first, again, "a replay answers the same body");
    let other = submit_with(
        &app,
        &key,
        json!({"workflow_name": "bench_pipeline", "input_data": {"text": "twice"}}),
    )
    .await;
    assert_eq!(other.status(), 409);
    let other: Value = other.json().await.expect("json");
    assert!(other["detail"]
        .as_str()
        .expect("detail")
        .contains("Idempotency-Key"));
    // Without the key, the same body is a new job.
    let fresh: Value = submit_with(&app, &[], body)
        .await
        .json()
        .await
        .expect("json");
    assert_ne!(fresh["job_id"], first["job_id"]);

    // After the window the key is free again.
    let mut conn = app.conn().await;
    diesel::sql_query("UPDATE llm_workflow_jobs SET idempotency_expires_at = now() - interval '1 second' WHERE idempotency_key = 'order-42'")
        .execute(&mut conn)
        .await
        .expect("expire");
    let later: Value = submit_with(
        &app,
        &key,
        json!({"workflow_name": "bench_pipeline", "input_data": {"text": "twice"}}),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_ne!(later["job_id"], first["job_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_apply_per_user_and_tier() {
    let app = TestApp::spawn_api(json!({"rate_limits": "default=3,pro=6"})).await;
    let body = json!({"workflow_name": "bench_pipeline", "input_data": {"text": "x"}});
    let alice = "0b9f5c4e-6c7e-4a8e-9a57-8a1f3f0e2d11";
    let bob = "7d3c1a2b-0000-4000-8000-000000000001";
    for _ in 0..3 {
        assert_eq!(
            submit_with(&app, &[("X-User-Id", alice)], body.clone())
                .await
                .status(),
            202
        );
    }
    let refused = submit_with(&app, &[("X-User-Id", alice)], body.clone()).await;
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=20).contains(&retry), "{retry}");
    let envelope: Value = refused.json().await.expect("json");
    assert!(envelope["detail"]
        .as_str()
        .expect("detail")
        .contains("rate limit"));
    // Another user has a budget of their own; a higher tier a bigger one.
    assert_eq!(
        submit_with(&app, &[("X-User-Id", bob)], body.clone())
            .await
            .status(),
        202
    );
    let pro = [("X-User-Id", bob), ("X-User-Tier", "pro")];
    for _ in 0..6 {
        assert_eq!(submit_with(&app, &pro, body.clone()).await.status(), 202);
    }
    assert_eq!(submit_with(&app, &pro, body).await.status(), 429);
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_cleanup_marks_stuck_jobs_failed_and_counts_them() {
    let app = TestApp::spawn_api(json!({})).await;
    let old = app.submit_bench("old", false).await;
    let fresh = app.submit_bench("fresh", false).await;
    let mut conn = app.conn().await;
    diesel::sql_query(format!(
        "UPDATE llm_workflow_jobs SET updated_at = now() - interval '73 hours' WHERE id = '{old}'"
    ))
    .execute(&mut conn)
    .await
    .expect("age");
    let cleanup = |key: &'static str| {
        app.http
            .post(app.url("/admin/cleanup/stale"))
            .header("X-API-Key", key)
            .send()
    };
    assert_eq!(cleanup(API_KEY).await.expect("403").status(), 403);
    let response = cleanup(ADMIN_KEY).await.expect("cleanup");
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.expect("json");
    assert_eq!(report["marked_stale"], 1, "{report}");
    assert_eq!(report["by_previous_status"]["queued"], 1);
    assert_eq!(report["older_than_hours"], 72);
    let doc = app.status(&old).await;
    assert_eq!(doc["status"], "failed");
    assert_eq!(doc["is_stale"], true);
    assert!(doc["stale_reason"]
        .as_str()
        .expect("reason")
        .contains("72 h"));
    assert_eq!(app.status(&fresh).await["status"], "queued");
    // A second pass finds nothing; a custom threshold is honoured.
    let again: Value = cleanup(ADMIN_KEY)
        .await
        .expect("again")
        .json()
        .await
        .expect("json");
    assert_eq!(again["marked_stale"], 0);
}
