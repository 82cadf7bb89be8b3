//! Finds the workflow a command names: a file (a path that exists, or ends in `.json`), or a
//! workflow name in `WORKFLOWS_DIR`, with its prompt files from `PROMPTS_DIR` inlined.

use std::path::{Path, PathBuf};

use serde_json::Value;

use llmflow_core::config::Config;
use llmflow_core::pricing::PriceTable;
use llmflow_core::workflow::{Checks, LoadedWorkflow, Problem};

use crate::error::CliError;

/// The settings a command reads workflows with.
pub struct Settings {
    pub config: Config,
    pub pricing: PriceTable,
}

impl Settings {
    /// Reads `Config` (a malformed setting is bad input, named) and the pricing table.
    pub fn load() -> Result<Settings, CliError> {
        let config = Config::load_for_tools()?;
        let pricing = PriceTable::load(config.pricing_file.as_deref()).map_err(CliError::bad)?;
        Ok(Settings { config, pricing })
    }

    /// The deployment's checks: the pricing table and the `${env.NAME}` allow-list.
    pub fn checks(&self) -> Checks<'_> {
        Checks::new(&self.pricing).with_env(self.config.workflow_env_names())
    }
}

/// A workflow definition as found, before validation.
pub struct Found {
    /// The file it was read from.
    pub file: PathBuf,
    pub source: Value,
}

/// A found workflow: valid, or its problems with their JSON paths.
pub type Checked = Result<LoadedWorkflow, Vec<Problem>>;

impl Found {
    /// Finds `target`: a file, or the workflow of that name in `WORKFLOWS_DIR`.
    pub fn find(target: &str, settings: &Settings) -> Result<Found, CliError> {
        let path = Path::new(target);
        if path.is_file() || target.ends_with(".json") {
            return Found::read(path);
        }
        let dir = &settings.config.workflows_dir;
        // The usual layout first (`<name>.json`), then any file whose `name` matches.
        let mut candidates = vec![dir.join(format!("{target}.json"))];
        candidates.extend(workflow_files(dir)?);
        for file in candidates {
            if !file.is_file() {
                continue;
            }
            let Ok(found) = Found::read(&file) else {
                continue;
            };
            if found.source.get("name").and_then(Value::as_str) == Some(target) {
                return Ok(found);
            }
        }
        Err(CliError::bad(format!(
            "unknown workflow `{target}`: no file of that name, and no workflow of that name in {}",
            dir.display()
        )))
    }

    /// Reads a definition file; a missing file or one that is not JSON is bad input.
    pub fn read(path: &Path) -> Result<Found, CliError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::bad(format!("cannot read {}: {e}", path.display())))?;
        let source = serde_json::from_str(&text)
            .map_err(|e| CliError::bad(format!("{} is not valid JSON: {e}", path.display())))?;
        Ok(Found {
            file: path.to_owned(),
            source,
        })
    }

    /// Validates the definition, inlining its prompt files.
    pub fn check(&self, settings: &Settings) -> Checked {
        LoadedWorkflow::from_source_checked(
            &self.source,
            &settings.config.prompts_dir,
            settings.checks(),
        )
    }

    /// The valid workflow, or bad input listing every problem with its path.
    pub fn load(&self, settings: &Settings) -> Result<LoadedWorkflow, CliError> {
        self.check(settings).map_err(|problems| {
            let mut message = format!("{} is not a valid workflow:", self.file.display());
            for problem in problems {
                message.push_str(&format!("\n  {problem}"));
            }
            CliError::bad(message)
        })
    }
}

/// The workflow files of a folder (`*.json` but `schema.json`), sorted.
pub fn workflow_files(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| CliError::bad(format!("cannot read {}: {e}", dir.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter(|p| p.file_name().is_some_and(|n| n != "schema.json"))
        .collect();
    files.sort();
    Ok(files)
}
