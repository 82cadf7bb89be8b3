//! The worker's spans: one per job run and one per step (exported over OTLP when configured;
//! see `llmflow_core::otel`). LLM call spans are made where the call is (`llm::chain`).

use llmflow_core::db::models::JobRow;
use llmflow_core::workflow::Step;
use llmflow_core::JobId;

/// The span of one run of a job; `workflow` is filled in once the job is claimed.
pub(crate) fn job(job_id: JobId, worker: &str) -> tracing::Span {
    tracing::info_span!(
        "job",
        %job_id,
        worker = %worker,
        otel.kind = "consumer",
        workflow = tracing::field::Empty,
    )
}

/// Makes the current (job) span part of the trace of the submit that created the job. Called
/// right after the claim, before any step's span exists.
pub(crate) fn join_submit_trace(job: &JobRow) {
    let span = tracing::Span::current();
    llmflow_core::otel::continue_trace(&span, job.traceparent.as_deref());
    span.record("workflow", job.workflow_name.as_str());
}

/// The span of one step (a branch's steps are its children).
pub(crate) fn step(step: &Step) -> tracing::Span {
    tracing::info_span!(
        "step",
        step_id = %step.id,
        step_type = step.kind.name(),
        otel.status_description = tracing::field::Empty,
    )
}

/// Marks a step's span as failed, with the message (exported as the span's error status).
pub(crate) fn step_failed(span: &tracing::Span, message: &str) {
    span.record("otel.status_description", message);
}
