//! `llmflow validate` reads its folders through the configuration and needs neither
//! PostgreSQL nor Redis.

use crate::support::run;

#[tokio::test]
async fn validates_the_repository_workflows_without_services() {
    let ran = run(&["validate"], &[]).await;
    assert!(ran.success, "{}{}", ran.stdout, ran.stderr);
    for name in [
        "bench_pipeline",
        "emergency_contacts",
        "mission_generation",
        "dev_framework",
    ] {
        assert!(
            ran.stdout.contains(&format!("ok  {name} v")),
            "{}",
            ran.stdout
        );
    }
}

#[tokio::test]
async fn an_allow_list_without_the_app_base_url_is_reported() {
    // mission_generation reads `${env.APP_BASE_URL}`: a deployment must allow it.
    let ran = run(
        &["validate"],
        &[("WORKFLOW_ENV_ALLOWLIST", "PARTNER_TOKEN")],
    )
    .await;
    assert!(!ran.success);
    assert!(
        ran.stderr.contains("mission_generation.json")
            && ran
                .stderr
                .contains("`env.APP_BASE_URL` is not allow-listed"),
        "{}",
        ran.stderr
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
