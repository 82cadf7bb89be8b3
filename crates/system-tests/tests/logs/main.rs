//! Per-step JSON log lines, read from what the processes actually log. A test binary of its own:
//! the log subscriber is one per process, installed here (JSON, into a buffer) before the
//! services start.

#[path = "../it/support.rs"]
#[allow(unused_imports, dead_code)]
mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use rust_decimal::Decimal;
use serde_json::Value;

use llmflow_core::db::schema::llm_job_steps as steps;

use support::TestApp;

/// Every line the subscriber writes, kept for the test to read.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    /// The JSON lines logged so far with this `message` for this job.
    fn events(&self, message: &str, job_id: &str) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().expect("log buffer").clone()).expect("utf-8");
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["message"] == message && v["job_id"] == job_id)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_step_logs_started_and_finished_with_duration_tokens_and_cost() {
    let lines = Lines::default();
    let writer = lines.clone();
    // The format production uses (`LOG_FORMAT=json`, as `telemetry::init` sets it up).
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(move || writer.clone())
        .with_env_filter("info")
        .init();
    let app = TestApp::spawn().await;
    let job_id = app.submit_bench("log lines", false).await;
    app.wait_for_status(&job_id, "completed", Duration::from_secs(30))
        .await;

    let mut conn = app.conn().await;
    let rows: Vec<(String, String, i64, i64, Decimal)> = steps::table
        .filter(steps::job_id.eq(uuid::Uuid::parse_str(&job_id).expect("uuid")))
        .select((
            steps::step_id,
            steps::status,
            steps::input_tokens,
            steps::output_tokens,
            steps::cost_usd,
        ))
        .load(&mut conn)
        .await
        .expect("steps");
    assert!(rows.len() >= 3, "{rows:?}");
    let finished = support::wait_until(
        "every step's finish logged",
        Duration::from_secs(10),
        || async {
            let events = lines.events("step finished", &job_id);
            (events.len() == rows.len()).then_some(events)
        },
    )
    .await;
    let started = lines.events("step started", &job_id);
    for (step_id, status, input, output, cost) in &rows {
        let start = started
            .iter()
            .find(|e| e["step_id"] == step_id.as_str())
            .unwrap_or_else(|| panic!("no `step started` for {step_id}"));
        assert_eq!(start["workflow_name"], "bench_pipeline");
        assert!(start["step_kind"].is_string());
        let end = finished
            .iter()
            .find(|e| e["step_id"] == step_id.as_str())
            .unwrap_or_else(|| panic!("no `step finished` for {step_id}"));
        assert_eq!(end["workflow_name"], "bench_pipeline");
        assert_eq!(end["status"], status.as_str());
        assert!(
            end["duration_ms"].as_i64().is_some_and(|ms| ms >= 0),
            "{end}"
        );
        assert_eq!(end["input_tokens"].as_i64(), Some(*input), "{end}");
        assert_eq!(end["output_tokens"].as_i64(), Some(*output), "{end}");
        let logged: Decimal = end["cost_usd"]
            .as_str()
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("cost_usd: {end}"));
        assert_eq!(logged, *cost, "{end}");
    }
    // The llm step used tokens and cost something: the line carries them.
    assert!(finished
        .iter()
        .any(|e| e["input_tokens"].as_i64() > Some(0) && e["cost_usd"].as_str() != Some("0")));
}
