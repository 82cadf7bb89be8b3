-- Progress and chunk events are many per job and URL, so the one-row-per-(job, URL, event type)
-- rule now holds for the terminal events only (a finished job still owes exactly one
-- `workflow.completed` or `workflow.failed` per URL). Every delivery keeps its own webhook id.
ALTER TABLE llm_webhook_deliveries
    DROP CONSTRAINT llm_webhook_deliveries_job_id_url_event_type_key;
CREATE UNIQUE INDEX uq_llm_webhook_deliveries_terminal
    ON llm_webhook_deliveries (job_id, url, event_type)
    WHERE event_type IN ('workflow.completed', 'workflow.failed');
ALTER TABLE llm_webhook_deliveries
    ADD CONSTRAINT llm_webhook_deliveries_webhook_id_key UNIQUE (webhook_id);
CREATE INDEX idx_llm_webhook_deliveries_job_id ON llm_webhook_deliveries (job_id);

-- `claim_token`: the sender holding the current attempt; only it may record the attempt's result
-- (a sender presumed dead that wakes up later records nothing).
-- `next_trigger`: what started the attempt now due — `manual` after an admin replay.
ALTER TABLE llm_webhook_deliveries
    ADD COLUMN claim_token  UUID,
    ADD COLUMN next_trigger VARCHAR(16) NOT NULL DEFAULT 'scheduled'
        CHECK (next_trigger IN ('scheduled', 'manual'));
