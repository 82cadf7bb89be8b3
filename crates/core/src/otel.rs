//! Spans over OTLP, and the trace context a job carries from the API to the worker and the
//! webhook sender.
//!
//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set, `telemetry::init_service` adds a
//! `tracing-opentelemetry` layer fed by [`Traces`]: llmflow's own `tracing` spans (targets
//! `llmflow*`) become OpenTelemetry spans, batched on the tokio runtime and sent as OTLP/HTTP
//! protobuf to `{endpoint}/v1/traces`. Without it no layer is installed, and the helpers below
//! find no OpenTelemetry span and do nothing.
//!
//! One job is one trace: the submit's context is stored on the job row as a W3C `traceparent`
//! ([`current_traceparent`]), and the worker's `job` span and the sender's `webhook attempt`
//! spans take it as their parent ([`continue_trace`]).

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// How long one export request may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The header and column name of the W3C trace context.
const TRACEPARENT: &str = "traceparent";

/// Why span export could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TracesError {
    #[error("OTEL_EXPORTER_OTLP_ENDPOINT: cannot build the OTLP exporter")]
    Exporter(#[source] opentelemetry_otlp::ExporterBuildError),
}

/// The span pipeline of one process: a tracer provider whose batch processor runs on the tokio
/// runtime it was started on. Call [`Traces::shutdown`] before the process exits, so the spans
/// still buffered are sent.
#[derive(Debug)]
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Exports spans to `{endpoint}/v1/traces` (the OTLP/HTTP convention for the base URL in
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`) as `service`. Must be called inside a tokio runtime.
    pub fn start(endpoint: &str, service: &str) -> Result<Traces, TracesError> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        let client = opentelemetry_http::hyper::HyperClient::new(https, EXPORT_TIMEOUT, None);
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(traces_url(endpoint))
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(TracesError::Exporter)?;
        let processor =
            BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(
                Resource::builder_empty()
                    .with_service_name(service.to_owned())
                    .build(),
            )
            .build();
        Ok(Traces { provider })
    }

    /// The tracer the `tracing-opentelemetry` layer records with.
    pub fn tracer(&self) -> SdkTracer {
        self.provider.tracer("llmflow")
    }

    /// Sends every finished span still buffered (the test's receiver waits for them).
    pub async fn flush(&self) {
        let provider = self.provider.clone();
        // The processor answers through a blocking wait: keep it off the runtime's threads.
        let flushed = tokio::task::spawn_blocking(move || provider.force_flush()).await;
        if let Ok(Err(e)) = flushed {
            tracing::warn!(error = %e, "flushing spans failed");
        }
    }

    /// Sends the buffered spans and stops the exporter.
    pub async fn shutdown(self) {
        let provider = self.provider;
        let stopped = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = stopped {
            tracing::warn!(error = %e, "stopping span export failed");
        }
    }
}

/// `{endpoint}/v1/traces`, without a doubled slash.
fn traces_url(endpoint: &str) -> String {
    format!("{}/v1/traces", endpoint.trim().trim_end_matches('/'))
}

/// The W3C `traceparent` of the current span, when spans are exported (else `None`).
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes `span` a child of the span `traceparent` names (stored with the job, or sent by the
/// caller). Call it before the span's first child: a span's parent is fixed once it starts.
/// Nothing happens when spans are not exported or the value is missing or malformed.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent.map(str::trim).filter(|t| !t.is_empty()) else {
        return;
    };
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    if !parent.span().span_context().is_valid() {
        return;
    }
    if let Err(e) = span.set_parent(parent) {
        tracing::debug!(error = %e, "span not joined to its trace");
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn the_traces_path_follows_the_otlp_http_convention() {
        assert_eq!(traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("https://c/otlp/"), "https://c/otlp/v1/traces");
    }

    #[test]
    fn without_a_layer_there_is_no_context_to_carry() {
        let span = tracing::info_span!("submit");
        let _entered = span.enter();
        assert_eq!(current_traceparent(), None);
        continue_trace(
            &span,
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        );
    }

    #[test]
    fn a_span_continues_the_trace_its_traceparent_names() {
        let provider = SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("test"))
            .with_context_activation(false);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
            let job = tracing::info_span!("job");
            // Events before the parent is known do not fix it.
            job.in_scope(|| tracing::info!("claimed"));
            continue_trace(&job, Some(incoming));
            let carried = job.in_scope(current_traceparent).expect("a traceparent");
            assert!(
                carried.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
                "{carried}"
            );
            assert_ne!(carried, incoming, "the job's own span id");

            let other = tracing::info_span!("job");
            continue_trace(&other, Some("not a traceparent"));
            let fresh = other.in_scope(current_traceparent).expect("a traceparent");
            assert!(
                !fresh.contains("0af7651916cd43dd8448eb211c80319c"),
                "{fresh}"
            );
        });
    }
}
