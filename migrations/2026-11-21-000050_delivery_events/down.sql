ALTER TABLE llm_webhook_deliveries
    DROP COLUMN IF EXISTS next_trigger,
    DROP COLUMN IF EXISTS claim_token;
DROP INDEX IF EXISTS idx_llm_webhook_deliveries_job_id;
ALTER TABLE llm_webhook_deliveries
    DROP CONSTRAINT IF EXISTS llm_webhook_deliveries_webhook_id_key;
DROP INDEX IF EXISTS uq_llm_webhook_deliveries_terminal;
-- The old rule allows one row per (job, URL, event type): keep the oldest of each.
DELETE FROM llm_webhook_deliveries d
    USING llm_webhook_deliveries o
    WHERE d.job_id = o.job_id AND d.url = o.url AND d.event_type = o.event_type AND o.id < d.id;
ALTER TABLE llm_webhook_deliveries
    ADD CONSTRAINT llm_webhook_deliveries_job_id_url_event_type_key UNIQUE (job_id, url, event_type);
