ALTER TABLE llm_workflow_jobs DROP COLUMN IF EXISTS traceparent;
