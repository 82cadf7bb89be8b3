//! Retry timing for webhook deliveries, as pure functions of the attempt number and the
//! receiver's `Retry-After` (the consumer turns the result into a delayed queue message).

use std::time::{Duration, SystemTime};

/// When to retry a failed delivery: one fixed delay per retry, plus a cap on `Retry-After`.
///
/// The default is 5 s, 15 s, 45 s (four attempts, at 0 s, 5 s, 20 s and 65 s after the first
/// one) with `Retry-After` honoured up to 300 s. There is deliberately no jitter: receivers and
/// tests rely on the documented schedule, and deliveries are already spread out by their creation
/// times, so there is no thundering herd to break up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
    retry_after_cap: Duration,
}

impl Default for RetrySchedule {
    /// 5 s, 15 s, 45 s; `Retry-After` capped at 300 s.
    fn default() -> Self {
        RetrySchedule {
            delays: vec![
                Duration::from_secs(5),
                Duration::from_secs(15),
                Duration::from_secs(45),
            ],
            retry_after_cap: Duration::from_secs(300),
        }
    }
}

impl RetrySchedule {
    /// A schedule with these delays between attempts (empty = a single attempt, no retries) and
    /// this cap on how long a receiver's `Retry-After` may postpone a retry.
    pub fn new(delays: Vec<Duration>, retry_after_cap: Duration) -> RetrySchedule {
        RetrySchedule {
            delays,
            retry_after_cap,
        }
    }

    /// Returns the same delays with a different `Retry-After` cap.
    pub fn with_retry_after_cap(mut self, cap: Duration) -> RetrySchedule {
        self.retry_after_cap = cap;
        self
    }

    /// The scheduled delays between attempts, in order.
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// The longest a receiver's `Retry-After` may postpone a retry.
    pub fn retry_after_cap(&self) -> Duration {
        self.retry_after_cap
    }

    /// Total attempts a delivery gets: the first one plus one per delay.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.delays.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1)
    }

    /// Delay before the next attempt after attempt `failed_attempt` (1-based) failed, or `None`
    /// when it was the last. A `Retry-After` longer than the scheduled delay wins, up to the cap
    /// (the cap never shortens the scheduled delay itself).
    pub fn delay_after(
        &self,
        failed_attempt: u32,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        let index = usize::try_from(failed_attempt.checked_sub(1)?).ok()?;
        let scheduled = *self.delays.get(index)?;
        let requested = retry_after.map_or(Duration::ZERO, |ra| ra.min(self.retry_after_cap));
        Some(scheduled.max(requested))
    }
}

/// Parses a `Retry-After` header value: delta-seconds (`"120"`) or an HTTP-date
/// (`"Wed, 21 Oct 2015 07:28:00 GMT"`, measured from `now`; a past date means zero).
/// Returns `None` for anything else, so a malformed header just falls back to the schedule.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Saturate absurdly long delays; the schedule's cap applies later anyway.
        return Some(
            value
                .parse::<u64>()
                .map_or(Duration::MAX, Duration::from_secs),
        );
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn default_schedule() {
        let s = RetrySchedule::default();
        assert_eq!(s.max_attempts(), 4);
        assert_eq!(s.delays(), &[secs(5), secs(15), secs(45)]);
        assert_eq!(s.retry_after_cap(), secs(300));
        assert_eq!(s.delay_after(1, None), Some(secs(5)));
        assert_eq!(s.delay_after(2, None), Some(secs(15)));
        assert_eq!(s.delay_after(3, None), Some(secs(45)));
        assert_eq!(s.delay_after(4, None), None);
        assert_eq!(s.delay_after(5, None), None);
        assert_eq!(s.delay_after(u32::MAX, None), None);
        // Attempt numbers are 1-based; 0 is not an attempt.
        assert_eq!(s.delay_after(0, None), None);
    }

    #[test]
    fn offsets_from_first_attempt() {
        let s = RetrySchedule::default();
        let mut offsets = vec![Duration::ZERO];
        let mut attempt = 1;
        while let Some(d) = s.delay_after(attempt, None) {
            offsets.push(*offsets.last().unwrap() + d);
            attempt += 1;
        }
        assert_eq!(offsets, vec![secs(0), secs(5), secs(20), secs(65)]);
        assert_eq!(offsets.len() as u32, s.max_attempts());
    }

    #[test]
    fn retry_after_longer_wins() {
        let s = RetrySchedule::default();
        assert_eq!(s.delay_after(1, Some(secs(60))), Some(secs(60)));
        assert_eq!(s.delay_after(3, Some(secs(46))), Some(secs(46)));
    }

    #[test]
    fn retry_after_shorter_is_ignored() {
        let s = RetrySchedule::default();
        assert_eq!(s.delay_after(1, Some(secs(1))), Some(secs(5)));
        assert_eq!(s.delay_after(2, Some(Duration::ZERO)), Some(secs(15)));
        assert_eq!(s.delay_after(3, Some(secs(45))), Some(secs(45)));
    }

    #[test]
    fn retry_after_is_capped() {
        let s = RetrySchedule::default();
        assert_eq!(s.delay_after(1, Some(secs(3600))), Some(secs(300)));
        assert_eq!(s.delay_after(1, Some(Duration::MAX)), Some(secs(300)));
        // ...but it never extends the number of attempts.
        assert_eq!(s.delay_after(4, Some(secs(10))), None);
        // The cap limits Retry-After only, never the schedule's own delays.
        let s = RetrySchedule::new(vec![secs(600)], secs(300));
        assert_eq!(s.delay_after(1, Some(secs(900))), Some(secs(600)));
        let s = RetrySchedule::default().with_retry_after_cap(secs(30));
        assert_eq!(s.delay_after(1, Some(secs(100))), Some(secs(30)));
    }

    #[test]
    fn schedules_of_given_delays() {
        // Parsing `WEBHOOK_RETRY_SCHEDULE` is tested with the configuration.
        let s = RetrySchedule::new(vec![secs(1), secs(2), secs(3)], secs(300));
        assert_eq!(s.max_attempts(), 4);
        assert_eq!(s.retry_after_cap(), secs(300));
        let none = RetrySchedule::new(Vec::new(), secs(300));
        assert_eq!(none.max_attempts(), 1);
        assert_eq!(none.delay_after(1, Some(secs(5))), None);
        assert_eq!(RetrySchedule::new(vec![secs(1)], secs(2)).max_attempts(), 2);
    }

    #[test]
    fn retry_after_delta_seconds() {
        let now = SystemTime::now();
        assert_eq!(parse_retry_after("120", now), Some(secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::MAX)
        );
    }

    #[test]
    fn retry_after_http_date() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:29:30 GMT", now),
            Some(secs(90))
        );
        // Obsolete RFC 850 and asctime forms are also valid HTTP-dates.
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:28:10 GMT", now),
            Some(secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed Oct 21 07:28:20 2015", now),
            Some(secs(20))
        );
        // A date in the past means "retry now" (the schedule then decides).
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn retry_after_garbage() {
        let now = SystemTime::now();
        for v in [
            "",
            " ",
            "-5",
            "1.5",
            "soon",
            "120s",
            "+120",
            "Wed, 32 Oct 2015 07:28:00 GMT",
        ] {
            assert_eq!(parse_retry_after(v, now), None, "{v:?}");
        }
    }
}
