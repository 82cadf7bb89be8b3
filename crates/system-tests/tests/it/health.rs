//! `GET /api/v1/health` before and after a worker starts.

use std::time::Duration;

use serde_json::{json, Value};

use llmflow_core::db::workers::{self, ProcessKind};

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

async fn health_workers(app: &TestApp) -> Option<u64> {
    let response = app.http.get(app.url("/health")).send().await.ok()?;
    let body: Value = response.json().await.ok()?;
    body["workers"].as_u64()
}

/// Each worker and webhook sender registers itself with what an operator needs to see; a clean
/// stop deregisters; a process that dies turns lost after the timeout and stops counting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_shows_live_processes_and_marks_dead_ones_lost() {
    let lost_after = Duration::from_secs(2);
    let mut app = TestApp::spawn_with(json!({
        "worker_heartbeat_secs": 1,
        "worker_lost_secs": 2,
        "worker_concurrency": 7,
        "webhook_concurrency": 3,
    }))
    .await;
    let both = crate::support::wait_until(
        "both processes registered",
        Duration::from_secs(20),
        || async {
            let mut conn = app.conn().await;
            let rows = workers::list(&mut conn, lost_after).await.ok()?;
            (rows.len() == 2 && rows.iter().all(|w| !w.lost)).then_some(rows)
        },
    )
    .await;
    let worker_name = app
        .worker
        .as_ref()
        .expect("worker")
        .state
        .worker_name
        .clone();
    let worker = both
        .iter()
        .find(|w| w.row.kind == "worker")
        .expect("worker row");
    let webhook = both
        .iter()
        .find(|w| w.row.kind == "webhook")
        .expect("webhook row");
    assert_eq!(worker.row.name, worker_name);
    assert_eq!(worker.row.concurrency, 7);
    assert_eq!(webhook.row.concurrency, 3);
    for row in [&worker.row, &webhook.row] {
        assert_eq!(row.pid, i32::try_from(std::process::id()).expect("pid"));
        assert_eq!(row.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(row.host, workers::host_name());
        assert!(row.host != "unknown" && !row.host.is_empty());
        assert_eq!(row.in_flight, 0);
        assert!(row.last_heartbeat >= row.started_at);
    }
    assert_eq!(health_workers(&app).await, Some(1));

    // A running job shows as in flight on its worker.
    app.emulator.set_latency(Duration::from_millis(1_500));
    let job_id = app.submit_bench("slow", false).await;
    crate::support::wait_until("the job in flight", Duration::from_secs(20), || async {
        let mut conn = app.conn().await;
        let rows = workers::list(&mut conn, lost_after).await.ok()?;
        rows.iter()
            .any(|w| w.row.kind == "worker" && w.row.in_flight == 1)
            .then_some(())
    })
    .await;
    app.wait_for_status(&job_id, "completed", Duration::from_secs(30))
        .await;

    // A clean stop deregisters at once.
    app.webhook.take().expect("webhook").shutdown().await;
    let mut conn = app.conn().await;
    let rows = workers::list(&mut conn, lost_after).await.expect("list");
    assert_eq!(rows.len(), 1, "webhook sender still registered: {rows:?}");
    assert_eq!(rows[0].row.kind, "worker");

    // A crash leaves the row: it turns lost after the timeout and health stops counting it.
    app.worker.take().expect("worker").abort();
    crate::support::wait_until("the dead worker lost", Duration::from_secs(20), || async {
        let mut conn = app.conn().await;
        let rows = workers::list(&mut conn, lost_after).await.ok()?;
        (rows.len() == 1 && rows[0].lost && rows[0].row.name == worker_name).then_some(())
    })
    .await;
    assert_eq!(
        workers::count_live(&mut conn, ProcessKind::Worker, lost_after)
            .await
            .expect("count"),
        0
    );
    assert_eq!(health_workers(&app).await, Some(0));
}
