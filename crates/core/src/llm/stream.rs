//! Helpers shared by the providers: server-sent events over a `reqwest` body (parsed by
//! `eventsource-stream`), transport error mapping, and rate-limit header parsing.

use std::sync::Arc;
use std::time::Duration;

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::{Stream, StreamExt};
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::http::{Lease, LlmHttp};
use super::{ProviderError, RateLimitHint};

/// How long one call may take.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Bound {
    /// A non-streamed call: the whole request, answer included.
    Whole(Duration),
    /// A streamed call: each wait for bytes (the response headers, then every piece of the
    /// body), however long the whole stream lasts.
    Idle(Duration),
}

/// Posts `body` as JSON on a lane of `http`, with `headers` (the provider's authentication)
/// added, bounded by `bound`; a 2xx answer comes back with its lease, anything else as
/// `map_status` maps it. The body is dropped once serialised, not kept for as long as the call
/// is in flight.
pub(crate) async fn send_json(
    http: &LlmHttp,
    url: &str,
    headers: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    body: serde_json::Value,
    bound: Bound,
    map_status: fn(reqwest::StatusCode, Option<Duration>, &str) -> ProviderError,
) -> Result<(reqwest::Response, Lease), ProviderError> {
    let (request, lease) = http
        .post(url)
        .map_err(|e| network("building the HTTP client", e))?;
    let mut request = headers(request).json(&body);
    drop(body);
    let response = match bound {
        Bound::Whole(limit) => {
            request = request.timeout(limit);
            request.send().await.map_err(map_transport)?
        }
        Bound::Idle(idle) => tokio::time::timeout(idle, request.send())
            .await
            .map_err(|_| idle_timeout(idle))?
            .map_err(map_transport)?,
    };
    let status = response.status();
    if status.is_success() {
        return Ok((response, lease));
    }
    let retry_after = retry_after(response.headers());
    let text = response.text().await.unwrap_or_default();
    Err(map_status(status, retry_after, &text))
}

fn idle_timeout(idle: Duration) -> ProviderError {
    ProviderError::timeout(format!(
        "stream idle: no data from the provider for {} s",
        idle.as_secs_f64()
    ))
}

fn network(message: &str, source: reqwest::Error) -> ProviderError {
    ProviderError::Network {
        message: message.to_owned(),
        source: Some(Arc::new(source)),
    }
}

/// Why reading a streamed body stopped.
#[derive(Debug)]
enum BodyError {
    Transport(reqwest::Error),
    Idle(Duration),
}

/// The body's bytes, failing (once, then ending) when none arrive for `idle`.
fn idle_bounded(
    response: reqwest::Response,
    idle: Duration,
) -> impl Stream<Item = Result<impl AsRef<[u8]>, BodyError>> + Send + Unpin {
    let bytes = Box::pin(response.bytes_stream());
    Box::pin(futures::stream::unfold(
        Some(bytes),
        move |bytes| async move {
            let mut bytes = bytes?;
            match tokio::time::timeout(idle, bytes.next()).await {
                Ok(Some(item)) => Some((item.map_err(BodyError::Transport), Some(bytes))),
                Ok(None) => None,
                Err(_) => Some((Err(BodyError::Idle(idle)), None)),
            }
        },
    ))
}

/// The events of a `text/event-stream` response, with errors already mapped; no bytes for
/// `idle` fails the stream with a timeout.
pub(crate) fn events(
    response: reqwest::Response,
    idle: Duration,
) -> impl Stream<Item = Result<Event, ProviderError>> + Send + Unpin {
    parse_events(idle_bounded(response, idle))
}

/// The server-sent events in a stream of body pieces, with errors mapped.
fn parse_events<B: AsRef<[u8]>>(
    body: impl Stream<Item = Result<B, BodyError>> + Send + Unpin,
) -> impl Stream<Item = Result<Event, ProviderError>> + Send + Unpin {
    body.eventsource().map(|item| {
        item.map_err(|e| match e {
            EventStreamError::Transport(BodyError::Transport(e)) => stream_transport(e),
            EventStreamError::Transport(BodyError::Idle(idle)) => idle_timeout(idle),
            EventStreamError::Utf8(e) => ProviderError::invalid_because("stream is not UTF-8", e),
            EventStreamError::Parser(e) => {
                ProviderError::invalid(format!("malformed event stream: {e}"))
            }
        })
    })
}

/// The events that a body arriving in these pieces carries, as the providers read them (a
/// piece may end anywhere, even inside a UTF-8 character).
pub fn events_of_pieces(pieces: Vec<Vec<u8>>) -> Vec<Result<Event, ProviderError>> {
    let body = futures::stream::iter(pieces.into_iter().map(Ok::<_, BodyError>));
    futures::executor::block_on(parse_events(body).collect())
}

/// A failure while reading a streamed body: the connection went away (retryable), or a
/// timeout fired.
fn stream_transport(e: reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout {
            message: "reading the stream".to_owned(),
            source: Some(Arc::new(e)),
        }
    } else {
        network("stream interrupted", e)
    }
}

/// A failure before or while reading a whole (non-streamed) response.
pub(crate) fn map_transport(e: reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout {
            message: "waiting for the provider".to_owned(),
            source: Some(Arc::new(e)),
        }
    } else {
        // Connection refused or reset, body cut short: the same request may work again. (With
        // no content decoding enabled, the "decode" errors of `bytes()` are bodies cut short
        // after the headers, as when an HTTP/2 stream is reset.)
        network("calling the provider", e)
    }
}

pub(crate) fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The longest wait a provider's header can ask for: a longer one (`Retry-After: 1e20`) is
/// read as this, so no header value can overflow a `Duration` or hold calls for years.
pub const LONGEST_HEADER_WAIT: Duration = Duration::from_secs(24 * 3600);

/// A wait of `secs` seconds from a header, capped at [`LONGEST_HEADER_WAIT`]; `None` when it
/// is negative, infinite or not a number.
fn header_wait(secs: f64) -> Option<Duration> {
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(
        Duration::try_from_secs_f64(secs)
            .unwrap_or(LONGEST_HEADER_WAIT)
            .min(LONGEST_HEADER_WAIT),
    )
}

/// `Retry-After` in seconds (the form LLM providers send).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

/// A `Retry-After` value in seconds (`"2"`, `"0.5"`), capped at [`LONGEST_HEADER_WAIT`];
/// `None` for anything else.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<f64>().ok().and_then(header_wait)
}

/// OpenAI's `x-ratelimit-remaining-requests` / `x-ratelimit-reset-requests` (`6ms`, `1s`,
/// `6m0s`, `1h2m3.5s`).
pub fn openai_hint(headers: &HeaderMap) -> Option<RateLimitHint> {
    let remaining = header(headers, "x-ratelimit-remaining-requests")
        .and_then(|v| v.trim().parse::<u64>().ok());
    let reset = header(headers, "x-ratelimit-reset-requests").and_then(|v| go_duration(&v));
    (remaining.is_some() || reset.is_some()).then_some(RateLimitHint {
        remaining_requests: remaining,
        reset_requests: reset,
    })
}

/// Anthropic's `anthropic-ratelimit-requests-remaining` / `-reset` (an RFC 3339 instant).
pub fn anthropic_hint(headers: &HeaderMap) -> Option<RateLimitHint> {
    let remaining = header(headers, "anthropic-ratelimit-requests-remaining")
        .and_then(|v| v.trim().parse::<u64>().ok());
    let reset = header(headers, "anthropic-ratelimit-requests-reset")
        .and_then(|v| chrono::DateTime::parse_from_rfc3339(v.trim()).ok())
        .map(|at| {
            (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(LONGEST_HEADER_WAIT)
        });
    (remaining.is_some() || reset.is_some()).then_some(RateLimitHint {
        remaining_requests: remaining,
        reset_requests: reset,
    })
}

/// A duration in Go's notation as OpenAI sends it: `250ms`, `1s`, `6m0s`, `1h2m3.5s`, capped
/// at [`LONGEST_HEADER_WAIT`].
pub fn go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * factor;
    }
    header_wait(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(go_duration("6ms"), Some(Duration::from_millis(6)));
        assert_eq!(go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(
            go_duration("1h2m3.5s"),
            Some(Duration::from_millis(3_723_500))
        );
        assert_eq!(go_duration("soon"), None);
        assert_eq!(go_duration(""), None);
        assert_eq!(go_duration("."), None);
        assert_eq!(go_duration("1x"), None);
    }

    #[test]
    fn absurd_waits_are_capped_not_panics() {
        assert_eq!(
            go_duration("99999999999999999999s"),
            Some(LONGEST_HEADER_WAIT)
        );
        assert_eq!(go_duration("1e400h"), None);
        assert_eq!(parse_retry_after("1e20"), Some(LONGEST_HEADER_WAIT));
        assert_eq!(parse_retry_after("inf"), None);
        assert_eq!(parse_retry_after("NaN"), None);
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(
            parse_retry_after(" 2.5 "),
            Some(Duration::from_millis(2500))
        );
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "1e20".parse().expect("header value"));
        assert_eq!(retry_after(&headers), Some(LONGEST_HEADER_WAIT));
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-ratelimit-remaining-requests",
            "0".parse().expect("value"),
        );
        headers.insert(
            "x-ratelimit-reset-requests",
            "99999999999999999999s".parse().expect("value"),
        );
        assert_eq!(
            openai_hint(&headers),
            Some(RateLimitHint {
                remaining_requests: Some(0),
                reset_requests: Some(LONGEST_HEADER_WAIT),
            })
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            "anthropic-ratelimit-requests-reset",
            "9999-12-31T23:59:59Z".parse().expect("value"),
        );
        let hint = anthropic_hint(&headers).expect("a hint");
        assert_eq!(hint.reset_requests, Some(LONGEST_HEADER_WAIT));
    }
}
