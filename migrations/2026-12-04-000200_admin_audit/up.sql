-- Every action taken from the dashboard or the admin API: who (the session or key that acted),
-- what (cancel, retry, replay, bulk …, with its target or filter), when, and how many it touched.
CREATE TABLE llm_admin_audit (
    id UUID PRIMARY KEY,
    actor VARCHAR(100) NOT NULL,
    action VARCHAR(50) NOT NULL,
    detail JSONB NOT NULL DEFAULT '{}'::jsonb,
    affected INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_llm_admin_audit_created_at ON llm_admin_audit (created_at DESC, id DESC);

-- The admin job list pages newest first (keyset on created_at, id), alone or by status or
-- workflow; the overview reads finished jobs by completion time.
CREATE INDEX idx_llm_workflow_jobs_created_id ON llm_workflow_jobs (created_at DESC, id DESC);
CREATE INDEX idx_llm_workflow_jobs_status_created ON llm_workflow_jobs (status, created_at DESC, id DESC);
CREATE INDEX idx_llm_workflow_jobs_workflow_created ON llm_workflow_jobs (workflow_name, created_at DESC, id DESC);
CREATE INDEX idx_llm_workflow_jobs_completed_at ON llm_workflow_jobs (completed_at)
    WHERE completed_at IS NOT NULL;
