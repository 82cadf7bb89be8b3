//! Budgets, and the maintenance pass (stale jobs, queue history).

use std::time::Duration;

use diesel_async::RunQueryDsl;
use serde_json::json;

use crate::support::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_stops_the_job_before_a_call_that_would_exceed_it() {
    let app = TestApp::spawn().await;
    let job_id = app.submit_accepted(json!({"workflow_name": "bench_pipeline", "input_data": {"text": "cheap?"}, "max_cost_usd": 0.00001})).await;
    let doc = app
        .wait_for_status(&job_id, "failed", Duration::from_secs(30))
        .await;
    let message = doc["error_message"].as_str().expect("message");
    assert!(
        message.contains("budget exceeded") && message.contains("analyze"),
        "{message}"
    );
    assert!(message.contains("$0 of the $0.00001 budget"), "{message}");
    assert_eq!(app.emulator.stats().calls, 0, "the call was never made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_maintenance_pass_runs_in_one_process_at_a_time_and_trims_queue_history() {
    let app = TestApp::spawn_with(json!({"maintenance_cron": ""})).await;
    let stuck = app.submit_bench("stuck\nEMULATOR_SCORE: 10", false).await;
    app.wait_for_status(&stuck, "completed", Duration::from_secs(30))
        .await;
    let mut conn = app.conn().await;
    // A job stuck in `processing` for four days.
    diesel::sql_query(format!(
        "UPDATE llm_workflow_jobs SET status = 'processing', updated_at = now() - interval '96 hours' WHERE id = '{stuck}'"
    ))
    .execute(&mut conn)
    .await
    .expect("age");
    // Queue history: one entry finished two days ago, one just now.
    let client = redis::Client::open(crate::support::redis_url()).expect("client");
    let mut redis = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let queue = format!("{}:jobs:low", app.namespace);
    let old = chrono::Utc::now().timestamp() - 48 * 3600;
    let now = chrono::Utc::now().timestamp();
    for (id, done_at, set) in [
        ("old-task", old, "done"),
        ("old-dead", old, "dead"),
        ("new-task", now, "done"),
    ] {
        let _: () = redis::pipe()
            .cmd("SADD")
            .arg(format!("{queue}:{set}"))
            .arg(id)
            .ignore()
            .cmd("HSET")
            .arg(format!("{queue}:meta:{id}"))
            .arg("done_at")
            .arg(done_at)
            .arg("status")
            .arg("Done")
            .ignore()
            .cmd("HSET")
            .arg(format!("{queue}:data"))
            .arg(id)
            .arg("{}")
            .ignore()
            .query_async(&mut redis)
            .await
            .expect("seed");
    }
    let state = app.worker.as_ref().expect("worker").state.clone();

    // Another process holds the lock: this one skips its pass.
    diesel::sql_query(format!(
        "SELECT pg_advisory_lock({})",
        llmflow_worker::maintenance::LOCK_KEY
    ))
    .execute(&mut conn)
    .await
    .expect("lock");
    let skipped = llmflow_worker::maintenance::run_once(&state)
        .await
        .expect("pass");
    assert_eq!(skipped, None);
    diesel::sql_query(format!(
        "SELECT pg_advisory_unlock({})",
        llmflow_worker::maintenance::LOCK_KEY
    ))
    .execute(&mut conn)
    .await
    .expect("unlock");

    let report = llmflow_worker::maintenance::run_once(&state)
        .await
        .expect("pass")
        .expect("lock taken");
    assert_eq!(report.stale.processing, 1, "{report:?}");
    assert_eq!(report.trimmed, 2, "{report:?}");
    let doc = app.status(&stuck).await;
    assert_eq!(doc["status"], "failed");
    assert_eq!(doc["is_stale"], true);
    let done: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{queue}:done"))
        .query_async(&mut redis)
        .await
        .expect("members");
    assert!(
        done.contains(&"new-task".to_owned()) && !done.contains(&"old-task".to_owned()),
        "{done:?}"
    );
    let data: Vec<String> = redis::cmd("HKEYS")
        .arg(format!("{queue}:data"))
        .query_async(&mut redis)
        .await
        .expect("keys");
    assert!(!data.contains(&"old-task".to_owned()));
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Rows of `table` that belong to the job.
async fn rows_of(conn: &mut diesel_async::AsyncPgConnection, table: &str, job_id: &str) -> i64 {
    diesel::sql_query(format!(
        "SELECT count(*) AS n FROM {table} WHERE job_id = '{job_id}'"
    ))
    .get_result::<Count>(conn)
    .await
    .expect("count")
    .n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_maintenance_pass_deletes_jobs_past_retention_and_expired_cache_entries() {
    let app = TestApp::spawn_with(json!({"maintenance_cron": "", "job_retention_days": 30})).await;
    let old = app.submit_bench("old", true).await;
    let owed = app.submit_bench("old, webhook owed", true).await;
    let recent = app.submit_bench("recent", false).await;
    for job in [&old, &owed, &recent] {
        app.wait_for_status(job, "completed", Duration::from_secs(30))
            .await;
    }
    let mut conn = app.conn().await;
    // Both webhooks delivered, then one of them put back to wait for a retry.
    crate::support::wait_until(
        "both webhooks delivered",
        Duration::from_secs(30),
        || async {
            let mut conn = app.conn().await;
            let delivered: Count = diesel::sql_query(format!(
                "SELECT count(*) AS n FROM llm_webhook_deliveries \
             WHERE job_id IN ('{old}', '{owed}') AND status = 'delivered'"
            ))
            .get_result(&mut conn)
            .await
            .expect("deliveries");
            (delivered.n == 2).then_some(())
        },
    )
    .await;
    diesel::sql_query(format!(
        "UPDATE llm_webhook_deliveries SET status = 'failed', next_attempt_at = now() + interval '1 day' \
         WHERE job_id = '{owed}'"
    ))
    .execute(&mut conn)
    .await
    .expect("owe");
    diesel::sql_query(format!(
        "UPDATE llm_workflow_jobs SET completed_at = now() - interval '31 days' WHERE id IN ('{old}', '{owed}')"
    ))
    .execute(&mut conn)
    .await
    .expect("age");
    for table in [
        "llm_job_steps",
        "llm_provider_usage",
        "llm_webhook_attempts",
    ] {
        assert!(rows_of(&mut conn, table, &old).await > 0, "{table}");
    }
    let expired = format!("expired-{}", uuid::Uuid::now_v7().simple());
    let live = format!("live-{}", uuid::Uuid::now_v7().simple());
    diesel::sql_query(format!(
        "INSERT INTO llm_external_api_cache (request_hash, service, response, expires_at) VALUES \
         ('{expired}', 'google_places', '{{}}', now() - interval '1 minute'), \
         ('{live}', 'google_places', '{{}}', now() + interval '1 hour')"
    ))
    .execute(&mut conn)
    .await
    .expect("cache rows");

    let state = app.worker.as_ref().expect("worker").state.clone();
    let report = llmflow_worker::maintenance::run_once(&state)
        .await
        .expect("pass")
        .expect("lock taken");
    assert!(report.swept.jobs >= 1, "{report:?}");
    assert!(report.swept.cache_entries >= 1, "{report:?}");

    let gone: Count = diesel::sql_query(format!(
        "SELECT count(*) AS n FROM llm_workflow_jobs WHERE id = '{old}'"
    ))
    .get_result(&mut conn)
    .await
    .expect("job");
    assert_eq!(gone.n, 0, "the job past retention is deleted");
    for table in [
        "llm_job_steps",
        "llm_provider_usage",
        "llm_webhook_deliveries",
        "llm_webhook_attempts",
    ] {
        assert_eq!(rows_of(&mut conn, table, &old).await, 0, "{table}");
    }
    let response = app
        .http
        .get(app.url(&format!("/status/{old}")))
        .header("X-API-Key", crate::support::API_KEY)
        .send()
        .await
        .expect("status");
    assert_eq!(response.status(), 404);
    // Kept: the job whose webhook is still owed, and the recent one, with their rows.
    assert_eq!(app.status(&owed).await["status"], "completed");
    assert_eq!(app.status(&recent).await["status"], "completed");
    assert!(rows_of(&mut conn, "llm_job_steps", &recent).await > 0);
    let cache: Vec<String> = diesel::sql_query(format!(
        "SELECT request_hash AS n FROM llm_external_api_cache WHERE request_hash IN ('{expired}', '{live}')"
    ))
    .load::<Hash>(&mut conn)
    .await
    .expect("cache")
    .into_iter()
    .map(|h| h.n)
    .collect();
    assert_eq!(cache, vec![live], "only the expired entry is swept");
}

#[derive(diesel::QueryableByName)]
struct Hash {
    #[diesel(sql_type = diesel::sql_types::Text)]
    n: String,
}
