ALTER TABLE llm_webhook_deliveries RESET (fillfactor);
ALTER TABLE llm_workflow_jobs RESET (fillfactor);

CREATE INDEX idx_llm_workers_heartbeat ON llm_workers (kind, last_heartbeat);

DROP INDEX idx_llm_webhook_deliveries_dead;
CREATE INDEX idx_llm_webhook_deliveries_dead ON llm_webhook_deliveries (dead_lettered_at)
    WHERE status = 'dead';
DROP INDEX idx_llm_webhook_deliveries_owed;
CREATE INDEX idx_llm_webhook_deliveries_due ON llm_webhook_deliveries (next_attempt_at)
    WHERE status IN ('pending', 'delivering', 'failed');

DROP INDEX idx_llm_workflow_jobs_unfinished;
CREATE INDEX idx_llm_workflow_jobs_active ON llm_workflow_jobs (status, updated_at)
    WHERE status IN ('pending', 'queued', 'processing');

CREATE INDEX idx_llm_workflow_jobs_workflow_name ON llm_workflow_jobs (workflow_name);
CREATE INDEX idx_llm_workflow_jobs_created_at ON llm_workflow_jobs (created_at);
CREATE INDEX idx_llm_workflow_jobs_status ON llm_workflow_jobs (status);
