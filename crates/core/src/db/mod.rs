//! PostgreSQL: the pool, the embedded migrations, and the queries each process needs.
//! diesel-async speaks the wire protocol itself, so no libpq is linked.

pub mod deliveries;
pub mod ending;
pub mod jobs;
pub mod models;
pub mod prepared;
pub mod retry;
pub mod schema;
pub mod workers;

use diesel::{Connection, ConnectionError};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{self, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::AsyncPgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

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

/// A pool of `size` connections, checked by opening one now so a bad URL fails at start.
///
/// Connections are recycled without a test query: the default (`Verified`) sends `SELECT 1`
/// on every checkout, one extra round trip and one extra PostgreSQL transaction per query
/// (measured by scripts/bench.sh). A connection that broke is still dropped by the pool: a
/// failed query marks it broken, and the caller's error path (reconciler, retry) covers the one
/// query that finds out.
pub async fn connect(url: &str, size: usize) -> Result<PgPool, DbError> {
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::Fast;
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
    let pool = Pool::builder(manager).max_size(size).build()?;
    drop(pool.get().await?);
    Ok(pool)
}

/// Applies every pending migration; returns the versions applied.
/// Runs on a blocking thread: diesel's migration harness is synchronous.
pub async fn run_migrations(url: &str) -> Result<Vec<String>, DbError> {
    with_sync_connection(url, |conn| {
        conn.run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect())
    })
    .await
}

/// Reverts the most recent migration; returns its version.
pub async fn revert_last_migration(url: &str) -> Result<String, DbError> {
    with_sync_connection(url, |conn| {
        conn.revert_last_migration(MIGRATIONS)
            .map(|version| version.to_string())
    })
    .await
}

type SyncConn = AsyncConnectionWrapper<AsyncPgConnection>;
type MigrationResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

async fn with_sync_connection<T, F>(url: &str, work: F) -> Result<T, DbError>
where
    T: Send + 'static,
    F: FnOnce(&mut SyncConn) -> MigrationResult<T> + Send + 'static,
{
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn = SyncConn::establish(&url)?;
        work(&mut conn).map_err(|e| DbError::Migration(e.to_string()))
    })
    .await
    .map_err(|e| DbError::Migration(e.to_string()))?
}
