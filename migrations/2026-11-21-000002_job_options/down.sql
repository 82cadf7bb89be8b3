ALTER TABLE llm_workflow_jobs
    DROP COLUMN IF EXISTS webhook_events,
    DROP COLUMN IF EXISTS max_cost_usd,
    DROP COLUMN IF EXISTS idempotency_hash,
    DROP COLUMN IF EXISTS idempotency_expires_at;
