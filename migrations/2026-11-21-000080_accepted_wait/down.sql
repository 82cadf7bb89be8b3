ALTER TABLE llm_workflow_jobs DROP COLUMN IF EXISTS estimated_wait_seconds;
