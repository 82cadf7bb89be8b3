//! `llmflow run`: runs a workflow here, with the worker's own engine (steps, conditions,
//! parallel branches, `on_error`, retries, JSON repairs, streaming, cost), against the
//! configured providers, or against an emulator started in this process when no provider key is
//! set. Nothing is written to PostgreSQL or Redis: the run's records stay in memory.
//!
//! Each step is shown as it starts and ends (duration, tokens, cost), with the text of streaming
//! steps as it arrives, on standard error: a live display on a terminal, plain lines otherwise.
//! The result goes to standard output.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use llmflow_core::config::Config;
use llmflow_core::db::models::StepRow;
use llmflow_core::llm::Providers;
use llmflow_core::pricing::round_usd;
use llmflow_core::JobStatus;
use llmflow_emulator::{Emulator, EmulatorConfig};
use llmflow_worker::local::{LocalRun, Outcome, RunEvent};

use crate::dry_run::read_input;
use crate::error::{emit, CliError, CliResult};
use crate::source::{Found, Settings};

/// Run a workflow locally with the real engine: no database, no queue. Uses the configured
/// provider keys, or a built-in emulator when none is set.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  echo '{\"text\": \"A short text to analyse.\"}' > input.json\n  \
llmflow run bench_pipeline --input input.json\n  \
llmflow run workflows/story_stream.json --input topic.json --json > run.json\n  \
echo '{\"topic\": \"a lighthouse\"}' | llmflow run story_stream --input - --emulator\n\n\
Steps, streamed text and totals go to standard error; the result JSON to standard output.\n\
Exit codes: 0 the run completed; 1 it failed (or was interrupted); 2 bad input (unknown \
workflow, a file that is not JSON, an invalid definition, an input that fails the input \
schema)."
)]
pub struct Args {
    /// A workflow name (in WORKFLOWS_DIR) or a definition file.
    workflow: String,
    /// The `input_data` as a JSON file, or `-` for standard input (default: `{}`).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Print one JSON document: status, result, error, totals and every step.
    #[arg(long)]
    json: bool,
    /// Use the built-in emulator (for Google Places too) even when keys are set.
    #[arg(long)]
    emulator: bool,
}

pub async fn run(args: Args) -> CliResult {
    let settings = Settings::load()?;
    let found = Found::find(&args.workflow, &settings)?;
    let workflow = found.load(&settings)?;
    let input = match &args.input {
        Some(path) => read_input(path)?,
        None => json!({}),
    };
    let problems = workflow.workflow.check_input(&input);
    if !problems.is_empty() {
        let mut message = format!(
            "the input does not fit `{}`'s input_schema:",
            workflow.workflow.name
        );
        for problem in problems {
            message.push_str(&format!("\n  {problem}"));
        }
        return Err(CliError::bad(message));
    }
    let Settings {
        mut config,
        pricing,
    } = settings;
    // Kept alive for the run: dropping it stops the server.
    let _emulator = if args.emulator || !has_provider_key(&config) {
        let emulator = start_emulator(&mut config, args.emulator).await?;
        eprintln!(
            "llmflow: {}: running against the built-in emulator at {} (its answers are made up)",
            if args.emulator {
                "--emulator"
            } else {
                "no provider API key is set"
            },
            emulator.base_url()
        );
        Some(emulator)
    } else {
        None
    };
    let providers = Providers::from_config(&config)
        .map_err(|e| anyhow::anyhow!("cannot build the LLM HTTP client: {e}"))?;
    let (watcher, events) = mpsc::unbounded_channel();
    let local = LocalRun::new(config, providers, pricing, watcher)
        .map_err(|e| anyhow::Error::from(e).context("cannot start the engine"))?;
    let cancel = CancellationToken::new();
    let interrupt = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        })
    };
    let display = Display::new(std::io::stderr().is_terminal());
    let started = std::time::Instant::now();
    let (outcome, ()) = tokio::join!(local.run(&workflow, input, cancel), display.show(events));
    interrupt.abort();
    let outcome = outcome.map_err(|e| anyhow::Error::from(e).context("the run stopped"))?;
    summary(&outcome, started.elapsed());
    if args.json {
        let text = serde_json::to_string_pretty(&document(&outcome))
            .map_err(|e| anyhow::anyhow!("cannot serialise the run: {e}"))?;
        emit(&format!("{text}\n"))?;
    } else if let Some(result) = &outcome.ended.result {
        let text = serde_json::to_string_pretty(result)
            .map_err(|e| anyhow::anyhow!("cannot serialise the result: {e}"))?;
        emit(&format!("{text}\n"))?;
    }
    let error = outcome.ended.error.as_deref().unwrap_or("no reason given");
    match outcome.ended.status {
        JobStatus::Completed => Ok(()),
        JobStatus::Cancelled => Err(CliError::Failed(anyhow::anyhow!("the run was interrupted"))),
        JobStatus::Failed | JobStatus::Pending | JobStatus::Queued | JobStatus::Processing => {
            Err(CliError::Failed(anyhow::anyhow!("the run failed: {error}")))
        }
    }
}

/// Whether any LLM provider has an API key.
fn has_provider_key(config: &Config) -> bool {
    [
        &config.openrouter_api_key,
        &config.openai_api_key,
        &config.anthropic_api_key,
    ]
    .into_iter()
    .any(|key| Config::secret(key).is_some())
}

/// Starts the emulator on a free local port and points every LLM provider at it, and Google
/// Places too when it has no key of its own or `forced` (`--emulator`).
async fn start_emulator(config: &mut Config, forced: bool) -> Result<Emulator, CliError> {
    let emulator = Emulator::spawn(EmulatorConfig::default())
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the emulator: {e}"))?;
    let key = || Some(SecretString::from("emulator"));
    config.openrouter_api_key = key();
    config.openrouter_base_url = emulator.openrouter_base_url();
    config.openai_api_key = key();
    config.openai_base_url = emulator.openai_base_url();
    config.anthropic_api_key = key();
    config.anthropic_base_url = emulator.anthropic_base_url();
    if forced || Config::secret(&config.google_places_api_key).is_none() {
        config.google_places_api_key = key();
        config.google_places_base_url = emulator.places_base_url();
    }
    Ok(emulator)
}

/// Shows the run's events on standard error.
struct Display {
    /// On a terminal: a live line per running step (parallel branches run side by side).
    live: Option<MultiProgress>,
    running: HashMap<String, ProgressBar>,
    /// Streamed text was written and its line is still open.
    open_text: bool,
    /// The live lines are hidden while text streams (they would be drawn over it).
    hidden: bool,
}

impl Display {
    fn new(terminal: bool) -> Display {
        Display {
            live: terminal.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            running: HashMap::new(),
            open_text: false,
            hidden: false,
        }
    }

    /// Shows events until the run drops its end of the channel.
    async fn show(mut self, mut events: mpsc::UnboundedReceiver<RunEvent>) {
        while let Some(event) = events.recv().await {
            match event {
                RunEvent::StepStarted { step_id, kind } => self.started(&step_id, kind),
                RunEvent::StepFinished(row) => self.finished(&row),
                RunEvent::Text { text, .. } => self.text(&text),
            }
        }
        self.close_text();
        for (_, bar) in self.running.drain() {
            bar.finish_and_clear();
        }
    }

    fn started(&mut self, step_id: &str, kind: &str) {
        self.close_text();
        let Some(live) = &self.live else {
            line_out(&format!("step {step_id} ({kind}) started"));
            return;
        };
        let bar = live.add(ProgressBar::new_spinner().with_message(format!("{step_id} ({kind})")));
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(100));
        self.running.insert(step_id.to_owned(), bar);
    }

    fn finished(&mut self, row: &StepRow) {
        self.close_text();
        let line = step_line(row);
        match (&self.live, self.running.remove(&row.step_id)) {
            (Some(live), Some(bar)) => {
                bar.finish_and_clear();
                live.remove(&bar);
                if live.println(&line).is_err() {
                    line_out(&line);
                }
            }
            _ => line_out(&line),
        }
    }

    fn text(&mut self, text: &str) {
        if let Some(live) = self.live.as_ref().filter(|_| !self.hidden) {
            let _ = live.clear();
            live.set_draw_target(ProgressDrawTarget::hidden());
            self.hidden = true;
        }
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
        self.open_text = !text.ends_with('\n');
    }

    /// Ends a line of streamed text, and shows the live lines again.
    fn close_text(&mut self) {
        if std::mem::take(&mut self.open_text) {
            line_out("");
        }
        if let Some(live) = self.live.as_ref().filter(|_| self.hidden) {
            live.set_draw_target(ProgressDrawTarget::stderr());
            self.hidden = false;
        }
    }
}

fn line_out(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// `step analyze (llm) completed in 412 ms, 2 attempts, tokens 120 in / 45 out, cost $0.000123`.
fn step_line(row: &StepRow) -> String {
    let mut line = format!(
        "step {} ({}) {} in {}",
        row.step_id,
        row.step_type,
        row.status,
        duration(row.duration_ms.into())
    );
    if row.attempts > 1 {
        line.push_str(&format!(", {} attempts", row.attempts));
    }
    if let Some(branch) = row
        .output
        .as_ref()
        .filter(|_| row.step_type == "conditional")
        .and_then(|output| output["branch"].as_str())
    {
        line.push_str(&format!(", branch {branch}"));
    }
    if row.input_tokens > 0 || row.output_tokens > 0 || !row.cost_usd.is_zero() {
        line.push_str(&format!(
            ", tokens {} in / {} out, cost {}",
            row.input_tokens,
            row.output_tokens,
            usd(row.cost_usd)
        ));
    }
    if let Some(error) = &row.error_message {
        line.push_str(&format!(": {error}"));
    }
    line
}

/// The run's last line: how it ended and its totals.
fn summary(outcome: &Outcome, took: Duration) {
    let ended = &outcome.ended;
    let mut line = format!(
        "run {} in {}: {} step(s), tokens {} in / {} out, cost {}",
        ended.status,
        duration(i64::try_from(took.as_millis()).unwrap_or(i64::MAX)),
        outcome.steps.len(),
        ended.input_tokens,
        ended.output_tokens,
        usd(ended.cost_usd)
    );
    if let Some(error) = &ended.error {
        line.push_str(&format!(": {error}"));
    }
    line_out(&line);
}

fn duration(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.2} s", ms as f64 / 1000.0)
    }
}

fn usd(cost: Decimal) -> String {
    format!("${}", round_usd(cost).normalize())
}

/// `--json`: the whole run as one document.
fn document(outcome: &Outcome) -> Value {
    let ended = &outcome.ended;
    let steps: Vec<Value> = outcome
        .steps
        .iter()
        .map(|row| {
            json!({
                "step_id": row.step_id,
                "type": row.step_type,
                "status": row.status,
                "attempts": row.attempts,
                "duration_ms": row.duration_ms,
                "input_tokens": row.input_tokens,
                "output_tokens": row.output_tokens,
                "cost_usd": usd_number(row.cost_usd),
                "error": row.error_message,
                "output": row.output,
            })
        })
        .collect();
    json!({
        "status": ended.status,
        "result": ended.result,
        "error": ended.error,
        "input_tokens": ended.input_tokens,
        "output_tokens": ended.output_tokens,
        "cost_usd": usd_number(ended.cost_usd),
        "steps": steps,
    })
}

/// A cost as a JSON number, rounded as recorded.
fn usd_number(cost: Decimal) -> Value {
    round_usd(cost)
        .normalize()
        .to_string()
        .parse::<serde_json::Number>()
        .map(Value::Number)
        .unwrap_or(Value::Null)
}
