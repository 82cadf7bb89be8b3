//! A run interrupted by the database going away is no fault of the job: the job is handed
//! back as soon as the database answers, and runs again, instead of failing or waiting out the
//! claim timeout.

use std::time::Duration;

use diesel_async::RunQueryDsl;
use serde_json::json;

use crate::support::{wait_until, TestApp};

async fn execute(app: &TestApp, sql: &str) {
    let mut conn = app.conn().await;
    diesel::sql_query(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_the_database_interrupts_is_handed_back_not_failed() {
    // A claim timeout far beyond the test: only the hand-back can make the job run again.
    let mut app = TestApp::spawn_api(json!({"claim_timeout_secs": 600})).await;
    let job_id = app
        .submit_bench("interrupt me.\nEMULATOR_SCORE: 90", false)
        .await;
    let id: uuid::Uuid = job_id.parse().expect("uuid");
    // The worker's first read of the job's workflow definition fails, as it would with the
    // database restarting: the table it reads is not there.
    execute(
        &app,
        "ALTER TABLE llm_workflow_definitions RENAME TO llm_workflow_definitions_away",
    )
    .await;
    app.start_worker().await;
    wait_until(
        "the interrupted job claimed again after its hand-back",
        Duration::from_secs(30),
        || async {
            let doc = app.status(&job_id).await;
            assert_ne!(doc["status"], "failed", "interrupted, not failed: {doc}");
            let mut conn = app.conn().await;
            let job = llmflow_core::db::jobs::find_job(&mut conn, id)
                .await
                .expect("job row")
                .expect("the job exists");
            (job.attempts >= 2).then_some(())
        },
    )
    .await;
    execute(
        &app,
        "ALTER TABLE llm_workflow_definitions_away RENAME TO llm_workflow_definitions",
    )
    .await;
    let status = app
        .wait_for_status(&job_id, "completed", Duration::from_secs(30))
        .await;
    assert_eq!(status["result"]["branch"], "then");
    assert_eq!(
        app.emulator.stats().calls,
        2,
        "each LLM step ran once: the interrupted runs stopped before any step"
    );
}
