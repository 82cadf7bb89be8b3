//! Shared server state: runtime configuration, counters, the script queue and the per-call
//! plan (latency, scripted step or injected error).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use actix_web::HttpRequest;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::script::ScriptStep;
use crate::EmulatorConfig;

/// Request header that overrides the latency of a single call, in milliseconds.
pub const LATENCY_HEADER: &str = "x-emulator-latency-ms";

/// A snapshot of the emulator's counters.
///
/// Every provider request (LLM or Places) is counted in `in_flight` while its handler runs and
/// ends up in exactly one of `completed` or `dropped`, so once traffic stops
/// `completed + dropped == calls + places_calls`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EmulatorStats {
    /// LLM provider requests received (`/v1/chat/completions` and `/v1/messages`), including
    /// rejected ones (bad key, bad JSON).
    pub calls: u64,
    /// LLM requests per requested `model` (only requests whose body named a model).
    pub calls_by_model: BTreeMap<String, u64>,
    /// Provider requests the emulator finished answering (success, error or a scripted drop).
    pub completed: u64,
    /// Provider requests currently inside a handler (including streams still being sent).
    pub in_flight: u64,
    /// Highest `in_flight` seen since start or the last reset.
    pub max_in_flight: u64,
    /// Provider requests whose client went away before the reply was complete.
    pub dropped: u64,
    /// Google Places requests received (both API forms).
    pub places_calls: u64,
    /// Error replies caused by `error_rate` or by scripted `Status`/`ErrorMidStream` steps.
    pub injected_errors: u64,
    /// TCP connections accepted (HTTP/1.1 keeps one per call in flight; HTTP/2 carries many).
    pub connections: u64,
    /// Provider requests (LLM or Places) that arrived over HTTP/2.
    pub http2_calls: u64,
}

/// The settings that may change while the server runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RuntimeConfig {
    pub latency: Duration,
    pub stream_chunk_delay: Duration,
    pub error_rate: f64,
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    completed: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    dropped: AtomicU64,
    places_calls: AtomicU64,
    injected_errors: AtomicU64,
    connections: AtomicU64,
    http2_calls: AtomicU64,
}

/// State shared by the handlers of every worker and by the [`crate::Emulator`] handle.
pub(crate) struct Shared {
    config: RwLock<RuntimeConfig>,
    script: Mutex<VecDeque<ScriptStep>>,
    counters: Counters,
    calls_by_model: Mutex<BTreeMap<String, u64>>,
    rng: Mutex<StdRng>,
    /// Calls in flight together that every call waits for before answering (0: no wait).
    rendezvous: AtomicU64,
    /// Woken whenever `max_in_flight` rises or the rendezvous changes.
    in_flight_rose: tokio::sync::Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which kind of provider endpoint a call hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallKind {
    Llm,
    Places,
}

/// What a provider handler must do for one call.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Action {
    /// The normal reply.
    Normal,
    /// The normal reply with exactly this content.
    Content(String),
    /// Answer with this status (scripted).
    Status {
        status: u16,
        retry_after: Option<u64>,
        body: Option<serde_json::Value>,
    },
    /// Answer 500 because of `error_rate`.
    InjectedError,
    /// Cut the connection part-way.
    DropMidStream,
    /// Send a provider error event part-way through a stream.
    ErrorMidStream,
    /// Never answer.
    Hang,
}

/// The resolved behaviour of one call.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// How long to wait before the response headers.
    pub wait: Duration,
    /// Pause between streamed chunks.
    pub chunk_delay: Duration,
    /// What to answer.
    pub action: Action,
    /// The configured latency included in `wait` (`None` when the request's header set it).
    pub configured: Option<Duration>,
}

impl Plan {
    /// A prompt's `EMULATOR_LATENCY_MS:` replaces the configured latency (the request's
    /// header, when given, still wins; scripted delays stay on top).
    pub fn apply_latency_directive(&mut self, latency: Option<Duration>) {
        if let (Some(latency), Some(configured)) = (latency, self.configured) {
            self.wait = self.wait.saturating_sub(configured).saturating_add(latency);
            self.configured = Some(latency);
        }
    }

    /// Waits for the rendezvous, then the planned time before the response; never returns for
    /// [`Action::Hang`].
    ///
    /// These are async waits inside the handler future, so a client disconnect (which makes
    /// actix drop the future) interrupts them.
    pub async fn wait(&self, shared: &Shared) {
        shared.rendezvous().await;
        if !self.wait.is_zero() {
            tokio::time::sleep(self.wait).await;
        }
        if self.action == Action::Hang {
            std::future::pending::<()>().await;
        }
    }
}

impl Shared {
    pub fn new(config: &EmulatorConfig) -> Self {
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_rng(&mut rand::rng()),
        };
        Shared {
            config: RwLock::new(RuntimeConfig {
                latency: config.latency,
                stream_chunk_delay: config.stream_chunk_delay,
                error_rate: config.error_rate,
            }),
            script: Mutex::new(VecDeque::new()),
            counters: Counters::default(),
            calls_by_model: Mutex::new(BTreeMap::new()),
            rng: Mutex::new(rng),
            rendezvous: AtomicU64::new(0),
            in_flight_rose: tokio::sync::Notify::new(),
        }
    }

    /// Makes every provider call wait, before its latency, until `calls` calls have been in
    /// flight at once (`max_in_flight >= calls` since the last reset); 0 turns the wait off.
    ///
    /// Tests of concurrency use it instead of a long latency: a client that really sends
    /// `calls` requests at once gets its answers as soon as the last one arrives, and one that
    /// does not never gets them, so the overlap is proven by the answers, not by timing.
    pub fn set_rendezvous(&self, calls: u64) {
        self.rendezvous.store(calls, Ordering::SeqCst);
        self.in_flight_rose.notify_waiters();
    }

    /// Waits until the rendezvous (if any) is reached; see [`Shared::set_rendezvous`].
    async fn rendezvous(&self) {
        let reached = || {
            let calls = self.rendezvous.load(Ordering::SeqCst);
            calls == 0 || self.counters.max_in_flight.load(Ordering::SeqCst) >= calls
        };
        loop {
            let rose = self.in_flight_rose.notified();
            tokio::pin!(rose);
            rose.as_mut().enable();
            if reached() {
                return;
            }
            rose.await;
        }
    }

    pub fn runtime_config(&self) -> RuntimeConfig {
        *self.config.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn update_config(&self, f: impl FnOnce(&mut RuntimeConfig)) -> RuntimeConfig {
        let mut guard = self.config.write().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard);
        guard.error_rate = sanitize_rate(guard.error_rate);
        *guard
    }

    pub fn push_script(&self, steps: impl IntoIterator<Item = ScriptStep>) {
        lock(&self.script).extend(steps);
    }

    pub fn script_len(&self) -> usize {
        lock(&self.script).len()
    }

    /// Clears counters (except the live `in_flight`) and the script queue.
    pub fn reset(&self) {
        lock(&self.script).clear();
        lock(&self.calls_by_model).clear();
        let c = &self.counters;
        for counter in [
            &c.calls,
            &c.completed,
            &c.dropped,
            &c.places_calls,
            &c.injected_errors,
            &c.connections,
            &c.http2_calls,
        ] {
            counter.store(0, Ordering::SeqCst);
        }
        c.max_in_flight
            .store(c.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    pub fn stats(&self) -> EmulatorStats {
        let c = &self.counters;
        EmulatorStats {
            calls: c.calls.load(Ordering::SeqCst),
            calls_by_model: lock(&self.calls_by_model).clone(),
            completed: c.completed.load(Ordering::SeqCst),
            in_flight: c.in_flight.load(Ordering::SeqCst),
            max_in_flight: c.max_in_flight.load(Ordering::SeqCst),
            dropped: c.dropped.load(Ordering::SeqCst),
            places_calls: c.places_calls.load(Ordering::SeqCst),
            injected_errors: c.injected_errors.load(Ordering::SeqCst),
            connections: c.connections.load(Ordering::SeqCst),
            http2_calls: c.http2_calls.load(Ordering::SeqCst),
        }
    }

    /// Counts a new provider call and returns the guard that tracks it until it completes or
    /// is dropped.
    pub fn begin_call(self: &Arc<Self>, req: &HttpRequest, kind: CallKind) -> CallGuard {
        let c = &self.counters;
        match kind {
            CallKind::Llm => c.calls.fetch_add(1, Ordering::SeqCst),
            CallKind::Places => c.places_calls.fetch_add(1, Ordering::SeqCst),
        };
        if req.version() == actix_web::http::Version::HTTP_2 {
            c.http2_calls.fetch_add(1, Ordering::SeqCst);
        }
        let now = c.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        if c.max_in_flight.fetch_max(now, Ordering::SeqCst) < now {
            self.in_flight_rose.notify_waiters();
        }
        CallGuard {
            shared: Arc::clone(self),
            finished: false,
        }
    }

    pub fn record_model(&self, model: &str) {
        *lock(&self.calls_by_model)
            .entry(model.to_owned())
            .or_default() += 1;
    }

    pub fn record_connection(&self) {
        self.counters.connections.fetch_add(1, Ordering::SeqCst);
    }

    pub fn record_injected_error(&self) {
        self.counters.injected_errors.fetch_add(1, Ordering::SeqCst);
    }

    /// Resolves what to do for one call: the per-request latency header or the configured
    /// latency, then (for LLM calls) the next script step, else an `error_rate` roll.
    pub fn plan(&self, req: &HttpRequest, kind: CallKind) -> Plan {
        let config = self.runtime_config();
        let header = latency_override(req);
        let mut plan = Plan {
            wait: header.unwrap_or(config.latency),
            chunk_delay: config.stream_chunk_delay,
            action: Action::Normal,
            configured: header.is_none().then_some(config.latency),
        };
        let step = match kind {
            CallKind::Llm => lock(&self.script).pop_front(),
            CallKind::Places => None,
        };
        match step {
            Some(ScriptStep::Ok) => {}
            Some(ScriptStep::Status {
                status,
                retry_after,
                body,
            }) => {
                if (200..300).contains(&status) && body.is_none() {
                    // A 2xx without a body is just a normal reply.
                } else {
                    plan.action = Action::Status {
                        status,
                        retry_after,
                        body,
                    };
                }
            }
            Some(ScriptStep::Delay(d) | ScriptStep::SlowHeaders(d)) => {
                plan.wait = plan.wait.saturating_add(d);
            }
            Some(ScriptStep::Content(text)) => plan.action = Action::Content(text),
            Some(ScriptStep::DropMidStream) => plan.action = Action::DropMidStream,
            Some(ScriptStep::ErrorMidStream) => plan.action = Action::ErrorMidStream,
            Some(ScriptStep::Hang) => plan.action = Action::Hang,
            None => {
                if config.error_rate > 0.0 && lock(&self.rng).random_bool(config.error_rate) {
                    plan.action = Action::InjectedError;
                }
            }
        }
        if matches!(
            plan.action,
            Action::Status { .. } | Action::InjectedError | Action::ErrorMidStream
        ) {
            self.record_injected_error();
        }
        plan
    }
}

/// Clamps an error rate into `0.0..=1.0` (NaN becomes 0).
pub(crate) fn sanitize_rate(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}

fn latency_override(req: &HttpRequest) -> Option<Duration> {
    req.headers()
        .get(LATENCY_HEADER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_millis)
}

/// Tracks one provider call: counted in `in_flight` while alive; [`CallGuard::finish`] counts
/// it as completed, dropping it unfinished (actix dropped the handler future or the response
/// body stream because the client disconnected) counts it as dropped.
pub(crate) struct CallGuard {
    shared: Arc<Shared>,
    finished: bool,
}

impl CallGuard {
    /// Marks the call as answered.
    pub fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let c = &self.shared.counters;
        if self.finished {
            c.completed.fetch_add(1, Ordering::SeqCst);
        } else {
            c.dropped.fetch_add(1, Ordering::SeqCst);
            tracing::debug!("client went away before the reply was complete");
        }
        c.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_counts_completed_and_dropped() {
        let shared = Arc::new(Shared::new(&EmulatorConfig::default()));
        let req = actix_web::test::TestRequest::default().to_http_request();
        let a = shared.begin_call(&req, CallKind::Llm);
        let b = shared.begin_call(&req, CallKind::Places);
        let s = shared.stats();
        assert_eq!(
            (s.calls, s.places_calls, s.in_flight, s.max_in_flight),
            (1, 1, 2, 2)
        );
        a.finish();
        drop(b);
        let s = shared.stats();
        assert_eq!(
            (s.in_flight, s.completed, s.dropped, s.max_in_flight),
            (0, 1, 1, 2)
        );
        shared.reset();
        assert_eq!(shared.stats(), EmulatorStats::default());
    }

    #[test]
    fn rates_are_clamped() {
        assert_eq!(sanitize_rate(f64::NAN), 0.0);
        assert_eq!(sanitize_rate(-1.0), 0.0);
        assert_eq!(sanitize_rate(3.0), 1.0);
        assert_eq!(sanitize_rate(0.25), 0.25);
    }
}
