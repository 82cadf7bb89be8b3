//! `llmflow`: the command line of workflow authors and operators — validate, diagram and
//! dry-run workflows, scaffold new ones, apply database migrations, and receive webhooks while
//! developing. Settings come from `Config` (the environment, or the `LLMFLOW_CONFIG` file), as
//! in the services; flags override them. One module per command.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod completions;
mod diagram;
mod dry_run;
mod edit;
mod error;
mod listen;
mod mermaid;
mod migrate;
mod new;
mod run;
mod source;
mod validate;

use error::CliResult;

#[derive(Parser)]
#[command(
    name = "llmflow",
    version,
    about = "llmflow: write, check and operate LLM workflows",
    after_help = "Example:\n  llmflow validate && llmflow dry-run bench_pipeline --input input.json\n\nExit codes: 0 ok, 1 failed, 2 bad input."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    New(new::Args),
    Validate(validate::Args),
    Diagram(diagram::Args),
    DryRun(dry_run::Args),
    Run(run::Args),
    Edit(edit::Args),
    Migrate(migrate::Args),
    Listen(listen::Args),
    Completions(completions::Args),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("llmflow: {e}");
            e.exit_code()
        }
    }
}

async fn run(command: Command) -> CliResult {
    match command {
        Command::Migrate(args) => migrate::run(args).await,
        Command::Validate(args) => validate::run(args).await,
        Command::Listen(args) => listen::run(args).await,
        Command::Diagram(args) => diagram::run(args).await,
        Command::DryRun(args) => dry_run::run(args).await,
        Command::Run(args) => run::run(args).await,
        Command::Edit(args) => edit::run(args).await,
        Command::New(args) => new::run(args).await,
        Command::Completions(args) => completions::run(args, &mut Cli::command()),
    }
}
