//! `llmflow migrate` takes `DATABASE_URL` through the configuration, and needs it.

use crate::support::run;

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
