//! Priority under backlog: with the workers saturated and 500 priority-0 jobs waiting, 50
//! priority-10 jobs submitted after them start first.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures::StreamExt;
use serde_json::json;

use llmflow_core::db::schema::llm_workflow_jobs as jobs;

use crate::support::{wait_until, TestApp};

async fn submit_many(app: &TestApp, count: usize, priority: i16) {
    let mut pending = futures::stream::iter(0..count)
        .map(|i| {
            app.submit(
                json!({"workflow_name": "bench_pipeline", "priority": priority,
                              "input_data": {"text": format!("job {i}\nEMULATOR_SCORE: 10")}}),
            )
        })
        .buffer_unordered(16);
    while let Some(response) = pending.next().await {
        assert_eq!(response.status(), 202);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_priority_jobs_overtake_a_low_priority_backlog() {
    let mut app = TestApp::spawn_api(json!({"worker_concurrency": 4})).await;
    app.emulator.set_latency(Duration::from_millis(100));
    // The backlog is waiting before the worker starts, so the test does not depend on how fast
    // this machine can submit; the worker is busy with it when the urgent jobs arrive.
    submit_many(&app, 500, 0).await;
    app.start_worker().await;
    wait_until(
        "the worker to be saturated",
        Duration::from_secs(30),
        || async { (app.emulator.stats().in_flight >= 4).then_some(()) },
    )
    .await;
    submit_many(&app, 50, 10).await;
    type Row = (i16, DateTime<Utc>, Option<DateTime<Utc>>);
    let rows: Vec<Row> = wait_until("every job to start", Duration::from_secs(180), || async {
        let mut conn = app.conn().await;
        let rows: Vec<Row> = jobs::table
            .select((jobs::priority, jobs::created_at, jobs::started_at))
            .load(&mut conn)
            .await
            .expect("rows");
        rows.iter().all(|r| r.2.is_some()).then_some(rows)
    })
    .await;
    let of = |priority: i16| rows.iter().filter(move |r| r.0 == priority);
    let mean_wait = |priority: i16| {
        let waits: Vec<f64> = of(priority)
            .filter_map(|r| r.2.map(|started| (started - r.1).num_milliseconds() as f64))
            .collect();
        waits.iter().sum::<f64>() / waits.len() as f64
    };
    let (high, low) = (mean_wait(10), mean_wait(0));
    let last_start = |priority: i16| of(priority).filter_map(|r| r.2).max();
    assert!(
        last_start(10) < last_start(0),
        "the priority-0 backlog was gone before the priority-10 jobs ran"
    );
    assert!(
        high * 5.0 <= low,
        "mean wait: priority 10 {high} ms, priority 0 {low} ms"
    );
    tracing::info!(high_ms = high, low_ms = low, "mean queue waits");
}
