//! `llmflow dry-run`: offline, what `POST /api/v1/workflow/validate` answers — the problems with
//! their paths, the plan (both branches of every conditional) and the cost estimate per LLM step
//! and in total — from the same function, without a database or a provider call.

use std::fmt::Write;
use std::path::PathBuf;

use serde_json::Value;

use llmflow_core::dry_run::{dry_run, DryRun, PlanStep};
use rust_decimal::Decimal;

use llmflow_core::pricing::round_usd;

use crate::error::{emit, CliError, CliResult};
use crate::source::{Found, Settings};

/// Check a workflow and an input offline: problems, plan and cost estimate (min / expected /
/// max), the same numbers as `POST /api/v1/workflow/validate`.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  echo '{\"text\": \"Hello\"}' > input.json\n  \
llmflow dry-run bench_pipeline --input input.json\n  \
llmflow dry-run workflows/city_guide.json --input city.json --json\n  \
echo '{\"city\": \"Porto\"}' | llmflow dry-run city_guide --input -\n\n\
Exit codes: 0 valid; 2 bad input (unknown workflow, a file that is not JSON, an invalid \
definition, an input that fails the input schema), with the report still printed."
)]
pub struct Args {
    /// A workflow name (in WORKFLOWS_DIR) or a definition file.
    workflow: String,
    /// The `input_data` as a JSON file, or `-` for standard input (without it, prompts are
    /// rendered with an empty input).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Print the report as JSON, exactly as the API's dry run answers.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> CliResult {
    let settings = Settings::load()?;
    let found = Found::find(&args.workflow, &settings)?;
    let input = match &args.input {
        Some(path) => Some(read_input(path)?),
        None => None,
    };
    let report = match found.check(&settings) {
        Ok(loaded) => dry_run(
            &loaded.workflow,
            input.as_ref(),
            &settings.pricing,
            &settings.config.default_provider,
        ),
        Err(problems) => DryRun::invalid(problems),
    };
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| anyhow::anyhow!("cannot serialise the report: {e}"))?;
        emit(&format!("{text}\n"))?;
    } else {
        emit(&human(&report))?;
    }
    if report.valid {
        Ok(())
    } else {
        Err(CliError::bad(format!(
            "{} problem(s) found",
            report.problems.len()
        )))
    }
}

/// The input file's JSON; `-` reads standard input.
pub(crate) fn read_input(path: &PathBuf) -> Result<Value, CliError> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| CliError::bad(format!("cannot read standard input: {e}")))?
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| CliError::bad(format!("cannot read {}: {e}", path.display())))?
    };
    serde_json::from_str(&text)
        .map_err(|e| CliError::bad(format!("{} is not valid JSON: {e}", path.display())))
}

/// The report for a terminal.
fn human(report: &DryRun) -> String {
    let mut out = String::new();
    let name = match (&report.workflow_name, &report.workflow_version) {
        (Some(name), Some(version)) => format!("{name} v{version}"),
        _ => "workflow".to_owned(),
    };
    let verdict = if report.valid {
        "valid".to_owned()
    } else {
        format!("{} problem(s)", report.problems.len())
    };
    let _ = writeln!(out, "{name}: {verdict}");
    if !report.problems.is_empty() {
        let _ = writeln!(out, "\nproblems:");
        for problem in &report.problems {
            let _ = writeln!(out, "  {problem}");
        }
    }
    if !report.plan.is_empty() {
        let _ = writeln!(out, "\nplan:");
        plan(&mut out, &report.plan, 1);
    }
    if let Some(cost) = &report.cost_estimate {
        let _ = writeln!(
            out,
            "\ncost estimate ({}):\n  {:<24} {:>10} {:>8} {:>12} {:>12} {:>12}",
            cost.currency, "step", "in tokens", "max out", "min", "expected", "max"
        );
        for step in &cost.llm_steps {
            let _ = writeln!(
                out,
                "  {:<24} {:>10} {:>8} {:>12} {:>12} {:>12}{}",
                step.step_id,
                step.input_tokens,
                step.max_output_tokens,
                usd(step.min_usd),
                usd(step.expected_usd),
                usd(step.max_usd),
                if step.prompt_rendered {
                    ""
                } else {
                    "  (prompt needs earlier outputs: template text counted)"
                }
            );
        }
        let _ = writeln!(
            out,
            "  {:<24} {:>10} {:>8} {:>12} {:>12} {:>12}",
            "total",
            "",
            "",
            usd(cost.min_usd),
            usd(cost.expected_usd),
            usd(cost.max_usd)
        );
        let _ = writeln!(out, "\nassumptions:");
        for assumption in &cost.assumptions {
            let _ = writeln!(out, "  - {assumption}");
        }
    }
    out
}

/// The plan as an indented list: branches under their conditional or parallel step.
fn plan(out: &mut String, steps: &[PlanStep], depth: usize) {
    let indent = "  ".repeat(depth);
    for (i, step) in steps.iter().enumerate() {
        let mut line = format!("{indent}{}. {} ({})", i + 1, step.step_id, step.step_type);
        if let (Some(provider), Some(model)) = (&step.provider, &step.model) {
            let _ = write!(line, " {provider} · {model}");
        }
        if let Some(operation) = step.operation {
            let _ = write!(line, " {operation}");
        }
        if let Some(service) = &step.service {
            let _ = write!(line, " {service}");
        }
        if let Some(condition) = &step.condition {
            let _ = write!(line, " if {condition}");
        }
        if step.max_attempts > 1 {
            let _ = write!(line, ", up to {} attempts", step.max_attempts);
        }
        let _ = writeln!(out, "{line}");
        if let Some(then) = &step.then {
            let _ = writeln!(out, "{indent}   then:");
            branch(out, then, depth + 2);
        }
        if let Some(otherwise) = &step.otherwise {
            let _ = writeln!(out, "{indent}   else:");
            branch(out, otherwise, depth + 2);
        }
        for (name, steps) in step.branches.iter().flatten() {
            let _ = writeln!(out, "{indent}   branch {name}:");
            branch(out, steps, depth + 2);
        }
    }
}

fn branch(out: &mut String, steps: &[PlanStep], depth: usize) {
    if steps.is_empty() {
        let _ = writeln!(out, "{}(nothing)", "  ".repeat(depth));
    } else {
        plan(out, steps, depth);
    }
}

/// Dollars as the API rounds them, written out in full (`0.000004`, never `4e-6`).
fn usd(value: Decimal) -> String {
    round_usd(value).normalize().to_string()
}
