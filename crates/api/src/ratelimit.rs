//! Per-user submit rate limits: GCRA (the generic cell rate algorithm) in one Redis script, so
//! every API replica shares one budget per user. A tier allows `limit` requests per minute with
//! a burst of `limit`; a refused request gets 429 with `Retry-After`.

use std::sync::LazyLock;

use actix_web::HttpRequest;

use crate::error::ApiError;
use crate::AppState;

/// The header naming the caller's tier (`pro`, …); absent or unknown means `default`.
pub const TIER_HEADER: &str = "x-user-tier";

/// KEYS[1] the user's key; ARGV[1] emission interval (µs), ARGV[2] burst tolerance (µs).
/// Returns 0 when allowed, else the wait in µs. Uses the server's clock.
static GCRA: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then return allow_at - now end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
return 0
"#,
    )
});

/// The limit that applies to this request's tier, if any.
fn limit_for<'a>(state: &'a AppState, req: &HttpRequest) -> Option<(&'a str, u32)> {
    let asked = req
        .headers()
        .get(TIER_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let find = |name: &str| {
        state
            .rate_limits
            .iter()
            .find(|(tier, _)| tier == name)
            .map(|(tier, limit)| (tier.as_str(), *limit))
    };
    asked.and_then(find).or_else(|| find("default"))
}

/// Takes one request from `user`'s budget, or refuses with 429. No limits configured: always
/// allowed. When Redis does not answer the request is let through (the limit protects
/// providers' budgets; refusing every job because Redis blinked would be worse) and logged.
pub async fn check(state: &AppState, req: &HttpRequest, user: &str) -> Result<(), ApiError> {
    let Some((tier, limit)) = limit_for(state, req) else {
        return Ok(());
    };
    let interval_us = 60_000_000u64 / u64::from(limit);
    let tolerance_us = interval_us * u64::from(limit.saturating_sub(1));
    let key = format!("{}:ratelimit:{tier}:{user}", state.config.redis_namespace);
    let mut conn = state.redis.clone();
    let wait_us: Result<u64, _> = GCRA
        .key(key)
        .arg(interval_us)
        .arg(tolerance_us)
        .invoke_async(&mut conn)
        .await;
    match wait_us {
        Ok(0) => Ok(()),
        Ok(wait) => Err(ApiError::RateLimited {
            retry_after_secs: wait.div_ceil(1_000_000).max(1),
        }),
        Err(e) => {
            tracing::warn!(error = %e, "rate limit check failed; letting the request through");
            Ok(())
        }
    }
}
