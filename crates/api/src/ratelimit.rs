//! Per-user submit rate limits: a GCRA budget in Redis per tier and user
//! (`llmflow_core::ratelimit`), so every API replica shares one budget per user. A tier allows
//! `limit` requests per minute with a burst of `limit`; a refused request gets 429 with
//! `Retry-After`.

use actix_web::HttpRequest;

use llmflow_core::ratelimit::{self, Rate};

use crate::error::ApiError;
use crate::AppState;

/// The header naming the caller's tier (`pro`, …); absent or unknown means `default`.
pub const TIER_HEADER: &str = "x-user-tier";

/// The limit that applies to this request's tier, if any.
fn limit_for<'a>(state: &'a AppState, req: &HttpRequest) -> Option<(&'a str, Rate)> {
    let asked = req
        .headers()
        .get(TIER_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let find = |name: &str| {
        state
            .config
            .rate_limits
            .get_key_value(name)
            .map(|(tier, rate)| (tier.as_str(), *rate))
    };
    asked.and_then(find).or_else(|| find("default"))
}

/// Takes one request from `user`'s budget, or refuses with 429. No limits configured: always
/// allowed. When Redis does not answer the request is let through (the limit protects
/// providers' budgets; refusing every job because Redis blinked would be worse) and logged.
pub async fn check(state: &AppState, req: &HttpRequest, user: &str) -> Result<(), ApiError> {
    let Some((tier, rate)) = limit_for(state, req) else {
        return Ok(());
    };
    let key = format!("{}:ratelimit:{tier}:{user}", state.config.redis_namespace);
    let mut conn = state.redis.clone();
    match ratelimit::take(&mut conn, &key, rate, 1).await {
        Ok(None) => Ok(()),
        Ok(Some(wait)) => Err(ApiError::RateLimited {
            retry_after_secs: u64::try_from(wait.as_micros().div_ceil(1_000_000))
                .unwrap_or(u64::MAX)
                .max(1),
        }),
        Err(e) => {
            tracing::warn!(error = %e, "rate limit check failed; letting the request through");
            Ok(())
        }
    }
}
