//! GCRA budgets against the real Redis: a burst of the limit, then one unit per interval; a
//! cost takes that many units at once; a refusal takes nothing.

use std::time::Duration;

use llmflow_core::queue;
use llmflow_core::ratelimit::{take, Rate};

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

fn key() -> String {
    format!("t{}:ratelimit:test", uuid::Uuid::now_v7().simple())
}

#[tokio::test]
async fn a_burst_of_the_limit_then_the_interval() {
    let mut conn = queue::connect(&redis_url()).await.expect("redis");
    let key = key();
    let rate = Rate::per_minute(3);
    for call in 1..=3 {
        let taken = take(&mut conn, &key, rate, 1).await.expect("redis");
        assert_eq!(taken, None, "call {call} of the burst");
    }
    let wait = take(&mut conn, &key, rate, 1)
        .await
        .expect("redis")
        .expect("the fourth call waits");
    // One unit every 20 s; the burst was taken just now.
    assert!(
        wait > Duration::from_secs(19) && wait <= Duration::from_secs(20),
        "{wait:?}"
    );
    // A refusal took nothing: the wait is the same.
    let again = take(&mut conn, &key, rate, 1).await.expect("redis");
    assert!(again.is_some_and(|w| w <= wait), "{again:?}");
}

#[tokio::test]
async fn a_cost_takes_that_many_units() {
    let mut conn = queue::connect(&redis_url()).await.expect("redis");
    let key = key();
    let rate = Rate::per_minute(100);
    assert_eq!(take(&mut conn, &key, rate, 60).await.expect("redis"), None);
    let wait = take(&mut conn, &key, rate, 60)
        .await
        .expect("redis")
        .expect("120 of 100 does not fit");
    // 20 units short, refilled at 0.6 s each.
    assert!(
        wait > Duration::from_secs(11) && wait <= Duration::from_secs(12),
        "{wait:?}"
    );
    assert_eq!(take(&mut conn, &key, rate, 40).await.expect("redis"), None);
    // More than the whole budget fits an untouched budget only.
    let other = self::key();
    assert_eq!(
        take(&mut conn, &other, rate, 150).await.expect("redis"),
        None
    );
    let wait = take(&mut conn, &other, rate, 1)
        .await
        .expect("redis")
        .expect("the budget is overdrawn");
    assert!(wait > Duration::from_secs(30), "{wait:?}");
}
