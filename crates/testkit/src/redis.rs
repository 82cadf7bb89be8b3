//! Redis for tests: the server's URL and a key namespace per test.

/// The Redis the tests use (`TEST_REDIS_URL`, else the local default).
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

/// A namespace of this test's own (`REDIS_NAMESPACE`): no other test sees its keys.
pub fn new_namespace() -> String {
    format!("t{}", uuid::Uuid::now_v7().simple())
}

/// Deletes every key of `namespace` on the tests' Redis: Redis losing everything it held.
pub async fn wipe(namespace: &str) {
    let client = redis::Client::open(redis_url()).expect("redis client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{namespace}:*"))
        .query_async(&mut conn)
        .await
        .expect("keys");
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .expect("del");
    }
}
