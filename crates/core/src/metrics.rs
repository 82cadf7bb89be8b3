//! Prometheus metrics: one recorder per process (the `metrics` facade with
//! `metrics-exporter-prometheus`), rendered by the API's `GET /metrics` and by the listener
//! the worker and webhook sender open at `METRICS_ADDR`. Names use base units (`_seconds`),
//! counters end in `_total`, and no label carries a job, user or URL. LLM call metrics follow
//! the OpenTelemetry GenAI semantic conventions (`gen_ai.client.token.usage` →
//! `gen_ai_client_token_usage`, attributes `gen_ai.provider.name` → `gen_ai_provider_name`…).
//! Every metric is listed, one line each, in `docs/metrics.md`.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// Metric names, in one place (see `docs/metrics.md`).
pub mod names {
    pub const JOBS_SUBMITTED: &str = "llmflow_jobs_submitted_total";
    pub const JOBS_STARTED: &str = "llmflow_jobs_started_total";
    pub const JOBS_FINISHED: &str = "llmflow_jobs_finished_total";
    pub const JOB_QUEUE_WAIT: &str = "llmflow_job_queue_wait_seconds";
    pub const JOB_RUN_DURATION: &str = "llmflow_job_run_duration_seconds";
    pub const JOBS_IN_FLIGHT: &str = "llmflow_jobs_in_flight";
    pub const QUEUE_DEPTH: &str = "llmflow_queue_depth";
    pub const WORKERS_LIVE: &str = "llmflow_workers_live";
    pub const RECONCILER_REPUSHES: &str = "llmflow_reconciler_repushes_total";
    pub const CLAIM_LOSSES: &str = "llmflow_job_claim_losses_total";
    pub const JOBS_HANDED_BACK: &str = "llmflow_jobs_handed_back_total";
    pub const LOST_CLAIMS_RELEASED: &str = "llmflow_lost_claims_released_total";
    pub const LOST_DELIVERY_CLAIMS_RELEASED: &str = "llmflow_lost_delivery_claims_released_total";
    pub const JOB_RESUMES: &str = "llmflow_job_resumes_total";
    pub const STEP_DURATION: &str = "llmflow_step_duration_seconds";
    pub const STEP_RETRIES: &str = "llmflow_step_retries_total";
    pub const GEN_AI_TOKEN_USAGE: &str = "gen_ai_client_token_usage";
    pub const GEN_AI_OPERATION_DURATION: &str = "gen_ai_client_operation_duration_seconds";
    pub const GEN_AI_TIME_TO_FIRST_CHUNK: &str =
        "gen_ai_client_operation_time_to_first_chunk_seconds";
    pub const LLM_COST: &str = "llmflow_llm_cost_usd_total";
    pub const LLM_ERRORS: &str = "llmflow_llm_errors_total";
    pub const LLM_LIMITER_WAIT: &str = "llmflow_llm_limiter_wait_seconds";
    pub const WEBHOOK_ATTEMPTS: &str = "llmflow_webhook_attempts_total";
    pub const WEBHOOK_DELIVERY_LATENCY: &str = "llmflow_webhook_delivery_latency_seconds";
    pub const WEBHOOK_DEAD_LETTERS: &str = "llmflow_webhook_dead_letters_total";
    pub const WEBHOOK_REPLAYS: &str = "llmflow_webhook_replays_total";
}

/// Bucket bounds of every `_seconds` histogram: from 5 ms (a transform) to 10 min (a long job).
const SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// The bucket bounds the GenAI conventions advise for `gen_ai.client.token.usage`.
const TOKEN_BUCKETS: &[f64] = &[
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs this process's recorder (once; later calls answer the same handle) and describes
/// every metric. `None` when another recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(names::GEN_AI_TOKEN_USAGE.to_owned()),
                        TOKEN_BUCKETS,
                    )
                });
            let handle = match builder.and_then(|b| b.install_recorder()) {
                Ok(handle) => handle,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    return None;
                }
            };
            describe();
            Some(handle)
        })
        .as_ref()
}

/// The metrics in the Prometheus text format (empty without a recorder).
pub fn render() -> String {
    install().map(PrometheusHandle::render).unwrap_or_default()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    use names::*;
    describe_counter!(JOBS_SUBMITTED, "Jobs accepted by the API, by workflow.");
    describe_counter!(JOBS_STARTED, "Job runs started by a worker, by workflow.");
    describe_counter!(
        JOBS_FINISHED,
        "Job runs ended, by workflow and outcome (completed, failed, cancelled)."
    );
    describe_histogram!(
        JOB_QUEUE_WAIT,
        Unit::Seconds,
        "Time from submit to the start of a job's first run, by workflow."
    );
    describe_histogram!(
        JOB_RUN_DURATION,
        Unit::Seconds,
        "Time a job run took, by workflow and outcome."
    );
    describe_gauge!(JOBS_IN_FLIGHT, "Jobs running in this worker process now.");
    describe_gauge!(QUEUE_DEPTH, "Jobs waiting in Redis, by priority band.");
    describe_gauge!(
        WORKERS_LIVE,
        "Registered processes with a recent heartbeat, by kind (worker, webhook)."
    );
    describe_counter!(
        RECONCILER_REPUSHES,
        "Jobs and deliveries the reconciler pushed to Redis again, by kind."
    );
    describe_counter!(CLAIM_LOSSES, "Job runs that found their claim taken over.");
    describe_counter!(
        JOBS_HANDED_BACK,
        "Running jobs a stopping worker released after its grace period, for another to resume."
    );
    describe_counter!(
        LOST_CLAIMS_RELEASED,
        "Claims of lost (killed) workers the reconciler released and pushed again."
    );
    describe_counter!(
        LOST_DELIVERY_CLAIMS_RELEASED,
        "Webhook attempts of lost (killed) senders the reconciler gave back and pushed again."
    );
    describe_counter!(JOB_RESUMES, "Job runs that resumed after committed steps.");
    describe_histogram!(
        STEP_DURATION,
        Unit::Seconds,
        "Step duration, by workflow, step kind and outcome."
    );
    describe_counter!(STEP_RETRIES, "Step retries, by workflow and step kind.");
    describe_histogram!(
        GEN_AI_TOKEN_USAGE,
        Unit::Count,
        "Tokens per LLM call, by provider, requested model and token type (input, output)."
    );
    describe_histogram!(
        GEN_AI_OPERATION_DURATION,
        Unit::Seconds,
        "Duration of one LLM call, by provider, requested model and operation."
    );
    describe_histogram!(
        GEN_AI_TIME_TO_FIRST_CHUNK,
        Unit::Seconds,
        "Time to the first streamed chunk of a streamed LLM call, by provider and model."
    );
    describe_gauge!(
        LLM_COST,
        "Cost of LLM calls in USD (only ever increases), by provider and model."
    );
    describe_counter!(
        LLM_ERRORS,
        "Failed LLM calls, by provider and error type (llmflow's error taxonomy)."
    );
    describe_histogram!(
        LLM_LIMITER_WAIT,
        Unit::Seconds,
        "Time LLM calls waited for the shared provider limits, by provider."
    );
    describe_counter!(
        WEBHOOK_ATTEMPTS,
        "Webhook attempts, by outcome (delivered, retry, dead) and error class."
    );
    describe_histogram!(
        WEBHOOK_DELIVERY_LATENCY,
        Unit::Seconds,
        "Time from a job's end to its terminal webhook's 2xx, by event type."
    );
    describe_counter!(WEBHOOK_DEAD_LETTERS, "Webhook deliveries dead-lettered.");
    describe_counter!(
        WEBHOOK_REPLAYS,
        "Dead webhook deliveries replayed by an admin."
    );
}

/// One answered LLM call's tokens (as recorded on its usage row) and cost.
pub fn llm_usage(
    provider: &str,
    model: &str,
    input_tokens: i32,
    output_tokens: i32,
    cost_usd: rust_decimal::Decimal,
) {
    use rust_decimal::prelude::ToPrimitive;
    for (kind, tokens) in [("input", input_tokens), ("output", output_tokens)] {
        metrics::histogram!(
            names::GEN_AI_TOKEN_USAGE,
            "gen_ai_provider_name" => provider.to_owned(),
            "gen_ai_request_model" => model.to_owned(),
            "gen_ai_token_type" => kind,
        )
        .record(f64::from(tokens));
    }
    metrics::gauge!(
        names::LLM_COST,
        "gen_ai_provider_name" => provider.to_owned(),
        "gen_ai_request_model" => model.to_owned(),
    )
    .increment(cost_usd.to_f64().unwrap_or(0.0));
}

/// One LLM call's duration (answered or failed), and its error type when it failed.
pub fn llm_call(provider: &str, model: &str, took: Duration, error: Option<&'static str>) {
    metrics::histogram!(
        names::GEN_AI_OPERATION_DURATION,
        "gen_ai_provider_name" => provider.to_owned(),
        "gen_ai_request_model" => model.to_owned(),
        "gen_ai_operation_name" => "chat",
    )
    .record(took.as_secs_f64());
    if let Some(kind) = error {
        metrics::counter!(
            names::LLM_ERRORS,
            "gen_ai_provider_name" => provider.to_owned(),
            "error_type" => kind,
        )
        .increment(1);
    }
}

/// The worker's and webhook sender's listener: `METRICS_ADDR`, else `default`; nothing when
/// `METRICS_ADDR` is empty. The message of an error names the setting.
pub async fn serve_configured(
    config: &crate::config::Config,
    default: &str,
    shutdown: CancellationToken,
) -> Result<Option<SocketAddr>, String> {
    let Some(addr) = config.metrics_listen_addr(default) else {
        return Ok(None);
    };
    match serve(&addr, shutdown).await {
        Ok((bound, _task)) => {
            tracing::info!(address = %bound, "serving /metrics");
            Ok(Some(bound))
        }
        Err(e) => Err(format!("METRICS_ADDR: cannot listen on {addr}: {e}")),
    }
}

/// Serves `GET /metrics` (any other path: 404) on `addr` until `shutdown`. Binds now, so a bad
/// or busy address fails the process at start; answers the bound address.
pub async fn serve(
    addr: &str,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    install();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics listener: accept failed");
                        continue;
                    }
                },
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request: Request<_>| async move {
                    let response = if request.uri().path() == "/metrics" {
                        Response::builder()
                            .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                            .body(Full::new(Bytes::from(render())))
                    } else {
                        Response::builder()
                            .status(404)
                            .body(Full::new(Bytes::from_static(b"not found\n")))
                    };
                    response
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await
                {
                    tracing::debug!(error = %e, "metrics listener: connection ended");
                }
            });
        }
    });
    Ok((bound, task))
}
