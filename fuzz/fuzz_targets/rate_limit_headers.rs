//! `Retry-After` and rate-limit headers: the value as the LLM providers' and the webhook
//! receivers' `Retry-After`, and as each of OpenAI's and Anthropic's rate-limit headers.
#![no_main]

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use llmflow_core::llm::wire::{
    anthropic_hint, go_duration, openai_hint, parse_retry_after, LONGEST_HEADER_WAIT,
};
use llmflow_webhook::schedule::{self, RetrySchedule};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(wait) = parse_retry_after(text) {
            assert!(wait <= LONGEST_HEADER_WAIT);
        }
        if let Some(wait) = go_duration(text) {
            assert!(wait <= LONGEST_HEADER_WAIT);
        }
        let wait = schedule::parse_retry_after(
            text,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        );
        let _ = RetrySchedule::default().delay_after(1, wait);
    }
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    for name in [
        "retry-after",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
    ] {
        headers.insert(name, value.clone());
    }
    for hint in [openai_hint(&headers), anthropic_hint(&headers)]
        .into_iter()
        .flatten()
    {
        assert!(hint
            .reset_requests
            .is_none_or(|wait| wait <= LONGEST_HEADER_WAIT));
    }
});
