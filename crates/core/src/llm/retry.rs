//! When to try a provider call again: capped exponential backoff with jitter (`crate::backoff`),
//! and a provider's `Retry-After` honoured up to a cap. The timing is a pure function tests can
//! call.

use std::time::Duration;

use crate::config::Config;

/// How often and how patiently one provider call is retried on retryable errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Calls in all, the first included (1 = no retries).
    pub max_attempts: u32,
    /// Delay before the first retry, doubled for each later one.
    pub base: Duration,
    /// Largest backoff delay.
    pub cap: Duration,
    /// Largest wait a provider's `Retry-After` can impose.
    pub retry_after_cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(20),
            retry_after_cap: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// `LLM_RETRY_MAX_ATTEMPTS`, `LLM_RETRY_BASE_MS`, `LLM_RETRY_CAP_MS`,
    /// `LLM_RETRY_AFTER_CAP_SECS`.
    pub fn from_config(config: &Config) -> Self {
        RetryPolicy {
            max_attempts: config.llm_retry_max_attempts.max(1),
            base: Duration::from_millis(config.llm_retry_base_ms),
            cap: Duration::from_millis(config.llm_retry_cap_ms),
            retry_after_cap: Duration::from_secs(config.llm_retry_after_cap_secs),
        }
    }

    /// The wait before retry number `attempt` (1 = the first retry), with random jitter.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        self.delay_with_jitter(attempt, retry_after, rand::random::<f64>())
    }

    /// The wait before retry number `attempt`, for a jitter draw `jitter` in `0.0..=1.0`:
    /// the exponential backoff of [`crate::backoff::exponential`], never shorter than the
    /// provider's `retry_after`, itself capped at `retry_after_cap`.
    pub fn delay_with_jitter(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Duration {
        let jittered = crate::backoff::exponential(self.base, self.cap, attempt, jitter);
        match retry_after {
            Some(wait) => jittered.max(wait.min(self.retry_after_cap)),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        base: Duration::from_millis(100),
        cap: Duration::from_millis(1000),
        retry_after_cap: Duration::from_secs(5),
    };

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let full: Vec<u128> = (1..=6)
            .map(|a| POLICY.delay_with_jitter(a, None, 1.0).as_millis())
            .collect();
        assert_eq!(full, [100, 200, 400, 800, 1000, 1000]);
        let least: Vec<u128> = (1..=6)
            .map(|a| POLICY.delay_with_jitter(a, None, 0.0).as_millis())
            .collect();
        assert_eq!(least, [50, 100, 200, 400, 500, 500]);
        assert_eq!(
            POLICY.delay_with_jitter(u32::MAX, None, 1.0),
            Duration::from_millis(1000)
        );
    }

    #[test]
    fn random_jitter_stays_in_the_upper_half() {
        for _ in 0..200 {
            let d = POLICY.delay(3, None);
            assert!(
                d >= Duration::from_millis(200) && d <= Duration::from_millis(400),
                "{d:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_a_floor_and_is_capped() {
        assert_eq!(
            POLICY.delay_with_jitter(1, Some(Duration::from_secs(2)), 0.5),
            Duration::from_secs(2)
        );
        assert_eq!(
            POLICY.delay_with_jitter(1, Some(Duration::from_secs(3600)), 0.5),
            Duration::from_secs(5)
        );
        // A Retry-After shorter than the backoff does not shorten it.
        assert_eq!(
            POLICY.delay_with_jitter(4, Some(Duration::from_millis(1)), 1.0),
            Duration::from_millis(800)
        );
        assert_eq!(
            POLICY.delay_with_jitter(1, None, f64::NAN),
            Duration::from_millis(50)
        );
    }
}
