//! `llmflow validate`: loads and validates every workflow, reporting all problems with their
//! paths, a one-line summary per valid workflow, and the prompt files no workflow uses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use llmflow_core::workflow::{used_prompt_files, Catalog, RawWorkflow, Step, StepKind};

use crate::error::{CliError, CliResult};
use crate::source::{workflow_files, Found, Settings};

/// Load and validate every workflow, reporting all problems with their paths, a summary line
/// per workflow, and prompt files that no workflow uses (a warning).
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  llmflow validate --workflows workflows --prompts prompts\n\n\
Exit codes: 0 every workflow valid (unused prompt files are only warned about); 1 some \
workflow invalid; 2 a folder cannot be read or a setting is malformed."
)]
pub struct Args {
    /// Folder of workflow definitions (default WORKFLOWS_DIR or ./workflows).
    #[arg(long)]
    workflows: Option<PathBuf>,
    /// Folder of prompt templates (default PROMPTS_DIR or ./prompts).
    #[arg(long)]
    prompts: Option<PathBuf>,
}

pub async fn run(args: Args) -> CliResult {
    let settings = Settings::load()?;
    let workflows = args
        .workflows
        .unwrap_or_else(|| settings.config.workflows_dir.clone());
    let prompts = args
        .prompts
        .unwrap_or_else(|| settings.config.prompts_dir.clone());
    let files = workflow_files(&workflows)?;
    let result = Catalog::load_checked(&workflows, &prompts, settings.checks());
    let unused = unused_prompts(&files, &prompts);
    for file in &unused {
        eprintln!(
            "warning: {}: no workflow uses this prompt file",
            prompts.join(file).display()
        );
    }
    match result {
        Ok(catalog) => {
            for loaded in catalog.iter() {
                let workflow = &loaded.workflow;
                println!(
                    "ok  {} v{} ({}): {}",
                    workflow.name,
                    workflow.version,
                    &loaded.hash[..12],
                    summary(&workflow.steps)
                );
            }
            println!(
                "{} workflow(s) valid, {} unused prompt file(s)",
                catalog.len(),
                unused.len()
            );
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

/// `5 steps (2 llm, 2 transform, 1 conditional); models openai/gpt-4o-mini`.
fn summary(steps: &[Step]) -> String {
    let mut kinds = BTreeMap::new();
    let mut models = BTreeSet::new();
    count(steps, &mut kinds, &mut models);
    let total: usize = kinds.values().sum();
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let noun = if total == 1 { "step" } else { "steps" };
    let mut line = format!("{total} {noun} ({})", kinds.join(", "));
    if !models.is_empty() {
        let models: Vec<&str> = models.into_iter().collect();
        line.push_str(&format!("; models {}", models.join(", ")));
    }
    line
}

fn count<'a>(
    steps: &'a [Step],
    kinds: &mut BTreeMap<&'static str, usize>,
    models: &mut BTreeSet<&'a str>,
) {
    for step in steps {
        *kinds.entry(step.kind.name()).or_default() += 1;
        match &step.kind {
            StepKind::Llm(llm) => {
                models.insert(&llm.model);
            }
            StepKind::Conditional {
                then, otherwise, ..
            } => {
                count(then, kinds, models);
                count(otherwise, kinds, models);
            }
            StepKind::Parallel { branches, .. } => {
                for (_, steps) in branches {
                    count(steps, kinds, models);
                }
            }
            StepKind::Transform { .. } | StepKind::ExternalApi(_) => {}
        }
    }
}

/// Files under `prompts` (relative paths, sorted) that no workflow's `prompt_file` names,
/// directly or through `{{include:…}}`.
fn unused_prompts(workflow_files: &[PathBuf], prompts: &Path) -> Vec<PathBuf> {
    let mut used = BTreeSet::new();
    for file in workflow_files {
        let Ok(found) = Found::read(file) else {
            continue;
        };
        if let Ok(raw) = serde_json::from_value::<RawWorkflow>(found.source) {
            used.extend(used_prompt_files(&raw, prompts));
        }
    }
    let mut all = Vec::new();
    list_files(prompts, Path::new(""), &mut all);
    all.sort();
    all.into_iter().filter(|f| !used.contains(f)).collect()
}

/// Every file under `root/relative`, as paths relative to `root` (hidden files left out).
pub(crate) fn list_files(root: &Path, relative: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root.join(relative)) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = relative.join(&name);
        match entry.file_type() {
            Ok(t) if t.is_dir() => list_files(root, &path, out),
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
}
