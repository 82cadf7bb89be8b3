//! The shared limiter against the real Redis: two limiters with their own connections stand
//! for two worker processes (all limiter state is in Redis; a limiter keeps none in memory).

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

use llmflow_core::llm::chain::{self, CallOptions, Target};
use llmflow_core::llm::limits::{Limiter, LimiterSettings, LimitsConfig};
use llmflow_core::llm::retry::RetryPolicy;
use llmflow_core::llm::{CallCtx, CompletionRequest, Message, OutputFormat, RateLimitHint, Role};

use super::{Bench, Http, Kind};

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

async fn connection() -> ConnectionManager {
    llmflow_core::queue::connect(&redis_url())
        .await
        .expect("redis")
}

fn namespace() -> String {
    format!("t{}", uuid::Uuid::now_v7().simple())
}

async fn limiter(namespace: &str, limits: &str, settings: LimiterSettings) -> Limiter {
    Limiter::new(
        connection().await,
        namespace,
        LimitsConfig::parse(limits).expect("limits"),
        settings,
    )
}

fn settings(max_wait: Duration) -> LimiterSettings {
    LimiterSettings {
        lease_ttl: Duration::from_secs(5),
        max_wait,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_holds_across_two_limiters() {
    let bench = Bench::start(Http::One).await;
    bench.emulator.set_latency(Duration::from_millis(150));
    // No answer until two calls are in flight at once: the limit is reached, not just allowed.
    bench.emulator.set_rendezvous(2);
    let ns = namespace();
    let limits = r#"{"openai": {"max_concurrency": 2}}"#;
    let a = limiter(&ns, limits, settings(Duration::from_secs(60))).await;
    let b = limiter(&ns, limits, settings(Duration::from_secs(60))).await;
    let targets = Arc::new([Target {
        provider: bench.provider(Kind::OpenAi),
        model: Kind::OpenAi.model().to_owned(),
    }]);
    let mut calls = Vec::new();
    for i in 0..12 {
        let limiter = if i % 2 == 0 { a.clone() } else { b.clone() };
        let targets = targets.clone();
        calls.push(tokio::spawn(async move {
            let request = CompletionRequest {
                model: Kind::OpenAi.model().to_owned(),
                messages: vec![Message {
                    role: Role::User,
                    content: format!("call {i}"),
                }],
                temperature: None,
                max_tokens: None,
                format: OutputFormat::Text,
            };
            let options = CallOptions {
                retry: RetryPolicy::default(),
                limiter: Some(&limiter),
                stream: false,
            };
            chain::call(&targets[..], &request, &CallCtx::default(), options)
                .await
                .map(|_| ())
                .map_err(|f| f.error.to_string())
        }));
    }
    for call in calls {
        call.await
            .expect("task")
            .expect("call succeeds after waiting");
    }
    let stats = bench.emulator.stats();
    assert_eq!(stats.calls, 12);
    assert!(
        stats.max_in_flight <= 2,
        "max in flight {}",
        stats.max_in_flight
    );
    assert_eq!(stats.max_in_flight, 2, "the limit was used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_of_dead_workers_expire_and_model_limits_apply() {
    let ns = namespace();
    let limits = r#"{"openrouter": {"max_concurrency": 5, "models": {"openai/gpt-4o": {"max_concurrency": 1}}}}"#;
    let limiter = limiter(&ns, limits, settings(Duration::from_millis(300))).await;
    // A worker that died holding a lease: its score (expiry) is in the past.
    let mut conn = connection().await;
    let key = format!("{ns}:llm:sem:openrouter:openai/gpt-4o");
    let _: () = redis::cmd("ZADD")
        .arg(&key)
        .arg(1)
        .arg("dead-lease")
        .query_async(&mut conn)
        .await
        .expect("zadd");
    let held = limiter
        .acquire("openrouter", "openai/gpt-4o", 10)
        .await
        .expect("the stale lease does not count");
    let error = limiter
        .acquire("openrouter", "openai/gpt-4o", 10)
        .await
        .err()
        .expect("the model's limit of 1 is full");
    assert_eq!(error.kind(), "timeout");
    // Another model of the same provider is only under the provider's limit.
    let other = limiter
        .acquire("openrouter", "openai/gpt-4o-mini", 10)
        .await
        .expect("other model");
    drop(held);
    let start = Instant::now();
    loop {
        if limiter
            .acquire("openrouter", "openai/gpt-4o", 10)
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "released lease frees the slot"
        );
    }
    drop(other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_minute_are_counted_across_limiters() {
    let ns = namespace();
    let limits = r#"{"anthropic": {"rpm": 2}}"#;
    let a = limiter(&ns, limits, settings(Duration::from_millis(200))).await;
    let b = limiter(&ns, limits, settings(Duration::from_millis(200))).await;
    a.acquire("anthropic", "m", 1).await.expect("first");
    b.acquire("anthropic", "m", 1).await.expect("second");
    // The budget is a GCRA over Redis's clock, not a calendar minute: two calls at once spend
    // it, and the third fits only once a request's share of the minute (30 s) has passed,
    // whatever second of the minute the test started in.
    let error = a
        .acquire("anthropic", "m", 1)
        .await
        .err()
        .expect("the third call within 30 s waits");
    assert_eq!(error.kind(), "timeout");
}

/// Tokens per minute are a budget each call pays its expected tokens from, corrected upwards
/// by what it used; a call larger than the whole budget is let through when it is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_per_minute_are_paid_from_one_budget() {
    let ns = namespace();
    let limits = r#"{"openai": {"tpm": 100}, "anthropic": {"tpm": 100}}"#;
    let a = limiter(&ns, limits, settings(Duration::from_millis(200))).await;
    let b = limiter(&ns, limits, settings(Duration::from_millis(200))).await;
    a.acquire("openai", "m", 60).await.expect("60 of 100");
    let error = b
        .acquire("openai", "m", 60)
        .await
        .err()
        .expect("another 60 waits for the budget to refill");
    assert_eq!(error.kind(), "timeout");
    b.acquire("openai", "m", 30).await.expect("30 more fit");
    // Larger than the whole budget: admitted when nothing was taken, then everything waits.
    let big = a
        .acquire("anthropic", "m", 150)
        .await
        .expect("an untouched budget");
    assert!(
        b.acquire("anthropic", "m", 1).await.is_err(),
        "budget spent"
    );
    drop(big);
    // Usage beyond the reservation is charged too.
    let ns = namespace();
    let a = limiter(&ns, limits, settings(Duration::from_millis(200))).await;
    let permit = a.acquire("openai", "m", 10).await.expect("10 of 100");
    permit.record_tokens(95).await;
    assert!(a.acquire("openai", "m", 10).await.is_err(), "95 were used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_headers_hold_new_calls_until_the_reset() {
    let ns = namespace();
    // No configured limit for openai: what the provider says is still learned.
    let a = limiter(&ns, "", settings(Duration::from_secs(10))).await;
    let b = limiter(&ns, "", settings(Duration::from_secs(10))).await;
    let started = Instant::now();
    a.learn(
        "openai",
        RateLimitHint {
            remaining_requests: Some(0),
            reset_requests: Some(Duration::from_millis(700)),
        },
    )
    .await;
    b.acquire("openai", "gpt-4o", 1)
        .await
        .expect("admitted after the reset");
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "held {:?}",
        started.elapsed()
    );
    // Remaining requests above zero hold nothing.
    a.learn(
        "anthropic",
        RateLimitHint {
            remaining_requests: Some(3),
            reset_requests: Some(Duration::from_secs(30)),
        },
    )
    .await;
    let short = limiter(&ns, "", settings(Duration::from_millis(100))).await;
    short.acquire("anthropic", "m", 1).await.expect("no hold");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_learned_here_applies_at_once_though_the_last_look_was_recent() {
    let ns = namespace();
    let a = limiter(&ns, "", settings(Duration::from_secs(10))).await;
    // No limit applies, so this look is trusted for a moment…
    a.acquire("openai", "gpt-4o", 1).await.expect("no hold yet");
    a.learn(
        "openai",
        RateLimitHint {
            remaining_requests: Some(0),
            reset_requests: Some(Duration::from_millis(500)),
        },
    )
    .await;
    // …but not past a hold this limiter recorded itself.
    let started = Instant::now();
    a.acquire("openai", "gpt-4o", 1)
        .await
        .expect("admitted after the reset");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "held {:?}",
        started.elapsed()
    );
}
