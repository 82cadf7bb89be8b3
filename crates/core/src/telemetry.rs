//! Tracing setup shared by every binary: JSON lines in production, readable text in development,
//! filtered by `RUST_LOG` (default `info`); with `OTEL_EXPORTER_OTLP_ENDPOINT` set, llmflow's
//! spans are also exported over OTLP (see `otel`).

use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

use crate::config::{Config, LogFormat};
use crate::otel::{Traces, TracesError};

/// Installs the global subscriber, logs only. Safe to call more than once (later calls do
/// nothing), so tests that start several services in one process can call it freely.
pub fn init(format: LogFormat) {
    let _ = install(format, None);
}

/// Why a service's telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error(transparent)]
    Traces(#[from] TracesError),
    #[error("a tracing subscriber is already installed")]
    AlreadyInstalled(#[source] tracing_subscriber::util::TryInitError),
}

/// What a service keeps of its telemetry: the span pipeline, when spans are exported.
#[derive(Debug)]
pub struct Telemetry {
    traces: Option<Traces>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exports_traces(&self) -> bool {
        self.traces.is_some()
    }

    /// Sends the spans still buffered (a no-op without export).
    pub async fn flush(&self) {
        if let Some(traces) = &self.traces {
            traces.flush().await;
        }
    }

    /// Sends the spans still buffered and stops the exporter; call it last, when the process
    /// stops.
    pub async fn shutdown(self) {
        if let Some(traces) = self.traces {
            traces.shutdown().await;
        }
    }
}

/// Installs the global subscriber of a service (`service` names it in exported spans unless
/// `OTEL_SERVICE_NAME` does): logs as `LOG_FORMAT` says, plus span export when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Call it once, inside the tokio runtime.
pub fn init_service(config: &Config, service: &str) -> Result<Telemetry, TelemetryError> {
    let traces = match config.otlp_endpoint() {
        Some(endpoint) => {
            let name = config.otel_service_name.as_deref().unwrap_or(service);
            Some(Traces::start(endpoint, name)?)
        }
        None => None,
    };
    if let Err(e) = install(config.log_format, traces.as_ref()) {
        // Dropping the pipeline stops it with a blocking wait: off the runtime's threads.
        if let Some(traces) = traces {
            tokio::task::spawn_blocking(move || drop(traces));
        }
        return Err(TelemetryError::AlreadyInstalled(e));
    }
    Ok(Telemetry { traces })
}

fn install(
    format: LogFormat,
    traces: Option<&Traces>,
) -> Result<(), tracing_subscriber::util::TryInitError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = match format {
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_target(true)
            .boxed(),
        LogFormat::Pretty => fmt::layer().compact().with_target(true).boxed(),
    };
    // Only llmflow's own spans (and the events inside them) are exported. Parents are set from
    // the tracing span tree, not from an activated OpenTelemetry context, so a span's parent can
    // still be set from a stored `traceparent` after the span is entered (`otel::continue_trace`).
    let spans = traces.map(|traces| {
        tracing_opentelemetry::layer()
            .with_tracer(traces.tracer())
            .with_context_activation(false)
            .with_threads(false)
            .with_filter(filter_fn(|meta| meta.target().starts_with("llmflow")))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(spans)
        .try_init()
}

/// An error with its causes, `outer: cause: root cause`, for messages and log fields that are
/// plain text (JSON logs print only an error's own message).
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Chain;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_lists_every_cause() {
        let error = Outer(std::io::Error::other("root"));
        assert_eq!(Chain(&error).to_string(), "outer: root");
    }
}
