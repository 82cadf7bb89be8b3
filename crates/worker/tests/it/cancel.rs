//! A cancellation request reaches a running job at its next step boundary: the step in flight
//! finishes and is kept (and paid for once), nothing after it runs.

use std::time::Duration;

use serde_json::json;

use llmflow_core::db::jobs::{self, CancelOutcome};
use llmflow_emulator::ScriptStep;
use llmflow_testkit::wait_until;

use crate::support::WorkerTest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_request_stops_the_job_before_its_next_step() {
    // A long claim timeout: the heartbeat (every 20 s) cannot be what stops the job, and no
    // announcement is published, so only the check between steps can.
    let app = WorkerTest::spawn(json!({"claim_timeout_secs": 60})).await;
    app.emulator
        .push_script(vec![ScriptStep::Delay(Duration::from_secs(3))]);
    // A high score would take the `refine` branch: a second LLM call.
    let job_id = app
        .submit_bench("Stop me.\nEMULATOR_SCORE: 80", |_| {})
        .await;
    wait_until(
        "the first LLM call in flight",
        Duration::from_secs(20),
        || async { (app.emulator.stats().in_flight == 1).then_some(()) },
    )
    .await;
    let mut conn = app.conn().await;
    let outcome = jobs::cancel(&mut conn, job_id.0).await.expect("cancel");
    assert_eq!(outcome, CancelOutcome::Requested);
    let job = app
        .wait_for_job(job_id, "cancelled", Duration::from_secs(20))
        .await;
    assert_eq!(job.error_message.as_deref(), Some("cancelled"));
    assert_eq!(app.emulator.stats().calls, 1, "refine never called");
    let steps = jobs::job_steps(&mut conn, job_id.0).await.expect("steps");
    let analyze = steps
        .iter()
        .find(|s| s.step_id == "analyze")
        .expect("the step in flight is kept");
    assert_eq!(analyze.status, "completed");
    assert!(steps.iter().all(|s| s.step_id != "refine"), "{steps:?}");
    let usage = jobs::job_usage(&mut conn, job_id.0).await.expect("usage");
    assert_eq!(usage.len(), 1, "the finished call is recorded once");
}
