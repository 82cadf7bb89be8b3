//! PostgreSQL: the pool, the embedded migrations, and the queries each process needs.
//! diesel-async speaks the wire protocol itself, so no libpq is linked.

pub mod admin;
pub mod attempt_claims;
pub mod attempt_records;
pub mod connect;
pub mod deliveries;
pub mod ending;
pub mod group;
pub mod jobs;
pub mod models;
pub mod pooler;
pub mod prepared;
pub mod retention;
pub mod retry;
pub mod schema;
pub mod workers;
pub mod writes;

use diesel::ConnectionError;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{self, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::AsyncPgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use futures::FutureExt;

pub use connect::{establish, ConnectOptions, SslMode};

/// The top-level `migrations/` folder, compiled into every binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

pub type PgPool = Pool<AsyncPgConnection>;
pub type PooledConn = deadpool::Object<AsyncPgConnection>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database query failed")]
    Query(#[from] diesel::result::Error),
    #[error("cannot get a database connection")]
    Pool(#[from] deadpool::PoolError),
    #[error("cannot connect to PostgreSQL")]
    Connect(#[from] ConnectionError),
    #[error("cannot build the database pool")]
    Build(#[from] deadpool::BuildError),
    #[error("migration failed: {0}")]
    Migration(String),
}

/// A pool of `size` connections with the default options for `url` (see
/// [`ConnectOptions::for_url`]), checked by opening one now so a bad URL fails at start.
pub async fn connect(url: &str, size: usize) -> Result<PgPool, DbError> {
    connect_with(url, size, ConnectOptions::for_url(url, None)).await
}

/// A pool of `size` connections opened as `options` say (TLS per the URL's `sslmode`, see
/// [`connect`](mod@connect)), checked by opening one now so a bad URL fails at start.
///
/// Connections are recycled without a test query: the default (`Verified`) sends `SELECT 1`
/// on every checkout, one extra round trip and one extra PostgreSQL transaction per query
/// (measured by scripts/bench.sh). A connection that broke is still dropped by the pool: a
/// failed query marks it broken, and the caller's error path (reconciler, retry) covers the one
/// query that finds out.
pub async fn connect_with(
    url: &str,
    size: usize,
    options: ConnectOptions,
) -> Result<PgPool, DbError> {
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::Fast;
    config.custom_setup = Box::new(move |url| establish(url, options).boxed());
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
    let pool = Pool::builder(manager).max_size(size).build()?;
    match pool.get().await {
        Ok(conn) => drop(conn),
        Err(deadpool::PoolError::Backend(
            diesel_async::pooled_connection::PoolError::ConnectionError(e),
        )) => return Err(DbError::Connect(e)),
        Err(e) => return Err(e.into()),
    }
    Ok(pool)
}

/// Applies every pending migration; returns the versions applied.
/// Runs on a blocking thread: diesel's migration harness is synchronous.
pub async fn run_migrations(url: &str) -> Result<Vec<String>, DbError> {
    run_migrations_with(url, ConnectOptions::for_url(url, None)).await
}

/// As [`run_migrations`], the connection opened as `options` say.
pub async fn run_migrations_with(
    url: &str,
    options: ConnectOptions,
) -> Result<Vec<String>, DbError> {
    with_sync_connection(url, options, |conn| {
        conn.run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect())
    })
    .await
}

/// Reverts the most recent migration; returns its version.
pub async fn revert_last_migration(url: &str) -> Result<String, DbError> {
    revert_last_migration_with(url, ConnectOptions::for_url(url, None)).await
}

/// As [`revert_last_migration`], the connection opened as `options` say.
pub async fn revert_last_migration_with(
    url: &str,
    options: ConnectOptions,
) -> Result<String, DbError> {
    with_sync_connection(url, options, |conn| {
        conn.revert_last_migration(MIGRATIONS)
            .map(|version| version.to_string())
    })
    .await
}

type SyncConn = AsyncConnectionWrapper<AsyncPgConnection>;
type MigrationResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

async fn with_sync_connection<T, F>(
    url: &str,
    options: ConnectOptions,
    work: F,
) -> Result<T, DbError>
where
    T: Send + 'static,
    F: FnOnce(&mut SyncConn) -> MigrationResult<T> + Send + 'static,
{
    let conn = establish(url, options).await?;
    tokio::task::spawn_blocking(move || {
        let mut conn = SyncConn::from(conn);
        work(&mut conn).map_err(|e| DbError::Migration(e.to_string()))
    })
    .await
    .map_err(|e| DbError::Migration(e.to_string()))?
}
