//! `llmflow validate` reads its folders through the configuration and needs neither
//! PostgreSQL nor Redis.

use crate::support::llmflow;

#[tokio::test]
async fn validates_the_repository_workflows_without_services() {
    let out = llmflow(&["validate"], &[]).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok  bench_pipeline v"), "{stdout}");
}

#[tokio::test]
async fn folders_come_from_the_environment_and_flags_win() {
    let out = llmflow(&["validate"], &[("WORKFLOWS_DIR", "no/such/folder")])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let out = llmflow(
        &["validate", "--workflows", "workflows"],
        &[("WORKFLOWS_DIR", "no/such/folder")],
    )
    .output()
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_malformed_setting_is_named() {
    let out = llmflow(&["validate"], &[("WORKFLOW_ENV_ALLOWLIST", "NOT-A-NAME")])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WORKFLOW_ENV_ALLOWLIST"), "{stderr}");
}
