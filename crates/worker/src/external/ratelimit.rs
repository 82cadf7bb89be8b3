//! Calls per service limited across every worker by a fixed-window counter in Redis, at
//! `{namespace}:ratelimit:{service}`. A call over the limit waits for the window to end (it is
//! not an error; the step's `timeout_ms` still applies). When Redis cannot be reached the call
//! goes ahead: Redis is disposable, and the limiter protects a quota, not correctness.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::Script;

/// INCR the window's counter, starting the window on its first call; returns the count and
/// the milliseconds left in the window.
const WINDOW_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
";

/// Limits by service, from `EXTERNAL_API_RATE_LIMITS`.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    namespace: String,
    limits: BTreeMap<String, (u64, Duration)>,
    script: Script,
}

impl RateLimiter {
    pub fn new(namespace: &str, limits: BTreeMap<String, (u64, Duration)>) -> Self {
        RateLimiter {
            namespace: namespace.to_owned(),
            limits,
            script: Script::new(WINDOW_SCRIPT),
        }
    }

    /// The limit of `service`: its own entry, else `http` for generic `http:<host>` services.
    pub fn limit(&self, service: &str) -> Option<(u64, Duration)> {
        self.limits.get(service).copied().or_else(|| {
            service
                .strip_prefix("http:")
                .and_then(|_| self.limits.get("http").copied())
        })
    }

    pub fn key(&self, service: &str) -> String {
        format!("{}:ratelimit:{service}", self.namespace)
    }

    /// Waits until `service` may make one more call.
    pub async fn acquire(&self, redis: &mut apalis_redis::ConnectionManager, service: &str) {
        let Some((calls, window)) = self.limit(service) else {
            return;
        };
        let key = self.key(service);
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        loop {
            let counted: Result<(u64, i64), redis::RedisError> = self
                .script
                .key(&key)
                .arg(window_ms)
                .invoke_async(redis)
                .await;
            match counted {
                Ok((n, _)) if n <= calls => return,
                Ok((n, left_ms)) => {
                    let wait = Duration::from_millis(u64::try_from(left_ms.max(1)).unwrap_or(1));
                    tracing::debug!(
                        service,
                        n,
                        wait_ms = wait.as_millis() as u64,
                        "rate limited; waiting for the next window"
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
    use super::*;

    #[test]
    fn generic_hosts_share_the_http_limit() {
        let limits = BTreeMap::from([
            ("google_places".to_owned(), (10, Duration::from_secs(1))),
            ("http".to_owned(), (20, Duration::from_secs(1))),
            (
                "http:api.example.com".to_owned(),
                (2, Duration::from_secs(60)),
            ),
        ]);
        let limiter = RateLimiter::new("ns", limits);
        assert_eq!(
            limiter.limit("google_places"),
            Some((10, Duration::from_secs(1)))
        );
        assert_eq!(
            limiter.limit("http:other.org"),
            Some((20, Duration::from_secs(1)))
        );
        assert_eq!(
            limiter.limit("http:api.example.com"),
            Some((2, Duration::from_secs(60)))
        );
        assert_eq!(limiter.limit("unknown"), None);
        assert_eq!(limiter.key("google_places"), "ns:ratelimit:google_places");
    }
}
