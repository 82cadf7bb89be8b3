//! Signed webhook delivery: Standard Webhooks signatures, an SSRF-safe HTTP client (the
//! address policy of `llmflow-netguard` applied to literal hosts and to every DNS answer), the
//! retry schedule, and the apalis consumer that records every attempt in PostgreSQL.

pub mod classify;
pub mod client;
pub mod delivery;
pub mod recorder;
pub mod resolver;
pub mod schedule;
pub mod signing;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use llmflow_core::config::Config;
use llmflow_core::db::workers::{self, ProcessKind, Registration};
use llmflow_core::db::{self, DbError, PgPool};
use llmflow_core::queue::{self, DeliveryMessage, DeliveryStorage, QueueError, Queues};
use llmflow_netguard::AddressPolicy;

use crate::schedule::RetrySchedule;
use crate::signing::{KeyError, SigningKey};

/// Default connect timeout of a delivery (`WEBHOOK_CONNECT_TIMEOUT_SECS`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default whole-request timeout of a delivery (`WEBHOOK_REQUEST_TIMEOUT_SECS`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Why the webhook sender could not start; the message names the setting or service at fault.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{name} is not a usable secret")]
    Secret {
        name: &'static str,
        #[source]
        source: KeyError,
    },
    #[error("building the webhook HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("cannot reach PostgreSQL (DATABASE_URL)")]
    Postgres(#[source] DbError),
    #[error("cannot reach Redis (REDIS_URL)")]
    Redis(#[source] QueueError),
}

/// What every delivery shares inside one process.
pub struct WebhookState {
    pub config: Config,
    pub pool: PgPool,
    pub redis: apalis_redis::ConnectionManager,
    pub queues: Queues,
    pub client: reqwest::Client,
    pub policy: AddressPolicy,
    pub schedule: RetrySchedule,
    /// `LLM_WEBHOOK_SECRET`, then `LLM_WEBHOOK_SECRET_PREVIOUS` during rotation.
    pub default_keys: Vec<SigningKey>,
    pub worker_name: String,
    /// Deliveries being sent by this process now (reported to the worker registry).
    pub in_flight: Arc<AtomicUsize>,
    /// The group commits of the attempts' claims and records.
    recorders: recorder::Recorders,
    deliveries: DeliveryStorage,
    /// Cancelled when the sender starts to stop: nothing more is fetched.
    draining: CancellationToken,
    /// Cancelled when a stop's grace period is over: attempts in flight are given back.
    hand_back: CancellationToken,
}

impl WebhookState {
    pub async fn connect(config: Config) -> Result<WebhookState, StartError> {
        let policy = AddressPolicy::new(config.webhook_allowed_cidrs.clone());
        let schedule = RetrySchedule::new(
            config.webhook_retry_schedule.clone(),
            Duration::from_secs(config.webhook_retry_after_cap_secs),
        );
        let mut default_keys = Vec::new();
        for (name, secret) in [
            ("LLM_WEBHOOK_SECRET", &config.llm_webhook_secret),
            (
                "LLM_WEBHOOK_SECRET_PREVIOUS",
                &config.llm_webhook_secret_previous,
            ),
        ] {
            if let Some(secret) = Config::secret(secret) {
                default_keys.push(
                    SigningKey::parse(secret)
                        .map_err(|source| StartError::Secret { name, source })?,
                );
            }
        }
        let client = client::build_client(
            policy.clone(),
            Duration::from_secs(config.webhook_connect_timeout_secs),
            Duration::from_secs(config.webhook_request_timeout_secs),
        )
        .map_err(StartError::Client)?;
        let pool = db::connect_with(
            config.database_url.expose_secret(),
            config.database_pool_size,
            config.database_options().avoiding_seq_scans(),
        )
        .await
        .map_err(StartError::Postgres)?;
        let redis = queue::connect_to(&config.redis_target())
            .await
            .map_err(StartError::Redis)?;
        let queues = Queues::new(config.redis_namespace.clone());
        let deliveries = queues.delivery_storage(redis.clone(), 1);
        let worker_name = format!(
            "webhook-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        );
        let recorders = recorder::start(
            pool.clone(),
            config.claim_timeout(),
            worker_name.clone(),
            config.group_commit(),
        );
        Ok(WebhookState {
            recorders,
            config,
            pool,
            redis,
            queues,
            client,
            policy,
            schedule,
            default_keys,
            worker_name,
            in_flight: Arc::new(AtomicUsize::new(0)),
            deliveries,
            draining: CancellationToken::new(),
            hand_back: CancellationToken::new(),
        })
    }
}

/// How long the attempts still running after the grace period get to be handed back.
const HAND_BACK_TIMEOUT: Duration = Duration::from_secs(5);

/// A running delivery consumer.
pub struct WebhookHandle {
    shutdown: CancellationToken,
    state: Arc<WebhookState>,
    consumer: tokio::task::JoinHandle<()>,
    registry: tokio::task::JoinHandle<()>,
}

impl WebhookHandle {
    /// Stops gracefully: nothing more is fetched, attempts in flight get `SHUTDOWN_GRACE_SECS`
    /// to finish, and the ones still running then are dropped, their claims released and their
    /// messages pushed again for another sender. Answers how many were handed back.
    pub async fn shutdown(self) -> usize {
        let grace = self.state.config.shutdown_grace();
        self.state.draining.cancel();
        let mut consumer = self.consumer;
        let mut handed_back = 0;
        if tokio::time::timeout(grace, &mut consumer).await.is_err() {
            handed_back = self.state.in_flight.load(Ordering::Relaxed);
            tracing::info!(
                deliveries = handed_back,
                "grace period over: handing unfinished deliveries back"
            );
            self.state.hand_back.cancel();
            if tokio::time::timeout(HAND_BACK_TIMEOUT, &mut consumer)
                .await
                .is_err()
            {
                // What did not stop is taken over once its claim times out.
                tracing::warn!("some deliveries did not stop in time");
                consumer.abort();
            }
        }
        // The registry row goes last: this sender is live until nothing of it is left running.
        self.shutdown.cancel();
        let _ = self.registry.await;
        handed_back
    }

    /// Stops at once, as a crash would.
    pub fn abort(self) {
        self.shutdown.cancel();
        self.consumer.abort();
        self.registry.abort();
    }
}

/// Starts the delivery consumer and keeps this process in the worker registry.
pub fn start(state: WebhookState) -> WebhookHandle {
    llmflow_core::metrics::install();
    let state = Arc::new(state);
    let shutdown = CancellationToken::new();
    let registry = tokio::spawn(workers::keep_registered(
        state.pool.clone(),
        Registration::this_process(
            state.worker_name.clone(),
            ProcessKind::Webhook,
            state.config.webhook_concurrency,
        ),
        state.in_flight.clone(),
        state.config.worker_heartbeat(),
        shutdown.clone(),
    ));
    let consumer = tokio::spawn(consume(state.clone(), state.draining.clone()));
    WebhookHandle {
        shutdown,
        state,
        consumer,
        registry,
    }
}

async fn handle(
    message: DeliveryMessage,
    state: Data<Arc<WebhookState>>,
) -> Result<(), BoxDynError> {
    state.in_flight.fetch_add(1, Ordering::Relaxed);
    let result = delivery::handle(&state, &message).await;
    state.in_flight.fetch_sub(1, Ordering::Relaxed);
    if let Err(e) = result {
        // The delivery row keeps its state; the reconciler re-pushes it when due.
        let error = classify::describe_chain(&e);
        tracing::error!(delivery_id = %message.delivery_id, error, "delivery interrupted");
    }
    Ok(())
}

async fn consume(state: Arc<WebhookState>, shutdown: CancellationToken) {
    let concurrency = state.config.webhook_concurrency;
    let poll = state.config.queue_poll_interval();
    queue::supervise("webhooks", shutdown.clone(), |generation| {
        let state = state.clone();
        let shutdown = shutdown.clone();
        async move {
            let storage = state
                .queues
                .delivery_storage(state.redis.clone(), concurrency.min(100))
                .poll_with_interval(poll);
            WorkerBuilder::new(format!("{}-{generation}", state.worker_name))
                .backend(storage)
                .concurrency(concurrency)
                .data(state.clone())
                .build(handle)
                .run_until(async move {
                    shutdown.cancelled().await;
                    Ok::<(), WorkerError>(())
                })
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await;
}
