-- The W3C trace context (`traceparent`) of the submit that created the job, when spans are
-- exported over OTLP: the worker's run and the webhook sender's attempts continue its trace, so
-- one job is one trace end to end. NULL when the API exports no spans.
ALTER TABLE llm_workflow_jobs ADD COLUMN traceparent TEXT;
