-- Retry from the failed step: how many times a failed job was sent back to run, and what each
-- failed run ended with (`[{"retry": n, "failed_at", "error_message", "failed_steps", ...}]`).
ALTER TABLE llm_workflow_jobs
    ADD COLUMN retry_count   INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN retry_history JSONB   NOT NULL DEFAULT '[]'::jsonb;

-- A job owes one terminal webhook per URL for each run (its first run, then one per retry), and
-- a cancelled job now owes `workflow.cancelled` too.
ALTER TABLE llm_webhook_deliveries ADD COLUMN job_run INTEGER NOT NULL DEFAULT 0;
DROP INDEX uq_llm_webhook_deliveries_terminal;
CREATE UNIQUE INDEX uq_llm_webhook_deliveries_terminal
    ON llm_webhook_deliveries (job_id, url, event_type, job_run)
    WHERE event_type IN ('workflow.completed', 'workflow.failed', 'workflow.cancelled');
