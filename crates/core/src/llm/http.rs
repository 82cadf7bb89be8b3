//! The HTTP client of provider calls, in lanes.
//!
//! HTTP/2 (negotiated by ALPN over TLS, or spoken by prior knowledge to a plain-HTTP endpoint
//! with `LLM_HTTP2_PRIOR_KNOWLEDGE`) carries many calls on one connection, so a call in flight
//! costs a stream instead of a connection with its own buffers. The pooled client keeps one
//! HTTP/2 connection per host and never opens a second when the server's
//! `SETTINGS_MAX_CONCURRENT_STREAMS` is reached: calls past it would wait. So calls are spread
//! over lanes, each a client with its own pool, and a lane takes at most `streams_per_lane`
//! calls at once (`LLM_HTTP2_STREAMS`, default 100: RFC 9113 asks servers to allow at least
//! that many). A lane is added when every lane is full; over HTTP/1.1 lanes change nothing but
//! which pool a connection is kept in.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How lane clients are built.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Whole-request timeout of a non-streamed call whose step sets no timeout of its own.
    pub timeout: Duration,
    /// A streamed call fails when no bytes arrive for this long (it has no whole-request cap).
    pub stream_idle: Duration,
    /// Speak HTTP/2 without negotiation (plain-HTTP endpoints that serve h2c).
    pub http2_prior_knowledge: bool,
    /// Calls one lane (one HTTP/2 connection per host) carries at once.
    pub streams_per_lane: usize,
}

/// Provider calls' HTTP clients; cheap to clone (the lanes are shared).
#[derive(Clone, Debug)]
pub struct LlmHttp {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: HttpSettings,
    lanes: Mutex<Vec<Lane>>,
}

#[derive(Debug)]
struct Lane {
    client: reqwest::Client,
    calls: Arc<AtomicUsize>,
}

/// A call's place in its lane, given back when dropped; keep it until the body is read.
#[derive(Debug)]
pub struct Lease {
    calls: Arc<AtomicUsize>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.calls.fetch_sub(1, Ordering::Release);
    }
}

impl LlmHttp {
    /// Builds the first lane now, so that a bad setting fails at start.
    pub fn new(mut settings: HttpSettings) -> Result<LlmHttp, reqwest::Error> {
        settings.streams_per_lane = settings.streams_per_lane.max(1);
        let first = Lane::new(&settings)?;
        Ok(LlmHttp {
            inner: Arc::new(Inner {
                settings,
                lanes: Mutex::new(vec![first]),
            }),
        })
    }

    /// A `POST` on the first lane with room, and the lease that holds that room.
    pub fn post(&self, url: &str) -> Result<(reqwest::RequestBuilder, Lease), reqwest::Error> {
        let cap = self.inner.settings.streams_per_lane;
        let mut lanes = self
            .inner
            .lanes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let lane = match lanes
            .iter()
            .position(|lane| lane.calls.load(Ordering::Acquire) < cap)
        {
            Some(index) => &lanes[index],
            None => {
                lanes.push(Lane::new(&self.inner.settings)?);
                tracing::debug!(lanes = lanes.len(), "provider HTTP lane added");
                &lanes[lanes.len() - 1]
            }
        };
        lane.calls.fetch_add(1, Ordering::AcqRel);
        let lease = Lease {
            calls: Arc::clone(&lane.calls),
        };
        Ok((lane.client.post(url), lease))
    }

    /// The whole-request timeout of a non-streamed call whose step sets none.
    pub fn default_timeout(&self) -> Duration {
        self.inner.settings.timeout
    }

    /// How long a streamed call may go without a byte.
    pub fn stream_idle(&self) -> Duration {
        self.inner.settings.stream_idle
    }

    /// Lanes built so far.
    #[cfg(test)]
    fn lanes(&self) -> usize {
        self.inner
            .lanes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Lane {
    fn new(settings: &HttpSettings) -> Result<Lane, reqwest::Error> {
        // No client-wide timeout: a streamed call may last as long as it keeps sending. Each
        // call is bounded where it is made (`stream::send_json`, `stream::events`).
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(settings.streams_per_lane);
        if settings.http2_prior_knowledge {
            builder = builder.http2_prior_knowledge();
        }
        Ok(Lane {
            client: builder.build()?,
            calls: Arc::new(AtomicUsize::new(0)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(streams_per_lane: usize) -> LlmHttp {
        LlmHttp::new(HttpSettings {
            timeout: Duration::from_secs(5),
            stream_idle: Duration::from_secs(5),
            http2_prior_knowledge: false,
            streams_per_lane,
        })
        .expect("client")
    }

    #[test]
    fn a_lane_is_added_only_when_every_lane_is_full_and_freed_room_is_reused() {
        let http = http(2);
        let a = http.post("http://127.0.0.1:1/").expect("post");
        let b = http.post("http://127.0.0.1:1/").expect("post");
        assert_eq!(http.lanes(), 1);
        let c = http.post("http://127.0.0.1:1/").expect("post");
        assert_eq!(http.lanes(), 2);
        drop(a);
        let d = http.post("http://127.0.0.1:1/").expect("post");
        assert_eq!(http.lanes(), 2, "the first lane had room again");
        let e = http.post("http://127.0.0.1:1/").expect("post");
        assert_eq!(http.lanes(), 2, "the second lane had room");
        let _f = http.post("http://127.0.0.1:1/").expect("post");
        assert_eq!(http.lanes(), 3);
        drop((b, c, d, e));
    }
}
