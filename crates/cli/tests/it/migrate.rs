//! `llmflow migrate` takes `DATABASE_URL` through the configuration, and needs it.

use crate::support::llmflow;

#[tokio::test]
async fn migrate_needs_a_database_url() {
    let out = llmflow(&["migrate"], &[]).output().await.unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DATABASE_URL must be set"), "{stderr}");
}
