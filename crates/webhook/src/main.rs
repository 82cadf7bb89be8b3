//! `llmflow-webhook`: loads configuration, starts telemetry, and runs until SIGINT/SIGTERM.

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
            eprintln!("llmflow-webhook: {e}");
            return ExitCode::FAILURE;
        }
    };
    let telemetry = match llmflow_core::telemetry::init_service(&config, "llmflow-webhook") {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("llmflow-webhook: {}", llmflow_core::telemetry::Chain(&e));
            return ExitCode::FAILURE;
        }
    };
    let state = match llmflow_webhook::WebhookState::connect(config).await {
        Ok(state) => state,
        Err(e) => {
            // The error and its causes: the setting or service at fault, then why.
            eprintln!("llmflow-webhook: {:#}", anyhow::Error::from(e));
            return ExitCode::FAILURE;
        }
    };
    // After the connections: a process that cannot reach its services names them first.
    let metrics_stop = tokio_util::sync::CancellationToken::new();
    let served = llmflow_core::metrics::serve_configured(
        &state.config,
        "127.0.0.1:9102",
        metrics_stop.clone(),
    )
    .await;
    if let Err(e) = served {
        eprintln!("llmflow-webhook: configuration error: {e}");
        return ExitCode::FAILURE;
    }
    tracing::info!("llmflow-webhook started");
    let handle = llmflow_webhook::start(state);
    llmflow_core::signal::shutdown_signal().await;
    tracing::info!("stopping: nothing more fetched; letting running deliveries finish");
    // Within SHUTDOWN_GRACE_SECS; what is still running then is handed back to the queue.
    let handed_back = handle.shutdown().await;
    tracing::info!(handed_back, "stopped");
    metrics_stop.cancel();
    // The spans still buffered go out before the process ends.
    telemetry.shutdown().await;
    ExitCode::SUCCESS
}
