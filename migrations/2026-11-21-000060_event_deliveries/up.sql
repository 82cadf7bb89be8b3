-- A job may owe many progress and chunk webhooks (one delivery each); the final event stays
-- one per (job, URL, type).
ALTER TABLE llm_webhook_deliveries DROP CONSTRAINT llm_webhook_deliveries_job_id_url_event_type_key;
CREATE UNIQUE INDEX llm_webhook_deliveries_final_event ON llm_webhook_deliveries (job_id, url, event_type)
    WHERE event_type NOT IN ('workflow.progress', 'workflow.chunk');
