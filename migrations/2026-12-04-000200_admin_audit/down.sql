DROP INDEX IF EXISTS idx_llm_workflow_jobs_completed_at;
DROP INDEX IF EXISTS idx_llm_workflow_jobs_workflow_created;
DROP INDEX IF EXISTS idx_llm_workflow_jobs_status_created;
DROP INDEX IF EXISTS idx_llm_workflow_jobs_created_id;
DROP TABLE IF EXISTS llm_admin_audit;
