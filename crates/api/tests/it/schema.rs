//! Migrations apply, revert and apply again on an empty database.

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::support::empty_database;

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

async fn llm_tables(url: &str) -> i64 {
    let mut conn = AsyncPgConnection::establish(url).await.expect("connect");
    let count: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'public' AND table_name LIKE 'llm_%'",
    )
    .get_result(&mut conn)
    .await
    .expect("count");
    count.n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_go_up_down_and_up_again() {
    let url = empty_database().await;
    assert_eq!(llm_tables(&url).await, 0);
    let applied = llmflow_core::db::run_migrations(&url).await.expect("up");
    assert!(!applied.is_empty());
    assert_eq!(llm_tables(&url).await, 9);
    for _ in &applied {
        llmflow_core::db::revert_last_migration(&url)
            .await
            .expect("down");
    }
    assert_eq!(llm_tables(&url).await, 0);
    llmflow_core::db::run_migrations(&url)
        .await
        .expect("up again");
    assert_eq!(llm_tables(&url).await, 9);
    assert!(llmflow_core::db::run_migrations(&url)
        .await
        .expect("idempotent")
        .is_empty());
}
