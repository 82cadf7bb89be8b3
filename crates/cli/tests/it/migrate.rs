//! `llmflow migrate` takes `DATABASE_URL` through the configuration, and needs it.

use predicates::str::contains;

use crate::support::{cli, run};

#[tokio::test]
async fn migrate_needs_a_database_url() {
    let ran = run(&["migrate"], &[]).await;
    assert!(!ran.success);
    assert!(
        ran.stderr.contains("DATABASE_URL must be set"),
        "{}",
        ran.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_reports_and_reverts_migrations() {
    let url = llmflow_testkit::database::empty_database().await;
    tokio::task::spawn_blocking(move || {
        let vars = [("DATABASE_URL", url.as_str())];
        cli(&["migrate"], &vars)
            .assert()
            .success()
            .stdout(contains("applied "));
        cli(&["migrate"], &vars)
            .assert()
            .success()
            .stdout("database is up to date\n");
        cli(&["migrate", "--down"], &vars)
            .assert()
            .success()
            .stdout(contains("reverted "));
        cli(&["migrate"], &vars)
            .assert()
            .success()
            .stdout(contains("applied "));
    })
    .await
    .unwrap();
}

#[test]
fn exit_codes_tell_bad_input_from_failure() {
    // No URL: bad input (2). An unreachable database: the command failed (1).
    cli(&["migrate"], &[])
        .assert()
        .code(2)
        .stderr(contains("DATABASE_URL must be set"));
    cli(
        &["migrate"],
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")],
    )
    .assert()
    .code(1)
    .stderr(contains("llmflow: "));
    cli(&["migrate", "--sideways"], &[])
        .assert()
        .code(2)
        .stderr(contains("unexpected argument '--sideways'"));
}
