-- Scenario 9 of scripts/bench.sh: :n finished jobs, copied from the real ones in the database
-- (the templates, made by the scenario through the services just before), with their steps,
-- usage, webhook deliveries and attempts. Each INSERT's column list is built from
-- information_schema and run with \gexec, so the rows keep whatever the migrations define and
-- are copied column to column (no JSON round trip); only ids, foreign keys, unique values and
-- times are new. Ids are UUIDv7 of the row's time, as llmflow makes them, and the jobs finished
-- between 20 and 1 days ago (inside JOB_RETENTION_DAYS' default).
\set ON_ERROR_STOP on
-- The copies are consistent by construction: skip the per-row foreign-key triggers.
SET session_replication_role = replica;

CREATE FUNCTION pg_temp.uuid7(at timestamptz) RETURNS uuid LANGUAGE sql VOLATILE AS $$
  SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
    PLACING substring(int8send((extract(epoch FROM at) * 1000)::bigint) FROM 3) FROM 1 FOR 6),
    52, 1), 53, 1), 'hex')::uuid
$$;

-- copy_sql(table, alias, source, overrides): `INSERT INTO table (every column) SELECT …
-- source`, each column taken from `alias.column` unless `overrides` (column → expression)
-- names it.
CREATE FUNCTION pg_temp.copy_sql(tbl text, alias text, source text, overrides jsonb)
RETURNS text LANGUAGE sql STABLE AS $$
  SELECT format('INSERT INTO %I (%s) SELECT %s %s', tbl,
      string_agg(quote_ident(c.column_name), ', ' ORDER BY c.ordinal_position),
      string_agg(coalesce(overrides ->> c.column_name, alias || '.' || quote_ident(c.column_name)),
                 ', ' ORDER BY c.ordinal_position),
      source)
    FROM information_schema.columns c
   WHERE c.table_schema = current_schema() AND c.table_name = tbl AND c.is_generated = 'NEVER'
$$;

CREATE TEMP TABLE tmpl AS
  SELECT id, row_number() OVER (ORDER BY id) - 1 AS k
    FROM llm_workflow_jobs WHERE status = 'completed';
SELECT count(*) AS templates, count(*) > 0 AS have_templates FROM tmpl \gset
\if :have_templates
\else
  \echo 'no completed job to copy'
  SELECT 1 / 0;
\endif

CREATE TEMP TABLE pmap AS
  SELECT g, t.id AS tmpl, pg_temp.uuid7(at) AS id, at
    FROM (SELECT g, now() - interval '20 days' + (g::float8 / :n) * interval '19 days' AS at
            FROM generate_series(1, :n) g) s
    JOIN tmpl t ON t.k = s.g % :templates;

SELECT pg_temp.copy_sql('llm_workflow_jobs', 'j',
  'FROM pmap m JOIN llm_workflow_jobs j ON j.id = m.tmpl',
  jsonb_build_object('id', 'm.id', 'queue_task_id', 'm.id::text', 'idempotency_key', 'NULL',
    'created_at', 'm.at', 'queued_at', 'm.at', 'started_at', 'm.at', 'claimed_at', 'm.at',
    'heartbeat_at', 'm.at', 'completed_at', 'm.at + interval ''1 second''',
    'updated_at', 'm.at + interval ''1 second''')) \gexec

SELECT pg_temp.copy_sql('llm_job_steps', 's',
  'FROM pmap m JOIN llm_job_steps s ON s.job_id = m.tmpl',
  jsonb_build_object('id', 'pg_temp.uuid7(m.at)', 'job_id', 'm.id', 'started_at', 'm.at',
    'completed_at', 'm.at')) \gexec

SELECT pg_temp.copy_sql('llm_provider_usage', 'u',
  'FROM pmap m JOIN llm_provider_usage u ON u.job_id = m.tmpl',
  jsonb_build_object('id', 'pg_temp.uuid7(m.at)', 'job_id', 'm.id', 'created_at', 'm.at')) \gexec

CREATE TEMP TABLE dmap AS
  SELECT d.id AS old, pg_temp.uuid7(m.at) AS id, m.id AS job, m.at
    FROM pmap m JOIN llm_webhook_deliveries d ON d.job_id = m.tmpl;

SELECT pg_temp.copy_sql('llm_webhook_deliveries', 'd',
  'FROM dmap dm JOIN llm_webhook_deliveries d ON d.id = dm.old',
  jsonb_build_object('id', 'dm.id', 'job_id', 'dm.job',
    'webhook_id', '''msg_'' || replace(dm.id::text, ''-'', '''')',
    'created_at', 'dm.at', 'updated_at', 'dm.at + interval ''2 seconds''',
    'next_attempt_at', 'CASE WHEN d.next_attempt_at IS NULL THEN NULL ELSE dm.at END',
    'delivered_at',
    'CASE WHEN d.delivered_at IS NULL THEN NULL ELSE dm.at + interval ''2 seconds'' END')) \gexec

SELECT pg_temp.copy_sql('llm_webhook_attempts', 'a',
  'FROM dmap dm JOIN llm_webhook_attempts a ON a.delivery_id = dm.old',
  jsonb_build_object('id', 'pg_temp.uuid7(dm.at)', 'delivery_id', 'dm.id', 'job_id', 'dm.job',
    'attempted_at', 'dm.at + interval ''2 seconds''')) \gexec

SELECT (SELECT count(*) FROM llm_workflow_jobs) AS jobs, (SELECT count(*) FROM llm_job_steps) AS steps,
       (SELECT count(*) FROM llm_provider_usage) AS usage,
       (SELECT count(*) FROM llm_webhook_deliveries) AS deliveries,
       (SELECT count(*) FROM llm_webhook_attempts) AS attempts;
