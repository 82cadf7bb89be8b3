//! llmflow-api: the HTTP face of llmflow. It records each submitted job in PostgreSQL, pushes its
//! id to Redis and answers `202` at once; status comes from PostgreSQL.

pub mod auth;
mod body;
mod cors;
mod dashboard;
mod envelope;
pub mod error;
mod openapi;
mod ratelimit;
mod routes;
pub use routes::stream_token;
mod scope;
mod session;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use secrecy::ExposeSecret;

use llmflow_core::config::Config;
use llmflow_core::db::{self, PgPool};
use llmflow_core::pricing::PriceTable;
use llmflow_core::queue::{self, JobStorage, Queues};
use llmflow_core::workflow::{Catalog, Checks};

use crate::error::ApiError;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// What every handler shares.
pub struct AppState {
    pub config: Config,
    pub pool: PgPool,
    pub redis: apalis_redis::ConnectionManager,
    pub jobs: JobStorage,
    pub queues: Queues,
    pub catalog: Catalog,
    pub pricing: PriceTable,
    /// For connections of their own (SSE streams block on `XREAD`).
    pub redis_client: redis::Client,
    /// Webhook URLs naming a blocked literal address are refused at submit.
    pub webhook_policy: llmflow_netguard::AddressPolicy,
    client_key: String,
    admin_key: Option<String>,
}

impl AppState {
    pub fn require_client(&self, req: &actix_web::HttpRequest) -> Result<(), ApiError> {
        auth::require_client(req, &self.client_key, self.admin_key.as_deref())
    }

    pub fn require_admin(&self, req: &actix_web::HttpRequest) -> Result<(), ApiError> {
        auth::require_admin(req, &self.client_key, self.admin_key.as_deref())
    }

    /// The admin key in the header, or a dashboard session (see [`auth::require_admin_or_session`]).
    pub fn require_operator(&self, req: &actix_web::HttpRequest) -> Result<auth::Actor, ApiError> {
        auth::require_admin_or_session(req, &self.client_key, self.admin_key.as_deref())
    }

    /// The admin key, when one is configured (signs sessions and bulk previews).
    pub(crate) fn admin_key(&self) -> Option<&str> {
        self.admin_key.as_deref()
    }
}

/// Connects to PostgreSQL and Redis, loads the workflows, and builds the shared state.
/// Fails with a message naming what is wrong (unreachable database, invalid workflow, …).
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    let client_key = Config::secret(&config.llm_microservice_api_key)
        .context("LLM_MICROSERVICE_API_KEY must be set: clients authenticate with it")?
        .to_owned();
    let admin_key = Config::secret(&config.admin_api_key).map(str::to_owned);
    let pricing =
        PriceTable::load(config.pricing_file.as_deref()).context("loading the pricing table")?;
    let checks = Checks::new(&pricing).with_env(config.workflow_env_names());
    let catalog = Catalog::load_checked(&config.workflows_dir, &config.prompts_dir, checks)
        .map_err(|errors| {
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("invalid workflows:\n{}", text.join("\n"))
        })?;
    let pool = db::connect_with(
        config.database_url.expose_secret(),
        config.database_pool_size,
        config.database_options(),
    )
    .await
    .context("cannot reach PostgreSQL (DATABASE_URL)")?;
    let redis = queue::connect_to(&config.redis_target())
        .await
        .context("cannot reach Redis (REDIS_URL)")?;
    {
        let mut conn = pool.get().await.context("database connection")?;
        for loaded in catalog.iter() {
            db::jobs::store_definition(
                &mut conn,
                &loaded.hash,
                &loaded.workflow.name,
                &loaded.workflow.version,
                &loaded.definition,
            )
            .await
            .with_context(|| format!("storing workflow `{}`", loaded.workflow.name))?;
        }
    }
    let queues = Queues::new(config.redis_namespace.clone());
    let jobs = queues.job_storage(redis.clone(), 1);
    let redis_client = config
        .redis_target()
        .client()
        .context("REDIS_URL is not a valid Redis URL")?;
    let webhook_policy = llmflow_netguard::AddressPolicy::new(config.webhook_allowed_cidrs.clone());
    Ok(AppState {
        config,
        pool,
        redis,
        jobs,
        queues,
        catalog,
        pricing,
        redis_client,
        webhook_policy,
        client_key,
        admin_key,
    })
}

/// Serves the API on `listener` (port 0 in tests). The server does not watch signals itself:
/// `ServerHandle::stop(true)` (on SIGTERM/SIGINT in `llmflow-api`) stops accepting connections
/// and lets the requests in flight finish within `SHUTDOWN_GRACE_SECS`.
pub fn run(state: AppState, listener: TcpListener) -> std::io::Result<Server> {
    llmflow_core::metrics::install();
    let origins = state.config.cors_allowed_origins.clone();
    let grace = state.config.shutdown_grace_secs;
    let state = web::Data::new(Arc::new(state));
    let server = HttpServer::new(move || {
        App::new()
            .wrap(envelope::envelope())
            .wrap(actix_web::middleware::Condition::new(
                !origins.is_empty(),
                cors::cors(&origins),
            ))
            .app_data(state.clone())
            .app_data(routes::json_config())
            .app_data(routes::path_config())
            .app_data(web::PayloadConfig::new(BODY_LIMIT))
            .service(web::scope("/api/v1").configure(routes::configure))
            .route("/metrics", web::get().to(routes::metrics::metrics))
            .configure(openapi::configure)
            .configure(dashboard::configure)
            .default_service(web::to(not_found))
    })
    .disable_signals()
    .shutdown_timeout(grace)
    .listen(listener)?
    .run();
    Ok(server)
}

/// No route matched. A request whose path matched a resource but not its methods comes here
/// too (actix hands it to the app's default service), and answers 405.
async fn not_found(req: actix_web::HttpRequest) -> Result<HttpResponse, ApiError> {
    if req.match_pattern().is_some() {
        return Err(ApiError::MethodNotAllowed);
    }
    Err(ApiError::NotFound("no such route".to_owned()))
}
