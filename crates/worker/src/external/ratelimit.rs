//! Calls per service limited across every worker by a GCRA budget in Redis
//! (`llmflow_core::ratelimit`), at `{namespace}:ratelimit:{service}`. A service allowed `calls`
//! per `seconds` makes a burst of `calls`, then one call every `seconds / calls`: never two
//! bursts on either side of a window's edge. A call over the limit waits for room (it is not
//! an error; the step's `timeout_ms` still applies). When Redis cannot be reached the call goes
//! ahead: Redis is disposable, and the limiter protects a quota, not correctness.

use std::collections::BTreeMap;
use std::time::Duration;

use llmflow_core::ratelimit::{self, Rate};

/// Limits by service, from `EXTERNAL_API_RATE_LIMITS`.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    namespace: String,
    limits: BTreeMap<String, Rate>,
}

impl RateLimiter {
    pub fn new(namespace: &str, limits: BTreeMap<String, Rate>) -> Self {
        RateLimiter {
            namespace: namespace.to_owned(),
            limits,
        }
    }

    /// The limit of `service`: its own entry, else `http` for generic `http:<host>` services.
    pub fn limit(&self, service: &str) -> Option<Rate> {
        self.limits.get(service).copied().or_else(|| {
            service
                .strip_prefix("http:")
                .and_then(|_| self.limits.get("http").copied())
        })
    }

    pub fn key(&self, service: &str) -> String {
        format!("{}:ratelimit:{service}", self.namespace)
    }

    /// Takes one call from `service`'s budget if there is room now: `None` when taken (or
    /// when the service has no limit), else how long until there is room.
    pub async fn try_acquire(
        &self,
        redis: &mut apalis_redis::ConnectionManager,
        service: &str,
    ) -> Result<Option<Duration>, redis::RedisError> {
        match self.limit(service) {
            Some(rate) => ratelimit::take(redis, &self.key(service), rate, 1).await,
            None => Ok(None),
        }
    }

    /// Waits until `service` may make one more call.
    pub async fn acquire(&self, redis: &mut apalis_redis::ConnectionManager, service: &str) {
        loop {
            match self.try_acquire(redis, service).await {
                Ok(None) => return,
                Ok(Some(wait)) => {
                    tracing::debug!(
                        service,
                        wait_ms = wait.as_millis() as u64,
                        "rate limited; waiting for room"
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    tracing::warn!(service, error = %e, "rate limiter unavailable; calling anyway");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn generic_hosts_share_the_http_limit() {
        let limits = BTreeMap::from([
            (
                "google_places".to_owned(),
                Rate::new(10, Duration::from_secs(1)),
            ),
            ("http".to_owned(), Rate::new(20, Duration::from_secs(1))),
            (
                "http:api.example.com".to_owned(),
                Rate::new(2, Duration::from_secs(60)),
            ),
        ]);
        let limiter = RateLimiter::new("ns", limits);
        assert_eq!(
            limiter.limit("google_places"),
            Some(Rate::new(10, Duration::from_secs(1)))
        );
        assert_eq!(
            limiter.limit("http:other.org"),
            Some(Rate::new(20, Duration::from_secs(1)))
        );
        assert_eq!(
            limiter.limit("http:api.example.com"),
            Some(Rate::new(2, Duration::from_secs(60)))
        );
        assert_eq!(limiter.limit("unknown"), None);
        assert_eq!(limiter.key("google_places"), "ns:ratelimit:google_places");
    }

    /// A fixed window of 10 calls per second let one call open the window, 9 more through just
    /// before it ended and 10 more just after: 19 calls in a moment. The GCRA budget lets at
    /// most the burst (10) plus one call per 100 ms of the span through, wherever the edge is.
    #[tokio::test]
    async fn no_double_burst_across_a_window_edge() {
        const CALLS: u64 = 10;
        const WINDOW: Duration = Duration::from_secs(1);
        let url = std::env::var("TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned());
        let mut redis = llmflow_core::queue::connect(&url).await.expect("redis");
        let namespace = format!("t{}", uuid::Uuid::now_v7().simple());
        let limiter = RateLimiter::new(
            &namespace,
            BTreeMap::from([("svc".to_owned(), Rate::new(CALLS, WINDOW))]),
        );
        let taken = |wait: Option<Duration>| wait.is_none();
        let opened = Instant::now();
        let first = limiter.try_acquire(&mut redis, "svc").await.expect("redis");
        assert!(taken(first), "the first call opens the window");
        // Placed in time, not waiting for an effect: from just before the window would end,
        // call as fast as possible until just after it.
        tokio::time::sleep_until((opened + WINDOW * 9 / 10).into()).await;
        let started = Instant::now();
        let mut admitted = 0u64;
        // (A stalled machine may start late: the loop then runs on until it saw the burst.)
        while opened.elapsed() < WINDOW * 11 / 10 || admitted < CALLS {
            if taken(limiter.try_acquire(&mut redis, "svc").await.expect("redis")) {
                admitted += 1;
            }
        }
        let span = started.elapsed();
        let interval = WINDOW / CALLS as u32;
        let most = CALLS + (span.as_micros() / interval.as_micros()) as u64 + 1;
        assert!(admitted >= CALLS, "a full burst is allowed: {admitted}");
        assert!(
            admitted <= most,
            "{admitted} calls in {span:?} (at most {most}): a double burst"
        );
        let _: () = redis::cmd("DEL")
            .arg(limiter.key("svc"))
            .query_async(&mut redis)
            .await
            .expect("DEL");
    }
}
