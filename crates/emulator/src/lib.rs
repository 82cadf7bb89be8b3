//! # llmflow-emulator
//!
//! **Test and development equipment, not a production component.** A local HTTP stand-in for
//! the LLM providers llmflow talks to (OpenAI, OpenRouter, Anthropic) and for Google Places, so
//! llmflow can be run, tested and benchmarked without provider keys or network access.
//!
//! It follows each provider's documented wire format field for field:
//!
//! | endpoint | provider format |
//! | --- | --- |
//! | `POST /v1/chat/completions` | OpenAI Chat Completions (JSON and SSE); a `vendor/model` name selects OpenRouter's variant (`usage.cost`, `provider`, `gen-…` ids, OpenRouter error bodies). Also served at `/api/v1/chat/completions`. |
//! | `POST /v1/messages` | Anthropic Messages API (JSON and named SSE events) |
//! | `GET /maps/api/place/textsearch/json` | Google Places Text Search (legacy) |
//! | `POST /v1/places:searchText` | Google Places API (New) Text Search |
//!
//! Replies are deterministic (see [`count_tokens`] for token counts):
//! * a line `EMULATOR_REPLY: <text>` in a message makes the reply exactly `<text>`;
//! * a `json_schema` response format (or, for Anthropic, a schema written after `JSON Schema:`
//!   in the system or user text) gets an instance of the schema, with numbers derived from a
//!   stable hash of the last user message; string properties named like `phone`, `reasoning`
//!   or `*_id` get a phone number, a sentence or an id of the catalog quoted in the prompt;
//! * `json_object` (or, for Anthropic, a system/user text that mentions `JSON`) gets
//!   `{"summary": <first 12 words>, "score": <0..=100>, "tags": ["tag-a", "tag-b"]}`, where a
//!   line `EMULATOR_SCORE: <n>` forces the score;
//! * a line `EMULATOR_LATENCY_MS: <n>` makes that call wait `n` ms instead of the configured
//!   latency (the `x-emulator-latency-ms` header still wins; scripted delays add to it);
//! * a prompt that lists Markdown sections (headings, after "these sections" when it says so)
//!   gets a Markdown document with those sections, each with the table (its quoted columns),
//!   list or paragraphs its description asks for (see `markdown.rs`);
//! * anything else gets `"Emulated reply to: <first 20 words> — …"`.
//!
//! Latency, stream pacing, random errors (`error_rate`) and a FIFO of [`ScriptStep`]s control
//! failure behaviour; [`EmulatorStats`] counts calls, concurrency, client disconnects,
//! connections and calls over HTTP/2. It speaks HTTP/1.1 and, to clients that start with the
//! HTTP/2 preface, h2c (the providers negotiate HTTP/2 over TLS, which the emulator has not).
//! In-process use (integration tests):
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use llmflow_emulator::{Emulator, EmulatorConfig, ScriptStep};
//! let emulator = Emulator::spawn(EmulatorConfig::default()).await?;
//! emulator.push_script(vec![ScriptStep::Status { status: 429, retry_after: Some(1), body: None }]);
//! let openai_base = emulator.openai_base_url(); // http://127.0.0.1:PORT/v1
//! // … point the client at it, then:
//! assert_eq!(emulator.stats().calls, 0);
//! # Ok(()) }
//! ```
//!
//! The `llmflow-emulator` binary serves the same thing on a fixed port, with the control
//! endpoints `GET /_emulator/stats`, `POST /_emulator/script`, `GET|POST /_emulator/config`,
//! `POST /_emulator/reset` and `GET /_emulator/health`.

mod anthropic;
mod content;
mod control;
mod markdown;
mod openai;
mod places;
mod schema;
mod script;
mod sse;
mod state;
mod values;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::json;

pub use content::{count_tokens, LATENCY_DIRECTIVE, REPLY_DIRECTIVE, SCORE_DIRECTIVE};
pub use openai::openrouter_cost;
pub use places::RESULTS_PER_QUERY;
pub use script::ScriptStep;
pub use state::{EmulatorStats, LATENCY_HEADER};

use state::Shared;

/// Largest request body accepted (prompts can be long).
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Emulator settings. `latency`, `stream_chunk_delay` and `error_rate` can also be changed
/// while the server runs.
#[derive(Clone, Debug, PartialEq)]
pub struct EmulatorConfig {
    /// Delay before every provider response (per-request override: the
    /// `x-emulator-latency-ms` header).
    pub latency: Duration,
    /// Pause between streamed chunks.
    pub stream_chunk_delay: Duration,
    /// Fraction (0.0–1.0) of provider calls without a script step that answer 500 with the
    /// provider's error body.
    pub error_rate: f64,
    /// Seed for the error-injection random generator (`None`: seeded from the OS).
    pub seed: Option<u64>,
    /// Number of actix worker threads.
    pub workers: usize,
}

impl Default for EmulatorConfig {
    /// Zero latency, no stream pacing, no errors, one worker.
    fn default() -> Self {
        EmulatorConfig {
            latency: Duration::ZERO,
            stream_chunk_delay: Duration::ZERO,
            error_rate: 0.0,
            seed: None,
            workers: 1,
        }
    }
}

/// A running emulator server. Dropping it (or calling [`Emulator::stop`]) stops the server.
pub struct Emulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    handle: Option<ServerHandle>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Binds `127.0.0.1:0` and serves in a background tokio task.
    pub async fn spawn(config: EmulatorConfig) -> std::io::Result<Emulator> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        Self::spawn_on(listener, config).await
    }

    /// Serves on the given listener in a background tokio task (must be called within a tokio
    /// runtime).
    pub async fn spawn_on(
        listener: TcpListener,
        config: EmulatorConfig,
    ) -> std::io::Result<Emulator> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(&config));
        let data = web::Data::new(Arc::clone(&shared));
        let counted = Arc::clone(&shared);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
                .configure(routes)
        })
        .workers(config.workers.max(1))
        .disable_signals()
        .shutdown_timeout(1)
        // Treat a client's FIN as a disconnect, so that actix drops the handler future (and
        // the emulator counts the call as dropped) instead of finishing a reply nobody reads.
        .h1_allow_half_closed(false)
        // As the providers' servers do: an HTTP/2 reply is a HEADERS and a DATA frame written
        // apart, and Nagle's algorithm would hold the second for the client's delayed ACK (40 ms).
        .tcp_nodelay(true)
        .on_connect(move |_, _| counted.record_connection())
        // HTTP/1.1, or HTTP/2 by prior knowledge (h2c), told apart by the connection's first bytes.
        .listen_auto_h2c(listener)?
        .run();
        let handle = server.handle();
        let task = tokio::spawn(server);
        tracing::debug!(%addr, "llmflow-emulator started");
        Ok(Emulator {
            addr,
            shared,
            handle: Some(handle),
            task: Some(task),
        })
    }

    /// The bound socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://HOST:PORT` (the host root).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `base_url() + "/v1"`: the OpenAI (and OpenRouter) base URL; the client appends
    /// `/chat/completions`.
    pub fn openai_base_url(&self) -> String {
        format!("{}/v1", self.base_url())
    }

    /// `base_url() + "/api/v1"`, mirroring `https://openrouter.ai/api/v1` (the same endpoint
    /// as [`Emulator::openai_base_url`]).
    pub fn openrouter_base_url(&self) -> String {
        format!("{}/api/v1", self.base_url())
    }

    /// `base_url()`: the Anthropic base URL; the client appends `/v1/messages`.
    pub fn anthropic_base_url(&self) -> String {
        self.base_url()
    }

    /// `base_url()`: the Google Places base URL for both API forms
    /// (`/maps/api/place/textsearch/json` and `/v1/places:searchText`).
    pub fn places_base_url(&self) -> String {
        self.base_url()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> EmulatorStats {
        self.shared.stats()
    }

    /// Zeroes the counters (except the live `in_flight`) and clears the script.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Changes the latency of subsequent calls.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.update_config(|c| c.latency = latency);
    }

    /// Changes the pause between streamed chunks of subsequent calls.
    pub fn set_stream_chunk_delay(&self, delay: Duration) {
        self.shared.update_config(|c| c.stream_chunk_delay = delay);
    }

    /// Makes every provider call (LLM or Places) wait, before its latency, until `calls` calls
    /// have been in flight at once since the last reset; 0 turns the wait off. A test that
    /// expects `calls` requests at once gets its answers only if they really overlap, so it
    /// proves the overlap without relying on a latency being long enough.
    pub fn set_rendezvous(&self, calls: u64) {
        self.shared.set_rendezvous(calls);
    }

    /// Changes the error rate (clamped into 0.0–1.0).
    pub fn set_error_rate(&self, rate: f64) {
        self.shared.update_config(|c| c.error_rate = rate);
    }

    /// Appends steps to the script; each LLM call consumes one, first in first out, before
    /// the emulator falls back to its normal behaviour.
    pub fn push_script(&self, steps: Vec<ScriptStep>) {
        self.shared.push_script(steps);
    }

    /// Number of script steps not consumed yet.
    pub fn pending_script(&self) -> usize {
        self.shared.script_len()
    }

    /// Stops the server without waiting (open connections are closed).
    pub fn stop(mut self) {
        self.signal_stop();
    }

    /// Stops the server and waits until it has shut down.
    pub async fn shutdown(mut self) {
        self.signal_stop();
        if let Some(task) = self.task.take() {
            if let Ok(Err(e)) = task.await {
                tracing::warn!(error = %e, "llmflow-emulator server ended with an error");
            }
        }
    }

    fn signal_stop(&mut self) {
        if let Some(handle) = self.handle.take() {
            // The stop command is sent right away; the returned future only awaits completion.
            drop(handle.stop(false));
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// Binds `addr`, serves until Ctrl-C, then shuts down. Used by the `llmflow-emulator` binary.
pub async fn run(addr: SocketAddr, config: EmulatorConfig) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    let emulator = Emulator::spawn_on(listener, config.clone()).await?;
    tracing::info!(
        base_url = %emulator.base_url(),
        latency_ms = config.latency.as_millis() as u64,
        stream_chunk_ms = config.stream_chunk_delay.as_millis() as u64,
        error_rate = config.error_rate,
        "llmflow-emulator listening (test equipment: fake OpenAI/OpenRouter/Anthropic/Places)"
    );
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    emulator.shutdown().await;
    Ok(())
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/v1/chat/completions",
        web::post().to(openai::chat_completions),
    )
    .route(
        "/api/v1/chat/completions",
        web::post().to(openai::chat_completions),
    )
    .route("/v1/messages", web::post().to(anthropic::messages))
    .route(
        "/maps/api/place/textsearch/json",
        web::get().to(places::legacy_text_search),
    )
    .route("/v1/places:searchText", web::post().to(places::search_text))
    .configure(control::configure)
    .default_service(web::to(not_found));
}

/// Unknown paths: 404 in OpenAI's error shape.
async fn not_found(req: HttpRequest) -> HttpResponse {
    let message = format!("Invalid URL ({} {})", req.method(), req.path());
    HttpResponse::NotFound().json(json!({
        "error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}
    }))
}
