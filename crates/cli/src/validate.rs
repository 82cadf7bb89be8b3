//! `llmflow validate`: loads and validates every workflow, reporting all problems with their
//! paths.

use std::path::PathBuf;

use llmflow_core::config::Config;
use llmflow_core::pricing::PriceTable;
use llmflow_core::workflow::{Catalog, Checks};

use crate::error::{CliError, CliResult};

/// Load and validate every workflow, reporting all problems with their paths.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  llmflow validate --workflows workflows --prompts prompts")]
pub struct Args {
    /// Folder of workflow definitions (default WORKFLOWS_DIR or ./workflows).
    #[arg(long)]
    workflows: Option<PathBuf>,
    /// Folder of prompt templates (default PROMPTS_DIR or ./prompts).
    #[arg(long)]
    prompts: Option<PathBuf>,
}

pub async fn run(args: Args) -> CliResult {
    let config = Config::load_for_tools()?;
    let workflows = args
        .workflows
        .unwrap_or_else(|| config.workflows_dir.clone());
    let prompts = args.prompts.unwrap_or_else(|| config.prompts_dir.clone());
    let pricing = PriceTable::load(config.pricing_file.as_deref()).map_err(CliError::bad)?;
    // The same `${env.NAME}` allow-list the services use (names only; no values needed).
    let checks = Checks::new(&pricing).with_env(config.workflow_env_names());
    match Catalog::load_checked(&workflows, &prompts, checks) {
        Ok(catalog) => {
            for loaded in catalog.iter() {
                println!(
                    "ok  {} v{} ({})",
                    loaded.workflow.name,
                    loaded.workflow.version,
                    &loaded.hash[..12]
                );
            }
            Ok(())
        }
        Err(errors) => {
            for error in &errors {
                eprintln!("{error}");
            }
            Err(CliError::Failed(anyhow::anyhow!(
                "{} invalid workflow file(s)",
                errors.len()
            )))
        }
    }
}
