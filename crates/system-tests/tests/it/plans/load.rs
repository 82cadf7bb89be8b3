//! Finished jobs, loaded in bulk as the record holds them after a while in production: each
//! with two steps, one LLM call, its delivered `workflow.completed` webhook and that webhook's
//! attempt; a few failed, a few dead-lettered, a few past a 30-day retention.

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

/// The tables that grow with every job: none may be read whole by a hot or background query.
pub const LARGE_TABLES: [&str; 5] = [
    "llm_workflow_jobs",
    "llm_job_steps",
    "llm_provider_usage",
    "llm_webhook_deliveries",
    "llm_webhook_attempts",
];

/// Loads `n` finished jobs (and their rows) and analyses the tables.
pub async fn finished_jobs(url: &str, n: i64) {
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .expect("connect to the test database");
    let sql = format!(
        "CREATE TEMP TABLE loaded AS \
           SELECT gen_random_uuid() AS id, g, \
             now() - (g % 20) * interval '1 day' - g * interval '1 millisecond' \
               - CASE WHEN g % 300 = 0 THEN interval '40 days' ELSE interval '0' END AS at \
           FROM generate_series(1, {n}) g; \
         INSERT INTO llm_workflow_jobs (id, user_id, workflow_name, workflow_version, \
             workflow_hash, status, priority, input_data, result, error_message, webhook_url, \
             queue_task_id, steps_completed, steps_planned, attempts, claimed_by, claimed_at, \
             heartbeat_at, total_input_tokens, total_output_tokens, total_cost_usd, created_at, \
             queued_at, started_at, completed_at, updated_at) \
           SELECT id, gen_random_uuid(), \
             CASE WHEN g % 3 = 0 THEN 'bench_single' ELSE 'bench_pipeline' END, '1', \
             repeat('0', 64), CASE WHEN g % 10 = 0 THEN 'failed' ELSE 'completed' END, 5, \
             jsonb_build_object('text', repeat('lorem ipsum ', 20), 'score', g % 100), \
             jsonb_build_object('summary', repeat('dolor sit ', 30)), \
             CASE WHEN g % 10 = 0 THEN 'provider error' END, 'https://app.example/hooks', \
             id::text, 2, 2, 1, 'w-loaded', at - interval '2 seconds', at, 300, 600, 0.0009, \
             at - interval '3 seconds', at - interval '3 seconds', at - interval '2 seconds', \
             at, at \
           FROM loaded; \
         INSERT INTO llm_job_steps (id, job_id, step_id, step_type, position, status, output, \
             input_tokens, output_tokens, cost_usd, started_at, completed_at, duration_ms) \
           SELECT gen_random_uuid(), l.id, s.step_id, 'llm', s.position, 'completed', \
             jsonb_build_object('text', repeat('out ', 40)), 150, 300, 0.00045, \
             l.at - interval '1 second', l.at, 1000 \
           FROM loaded l, (VALUES ('analyze', 0), ('refine', 1)) s (step_id, position); \
         INSERT INTO llm_provider_usage (id, job_id, step_id, user_id, provider, model, \
             input_tokens, output_tokens, total_tokens, cost_usd, table_cost_usd, duration_ms, \
             created_at) \
           SELECT gen_random_uuid(), id, 'analyze', NULL, 'openrouter', 'openai/gpt-4o-mini', \
             150, 300, 450, 0.00045, 0.00045, 1000, at \
           FROM loaded; \
         INSERT INTO llm_webhook_deliveries (id, job_id, url, webhook_id, event_type, payload, \
             status, attempts, next_attempt_at, last_status_code, dead_lettered_at, \
             delivered_at, created_at, updated_at) \
           SELECT id, id, 'https://app.example/hooks', 'msg_' || replace(id::text, '-', ''), \
             'workflow.completed', jsonb_build_object('job_id', id), \
             CASE WHEN g % 1000 = 0 THEN 'dead' ELSE 'delivered' END, 1, NULL, \
             CASE WHEN g % 1000 = 0 THEN 500 ELSE 200 END, \
             CASE WHEN g % 1000 = 0 THEN at END, \
             CASE WHEN g % 1000 <> 0 THEN at END, at, at \
           FROM loaded; \
         INSERT INTO llm_webhook_attempts (id, delivery_id, job_id, webhook_url, \
             attempt_number, status_code, success, duration_ms, attempted_at) \
           SELECT gen_random_uuid(), id, id, 'https://app.example/hooks', 1, 200, true, 3, at \
           FROM loaded; \
         INSERT INTO llm_external_api_cache (request_hash, service, response, created_at, \
             expires_at) \
           SELECT md5(g::text) || md5((g + 1)::text), 'google_places', '{{}}'::jsonb, \
             now() - interval '2 days', now() + interval '1 day' \
           FROM generate_series(1, {n} / 10) g; \
         ANALYZE;"
    );
    conn.batch_execute(&sql).await.expect("load finished jobs");
}
