//! `GET /api/v1/status/{job_id}/events` with no job running: keep-alives, and the end of the
//! stream after the terminal event.

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;

use crate::support::{TestApp, API_KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_stream_sends_keep_alives_and_a_cancelled_job_ends_it() {
    // No worker: the job stays queued and its stream stays quiet.
    let app = TestApp::spawn_api(json!({"sse_keepalive_secs": 1})).await;
    let job_id = app.submit_bench("waiting", false).await;
    let response = app
        .http
        .get(app.url(&format!("/status/{job_id}/events")))
        .header("X-API-Key", API_KEY)
        .send()
        .await
        .expect("events");
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains(": keep-alive") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("bytes within 10 s")
            .expect("open")
            .expect("chunk");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event: connected"), "{seen}");
    let cancelled = app
        .http
        .delete(app.url(&format!("/workflow/{job_id}")))
        .header("X-API-Key", API_KEY)
        .send()
        .await
        .expect("cancel");
    assert_eq!(cancelled.status(), 200);
    // The stream ends after the terminal event.
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), body.next())
        .await
        .expect("the stream ends within 10 s")
    {
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
    }
    assert!(seen.contains("event: job_cancelled"), "{seen}");
}
