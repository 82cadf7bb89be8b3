//! Group commit (`db::writes::write_group`): many jobs' step commits and finishes written by one
//! statement, each job's write still conditional on its claim, and one job's bad or refused
//! write never failing the others.

use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use serde_json::json;
use uuid::Uuid;

use llmflow_core::db::jobs::{self, Claim, CommitOutcome, Finish, StepBatch};
use llmflow_core::db::models::{StepRow, UsageRow};
use llmflow_core::db::schema::llm_workflow_jobs as table;
use llmflow_core::db::writes::{write_group, Change, JobWrite, WriteResult};
use llmflow_core::db::{self, deliveries, ConnectOptions};
use llmflow_core::JobStatus;

use crate::support::WorkerTest;

const WORKER: &str = "worker-group";

/// `n` jobs recorded as the API records them, claimed by `WORKER`.
async fn claimed_jobs(app: &WorkerTest, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(app.submit_bench(&format!("job {i}"), |_| {}).await.0);
    }
    let mut conn = app.conn().await;
    let claims = jobs::claim_many(&mut conn, &ids, WORKER, Duration::from_secs(60))
        .await
        .expect("claim");
    assert!(claims
        .iter()
        .all(|(_, claim)| matches!(claim, Claim::Claimed(_))));
    ids
}

fn step(job_id: Uuid, step_id: &str, status: &str) -> StepRow {
    let now = Utc::now();
    StepRow {
        id: Uuid::now_v7(),
        job_id,
        step_id: step_id.to_owned(),
        step_type: "llm".to_owned(),
        position: 0,
        status: status.to_owned(),
        input: Some(json!({"prompt": step_id})),
        output: Some(json!({"text": format!("{step_id} done")})),
        error_kind: None,
        error_message: None,
        attempts: 1,
        input_tokens: 10,
        output_tokens: 5,
        cost_usd: Decimal::new(15, 6),
        started_at: now,
        completed_at: now,
        duration_ms: 3,
    }
}

fn usage(job_id: Uuid, step_id: &str) -> UsageRow {
    UsageRow {
        id: Uuid::now_v7(),
        job_id: Some(job_id),
        step_id: Some(step_id.to_owned()),
        user_id: None,
        provider: "openrouter".to_owned(),
        model: "openai/gpt-4o-mini".to_owned(),
        input_tokens: 10,
        output_tokens: 5,
        total_tokens: 15,
        cached_input_tokens: 0,
        cost_usd: Decimal::new(15, 6),
        table_cost_usd: Decimal::new(15, 6),
        provider_cost_usd: None,
        usage_estimated: false,
        provider_request_id: Some("req".to_owned()),
        duration_ms: 3,
        created_at: Utc::now(),
    }
}

/// A step commit of one LLM step (`status` for its row), with its usage.
fn progress(job_id: Uuid, step_id: &str, status: &str) -> JobWrite {
    JobWrite {
        job_id,
        change: Change::Progress {
            batch: StepBatch {
                steps: vec![step(job_id, step_id, status)],
                usage: vec![usage(job_id, step_id)],
            },
            current_step: Some(step_id.to_owned()),
            planned_delta: 0,
        },
    }
}

/// A finish as `completed`, with one last LLM step and a terminal delivery.
fn finish(job_id: Uuid, step_id: &str) -> JobWrite {
    let result = json!({"answer": 42});
    let delivery = deliveries::new_delivery(
        job_id,
        "http://127.0.0.1:9/hook",
        "workflow.completed",
        json!({"result": result}),
    );
    JobWrite {
        job_id,
        change: Change::Finish(Finish {
            status: JobStatus::Completed,
            result: Some(result),
            error_message: None,
            batch: StepBatch {
                steps: vec![step(job_id, step_id, "completed")],
                usage: vec![usage(job_id, step_id)],
            },
            planned_delta: 0,
            deliveries: vec![delivery],
        }),
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// `SELECT count(…) AS n …` for the job.
async fn count(conn: &mut AsyncPgConnection, sql: &str, job_id: Uuid) -> i64 {
    diesel::sql_query(sql)
        .bind::<diesel::sql_types::Uuid, _>(job_id)
        .get_result::<Count>(conn)
        .await
        .expect("count")
        .n
}

/// The job's step, usage and delivery rows.
async fn rows(conn: &mut AsyncPgConnection, job_id: Uuid) -> (i64, i64, i64) {
    (
        count(
            conn,
            "SELECT count(*) AS n FROM llm_job_steps WHERE job_id = $1",
            job_id,
        )
        .await,
        count(
            conn,
            "SELECT count(*) AS n FROM llm_provider_usage WHERE job_id = $1",
            job_id,
        )
        .await,
        count(
            conn,
            "SELECT count(*) AS n FROM llm_webhook_deliveries WHERE job_id = $1",
            job_id,
        )
        .await,
    )
}

/// Transactions that wrote the jobs' step rows (their distinct `xmin`).
async fn transactions(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> i64 {
    diesel::sql_query(
        "SELECT count(DISTINCT xmin::text) AS n FROM llm_job_steps WHERE job_id = ANY($1)",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(ids)
    .get_result::<Count>(conn)
    .await
    .expect("count")
    .n
}

fn committed(results: &[WriteResult]) -> Vec<String> {
    results
        .iter()
        .map(|r| match r {
            Ok(CommitOutcome::Committed { cancel_requested }) => {
                format!("committed (cancel {cancel_requested})")
            }
            Ok(CommitOutcome::LostClaim) => "lost claim".to_owned(),
            Err(e) => format!("error: {e}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_jobs_commit_in_one_transaction_with_every_row_once() {
    let app = WorkerTest::without_worker(json!({})).await;
    let ids = claimed_jobs(&app, 12).await;
    let mut conn = app.conn().await;
    // A cancellation requested while the jobs run reaches the job's next commit.
    diesel::update(table::table.find(ids[1]))
        .set(table::cancel_requested.eq(true))
        .execute(&mut conn)
        .await
        .expect("update");
    let mut writes: Vec<JobWrite> = ids[..6]
        .iter()
        .map(|id| progress(*id, "analyze", "completed"))
        .collect();
    writes.extend(ids[6..].iter().map(|id| finish(*id, "analyze")));
    let results = write_group(&mut conn, WORKER, &writes).await;
    let mut expected = vec!["committed (cancel false)".to_owned(); 12];
    expected[1] = "committed (cancel true)".to_owned();
    assert_eq!(committed(&results), expected);
    assert_eq!(transactions(&mut conn, &ids).await, 1, "one transaction");
    for (i, id) in ids.iter().enumerate() {
        let deliveries = if i < 6 { 0 } else { 1 };
        assert_eq!(rows(&mut conn, *id).await, (1, 1, deliveries), "job {i}");
        let job = jobs::find_job(&mut conn, *id)
            .await
            .expect("query")
            .expect("job");
        assert_eq!(job.steps_completed, 1);
        assert_eq!(job.total_input_tokens, 10);
        assert_eq!(job.total_cost_usd, Decimal::new(15, 6));
        if i < 6 {
            assert_eq!(job.status, "processing");
            assert_eq!(job.current_step.as_deref(), Some("analyze"));
        } else {
            assert_eq!(job.status, "completed");
            assert_eq!(job.current_step, None);
            assert_eq!(job.result, Some(json!({"answer": 42})));
            assert!(job.completed_at.is_some());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_claim_and_a_step_recorded_before_write_nothing_of_their_jobs_alone() {
    let app = WorkerTest::without_worker(json!({})).await;
    let ids = claimed_jobs(&app, 4).await;
    let mut conn = app.conn().await;
    // Job 1 was taken over by another worker; job 2 already has `analyze` recorded.
    diesel::update(table::table.find(ids[1]))
        .set(table::claimed_by.eq("worker-other"))
        .execute(&mut conn)
        .await
        .expect("update");
    let first = write_group(
        &mut conn,
        WORKER,
        &[progress(ids[2], "analyze", "completed")],
    )
    .await;
    assert_eq!(committed(&first), ["committed (cancel false)"]);

    let writes = [
        progress(ids[0], "analyze", "completed"),
        progress(ids[1], "analyze", "completed"),
        finish(ids[2], "analyze"),
        finish(ids[3], "analyze"),
    ];
    let results = write_group(&mut conn, WORKER, &writes).await;
    assert_eq!(
        committed(&results),
        [
            "committed (cancel false)",
            "lost claim",
            "lost claim",
            "committed (cancel false)"
        ]
    );
    assert_eq!(rows(&mut conn, ids[0]).await, (1, 1, 0));
    assert_eq!(
        rows(&mut conn, ids[1]).await,
        (0, 0, 0),
        "nothing of a lost claim"
    );
    assert_eq!(
        rows(&mut conn, ids[2]).await,
        (1, 1, 0),
        "the step and its usage once, no ending"
    );
    assert_eq!(rows(&mut conn, ids[3]).await, (1, 1, 1));
    let twice = jobs::find_job(&mut conn, ids[2])
        .await
        .expect("query")
        .expect("job");
    assert_eq!(twice.status, "processing");
    assert_eq!(twice.steps_completed, 1, "counted once");
    assert_eq!(twice.total_input_tokens, 10, "paid once");
    let other = jobs::find_job(&mut conn, ids[1])
        .await
        .expect("query")
        .expect("job");
    assert_eq!(other.steps_completed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_row_fails_its_own_job_only() {
    let app = WorkerTest::without_worker(json!({})).await;
    let ids = claimed_jobs(&app, 5).await;
    let mut conn = app.conn().await;
    // Job 3's step breaks the table's CHECK on the status: PostgreSQL refuses the statement.
    let writes: Vec<JobWrite> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let status = if i == 3 { "exploded" } else { "completed" };
            progress(*id, "analyze", status)
        })
        .collect();
    let results = write_group(&mut conn, WORKER, &writes).await;
    for (i, result) in results.iter().enumerate() {
        if i == 3 {
            let error = result.as_ref().expect_err("the bad row's job fails");
            assert!(format!("{error:?}").contains("CheckViolation"), "{error:?}");
            assert_eq!(rows(&mut conn, ids[i]).await, (0, 0, 0));
        } else {
            assert_eq!(
                result.as_ref().ok(),
                Some(&CommitOutcome::Committed {
                    cancel_requested: false
                }),
                "job {i}"
            );
            assert_eq!(rows(&mut conn, ids[i]).await, (1, 1, 0), "job {i}");
        }
    }
    let job = jobs::find_job(&mut conn, ids[3])
        .await
        .expect("query")
        .expect("job");
    assert_eq!(
        (job.status.as_str(), job.steps_completed),
        ("processing", 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_written_twice_in_a_group_keeps_both_writes() {
    // Parallel branches of one job commit at the same time.
    let app = WorkerTest::without_worker(json!({})).await;
    let ids = claimed_jobs(&app, 2).await;
    let mut conn = app.conn().await;
    let writes = [
        progress(ids[0], "left", "completed"),
        progress(ids[1], "left", "completed"),
        progress(ids[0], "right", "completed"),
    ];
    let results = write_group(&mut conn, WORKER, &writes).await;
    assert_eq!(
        committed(&results),
        ["committed (cancel false)"; 3],
        "{results:?}"
    );
    assert_eq!(rows(&mut conn, ids[0]).await, (2, 2, 0));
    let job = jobs::find_job(&mut conn, ids[0])
        .await
        .expect("query")
        .expect("job");
    assert_eq!(job.steps_completed, 2);
    assert_eq!(job.total_input_tokens, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_commit_works_with_statements_unnamed() {
    // DATABASE_STATEMENT_CACHE=false: every execution parses its statement again (as behind a
    // transaction-mode pooler); the same statement runs again on the same connection.
    let app = WorkerTest::without_worker(json!({})).await;
    let ids = claimed_jobs(&app, 4).await;
    let url = {
        use secrecy::ExposeSecret;
        app.config.database_url.expose_secret().to_owned()
    };
    let mut conn = db::establish(
        &url,
        ConnectOptions {
            statement_cache: false,
            ..ConnectOptions::default()
        },
    )
    .await
    .expect("connection");
    for step_id in ["analyze", "refine"] {
        let writes: Vec<JobWrite> = ids
            .iter()
            .map(|id| progress(*id, step_id, "completed"))
            .collect();
        let results = write_group(&mut conn, WORKER, &writes).await;
        assert_eq!(committed(&results), ["committed (cancel false)"; 4]);
    }
    let finishes: Vec<JobWrite> = ids.iter().map(|id| finish(*id, "summary")).collect();
    let results = write_group(&mut conn, WORKER, &finishes).await;
    assert_eq!(committed(&results), ["committed (cancel false)"; 4]);
    for id in &ids {
        assert_eq!(rows(&mut conn, *id).await, (3, 3, 1));
    }
    let statement: Vec<String> =
        diesel::sql_query("SELECT name AS n FROM pg_prepared_statements WHERE name <> ''")
            .load::<Named>(&mut conn)
            .await
            .expect("prepared statements")
            .into_iter()
            .map(|n| n.n)
            .collect();
    assert!(statement.is_empty(), "nothing kept prepared: {statement:?}");
}

#[derive(QueryableByName)]
struct Named {
    #[diesel(sql_type = Text)]
    n: String,
}
