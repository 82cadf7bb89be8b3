DROP INDEX IF EXISTS uq_llm_webhook_deliveries_terminal;
ALTER TABLE llm_webhook_deliveries DROP COLUMN IF EXISTS job_run;
CREATE UNIQUE INDEX uq_llm_webhook_deliveries_terminal
    ON llm_webhook_deliveries (job_id, url, event_type)
    WHERE event_type IN ('workflow.completed', 'workflow.failed');
ALTER TABLE llm_workflow_jobs
    DROP COLUMN IF EXISTS retry_history,
    DROP COLUMN IF EXISTS retry_count;
