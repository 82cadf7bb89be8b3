//! `llmflow edit`: an interactive editor of one workflow file. It shows the steps as a tree,
//! adds, edits, moves and removes steps with prompts that offer the valid choices, validates
//! after every change with the validator `llmflow validate` uses (problems shown under their
//! step), and saves canonical JSON that keeps the file's key order, with a `.bak` beside it.

mod ask;
mod doc;
mod fields;
mod steps;
mod view;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use llmflow_core::workflow::Problem;

use crate::error::{CliError, CliResult};
use crate::source::{Found, Settings};
use ask::{Asked, Stop};
use doc::Node;
use fields::Choices;

/// Edit a workflow interactively: steps as a tree, prompts offering the valid choices, every
/// change validated as it is made; save writes canonical JSON and keeps a `.bak`.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  llmflow edit bench_pipeline\n  llmflow edit workflows/city_guide.json\n\n\
Keys: ↑↓ move, type to filter a list, Enter choose, Esc back, Ctrl-C quit (asks first when \
there are unsaved changes).\n\n\
Exit codes: 0 quit; 2 the workflow cannot be found or read, a setting is malformed, or there is \
no terminal."
)]
pub struct Args {
    /// A workflow name (looked up in WORKFLOWS_DIR) or a definition file.
    workflow: String,
}

pub async fn run(args: Args) -> CliResult {
    let settings = Settings::load()?;
    let found = Found::find(&args.workflow, &settings)?;
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(CliError::bad(
            "llmflow edit needs a terminal: run it in an interactive shell \
             (`llmflow validate` and `llmflow dry-run` work without one)",
        ));
    }
    let text = std::fs::read_to_string(&found.file)
        .map_err(|e| CliError::bad(format!("cannot read {}: {e}", found.file.display())))?;
    let doc = Node::parse(&text)
        .map_err(|e| CliError::bad(format!("{} is not valid JSON: {e}", found.file.display())))?;
    let mut editor = Editor::new(found.file, doc, settings);
    tokio::task::block_in_place(|| editor.run())
}

/// The editing session: the definition, the saved state it is compared with, and the problems
/// of the last validation.
pub struct Editor {
    file: PathBuf,
    doc: Node,
    saved: Node,
    settings: Settings,
    choices: Choices,
    problems: Vec<Problem>,
    /// A line about the last action (`saved …`), shown once.
    status: Option<String>,
    /// The step being edited, marked in the tree.
    focus: Option<doc::StepAddr>,
}

const MENU: [&str; 7] = [
    "Edit a step",
    "Add a step",
    "Move a step",
    "Remove a step",
    "Workflow fields (name, version, description, input_schema, output)",
    "Save",
    "Quit",
];

impl Editor {
    fn new(file: PathBuf, doc: Node, settings: Settings) -> Editor {
        let choices = Choices {
            providers: llmflow_core::llm::PROVIDER_NAMES
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
            models: settings.pricing.models().map(str::to_owned).collect(),
            prompt_files: prompt_files(&settings.config.prompts_dir),
        };
        let mut editor = Editor {
            file,
            saved: doc.clone(),
            doc,
            settings,
            choices,
            problems: Vec::new(),
            status: None,
            focus: None,
        };
        editor.validate();
        editor
    }

    fn dirty(&self) -> bool {
        self.doc != self.saved
    }

    /// Validates the definition as it stands, as `llmflow validate` would.
    fn validate(&mut self) {
        let found = Found {
            file: self.file.clone(),
            source: self.doc.to_value(),
        };
        self.problems = match found.check(&self.settings) {
            Ok(_) => Vec::new(),
            Err(problems) => problems,
        };
    }

    /// Clears the terminal and draws the header, the tree with its problems, and the status.
    fn show(&mut self) {
        let mut out = String::from("\x1b[H\x1b[2J");
        let name = self.doc.get_str("name").unwrap_or("(unnamed)");
        let version = self.doc.get_str("version").unwrap_or("1");
        let state = if self.dirty() {
            "unsaved changes"
        } else {
            "saved"
        };
        out.push_str(&format!(
            "llmflow edit · {name} v{version} · {} · {state}\n\n",
            self.file.display()
        ));
        // Lines fit the terminal, so that the tree never wraps.
        let width = crossterm::terminal::size().map_or(100, |(cols, _)| usize::from(cols));
        for line in view::tree(&self.doc, &self.problems, self.focus.as_ref()) {
            out.push_str(&fields::clip(&line, width.saturating_sub(1).max(20)));
            out.push('\n');
        }
        let placed = view::place(&self.doc, &self.problems);
        out.push('\n');
        for problem in &placed.workflow {
            out.push_str(&format!("✗ {problem}\n"));
        }
        match self.problems.len() {
            0 => out.push_str("✓ valid\n"),
            1 => out.push_str("✗ 1 problem\n"),
            n => out.push_str(&format!("✗ {n} problems\n")),
        }
        if let Some(status) = self.status.take() {
            out.push_str(&format!("{status}\n"));
        }
        out.push('\n');
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(out.as_bytes()).and_then(|()| err.flush());
    }

    /// Applies a change: validates, and says what changed.
    fn changed(&mut self, what: String) {
        self.validate();
        self.status = Some(what);
    }

    fn run(&mut self) -> CliResult {
        loop {
            self.show();
            let options: Vec<String> = MENU.iter().map(|s| (*s).to_owned()).collect();
            let result = ask::choose("What next?", &options, 0).and_then(|picked| match picked {
                0 => self.edit_step(),
                1 => self.add_step(),
                2 => self.move_step(),
                3 => self.remove_step(),
                4 => self.edit_workflow_fields(),
                5 => self.save(),
                _ => Err(Stop::Quit),
            });
            match result {
                Ok(()) | Err(Stop::Back) => {}
                Err(Stop::Fail(e)) => return Err(e),
                Err(Stop::Quit) => {
                    if self.confirm_quit()? {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Quits at once when everything is saved; otherwise asks.
    fn confirm_quit(&mut self) -> Result<bool, CliError> {
        if !self.dirty() {
            return Ok(true);
        }
        match ask::confirm("You have unsaved changes. Quit without saving?", false) {
            Ok(answer) => Ok(answer),
            Err(Stop::Back) => Ok(false),
            // A second Ctrl-C means it.
            Err(Stop::Quit) => Ok(true),
            Err(Stop::Fail(e)) => Err(e),
        }
    }

    /// Validates once more, then writes the canonical text, keeping the previous file as
    /// `<file>.bak`.
    fn save(&mut self) -> Asked<()> {
        self.validate();
        if !self.problems.is_empty() {
            self.show();
            let n = self.problems.len();
            let question = format!(
                "The workflow has {n} problem{} (above). Save anyway?",
                if n == 1 { "" } else { "s" }
            );
            if !ask::confirm(&question, false)? {
                self.status = Some("not saved".to_owned());
                return Ok(());
            }
        }
        let backup = write_with_backup(&self.file, &self.doc.to_pretty()).map_err(Stop::Fail)?;
        self.saved = self.doc.clone();
        self.status = Some(match backup {
            Some(backup) => format!(
                "saved {} (the previous file is {})",
                self.file.display(),
                backup.display()
            ),
            None => format!("saved {}", self.file.display()),
        });
        Ok(())
    }

    /// Name, version, description, input schema and output of the workflow.
    fn edit_workflow_fields(&mut self) -> Asked<()> {
        loop {
            self.show();
            let keys = ["name", "version", "description", "input_schema", "output"];
            let mut labels: Vec<String> = keys
                .iter()
                .map(|k| {
                    let value = self.doc.get(k).map(fields::short);
                    format!("{k}: {}", value.unwrap_or_else(|| "(not set)".to_owned()))
                })
                .collect();
            labels.push("← back".to_owned());
            let picked = ask::choose("Which field?", &labels, 0)?;
            let Some(key) = keys.get(picked) else {
                return Ok(());
            };
            let current = self.doc.get(key).cloned();
            let value = match *key {
                "input_schema" | "output" => {
                    let initial = current.as_ref().map(Node::to_compact).unwrap_or_default();
                    ask::json(&format!("{key}:"), &initial, true)?
                }
                _ => {
                    let initial = current
                        .as_ref()
                        .and_then(Node::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let required = *key == "name";
                    let typed = ask::text(
                        &format!("{key}:"),
                        &initial,
                        "Enter to keep, Esc to go back",
                        move |input| {
                            (required && input.trim().is_empty())
                                .then(|| "a value is required".to_owned())
                        },
                    )?;
                    Some(Node::String(typed))
                }
            };
            match value {
                Some(value) => self.doc.set(key, value),
                None => {
                    self.doc.remove(key);
                }
            }
            self.changed(format!("changed {key}"));
        }
    }
}

/// Writes `text` to `file` through a temporary file in the same folder, after copying the
/// file as it was to `<file>.bak`. Returns the backup's path when there was a file to keep.
fn write_with_backup(file: &Path, text: &str) -> Result<Option<PathBuf>, CliError> {
    let fail = |what: &str, path: &Path, e: std::io::Error| {
        CliError::Failed(anyhow::anyhow!("cannot {what} {}: {e}", path.display()))
    };
    let with_suffix = |suffix: &str| {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let backup = if file.is_file() {
        let backup = with_suffix(".bak");
        std::fs::copy(file, &backup).map_err(|e| fail("write", &backup, e))?;
        Some(backup)
    } else {
        None
    };
    let temporary = with_suffix(".saving");
    std::fs::write(&temporary, text).map_err(|e| fail("write", &temporary, e))?;
    std::fs::rename(&temporary, file).map_err(|e| fail("replace", file, e))?;
    Ok(backup)
}

/// The prompt files under `dir` (relative paths, sorted), for `prompt_file`.
fn prompt_files(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    crate::validate::list_files(dir, Path::new(""), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|f| f.to_string_lossy().into_owned())
        .collect()
}
