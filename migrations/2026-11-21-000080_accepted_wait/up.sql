-- The wait estimate given in the 202 answer, so that an Idempotency-Key replay returns the
-- same body.
ALTER TABLE llm_workflow_jobs ADD COLUMN estimated_wait_seconds INTEGER;
