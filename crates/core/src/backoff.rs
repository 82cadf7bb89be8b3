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
    // In whole millionths, so the arithmetic stays in integers: no float rounding can push a
    // delay past `cap` or overflow, however long the durations.
    let millionths = (jitter * f64::from(JITTER_STEPS)).round() as u32;
    let half = backoff / 2;
    let upper = backoff - half;
    let extra = upper
        .checked_mul(millionths)
        .map_or_else(|| (upper / JITTER_STEPS) * millionths, |d| d / JITTER_STEPS);
    half + extra
}

/// The resolution of the jitter draw.
const JITTER_STEPS: u32 = 1_000_000;

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
        assert_eq!(exponential(MS(100), MS(1000), 1, 0.5), MS(75));
        // The longest durations neither overflow nor pass the cap.
        let longest = Duration::new(u64::MAX, 999_999_999);
        assert_eq!(exponential(longest, longest, 3, 1.0), longest);
        assert!(exponential(longest, longest, 3, 0.7) < longest);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn durations() -> impl Strategy<Value = Duration> {
            prop_oneof![
                (0u64..=60_000).prop_map(Duration::from_millis),
                any::<u64>().prop_map(Duration::from_millis),
                (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
            ]
        }

        proptest! {
            /// Later retries never wait less, for the same jitter draw.
            #[test]
            fn monotone_in_the_attempt(
                base in durations(),
                cap in durations(),
                attempt in any::<u32>(),
                jitter in 0.0f64..=1.0,
            ) {
                let now = exponential(base, cap, attempt, jitter);
                let next = exponential(base, cap, attempt.saturating_add(1), jitter);
                prop_assert!(now <= next, "{now:?} then {next:?}");
            }

            /// No delay exceeds the cap, and jitter only ever shortens it to half at most.
            #[test]
            fn capped_and_never_below_half(
                base in durations(),
                cap in durations(),
                attempt in any::<u32>(),
                jitter in any::<f64>(),
            ) {
                let delay = exponential(base, cap, attempt, jitter);
                let full = exponential(base, cap, attempt, 1.0);
                prop_assert!(delay <= cap, "{delay:?} over the cap {cap:?}");
                prop_assert!(full <= cap);
                prop_assert!(delay <= full);
                prop_assert!(delay >= full / 2);
            }

            /// A larger jitter draw never gives a shorter delay.
            #[test]
            fn monotone_in_the_jitter(
                base in durations(),
                cap in durations(),
                attempt in any::<u32>(),
                a in 0.0f64..=1.0,
                b in 0.0f64..=1.0,
            ) {
                let (low, high) = if a <= b { (a, b) } else { (b, a) };
                prop_assert!(
                    exponential(base, cap, attempt, low) <= exponential(base, cap, attempt, high)
                );
            }
        }
    }
}
