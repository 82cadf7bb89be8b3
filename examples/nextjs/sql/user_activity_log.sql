-- The app's own tables for llmflow's webhooks (PostgreSQL).

-- One row per delivery received, keyed by `webhook-id`: llmflow sends the same id on every retry
-- and replay of a delivery, so a second arrival is recognised and ignored.
CREATE TABLE IF NOT EXISTS llmflow_webhook_events (
    webhook_id  text PRIMARY KEY,
    event_type  text NOT NULL,
    job_id      uuid NOT NULL,
    payload     jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- What each user's jobs cost, from `cost_data` of the terminal events, with the result.
CREATE TABLE IF NOT EXISTS user_activity_log (
    id             bigserial PRIMARY KEY,
    user_id        uuid,
    job_id         uuid NOT NULL,
    workflow_name  text NOT NULL,
    status         text NOT NULL,
    input_tokens   bigint NOT NULL DEFAULT 0,
    output_tokens  bigint NOT NULL DEFAULT 0,
    cost_usd       numeric(18, 8) NOT NULL DEFAULT 0,
    result         jsonb,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS user_activity_log_user ON user_activity_log (user_id, created_at);
