//! `llmflow-api`: loads configuration, starts telemetry, and serves.

use std::net::TcpListener;
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
            eprintln!("llmflow-api: {e}");
            return ExitCode::FAILURE;
        }
    };
    let telemetry = match llmflow_core::telemetry::init_service(&config, "llmflow-api") {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("llmflow-api: {}", llmflow_core::telemetry::Chain(&e));
            return ExitCode::FAILURE;
        }
    };
    let address = format!("{}:{}", config.host, config.port);
    let result = async {
        let state = llmflow_api::build_state(config).await?;
        let listener = TcpListener::bind(&address)
            .map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}"))?;
        tracing::info!(%address, "llmflow-api listening");
        let server = llmflow_api::run(state, listener)?;
        let handle = server.handle();
        // SIGTERM or SIGINT: stop accepting, finish the requests in flight (within
        // SHUTDOWN_GRACE_SECS), then return.
        tokio::spawn(async move {
            llmflow_core::signal::shutdown_signal().await;
            tracing::info!("stopping: no new connections; finishing requests in flight");
            handle.stop(true).await;
        });
        server.await?;
        tracing::info!("llmflow-api stopped");
        anyhow::Ok(())
    }
    .await;
    // The spans still buffered go out before the process ends.
    telemetry.shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("llmflow-api: {e:#}");
            tracing::error!(error = format!("{e:#}"), "llmflow-api stopped");
            ExitCode::FAILURE
        }
    }
}
