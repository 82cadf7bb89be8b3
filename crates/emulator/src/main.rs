//! `llmflow-emulator`: serves fake OpenAI / OpenRouter / Anthropic / Google Places APIs for
//! local runs, tests and benchmarks (test equipment; see the library documentation).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use llmflow_emulator::EmulatorConfig;
use tracing_subscriber::EnvFilter;

/// Local stand-in for the LLM providers and Google Places (test and development equipment).
#[derive(Debug, Parser)]
#[command(name = "llmflow-emulator", version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "EMULATOR_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on (0 picks a free port).
    #[arg(long, env = "EMULATOR_PORT", default_value_t = 9100)]
    port: u16,
    /// Delay before every provider response, in milliseconds.
    #[arg(long, env = "EMULATOR_LATENCY_MS", default_value_t = 0)]
    latency_ms: u64,
    /// Pause between streamed chunks, in milliseconds.
    #[arg(long, env = "EMULATOR_STREAM_CHUNK_MS", default_value_t = 0)]
    stream_chunk_ms: u64,
    /// Fraction of provider calls (0.0-1.0) that answer 500.
    #[arg(long, env = "EMULATOR_ERROR_RATE", default_value_t = 0.0, value_parser = parse_rate)]
    error_rate: f64,
    /// Seed for error injection (random when absent).
    #[arg(long, env = "EMULATOR_SEED")]
    seed: Option<u64>,
    /// Number of worker threads.
    #[arg(long, env = "EMULATOR_WORKERS", default_value_t = 2)]
    workers: usize,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err("must be between 0.0 and 1.0".to_owned())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = EmulatorConfig {
        latency: Duration::from_millis(args.latency_ms),
        stream_chunk_delay: Duration::from_millis(args.stream_chunk_ms),
        error_rate: args.error_rate,
        seed: args.seed,
        workers: args.workers,
    };
    llmflow_emulator::run(SocketAddr::new(args.host, args.port), config).await?;
    Ok(())
}
