//! Submitting: authentication, validation, the 202 answer and the job row.

use serde_json::{json, Value};

use crate::support::{TestApp, API_KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_answers_202_and_records_the_job() {
    let app = TestApp::spawn_api(json!({})).await;
    let response = app
        .submit(json!({"workflow_name": "bench_pipeline", "input_data": {"text": "hello"}, "priority": 7,
                       "user_id": "0b9f5c4e-6c7e-4a8e-9a57-8a1f3f0e2d11"}))
        .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.expect("json");
    let job_id = body["job_id"].as_str().expect("job_id");
    assert_eq!(body["status"], "queued");
    assert_eq!(body["queue_task_id"], job_id);
    assert_eq!(body["status_url"], format!("/api/v1/status/{job_id}"));
    assert!(body["estimated_wait_seconds"].is_u64());

    let mut conn = app.conn().await;
    let job = llmflow_core::db::jobs::find_job(&mut conn, job_id.parse().expect("uuid"))
        .await
        .expect("query")
        .expect("job row exists");
    assert_eq!(job.status, "queued");
    assert_eq!(job.priority, 7);
    assert_eq!(job.input_data, json!({"text": "hello"}));
    assert_eq!(job.queue_task_id.as_deref(), Some(job_id));
    assert_eq!(job.workflow_name, "bench_pipeline");
    assert_eq!(job.workflow_hash.len(), 64);

    let status = app.status(job_id).await;
    assert_eq!(status["status"], "queued");
    assert_eq!(status["progress"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_envelope() {
    let app = TestApp::spawn_api(json!({})).await;
    let valid = json!({"workflow_name": "bench_pipeline", "input_data": {"text": "x"}});

    // No key, a wrong key.
    for key in [None, Some("wrong")] {
        let mut request = app.http.post(app.url("/workflow")).json(&valid);
        if let Some(key) = key {
            request = request.header("X-API-Key", key);
        }
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), 401, "key {key:?}");
        let body: Value = response.json().await.expect("json");
        assert!(body["detail"].is_string(), "{body}");
    }

    // Unknown workflow.
    let response = app
        .submit(json!({"workflow_name": "nope", "input_data": {}}))
        .await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.expect("json");
    assert!(body["detail"].as_str().expect("detail").contains("nope"));

    // 422s, each naming the field.
    for (body, field) in [
        (
            json!({"workflow_name": "bench_pipeline", "input_data": {"text": "x"}, "priority": 11}),
            "priority",
        ),
        (json!({"workflow_name": "bench_pipeline"}), "input_data"),
        (
            json!({"workflow_name": "bench_pipeline", "input_data": "text"}),
            "input_data",
        ),
        (
            json!({"workflow_name": "bench_pipeline", "input_data": [1, 2]}),
            "input_data",
        ),
        (
            json!({"workflow_name": "bench_pipeline", "input_data": {}}),
            "input_data.text",
        ),
        (
            json!({"workflow_name": "bench_pipeline", "input_data": {"text": 5}}),
            "input_data.text",
        ),
        (
            json!({"workflow_name": "bench_pipeline", "input_data": {"text": "x"}, "webhook_url": "file:///etc/passwd"}),
            "webhook_url",
        ),
        // PostgreSQL cannot store the NUL character: refused, not a 500 at the insert.
        (
            json!({"workflow_name": "bench_pipeline", "input_data": {"text": "a\u{0}b"}}),
            "input_data.text",
        ),
    ] {
        let response = app.submit(body.clone()).await;
        assert_eq!(response.status(), 422, "{body}");
        let envelope: Value = response.json().await.expect("json");
        assert_eq!(envelope["detail"], "validation failed");
        let fields: Vec<&str> = envelope["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "{body} → {envelope}");
    }

    // Not JSON at all.
    let response = app
        .http
        .post(app.url("/workflow"))
        .header("X-API-Key", API_KEY)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["errors"][0]["field"], "body");

    // Status of a job that does not exist, and of a non-UUID.
    for id in ["0b9f5c4e-6c7e-4a8e-9a57-8a1f3f0e2d11", "not-a-uuid"] {
        let response = app
            .http
            .get(app.url(&format!("/status/{id}")))
            .header("X-API-Key", API_KEY)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 404, "{id}");
    }

    // Unknown route.
    let response = app
        .http
        .get(format!("{}/nowhere", app.address))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.expect("json");
    assert!(body["detail"].is_string());
}
