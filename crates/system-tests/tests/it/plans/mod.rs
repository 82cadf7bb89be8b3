//! The plan of every statement the hot path, the reconciler and the maintenance pass run, read
//! from PostgreSQL while it runs llmflow's own query functions (so the audit follows the code,
//! foreign-key checks and cascades included): `auto_explain` is loaded into the test's session
//! with `log_level = notice`, so each executed statement's plan comes back to the client as a
//! notice, in JSON.
//!
//! - On a migrated, never-analysed database, and again after loading tens of thousands of
//!   finished jobs (with their steps, usage rows, deliveries and attempts) and `ANALYZE`, with
//!   generic plans forced (what a statement kept prepared on a connection may end up with) and
//!   with custom plans forced: no statement may read a large table sequentially, every statement
//!   addressed by id must reach its row through the primary key, and the reconciler's and
//!   maintenance queries must use the partial indexes that hold unfinished work only.
//! - After hundreds of jobs have run and finished, a second reconciler pass reads a handful of
//!   pages: the finished jobs' dead entries in the partial index are skipped, not walked.

mod audit;
mod load;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use serde_json::json;
use uuid::Uuid;

use llmflow_core::db::attempt_claims::{self, ClaimRequest};
use llmflow_core::db::attempt_records::{self, AttemptRecord};
use llmflow_core::db::deliveries::{self, AttemptOutcome};
use llmflow_core::db::jobs::{self, Finish, StepBatch};
use llmflow_core::db::models::{AttemptRow, NewJob, StepRow, UsageRow};
use llmflow_core::db::workers::{self, ProcessKind, Registration};
use llmflow_core::db::writes::{self, Change, JobWrite};
use llmflow_core::db::{self, admin, retention, ConnectOptions};
use llmflow_core::JobStatus;
use llmflow_testkit::database::fresh_database;
use llmflow_testkit::wait_until;

use audit::{Audited, Plans, Rules};

const WORKER: &str = "plan-audit-worker";
const CLAIM_TIMEOUT: Duration = Duration::from_secs(300);
/// Finished jobs loaded before the analysed runs: enough that reading a table whole is costed
/// far above reaching a few rows through an index.
const FINISHED_JOBS: i64 = 30_000;

/// Which index each statement must use. The claims and the group commits (the worker's, and the
/// webhook sender's claims and records) are held to the primary key once the table has
/// statistics: before its first `ANALYZE`, PostgreSQL takes a
/// never-analysed table for 10 pages, and a generic plan of `id = ANY($1)` (an array it guesses
/// at 10 ids) or of a join to `unnest($2::uuid[])` is a sequential scan of those; autovacuum's
/// first `ANALYZE` of the table invalidates that plan.
fn rules(analysed: bool) -> Rules {
    let by_id_once_analysed: &[&str] = if analysed {
        &["worker: claim", "worker: step commit", "worker: finish"]
    } else {
        &[]
    };
    let deliveries_by_id_once_analysed: &[&str] = if analysed {
        &["webhook: claim attempt", "webhook: record attempt"]
    } else {
        &[]
    };
    Rules::default()
        .only(
            by_id_once_analysed,
            "llm_workflow_jobs",
            "llm_workflow_jobs_pkey",
        )
        // The job row, by id: heartbeats, the status read, the webhook claim's reads of the job,
        // every foreign-key check.
        .only(
            &[
                "worker: heartbeat",
                "api: status read",
                "webhook: claim attempt",
                "webhook: record attempt",
            ],
            "llm_workflow_jobs",
            "llm_workflow_jobs_pkey",
        )
        .only(
            deliveries_by_id_once_analysed,
            "llm_webhook_deliveries",
            "llm_webhook_deliveries_pkey",
        )
        .uses(
            "reconciler: job candidates",
            "Index Scan using idx_llm_workflow_jobs_unfinished",
        )
        // Either index of running jobs' entries: the unfinished one, or (status, created_at, id)
        // for `status = 'processing'`; read in order, so dead entries get marked and skipped.
        .uses(
            "reconciler: release lost claims",
            "Index Scan using idx_llm_workflow_jobs_",
        )
        .uses(
            "reconciler: release lost senders' attempts",
            "idx_llm_webhook_deliveries_owed",
        )
        .uses(
            "maintenance: stale cleanup",
            "idx_llm_workflow_jobs_unfinished",
        )
        .uses(
            "reconciler: due deliveries",
            "Index Scan using idx_llm_webhook_deliveries_owed",
        )
        .uses(
            "submit: idempotency lookup",
            "idx_llm_workflow_jobs_idempotency",
        )
        .uses(
            "maintenance: retention sweep",
            "idx_llm_workflow_jobs_completed_at",
        )
        .uses("admin: dead letters", "idx_llm_webhook_deliveries_dead")
}

#[tokio::test]
async fn every_hot_and_maintenance_query_reaches_its_rows_through_an_index() {
    let url = fresh_database().await;

    // A migrated database nobody has analysed yet: id-addressed statements use the primary
    // key whatever plan they get (a wrong generic plan stays on a connection for good).
    let mut empty = Audited::open(&url, "force_generic_plan").await;
    let plans = hot_path(&mut empty).await;
    rules(false).check_indexes("empty database, generic plans", &plans, false);
    // The worker's and the sender's sessions avoid sequential scans: there the claims and the
    // group commits reach their rows by primary key before any `ANALYZE` too.
    let mut services = Audited::open_as_services(&url, "force_generic_plan").await;
    let plans = hot_path(&mut services).await;
    rules(true).check_indexes(
        "empty database, generic plans, the services' sessions",
        &plans,
        false,
    );

    load::finished_jobs(&url, FINISHED_JOBS).await;
    let mut report = String::new();
    for mode in ["force_generic_plan", "force_custom_plan"] {
        let mut audited = Audited::open(&url, mode).await;
        let plans = hot_path(&mut audited).await;
        let what = format!("{FINISHED_JOBS} finished jobs, {mode}");
        rules(true).check_indexes(&what, &plans, true);
        rules(true).check_no_full_scans(&what, &plans, &load::LARGE_TABLES);
        report.push_str(&format!("## {what}\n{}\n", plans.shapes()));
    }
    // The shapes, for BENCHMARKS.md and for whoever reads a failure.
    println!("{report}");
}

#[tokio::test]
async fn the_services_sessions_avoid_sequential_scans_unless_behind_a_pooler() {
    let url = fresh_database().await;
    let unnamed = ConnectOptions {
        statement_cache: false,
        ..ConnectOptions::default()
    };
    for (options, expected) in [
        (ConnectOptions::default(), "on"),
        (ConnectOptions::default().avoiding_seq_scans(), "off"),
        // Behind a transaction-mode pooler a session setting would outlive the client.
        (unnamed.avoiding_seq_scans(), "on"),
    ] {
        let mut conn = db::establish(&url, options).await.expect("connect");
        let setting: String = diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
            "current_setting('enable_seqscan')",
        ))
        .get_result(&mut conn)
        .await
        .expect("enable_seqscan");
        assert_eq!(setting, expected, "{options:?}");
    }
}

#[tokio::test]
async fn finished_jobs_leave_the_reconcilers_scan() {
    let url = fresh_database().await;
    load::finished_jobs(&url, 3_000).await;
    let mut plain = Audited::open(&url, "auto").await;
    // Jobs run as the worker runs them: each leaves dead versions of its row behind in the
    // partial index of unfinished jobs (the inserted row, the claimed row).
    const JOBS: usize = 400;
    for _ in 0..JOBS {
        let id = insert_job(&mut plain.conn, None).await;
        claim(&mut plain.conn, id).await;
        commit_step(&mut plain.conn, id).await;
        finish(&mut plain.conn, id).await;
    }
    plain.drain();
    // A pass marks the dead entries it meets in the index once those row versions are dead to
    // every transaction of the cluster (a long one anywhere, such as another test's bulk load,
    // delays that); from then on a pass skips them without reading the rows: what is left to
    // read is the index's few leaf pages, however many jobs have finished.
    let analysed = Arc::new(tokio::sync::Mutex::new(Audited::open_analysing(&url).await));
    let passes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let pages = wait_until(
        "a reconciler pass that skips the finished jobs' entries",
        Duration::from_secs(120),
        || {
            let (analysed, passes) = (analysed.clone(), passes.clone());
            async move {
                let mut analysed = analysed.lock().await;
                let candidates = jobs::dispatch_candidates(
                    &mut analysed.conn,
                    Duration::ZERO,
                    CLAIM_TIMEOUT,
                    None,
                    500,
                )
                .await
                .expect("candidates");
                assert!(
                    candidates.is_empty(),
                    "no job is unfinished: {candidates:?}"
                );
                let labelled = analysed.take("reconciler pass");
                let pages = labelled.buffers();
                let mut plans = Plans::default();
                plans.add(labelled);
                let shape = plans.shapes();
                assert!(
                    shape.contains("Index Scan using idx_llm_workflow_jobs_unfinished"),
                    "the pass reads the unfinished jobs' index in order: {shape}"
                );
                passes.lock().expect("passes").push(pages);
                (pages <= 8).then_some(pages)
            }
        },
    )
    .await;
    println!(
        "reconciler passes over {JOBS} finished jobs, pages touched: {:?}",
        passes.lock().expect("passes")
    );
    assert!(pages <= 8);
}

/// Runs, in order, what a job meets on its way and what the background passes do, one call of
/// llmflow's own query functions per label, and returns the plans each produced.
async fn hot_path(audited: &mut Audited) -> Plans {
    let conn = &mut audited.conn;
    let key = format!("audit-{}", Uuid::now_v7());
    let mut plans = Plans::default();

    jobs::find_by_idempotency_key(conn, &key)
        .await
        .expect("idempotency lookup");
    plans.add(audited.take("submit: idempotency lookup"));
    let conn = &mut audited.conn;
    let id = insert_job(conn, Some(key)).await;
    plans.add(audited.take("submit: insert job"));

    claim(&mut audited.conn, id).await;
    plans.add(audited.take("worker: claim"));
    let alive = jobs::heartbeat(&mut audited.conn, id, WORKER)
        .await
        .expect("heartbeat");
    assert_eq!(alive, Some(false), "the job is ours, not cancelled");
    plans.add(audited.take("worker: heartbeat"));
    commit_step(&mut audited.conn, id).await;
    plans.add(audited.take("worker: step commit"));
    let delivery = finish(&mut audited.conn, id).await;
    plans.add(audited.take("worker: finish"));

    let conn = &mut audited.conn;
    jobs::find_job(conn, id)
        .await
        .expect("status")
        .expect("job");
    jobs::job_steps(conn, id).await.expect("steps");
    deliveries::terminal_of_job(conn, id)
        .await
        .expect("terminal delivery");
    plans.add(audited.take("api: status read"));

    let request = ClaimRequest {
        delivery_id: delivery,
        attempt: 1,
    };
    let claimed =
        attempt_claims::claim_attempts(&mut audited.conn, &[request], CLAIM_TIMEOUT, WORKER)
            .await
            .remove(0)
            .expect("claim attempt")
            .expect("the attempt is due");
    plans.add(audited.take("webhook: claim attempt"));
    let attempt = AttemptRow {
        id: Uuid::now_v7(),
        delivery_id: delivery,
        job_id: id,
        webhook_url: claimed.delivery.url.clone(),
        attempt_number: 1,
        trigger: claimed.trigger.clone(),
        status_code: Some(200),
        success: true,
        error_class: None,
        error_message: None,
        response_body: None,
        remote_addr: None,
        duration_ms: 3,
        next_retry_at: None,
        attempted_at: Utc::now(),
    };
    let record = AttemptRecord {
        row: attempt,
        outcome: AttemptOutcome::Delivered,
        token: claimed.token,
    };
    let recorded = attempt_records::record_attempts(&mut audited.conn, &[record])
        .await
        .remove(0)
        .expect("record attempt");
    assert!(recorded, "the claim is ours");
    plans.add(audited.take("webhook: record attempt"));

    let me = Registration::this_process(WORKER.to_owned(), ProcessKind::Worker, 10);
    let conn = &mut audited.conn;
    workers::register(conn, &me).await.expect("register");
    workers::heartbeat(conn, WORKER, 3)
        .await
        .expect("registry heartbeat");
    workers::count_live(conn, ProcessKind::Worker, Duration::from_secs(10))
        .await
        .expect("live workers");
    plans.add(audited.take("registry: register, heartbeat, count"));

    workers::release_lost_claims(&mut audited.conn, Duration::from_secs(10))
        .await
        .expect("release lost claims");
    plans.add(audited.take("reconciler: release lost claims"));
    deliveries::release_lost_claims(&mut audited.conn, Duration::from_secs(10))
        .await
        .expect("release lost senders' attempts");
    plans.add(audited.take("reconciler: release lost senders' attempts"));
    jobs::dispatch_candidates(
        &mut audited.conn,
        Duration::from_secs(5),
        CLAIM_TIMEOUT,
        None,
        500,
    )
    .await
    .expect("job candidates");
    plans.add(audited.take("reconciler: job candidates"));
    deliveries::due(
        &mut audited.conn,
        Duration::from_secs(5),
        CLAIM_TIMEOUT,
        None,
        500,
    )
    .await
    .expect("due deliveries");
    plans.add(audited.take("reconciler: due deliveries"));

    jobs::mark_stale(
        &mut audited.conn,
        Duration::from_secs(72 * 3600),
        &jobs::stale_reason(72),
    )
    .await
    .expect("stale cleanup");
    plans.add(audited.take("maintenance: stale cleanup"));
    // The loader dates a few jobs past the 30-day window, so each run deletes some.
    let before = Utc::now() - chrono::Duration::days(30);
    retention::delete_finished_jobs(&mut audited.conn, before, 20)
        .await
        .expect("retention sweep");
    plans.add(audited.take("maintenance: retention sweep"));
    retention::delete_expired_cache(&mut audited.conn, retention::BATCH)
        .await
        .expect("cache sweep");
    plans.add(audited.take("maintenance: cache sweep"));

    deliveries::dead_letters(&mut audited.conn, 50, 0)
        .await
        .expect("dead letters");
    admin::dead_letter_count(&mut audited.conn)
        .await
        .expect("dead letter count");
    plans.add(audited.take("admin: dead letters"));
    plans
}

async fn insert_job(conn: &mut AsyncPgConnection, idempotency_key: Option<String>) -> Uuid {
    let id = Uuid::now_v7();
    let job = NewJob {
        id,
        user_id: Some(Uuid::now_v7()),
        workflow_name: "bench_pipeline".to_owned(),
        workflow_version: "1".to_owned(),
        workflow_hash: "0".repeat(64),
        status: JobStatus::Queued.as_str().to_owned(),
        queue_task_id: Some(id.to_string()),
        queued_at: Some(Utc::now()),
        priority: 5,
        input_data: json!({"text": "plan audit"}),
        webhook_url: Some("https://app.example/hooks".to_owned()),
        webhook_secret: None,
        steps_planned: 2,
        idempotency_expires_at: idempotency_key
            .as_ref()
            .map(|_| Utc::now() + chrono::Duration::hours(24)),
        idempotency_key,
        webhook_events: None,
        max_cost_usd: None,
        idempotency_hash: None,
        estimated_wait_seconds: Some(0),
        traceparent: None,
    };
    jobs::insert_job(conn, &job).await.expect("insert job");
    id
}

async fn claim(conn: &mut AsyncPgConnection, id: Uuid) {
    let claims = jobs::claim_many(conn, &[id], WORKER, CLAIM_TIMEOUT)
        .await
        .expect("claim");
    assert!(
        matches!(claims.as_slice(), [(_, jobs::Claim::Claimed(_))]),
        "the job is claimed: {claims:?}"
    );
}

fn step(job_id: Uuid, step_id: &str, position: i32) -> (StepRow, UsageRow) {
    let at = Utc::now();
    let step = StepRow {
        id: Uuid::now_v7(),
        job_id,
        step_id: step_id.to_owned(),
        step_type: "llm".to_owned(),
        position,
        status: "completed".to_owned(),
        input: None,
        output: Some(json!({"text": "out"})),
        error_kind: None,
        error_message: None,
        attempts: 1,
        input_tokens: 10,
        output_tokens: 20,
        cost_usd: Decimal::new(3, 5),
        started_at: at,
        completed_at: at,
        duration_ms: 1,
    };
    let usage = UsageRow {
        id: Uuid::now_v7(),
        job_id: Some(job_id),
        step_id: Some(step_id.to_owned()),
        user_id: None,
        provider: "openrouter".to_owned(),
        model: "openai/gpt-4o-mini".to_owned(),
        input_tokens: 10,
        output_tokens: 20,
        total_tokens: 30,
        cached_input_tokens: 0,
        cost_usd: Decimal::new(3, 5),
        table_cost_usd: Decimal::new(3, 5),
        provider_cost_usd: None,
        usage_estimated: false,
        provider_request_id: None,
        duration_ms: 1,
        created_at: at,
    };
    (step, usage)
}

/// One job's write through the worker's group commit (a group of one).
async fn write(conn: &mut AsyncPgConnection, id: Uuid, change: Change) -> jobs::CommitOutcome {
    let mut results = writes::write_group(conn, WORKER, &[JobWrite { job_id: id, change }]).await;
    results
        .pop()
        .expect("one answer per write")
        .expect("the write")
}

async fn commit_step(conn: &mut AsyncPgConnection, id: Uuid) {
    let (step, usage) = step(id, "analyze", 0);
    let batch = StepBatch {
        steps: vec![step],
        usage: vec![usage],
    };
    let outcome = write(
        conn,
        id,
        Change::Progress {
            batch,
            current_step: Some("refine".to_owned()),
            planned_delta: 0,
        },
    )
    .await;
    assert_eq!(
        outcome,
        jobs::CommitOutcome::Committed {
            cancel_requested: false
        }
    );
}

/// Finishes the job with its last step and its `workflow.completed` delivery; returns the
/// delivery's id.
async fn finish(conn: &mut AsyncPgConnection, id: Uuid) -> Uuid {
    let (step, usage) = step(id, "refine", 1);
    let delivery = deliveries::new_delivery(
        id,
        "https://app.example/hooks",
        "workflow.completed",
        json!({"job_id": id}),
    );
    let delivery_id = delivery.id;
    let outcome = write(
        conn,
        id,
        Change::Finish(Finish {
            status: JobStatus::Completed,
            result: Some(json!({"text": "done"})),
            error_message: None,
            batch: StepBatch {
                steps: vec![step],
                usage: vec![usage],
            },
            planned_delta: 0,
            deliveries: vec![delivery],
        }),
    )
    .await;
    assert_eq!(
        outcome,
        jobs::CommitOutcome::Committed {
            cancel_requested: false
        }
    );
    delivery_id
}
