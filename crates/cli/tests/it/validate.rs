//! `llmflow validate` reads its folders through the configuration and needs neither
//! PostgreSQL nor Redis.

use crate::support::run;

#[tokio::test]
async fn validates_the_repository_workflows_without_services() {
    let ran = run(&["validate"], &[]).await;
    assert!(ran.success, "{}{}", ran.stdout, ran.stderr);
    assert!(
        ran.stdout.contains("ok  bench_pipeline v"),
        "{}",
        ran.stdout
    );
}

#[tokio::test]
async fn folders_come_from_the_environment_and_flags_win() {
    let missing = [("WORKFLOWS_DIR", "no/such/folder")];
    assert!(!run(&["validate"], &missing).await.success);
    let ran = run(&["validate", "--workflows", "workflows"], &missing).await;
    assert!(ran.success, "{}", ran.stderr);
}

#[tokio::test]
async fn a_malformed_setting_is_named() {
    let ran = run(&["validate"], &[("WORKFLOW_ENV_ALLOWLIST", "NOT-A-NAME")]).await;
    assert!(!ran.success);
    assert!(
        ran.stderr.contains("WORKFLOW_ENV_ALLOWLIST"),
        "{}",
        ran.stderr
    );
}
