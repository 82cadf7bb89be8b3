//! The workflows a deployment offers: every `*.json` in `WORKFLOWS_DIR` (except `schema.json`),
//! with `prompt_file` templates from `PROMPTS_DIR` inlined, validated, and hashed, so that a job
//! can be pinned to exactly the definition it was submitted with.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, LazyLock};

use regex::Regex;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::raw::{RawStep, RawWorkflow};
use super::{Checks, Problem, Workflow};
use crate::pricing::PriceTable;

/// `{{include:path}}` inside a prompt file: replaced by that file's text (paths are relative to
/// `PROMPTS_DIR`; includes may nest, but not in a cycle).
static INCLUDE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\{\{\s*include:\s*([^}\s]+)\s*\}\}")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// A workflow with the resolved definition it was built from and that definition's hash.
#[derive(Clone, Debug)]
pub struct LoadedWorkflow {
    pub workflow: Workflow,
    /// The definition with prompt files inlined: what the hash covers and what jobs store.
    pub definition: Value,
    pub hash: String,
}

impl LoadedWorkflow {
    /// Parses and validates a definition from JSON whose prompts are already inlined (the form
    /// stored with jobs).
    pub fn from_definition(
        definition: Value,
        pricing: &PriceTable,
    ) -> Result<LoadedWorkflow, Vec<Problem>> {
        Self::from_definition_checked(definition, Checks::new(pricing))
    }

    /// As `from_definition`, with the deployment's checks (environment allow-list).
    pub fn from_definition_checked(
        definition: Value,
        checks: Checks<'_>,
    ) -> Result<LoadedWorkflow, Vec<Problem>> {
        let raw = parse(&definition)?;
        let workflow = Workflow::compile_checked(&raw, checks)?;
        let hash = definition_hash(&definition);
        Ok(LoadedWorkflow {
            workflow,
            definition,
            hash,
        })
    }

    /// Parses a definition as written, inlines its prompt files, and validates it.
    pub fn from_source(
        source: &Value,
        prompts_dir: &Path,
        pricing: &PriceTable,
    ) -> Result<LoadedWorkflow, Vec<Problem>> {
        Self::from_source_checked(source, prompts_dir, Checks::new(pricing))
    }

    /// As `from_source`, with the deployment's checks (environment allow-list).
    pub fn from_source_checked(
        source: &Value,
        prompts_dir: &Path,
        checks: Checks<'_>,
    ) -> Result<LoadedWorkflow, Vec<Problem>> {
        let mut raw = parse(source)?;
        resolve_prompts(&mut raw, prompts_dir)?;
        let definition = serde_json::to_value(&raw).map_err(|e| {
            vec![Problem::new(
                "",
                format!("cannot serialise definition: {e}"),
            )]
        })?;
        let workflow = Workflow::compile_checked(&raw, checks)?;
        let hash = definition_hash(&definition);
        Ok(LoadedWorkflow {
            workflow,
            definition,
            hash,
        })
    }
}

/// Parses JSON into the raw shape; the error names the path of the first mismatch.
fn parse(source: &Value) -> Result<RawWorkflow, Vec<Problem>> {
    serde_path_to_error::deserialize(source).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        vec![Problem::new(field, e.inner().to_string())]
    })
}

/// SHA-256 of the definition's JSON text (serde_json writes object keys sorted, so equal
/// definitions hash equally).
pub fn definition_hash(definition: &Value) -> String {
    let text = definition.to_string();
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Replaces each `prompt_file` with its text, includes expanded.
pub fn resolve_prompts(raw: &mut RawWorkflow, prompts_dir: &Path) -> Result<(), Vec<Problem>> {
    let mut problems = Vec::new();
    resolve_steps(&mut raw.steps, "steps", prompts_dir, &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn resolve_steps(steps: &mut [RawStep], path: &str, dir: &Path, problems: &mut Vec<Problem>) {
    for (i, step) in steps.iter_mut().enumerate() {
        let path = format!("{path}[{i}]");
        match step {
            RawStep::Llm(llm) => {
                if let (Some(file), None) = (&llm.prompt_file, &llm.prompt) {
                    match read_prompt(dir, file, &mut Vec::new()) {
                        Ok(text) => {
                            llm.prompt = Some(text);
                            llm.prompt_file = None;
                        }
                        Err(message) => {
                            problems.push(Problem::new(format!("{path}.prompt_file"), message))
                        }
                    }
                }
            }
            RawStep::Conditional(c) => {
                resolve_steps(&mut c.then, &format!("{path}.then"), dir, problems);
                resolve_steps(&mut c.otherwise, &format!("{path}.else"), dir, problems);
            }
            RawStep::Parallel(p) => {
                for (name, steps) in p.branches.iter_mut() {
                    resolve_steps(steps, &format!("{path}.branches.{name}"), dir, problems);
                }
            }
            RawStep::Transform(_) | RawStep::ExternalApi(_) => {}
        }
    }
}

/// The prompt files a definition uses, relative to `prompts_dir`: its `prompt_file`s and,
/// transitively, the files they include. Files that cannot be read are left out (loading the
/// workflow reports them).
pub fn used_prompt_files(raw: &RawWorkflow, prompts_dir: &Path) -> BTreeSet<PathBuf> {
    let mut used = BTreeSet::new();
    let mut pending = Vec::new();
    collect_prompt_files(&raw.steps, &mut pending);
    while let Some(file) = pending.pop() {
        let relative: PathBuf = Path::new(&file)
            .components()
            .filter(|c| !matches!(c, Component::CurDir))
            .collect();
        if !used.insert(relative.clone()) {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(prompts_dir.join(&relative)) {
            for captures in INCLUDE.captures_iter(&text) {
                if let Some(name) = captures.get(1) {
                    pending.push(name.as_str().to_owned());
                }
            }
        }
    }
    used
}

fn collect_prompt_files(steps: &[RawStep], out: &mut Vec<String>) {
    for step in steps {
        if let RawStep::Llm(llm) = step {
            if let Some(file) = &llm.prompt_file {
                out.push(file.clone());
            }
        }
        for (_, children) in step.children() {
            collect_prompt_files(children, out);
        }
    }
}

fn read_prompt(dir: &Path, file: &str, stack: &mut Vec<String>) -> Result<String, String> {
    let relative = Path::new(file);
    if relative.is_absolute()
        || relative
            .components()
            .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(format!("`{file}` must be a path inside the prompts folder"));
    }
    if stack.iter().any(|f| f == file) {
        stack.push(file.to_owned());
        return Err(format!("include cycle: {}", stack.join(" → ")));
    }
    let text = std::fs::read_to_string(dir.join(relative))
        .map_err(|e| format!("prompt file `{file}` not found in {}: {e}", dir.display()))?;
    stack.push(file.to_owned());
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for captures in INCLUDE.captures_iter(&text) {
        let (Some(whole), Some(name)) = (captures.get(0), captures.get(1)) else {
            continue;
        };
        out.push_str(&text[last..whole.start()]);
        out.push_str(&read_prompt(dir, name.as_str(), stack)?);
        last = whole.end();
    }
    out.push_str(&text[last..]);
    stack.pop();
    Ok(out)
}

/// Problems of one workflow file.
#[derive(Debug)]
pub struct CatalogError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl std::fmt::Display for CatalogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:", self.file.display())?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// All workflows of a deployment, by name.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    by_name: BTreeMap<String, Arc<LoadedWorkflow>>,
}

impl Catalog {
    /// Loads every definition; returns all files' problems at once if any is invalid.
    pub fn load(
        workflows_dir: &Path,
        prompts_dir: &Path,
        pricing: &PriceTable,
    ) -> Result<Catalog, Vec<CatalogError>> {
        Self::load_checked(workflows_dir, prompts_dir, Checks::new(pricing))
    }

    /// As `load`, with the deployment's checks (environment allow-list).
    pub fn load_checked(
        workflows_dir: &Path,
        prompts_dir: &Path,
        checks: Checks<'_>,
    ) -> Result<Catalog, Vec<CatalogError>> {
        let mut errors = Vec::new();
        let mut catalog = Catalog::default();
        let mut files: Vec<PathBuf> = match std::fs::read_dir(workflows_dir) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .filter(|p| p.file_name().is_some_and(|n| n != "schema.json"))
                .collect(),
            Err(e) => {
                return Err(vec![CatalogError {
                    file: workflows_dir.to_owned(),
                    problems: vec![Problem::new(
                        "",
                        format!("cannot read the workflows folder: {e}"),
                    )],
                }])
            }
        };
        files.sort();
        let mut names = HashSet::new();
        for file in files {
            match load_file(&file, prompts_dir, checks) {
                Ok(loaded) => {
                    let name = loaded.workflow.name.clone();
                    if !names.insert(name.clone()) {
                        errors.push(CatalogError {
                            file,
                            problems: vec![Problem::new(
                                "name",
                                format!("workflow `{name}` is defined twice"),
                            )],
                        });
                        continue;
                    }
                    catalog.by_name.insert(name, Arc::new(loaded));
                }
                Err(problems) => errors.push(CatalogError { file, problems }),
            }
        }
        if errors.is_empty() {
            Ok(catalog)
        } else {
            Err(errors)
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<LoadedWorkflow>> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<LoadedWorkflow>> {
        self.by_name.values()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

fn load_file(
    file: &Path,
    prompts_dir: &Path,
    checks: Checks<'_>,
) -> Result<LoadedWorkflow, Vec<Problem>> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| vec![Problem::new("", format!("cannot read: {e}"))])?;
    let source: Value = serde_json::from_str(&text)
        .map_err(|e| vec![Problem::new("", format!("not JSON: {e}"))])?;
    LoadedWorkflow::from_source_checked(&source, prompts_dir, checks)
}
