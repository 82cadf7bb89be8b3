//! `llmflow migrate`: applies (or with `--down` reverts the latest of) the database migrations.

use secrecy::ExposeSecret;

use llmflow_core::config::Config;

use crate::error::{CliError, CliResult};

/// Apply pending database migrations (DATABASE_URL); `--down` reverts the latest one.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  DATABASE_URL=postgres://postgres@127.0.0.1/llmflow llmflow migrate"
)]
pub struct Args {
    /// Revert the latest applied migration instead.
    #[arg(long)]
    down: bool,
}

pub async fn run(args: Args) -> CliResult {
    let config = Config::load_for_tools()?;
    let url = config.database_url.expose_secret();
    if url.trim().is_empty() {
        return Err(CliError::bad("DATABASE_URL must be set"));
    }
    let options = config.database_options();
    if args.down {
        let version = llmflow_core::db::revert_last_migration_with(url, options)
            .await
            .map_err(anyhow::Error::from)?;
        println!("reverted {version}");
    } else {
        let applied = llmflow_core::db::run_migrations_with(url, options)
            .await
            .map_err(anyhow::Error::from)?;
        if applied.is_empty() {
            println!("database is up to date");
        }
        for version in applied {
            println!("applied {version}");
        }
    }
    Ok(())
}
