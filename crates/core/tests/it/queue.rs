//! The queue plumbing against a real Redis: a backlog far above what apalis-redis 1.0 can promote
//! in one fetch (about 8,000 due tasks) is still consumed whole.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis::prelude::*;
use tokio_util::sync::CancellationToken;

use llmflow_core::queue::{self, JobMessage, Queues};
use llmflow_core::JobId;

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

async fn count(_message: JobMessage, seen: Data<Arc<AtomicUsize>>) -> Result<(), BoxDynError> {
    seen.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Deletes every key of a test namespace.
async fn wipe(conn: &mut apalis_redis::ConnectionManager, namespace: &str) {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{namespace}:*"))
        .query_async(conn)
        .await
        .expect("KEYS");
    for chunk in keys.chunks(500) {
        let _: () = redis::cmd("DEL")
            .arg(chunk)
            .query_async(conn)
            .await
            .expect("DEL");
    }
}

#[tokio::test]
async fn a_backlog_of_twelve_thousand_jobs_is_consumed_whole() {
    const JOBS: usize = 12_000;
    let namespace = format!("t{}", uuid::Uuid::now_v7().simple());
    let queues = Queues::new(namespace.clone());
    let mut conn = queue::connect(&redis_url()).await.expect("redis");
    let mut storage = queues.job_storage(conn.clone(), 100);
    // Pushed with no consumer running, as the API does while the workers are down.
    for _ in 0..JOBS {
        let job_id = JobId::new();
        queue::push_job(&mut storage, job_id, &job_id.to_string())
            .await
            .expect("push");
    }
    let seen = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let consumer = {
        let storage = queues
            .job_storage(conn.clone(), 100)
            .poll_with_interval(Duration::from_millis(50));
        let seen = seen.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            WorkerBuilder::new(format!("backlog-{}", uuid::Uuid::now_v7().simple()))
                .backend(storage)
                .concurrency(100)
                .data(seen)
                .build(count)
                .run_until(async move {
                    stop.cancelled().await;
                    Ok::<(), WorkerError>(())
                })
                .await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.load(Ordering::Relaxed) < JOBS && Instant::now() < deadline {
        assert!(
            !consumer.is_finished(),
            "the consumer stopped (a failed fetch)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    let outcome = consumer.await.expect("consumer task");
    assert!(outcome.is_ok(), "consumer failed: {outcome:?}");
    assert_eq!(seen.load(Ordering::Relaxed), JOBS);
    wipe(&mut conn, &namespace).await;
}
