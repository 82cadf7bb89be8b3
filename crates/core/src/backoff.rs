//! Exponential backoff, as one pure function: the LLM call retries (`llm::retry`) and the
//! retries of a step with `on_error: retry` (`workflow::retry_delay`) both use it. The jitter
//! draw is passed in, so tests can call it with fixed draws.

use std::time::Duration;

/// The wait before retry number `attempt` (1 = the first retry): `base × 2^(attempt-1)`,
/// capped at `cap`, then scaled into its upper half by `jitter` in `0.0..=1.0` (`1.0`: the full
/// delay; so concurrent callers spread out but never retry early). A jitter that is not a
/// finite number counts as `0.0`.
pub fn exponential(base: Duration, cap: Duration, attempt: u32, jitter: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let backoff = base.checked_mul(1u32 << exponent).unwrap_or(cap).min(cap);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    backoff.mul_f64(0.5 + jitter / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn doubles_up_to_the_cap_and_jitters_into_the_upper_half() {
        let full: Vec<Duration> = (1..=6)
            .map(|a| exponential(MS(100), MS(1000), a, 1.0))
            .collect();
        assert_eq!(full, [100, 200, 400, 800, 1000, 1000].map(MS));
        assert_eq!(exponential(MS(100), MS(1000), 3, 0.0), MS(200));
        assert_eq!(exponential(MS(100), MS(1000), 0, 1.0), MS(100));
        assert_eq!(exponential(MS(100), MS(1000), u32::MAX, 1.0), MS(1000));
        assert_eq!(exponential(MS(u64::MAX), MS(1000), 2, 1.0), MS(1000));
        assert_eq!(exponential(MS(100), MS(1000), 1, f64::INFINITY), MS(50));
    }
}
