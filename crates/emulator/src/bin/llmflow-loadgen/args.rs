//! Command-line arguments.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Load generator for llmflow benchmarks (benchmark equipment, not a production component).
#[derive(Debug, Parser)]
#[command(name = "llmflow-loadgen", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Submit jobs, wait for their webhooks, write the measurements as JSON.
    Run(Box<RunArgs>),
    /// Merge outside figures (`--set key=value`) into a run's JSON and print it as one line.
    Report(ReportArgs),
    /// Print a file of JSON lines (from `report`) as a table.
    Table(TableArgs),
    /// Receive webhooks until stopped, appending one CSV line per delivery to a file (a
    /// receiver of its own process, which a fault run can kill and start again).
    Receive(ReceiveArgs),
}

/// A standalone webhook receiver.
#[derive(Debug, Args)]
pub struct ReceiveArgs {
    /// Address to listen on.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Secret the webhooks are signed with (`whsec_…`).
    #[arg(long, env = "LLM_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: String,
    /// File the deliveries are appended to: `job_id,webhook_id,received_unix_ms,verified,status`.
    #[arg(long)]
    pub out: PathBuf,
}

/// One scenario's load.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Label of the scenario in the output.
    #[arg(long)]
    pub scenario: String,
    /// Base URL of the API.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub api: String,
    /// `X-API-Key` sent with every submission.
    #[arg(long, env = "LLM_MICROSERVICE_API_KEY", hide_env_values = true)]
    pub api_key: String,
    /// Workflow to submit.
    #[arg(long, default_value = "bench_pipeline")]
    pub workflow: String,
    /// Number of jobs.
    #[arg(long)]
    pub jobs: usize,
    /// Submissions in flight at once.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Offered submissions per second (0: as fast as `concurrency` allows).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Open loop: send each submission at its due time (`i / rate`) whatever the answers'
    /// latency, with no bound on requests in flight, and time it from that due time, so a slow
    /// answer cannot delay the next sends (no coordinated omission). Needs `--rate`.
    #[arg(long, requires = "rate")]
    pub open_loop: bool,
    /// Adds a line `EMULATOR_SCORE: n` to each job's text (above 50 takes the refine branch).
    #[arg(long)]
    pub score: Option<u8>,
    /// Receive webhooks on this address and wait for one per job; without it, only submit.
    #[arg(long, conflicts_with = "webhook_url")]
    pub webhook_listen: Option<SocketAddr>,
    /// Send the webhooks to this URL (a receiver elsewhere, e.g. `receive`); nothing waits for them.
    #[arg(long)]
    pub webhook_url: Option<String>,
    /// Write `job_id,sent_unix_ms` of every accepted job to this file.
    #[arg(long)]
    pub accepted_out: Option<PathBuf>,
    /// Retry a submission that failed to connect or got a 5xx for up to this many seconds, under
    /// the same `Idempotency-Key` (0: one try).
    #[arg(long, default_value_t = 0)]
    pub retry_secs: u64,
    /// Secret the webhooks are signed with (`whsec_…`).
    #[arg(long, env = "LLM_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Give up waiting for webhooks after this many seconds without a new one.
    #[arg(long, default_value_t = 120)]
    pub idle_timeout_secs: u64,
    /// Created once every job is submitted (bench.sh starts the workers then, in the backlog scenario).
    #[arg(long)]
    pub submitted_marker: Option<PathBuf>,
    /// Emulator base URL: its counters are reset before and read after the run.
    #[arg(long)]
    pub emulator: Option<String>,
    /// While submitting, time this many direct calls to the emulator, paced like the jobs (the
    /// bare round trip under the same conditions); they are not counted in `llm_calls`.
    #[arg(long, default_value_t = 0)]
    pub probe: usize,
    /// Write the JSON here instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The JSON written by `run`.
    #[arg(long)]
    pub run: PathBuf,
    /// Extra figures, `key=value` (numbers stay numbers).
    #[arg(long = "set", value_parser = parse_pair)]
    pub set: Vec<(String, String)>,
    /// Also append the line to this file.
    #[arg(long)]
    pub append: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TableArgs {
    /// A file of JSON lines written by `report --append`.
    pub results: PathBuf,
}

/// `key=value`, key not empty.
pub fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(format!("expected key=value, got `{text}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_arguments_parse() {
        let cli = Cli::try_parse_from([
            "llmflow-loadgen",
            "run",
            "--scenario",
            "pipeline",
            "--api-key",
            "k",
            "--jobs",
            "20000",
            "--concurrency",
            "200",
            "--score",
            "80",
            "--webhook-listen",
            "127.0.0.1:9300",
        ])
        .expect("valid arguments");
        let Command::Run(run) = cli.command else {
            panic!("not a run")
        };
        assert_eq!(run.jobs, 20_000);
        assert_eq!(run.concurrency, 200);
        assert_eq!(run.score, Some(80));
        assert_eq!(run.rate, 0.0);
        assert_eq!(
            run.webhook_listen,
            Some("127.0.0.1:9300".parse().expect("addr"))
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        let base = [
            "llmflow-loadgen",
            "run",
            "--scenario",
            "s",
            "--api-key",
            "k",
        ];
        let with = |extra: &[&str]| {
            Cli::try_parse_from(base.iter().chain(extra.iter()).copied()).map(|_| ())
        };
        assert!(with(&["--jobs", "10"]).is_ok());
        assert!(with(&[]).is_err(), "--jobs is required");
        assert!(with(&["--jobs", "10", "--concurrency", "0"]).is_err());
        assert!(with(&["--jobs", "ten"]).is_err());
        assert!(with(&["--jobs", "10", "--score", "300"]).is_err());
        assert!(
            with(&["--jobs", "10", "--open-loop"]).is_err(),
            "needs --rate"
        );
        assert!(with(&["--jobs", "10", "--rate", "1000", "--open-loop"]).is_ok());
    }

    #[test]
    fn pairs_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_pair("note=a=b"),
            Ok(("note".to_owned(), "a=b".to_owned()))
        );
        assert!(parse_pair("=1").is_err());
        assert!(parse_pair("novalue").is_err());
    }
}
