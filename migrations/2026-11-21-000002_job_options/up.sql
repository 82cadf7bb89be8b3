-- Options a caller may give on submit: which webhook events to receive, a cost budget, and the
-- fingerprint of the request behind an Idempotency-Key (the same key with another body is a 409).
ALTER TABLE llm_workflow_jobs
    ADD COLUMN webhook_events         JSONB,
    ADD COLUMN max_cost_usd           DECIMAL(14, 6),
    ADD COLUMN idempotency_hash       VARCHAR(64),
    ADD COLUMN idempotency_expires_at TIMESTAMPTZ;
