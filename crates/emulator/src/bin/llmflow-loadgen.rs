//! `llmflow-loadgen`: the load generator of `scripts/bench.sh` (benchmark equipment).
//!
//! `run` submits jobs to the API over HTTP with a bound on requests in flight (and optionally
//! an offered rate), receives the signed webhooks on a server of its own (signatures checked
//! with the official `standardwebhooks` verifier), and writes its measurements as one JSON
//! object. `report` merges figures measured outside (RSS, CPU, PostgreSQL commits) into that
//! object and prints it as one JSON line; `table` prints the JSON lines as a readable table;
//! `receive` is a webhook receiver in a process of its own, for `scripts/chaos.sh`.

#[path = "llmflow-loadgen/args.rs"]
mod args;
#[path = "llmflow-loadgen/receiver.rs"]
mod receiver;
#[path = "llmflow-loadgen/record.rs"]
mod record;
#[path = "llmflow-loadgen/report.rs"]
mod report;
#[path = "llmflow-loadgen/stats.rs"]
mod stats;
#[path = "llmflow-loadgen/submit.rs"]
mod submit;

use anyhow::Context;
use clap::Parser;

use args::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(run) => {
            let result = submit::run(&run).await?;
            let text = serde_json::to_string(&result)?;
            match &run.out {
                Some(path) => std::fs::write(path, format!("{text}\n"))
                    .with_context(|| format!("writing {}", path.display()))?,
                None => println!("{text}"),
            }
        }
        Command::Report(report) => {
            let line = report::merge(&report)?;
            println!("{line}");
            if let Some(path) = &report.append {
                use std::io::Write;
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?;
                writeln!(file, "{line}")?;
            }
        }
        Command::Receive(receive) => record::serve(&receive).await?,
        Command::Table(table) => {
            let text = std::fs::read_to_string(&table.results)
                .with_context(|| format!("reading {}", table.results.display()))?;
            print!("{}", report::table(&text)?);
        }
    }
    Ok(())
}
