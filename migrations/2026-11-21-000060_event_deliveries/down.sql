DELETE FROM llm_webhook_deliveries WHERE event_type IN ('workflow.progress', 'workflow.chunk');
DROP INDEX llm_webhook_deliveries_final_event;
ALTER TABLE llm_webhook_deliveries ADD CONSTRAINT llm_webhook_deliveries_job_id_url_event_type_key
    UNIQUE (job_id, url, event_type);
