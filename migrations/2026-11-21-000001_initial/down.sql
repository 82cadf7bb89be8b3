DROP TABLE IF EXISTS llm_external_api_cache;
DROP TABLE IF EXISTS llm_webhook_attempts;
DROP TABLE IF EXISTS llm_webhook_deliveries;
DROP TABLE IF EXISTS llm_provider_usage;
DROP TABLE IF EXISTS llm_job_steps;
DROP TABLE IF EXISTS llm_workflow_jobs;
DROP TABLE IF EXISTS llm_workflow_definitions;
