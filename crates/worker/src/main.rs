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
    let telemetry = match llmflow_core::telemetry::init_service(&config, "llmflow-worker") {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("llmflow-worker: {}", llmflow_core::telemetry::Chain(&e));
            return ExitCode::FAILURE;
        }
    };
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
        &state.engine.config,
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
    // The spans still buffered go out before the process ends.
    telemetry.shutdown().await;
    ExitCode::SUCCESS
}
