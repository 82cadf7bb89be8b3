//! llmflow-worker: takes job ids from Redis, claims each job in PostgreSQL, runs its workflow
//! step by step (committing each finished step and its LLM usage), and hands the result to
//! webhook delivery. A reconciler re-pushes any unfinished job or due delivery that Redis lost.

pub mod bands;
mod budget;
pub mod cancel;
mod claims;
mod engine;
pub mod error;
pub mod events;
pub mod external;
mod handback;
pub mod local;
pub mod maintenance;
pub mod reconciler;
mod records;
mod spans;
mod steps;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use apalis::prelude::*;
use apalis_redis::ConnectionManager;
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use llmflow_core::config::Config;
use llmflow_core::db::workers::{self, ProcessKind, Registration};
use llmflow_core::db::{self, PgPool};
use llmflow_core::llm::limits::Limiter;
use llmflow_core::llm::retry::RetryPolicy;
use llmflow_core::llm::Providers;
use llmflow_core::pricing::PriceTable;
use llmflow_core::queue::{self, Band, DeliveryStorage, JobMessage, Queues};
use llmflow_core::telemetry::Chain;
use llmflow_core::workflow::{Checks, LoadedWorkflow};

pub use engine::run_job;
pub use error::{RunError, StartError};

/// What running a workflow needs: settings, providers, prices, limits, and where the run's
/// records and events go. A worker's engine writes to PostgreSQL and Redis; a local run's
/// (`local::run`) keeps everything in this process.
pub struct Engine {
    pub config: Config,
    pub providers: Providers,
    pub pricing: PriceTable,
    /// Provider limits shared with every other worker through Redis; `None` (a local run)
    /// calls without limits.
    pub limiter: Option<Limiter>,
    /// Retries of one LLM call on retryable errors.
    pub retry: RetryPolicy,
    /// HTTP client, response cache and rate limiter of `external_api` steps.
    pub external: external::ExternalApis,
    records: records::Records,
    events: events::Events,
}

/// What every job shares inside one worker process.
pub struct WorkerState {
    /// Runs the jobs' workflows, recording to PostgreSQL and publishing to Redis.
    pub engine: Engine,
    pub pool: PgPool,
    pub redis: ConnectionManager,
    pub queues: Queues,
    /// Unique per process start: apalis refuses a name still registered, and claims record it.
    pub worker_name: String,
    deliveries: DeliveryStorage,
    /// Cancellation tokens of the jobs running here (cancelled by pub/sub announcements).
    pub cancels: cancel::Registry,
    /// Run slots shared by the priority bands' consumers.
    pub gate: Arc<bands::PriorityGate>,
    /// Jobs running in this process now (reported to the worker registry and `/metrics`).
    pub in_flight: Arc<AtomicUsize>,
    /// Cancelled when the worker starts to stop: no new job starts (see `handback`).
    draining: CancellationToken,
    /// Queue messages being handled now (waiting for a slot or running).
    handlers: tokio::sync::watch::Sender<usize>,
    /// Claims of the jobs taken from Redis, written in batches.
    claimer: claims::Claimer,
    /// Workflow definitions by hash, as pinned by jobs.
    definitions: Mutex<HashMap<String, Arc<LoadedWorkflow>>>,
}

impl WorkerState {
    /// Connects to PostgreSQL and Redis and sets up the providers.
    pub async fn connect(config: Config) -> Result<WorkerState, StartError> {
        let providers = Providers::from_config(&config).map_err(StartError::LlmClient)?;
        Self::connect_with(config, providers).await
    }

    /// As `connect`, with providers given (tests plug in their own).
    pub async fn connect_with(
        config: Config,
        providers: Providers,
    ) -> Result<WorkerState, StartError> {
        let pricing =
            PriceTable::load(config.pricing_file.as_deref()).map_err(StartError::Pricing)?;
        let pool = db::connect_with(
            config.database_url.expose_secret(),
            config.database_pool_size,
            config.database_options().avoiding_seq_scans(),
        )
        .await
        .map_err(StartError::Database)?;
        let redis = queue::connect_to(&config.redis_target())
            .await
            .map_err(StartError::Redis)?;
        let queues = Queues::new(config.redis_namespace.clone());
        let deliveries = queues.delivery_storage(redis.clone(), 1);
        let limiter = Limiter::new(
            redis.clone(),
            &config.redis_namespace,
            config.llm_limits.clone(),
            config.limiter_settings(),
        );
        let retry = RetryPolicy::from_config(&config);
        let external = external::ExternalApis::new(&config)
            .map_err(StartError::ExternalClient)?
            .shared(pool.clone(), redis.clone());
        let worker_name = format!(
            "worker-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        );
        let gate = bands::PriorityGate::new(config.worker_concurrency);
        let claimer =
            claims::Claimer::start(pool.clone(), worker_name.clone(), config.claim_timeout());
        let events = events::Publisher::start(redis.clone(), config.redis_namespace.clone());
        let writer =
            writer::Writer::start(pool.clone(), worker_name.clone(), config.group_commit());
        let records = records::Records::Database(Box::new(records::Database {
            pool: pool.clone(),
            writer,
            deliveries: deliveries.clone(),
        }));
        let engine = Engine {
            config,
            providers,
            pricing,
            limiter: Some(limiter),
            retry,
            external,
            records,
            events: events::Events::Redis(events),
        };
        Ok(WorkerState {
            engine,
            gate,
            in_flight: Arc::new(AtomicUsize::new(0)),
            draining: CancellationToken::new(),
            handlers: tokio::sync::watch::Sender::new(0),
            claimer,
            pool,
            redis,
            queues,
            worker_name,
            deliveries,
            cancels: cancel::Registry::default(),
            definitions: Mutex::new(HashMap::new()),
        })
    }

    /// A handle for pushing webhook deliveries.
    pub fn delivery_storage(&self) -> DeliveryStorage {
        self.deliveries.clone()
    }

    /// The workflow a job was pinned to, from the cache or PostgreSQL.
    async fn workflow(&self, hash: &str) -> Result<Arc<LoadedWorkflow>, RunError> {
        if let Some(found) = self
            .definitions
            .lock()
            .ok()
            .and_then(|m| m.get(hash).cloned())
        {
            return Ok(found);
        }
        let mut conn = self.pool.get().await?;
        let definition = db::jobs::load_definition(&mut conn, hash)
            .await?
            .ok_or_else(|| RunError::MissingDefinition {
                hash: hash.to_owned(),
            })?;
        let engine = &self.engine;
        let checks = Checks::new(&engine.pricing).with_env(engine.config.workflow_env_names());
        let loaded =
            LoadedWorkflow::from_definition_checked(definition, checks).map_err(|problems| {
                let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
                RunError::InvalidDefinition {
                    problems: text.join("; "),
                }
            })?;
        let loaded = Arc::new(loaded);
        if let Ok(mut cache) = self.definitions.lock() {
            cache.insert(hash.to_owned(), loaded.clone());
        }
        Ok(loaded)
    }
}

/// A running worker: its consumers and its background tasks (reconciler, cancellation
/// listener, maintenance, registry heartbeat). Dropping the handle does not stop it; call
/// `shutdown`.
pub struct WorkerHandle {
    shutdown: CancellationToken,
    consumers: Vec<tokio::task::JoinHandle<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub state: Arc<WorkerState>,
}

/// How a graceful stop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stopped {
    /// Jobs still running when the grace period ended, handed back for another worker.
    pub handed_back: usize,
}

impl WorkerHandle {
    /// Stops gracefully: no more jobs are fetched or started (fetched ones waiting for a run slot
    /// are pushed back at once), running jobs get `SHUTDOWN_GRACE_SECS` to finish, and the ones
    /// still running then are handed back — stopped at a step boundary, their claims released
    /// and their ids pushed again — so that another worker resumes them at once.
    pub async fn shutdown(mut self) -> Stopped {
        let grace = self.state.engine.config.shutdown_grace();
        self.state.draining.cancel();
        let mut handlers = self.state.handlers.subscribe();
        let mut handed_back = 0;
        let finished = tokio::time::timeout(grace, handlers.wait_for(|n| *n == 0))
            .await
            .is_ok();
        if !finished {
            handed_back = self.state.in_flight.load(Ordering::Relaxed);
            tracing::info!(
                jobs = handed_back,
                "grace period over: handing unfinished jobs back"
            );
            self.state.cancels.hand_back_all();
            // Each job stops at once: its step is dropped, its claim released, its id pushed.
            // Bounded: a job stuck on an unreachable database keeps its claim, which the
            // reconcilers release once this worker's registry row is gone.
            let released = tokio::time::timeout(HAND_BACK_TIMEOUT, handlers.wait_for(|n| *n == 0));
            if released.await.is_err() {
                tracing::warn!("some jobs did not stop in time; their claims are released anyway");
            }
            match handback::release_all(&self.state).await {
                Ok(n) => tracing::info!(jobs = n, "handed back"),
                // The claims stay until other workers' reconcilers find this worker gone.
                Err(e) => {
                    tracing::warn!(error = %llmflow_core::telemetry::Chain(&e), "hand-back failed")
                }
            }
        }
        // Every message is handled. apalis's consumers now flush their acks and return, unless
        // its bounded ack channel filled while they drained (more than about four batches of
        // jobs ending during the stop): then they are dropped, and the few acks lost only mean
        // that apalis re-delivers those finished jobs to some worker later, whose claim ignores
        // them.
        let consumers = futures::future::join_all(self.consumers.iter_mut());
        if tokio::time::timeout(CONSUMER_EXIT, consumers)
            .await
            .is_err()
        {
            tracing::debug!("queue consumers did not return in time; dropping them");
            for consumer in &self.consumers {
                consumer.abort();
            }
        }
        // Only now: the registry row (this worker's liveness) stays until no claim is left.
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        Stopped { handed_back }
    }

    /// Stops at once, as a crash would: in-flight jobs are dropped mid-step.
    pub fn abort(self) {
        self.shutdown.cancel();
        for task in self.consumers.into_iter().chain(self.tasks) {
            task.abort();
        }
    }
}

/// Runs a worker until `signal` resolves (SIGTERM or SIGINT in `llmflow-worker`), then stops
/// it gracefully (see [`WorkerHandle::shutdown`]).
pub async fn run_until(
    state: WorkerState,
    signal: impl std::future::Future<Output = ()>,
) -> Stopped {
    let handle = start(state);
    signal.await;
    tracing::info!(
        grace_secs = handle.state.engine.config.shutdown_grace_secs,
        running = handle.state.in_flight.load(Ordering::Relaxed),
        "stopping: no new jobs; letting running jobs finish"
    );
    let stopped = handle.shutdown().await;
    tracing::info!(handed_back = stopped.handed_back, "stopped");
    stopped
}

/// Starts the job consumers (supervised) and the reconciler in the background.
pub fn start(state: WorkerState) -> WorkerHandle {
    llmflow_core::metrics::install();
    metrics::gauge!(llmflow_core::metrics::names::JOBS_IN_FLIGHT).set(0.0);
    let state = Arc::new(state);
    let shutdown = CancellationToken::new();
    let consumers = Band::ALL
        .into_iter()
        .map(|band| tokio::spawn(consume(state.clone(), state.draining.clone(), band)))
        .collect();
    let mut tasks = vec![tokio::spawn(reconciler::run(
        state.clone(),
        shutdown.clone(),
    ))];
    tasks.push(tokio::spawn(cancel::listen(
        state.clone(),
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(maintenance::schedule(
        state.clone(),
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(workers::keep_registered(
        state.pool.clone(),
        Registration::this_process(
            state.worker_name.clone(),
            ProcessKind::Worker,
            state.engine.config.worker_concurrency,
        ),
        state.in_flight.clone(),
        state.engine.config.worker_heartbeat(),
        shutdown.clone(),
    )));
    WorkerHandle {
        shutdown,
        consumers,
        tasks,
        state,
    }
}

/// How long the jobs still running after the grace period get to stop and be handed back.
const HAND_BACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long stopped queue consumers get to flush their acks once every message is handled.
const CONSUMER_EXIT: std::time::Duration = std::time::Duration::from_millis(200);

/// One queue message counted as being handled while this lives.
struct Handling(tokio::sync::watch::Sender<usize>);

impl Handling {
    fn enter(handlers: &tokio::sync::watch::Sender<usize>) -> Handling {
        handlers.send_modify(|n| *n += 1);
        Handling(handlers.clone())
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// One job counted as running while this lives.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: &Arc<AtomicUsize>) -> InFlight {
        let now = counter.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::gauge!(llmflow_core::metrics::names::JOBS_IN_FLIGHT).set(now as f64);
        InFlight(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = self.0.fetch_sub(1, Ordering::Relaxed).saturating_sub(1);
        metrics::gauge!(llmflow_core::metrics::names::JOBS_IN_FLIGHT).set(now as f64);
    }
}

/// Which priority band a consumer serves.
#[derive(Clone, Copy)]
struct ServedBand(Band);

async fn handle(
    message: JobMessage,
    state: Data<Arc<WorkerState>>,
    band: Data<ServedBand>,
) -> Result<(), BoxDynError> {
    let ServedBand(band) = *band;
    let _handling = Handling::enter(&state.handlers);
    // A stopping worker starts nothing more: what it fetched goes back to the queue at once.
    let slot = tokio::select! {
        biased;
        _ = state.draining.cancelled() => None,
        slot = state.gate.acquire(band) => Some(slot),
    };
    let Some(_slot) = slot.filter(|_| !state.draining.is_cancelled()) else {
        handback::unstarted(&state, message.job_id, band).await;
        return Ok(());
    };
    let _running = InFlight::enter(&state.in_flight);
    // Errors are ours to handle: a job that could not finish stays `processing` and the
    // reconciler re-pushes it once its claim lapses. apalis's own retries are not used.
    if let Err(e) = run_job(&state, message.job_id).await {
        tracing::error!(job_id = %message.job_id, error = %Chain(&e), "job run interrupted");
        handback::interrupted(&state, message.job_id).await;
    }
    Ok(())
}

async fn consume(state: Arc<WorkerState>, shutdown: CancellationToken, band: Band) {
    let concurrency = state.engine.config.worker_concurrency;
    let poll = state.engine.config.queue_poll_interval();
    let what = format!("jobs ({} priority)", band.as_str());
    queue::supervise(&what, shutdown.clone(), |generation| {
        let state = state.clone();
        let shutdown = shutdown.clone();
        async move {
            let storage = state
                .queues
                .band_storage(state.redis.clone(), band, concurrency.min(100))
                .poll_with_interval(poll);
            let worker = WorkerBuilder::new(format!(
                "{}-{}-{generation}",
                state.worker_name,
                band.as_str()
            ))
            .backend(storage)
            .concurrency(concurrency)
            .data(state.clone())
            .data(ServedBand(band))
            .build(handle);
            worker
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
