//! Behind a transaction-mode pooler (PgBouncer with `pool_mode = transaction`, as Supabase's
//! pooler on port 6543): with `DATABASE_STATEMENT_CACHE=false` the API, worker and webhook sender
//! all work through it, sharing a few server connections.

use std::time::Duration;

use futures::future::join_all;
use serde_json::json;

use llmflow_core::db::{self, ConnectOptions};
use llmflow_testkit::daemons::PgBouncer;

use crate::pipeline::bench_pipeline_completes;
use crate::support::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_passes_through_pgbouncer_in_transaction_mode() {
    let bouncer = PgBouncer::start(2).await;
    let app = TestApp::spawn_with(json!({
        "database_url": bouncer.url("{database}"),
        "database_statement_cache": false,
    }))
    .await;
    bench_pipeline_completes(&app).await;

    // Many jobs at once: every process's pool shares PgBouncer's two server connections, so
    // consecutive statements of one client land on different server connections.
    let jobs = join_all((0..40).map(|i| {
        let text = format!(
            "Job {i}.\nEMULATOR_SCORE: {}",
            if i % 2 == 0 { 80 } else { 20 }
        );
        let app = &app;
        async move { app.submit_bench(&text, true).await }
    }))
    .await;
    for job_id in &jobs {
        app.wait_for_status(job_id, "completed", Duration::from_secs(60))
            .await;
    }
    let delivered =
        llmflow_testkit::wait_until("every webhook", Duration::from_secs(60), || async {
            let received = app.receiver.requests().len();
            (received > jobs.len()).then_some(received)
        })
        .await;
    assert!(delivered > jobs.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_through_pgbouncer_in_transaction_mode() {
    let bouncer = PgBouncer::start(2).await;
    let direct = llmflow_testkit::database::empty_database().await;
    let name = direct.rsplit('/').next().expect("database name");
    let url = bouncer.url(name);
    let options = ConnectOptions {
        statement_cache: false,
        ..ConnectOptions::default()
    };
    let applied = db::run_migrations_with(&url, options)
        .await
        .expect("migrations through the pooler");
    assert!(!applied.is_empty());
    let again = db::run_migrations_with(&url, options)
        .await
        .expect("nothing left to apply");
    assert!(again.is_empty(), "{again:?}");
    db::revert_last_migration_with(&url, options)
        .await
        .expect("revert through the pooler");
}
