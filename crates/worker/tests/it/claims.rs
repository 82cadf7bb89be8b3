//! Claims: a job is claimed by one worker at a time, whether it is claimed twice, in a batch
//! that names it twice, or pushed twice.

use std::time::Duration;

use serde_json::json;

use llmflow_core::db::jobs::{self, Claim};
use llmflow_core::queue;

use crate::support::WorkerTest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_claim_of_a_claimed_job_does_nothing() {
    let app = WorkerTest::without_worker(json!({})).await;
    let job_id = app.submit_bench("claim me", |_| {}).await.0;
    let mut conn = app.conn().await;
    let timeout = Duration::from_secs(60);
    let first = jobs::claim(&mut conn, job_id, "worker-a", timeout)
        .await
        .expect("claim");
    assert!(matches!(first, Claim::Claimed(_)), "{first:?}");
    let second = jobs::claim(&mut conn, job_id, "worker-b", timeout)
        .await
        .expect("claim");
    assert!(matches!(second, Claim::NotClaimable), "{second:?}");
    let job = jobs::find_job(&mut conn, job_id)
        .await
        .expect("query")
        .expect("row");
    assert_eq!(job.claimed_by.as_deref(), Some("worker-a"));
    assert_eq!(job.attempts, 1);
    assert_eq!(job.status, "processing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_claim_claims_each_job_once() {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use llmflow_core::db::schema::llm_workflow_jobs as table;

    let app = WorkerTest::without_worker(json!({})).await;
    let mut ids = Vec::new();
    for text in ["one", "two", "three"] {
        ids.push(app.submit_bench(text, |_| {}).await.0);
    }
    let mut conn = app.conn().await;
    // A cancellation requested while the job was still waiting.
    diesel::update(table::table.find(ids[2]))
        .set(table::cancel_requested.eq(true))
        .execute(&mut conn)
        .await
        .expect("update");
    let timeout = Duration::from_secs(60);
    let batch = [ids[0], ids[1], ids[2], ids[0]];
    let claims = jobs::claim_many(&mut conn, &batch, "worker-a", timeout)
        .await
        .expect("claim");
    let kinds: Vec<&str> = claims
        .iter()
        .map(|(_, claim)| match claim {
            Claim::Claimed(_) => "claimed",
            Claim::Cancelled => "cancelled",
            Claim::NotClaimable => "not claimable",
        })
        .collect();
    assert_eq!(
        kinds,
        ["claimed", "claimed", "cancelled", "not claimable"],
        "an id given twice is claimed once"
    );
    assert_eq!(
        claims.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        batch,
        "one answer per id, in order"
    );
    let again = jobs::claim_many(&mut conn, &ids, "worker-b", timeout)
        .await
        .expect("claim");
    assert!(
        again
            .iter()
            .all(|(_, claim)| matches!(claim, Claim::NotClaimable)),
        "{again:?}"
    );
    for (id, status) in [
        (ids[0], "processing"),
        (ids[1], "processing"),
        (ids[2], "cancelled"),
    ] {
        let job = jobs::find_job(&mut conn, id)
            .await
            .expect("query")
            .expect("row");
        assert_eq!(job.status, status);
        if status == "processing" {
            assert_eq!(job.claimed_by.as_deref(), Some("worker-a"));
            assert_eq!(job.attempts, 1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_pushed_twice_runs_once() {
    // One job at a time, in the order pushed: when the job behind the duplicate has finished,
    // the duplicate has been taken and handled.
    let mut app = WorkerTest::without_worker(json!({"worker_concurrency": 1})).await;
    let twice = app.submit_bench("twice.\nEMULATOR_SCORE: 20", |_| {}).await;
    llmflow_testkit::jobs::push(&app, twice, 5, &queue::repush_task_id(twice)).await;
    let behind = app
        .submit_bench("behind.\nEMULATOR_SCORE: 20", |_| {})
        .await;
    app.start_worker().await;
    app.wait_for_job(behind, "completed", Duration::from_secs(30))
        .await;

    let job = app
        .wait_for_job(twice, "completed", Duration::from_secs(5))
        .await;
    assert_eq!(job.attempts, 1, "claimed once");
    assert_eq!(app.emulator.stats().calls, 2, "one LLM call per job");
    let mut conn = app.conn().await;
    let usage = jobs::job_usage(&mut conn, twice.0).await.expect("usage");
    assert_eq!(usage.len(), 1, "{usage:?}");
    let steps = jobs::job_steps(&mut conn, twice.0).await.expect("steps");
    let ids: Vec<&str> = steps.iter().map(|s| s.step_id.as_str()).collect();
    assert_eq!(ids, ["analyze", "extract", "route", "fallback"]);
}
