//! `llmflow-worker`: loads configuration, starts telemetry, and runs until SIGINT/SIGTERM, then
//! stops gracefully and exits 0.

use std::process::ExitCode;

use llmflow_core::config::Config;

// jemalloc instead of glibc malloc (see BENCHMARKS.md: less CPU per job in allocation).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("llmflow-worker: {e}");
            return ExitCode::FAILURE;
        }
    };
    llmflow_core::telemetry::init(config.log_format);
    let state = match llmflow_worker::WorkerState::connect(config).await {
        Ok(state) => state,
        Err(e) => {
            eprintln!("llmflow-worker: {:#}", anyhow::Error::from(e));
            return ExitCode::FAILURE;
        }
    };
    // After the connections: a process that cannot reach its services names them first.
    let metrics_stop = tokio_util::sync::CancellationToken::new();
    let served = llmflow_core::metrics::serve_configured(
        &state.config,
        "127.0.0.1:9101",
        metrics_stop.clone(),
    )
    .await;
    if let Err(e) = served {
        eprintln!("llmflow-worker: configuration error: {e}");
        return ExitCode::FAILURE;
    }
    tracing::info!(worker = %state.worker_name, "llmflow-worker started");
    // SIGTERM/SIGINT: stop fetching, let running jobs finish within SHUTDOWN_GRACE_SECS, then
    // hand the rest back to the queue for another worker (see `WorkerHandle::shutdown`).
    llmflow_worker::run_until(state, llmflow_core::signal::shutdown_signal()).await;
    metrics_stop.cancel();
    ExitCode::SUCCESS
}
