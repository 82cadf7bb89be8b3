//! A database per test: created from a migrated template (built once per schema, under an
//! advisory lock shared by every test process), or empty for the migration tests.

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use tokio::sync::OnceCell;

use llmflow_core::db;

/// Server address for administration (creating databases).
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn database_url(name: &str) -> String {
    let admin = admin_url();
    let base = admin
        .rsplit_once('/')
        .map(|(base, _)| base)
        .unwrap_or(&admin);
    format!("{base}/{name}")
}

/// The template's name depends on the migrations, so a changed schema gets a fresh template.
fn template_name() -> String {
    let mut text = String::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations");
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("migrations folder")
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        for file in ["up.sql", "down.sql"] {
            text.push_str(&std::fs::read_to_string(entry.path().join(file)).unwrap_or_default());
        }
    }
    let hash = llmflow_core::workflow::definition_hash(&Value::String(text));
    format!("llmflow_tpl_{}", &hash[..16])
}

static TEMPLATE: OnceCell<String> = OnceCell::const_new();

/// Creates (once, under an advisory lock shared by every test process) the migrated template.
async fn template() -> String {
    TEMPLATE
        .get_or_init(|| async {
            let name = template_name();
            let mut admin = admin().await;
            diesel::sql_query("SELECT pg_advisory_lock(734001)")
                .execute(&mut admin)
                .await
                .expect("lock");
            #[derive(diesel::QueryableByName)]
            struct Exists {
                #[diesel(sql_type = diesel::sql_types::Bool)]
                exists: bool,
            }
            let exists: Exists = diesel::sql_query(format!(
                "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name}') AS exists"
            ))
            .get_result(&mut admin)
            .await
            .expect("query");
            if !exists.exists {
                let building = format!("{name}_building");
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .expect("drop");
                diesel::sql_query(format!("CREATE DATABASE {building}"))
                    .execute(&mut admin)
                    .await
                    .expect("create");
                db::run_migrations(&database_url(&building))
                    .await
                    .expect("migrate template");
                diesel::sql_query(format!("ALTER DATABASE {building} RENAME TO {name}"))
                    .execute(&mut admin)
                    .await
                    .expect("rename");
            }
            diesel::sql_query("SELECT pg_advisory_unlock(734001)")
                .execute(&mut admin)
                .await
                .expect("unlock");
            name
        })
        .await
        .clone()
}

async fn admin() -> AsyncPgConnection {
    AsyncPgConnection::establish(&admin_url())
        .await
        .expect("admin connection")
}

/// Creates a database named for this test (`llmflow_t_…`, which `scripts/test.sh` drops on
/// its next run) with the given clause, and returns its URL.
async fn create(clause: &str) -> String {
    let name = format!("llmflow_t_{}", uuid::Uuid::now_v7().simple());
    diesel::sql_query(format!("CREATE DATABASE {name}{clause}"))
        .execute(&mut admin().await)
        .await
        .expect("create test database");
    database_url(&name)
}

/// A fresh database for one test, with every migration applied.
pub async fn fresh_database() -> String {
    let template = template().await;
    create(&format!(" TEMPLATE {template}")).await
}

/// A new empty database (no migrations applied).
pub async fn empty_database() -> String {
    create("").await
}
