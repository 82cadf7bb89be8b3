-- llmflow initial schema. PostgreSQL is the record of every job, step, LLM call and webhook
-- attempt; Redis only dispatches ids. `user_id` has no foreign key: users live in the app's database.

-- Each workflow definition a job was submitted with, prompts resolved, keyed by its hash:
-- a job runs the definition it was pinned to, whatever happens to the file afterwards.
CREATE TABLE llm_workflow_definitions (
    hash        VARCHAR(64)  PRIMARY KEY,
    name        VARCHAR(255) NOT NULL,
    version     VARCHAR(64)  NOT NULL,
    definition  JSONB        NOT NULL,
    created_at  TIMESTAMPTZ  NOT NULL DEFAULT now()
);

CREATE TABLE llm_workflow_jobs (
    id                  UUID PRIMARY KEY,
    user_id             UUID,
    workflow_name       VARCHAR(255) NOT NULL,
    workflow_version    VARCHAR(64)  NOT NULL,
    workflow_hash       VARCHAR(64)  NOT NULL,
    status              VARCHAR(20)  NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'queued', 'processing', 'completed', 'failed', 'cancelled')),
    priority            SMALLINT     NOT NULL DEFAULT 5 CHECK (priority BETWEEN 0 AND 10),
    input_data          JSONB        NOT NULL,
    result              JSONB,
    error_message       TEXT,
    webhook_url         TEXT,
    webhook_secret      TEXT,
    queue_task_id       VARCHAR(255),
    current_step        VARCHAR(255),
    steps_completed     INTEGER      NOT NULL DEFAULT 0,
    steps_planned       INTEGER      NOT NULL DEFAULT 0,
    cancel_requested    BOOLEAN      NOT NULL DEFAULT FALSE,
    idempotency_key     VARCHAR(255),
    attempts            INTEGER      NOT NULL DEFAULT 0,
    claimed_by          VARCHAR(255),
    claimed_at          TIMESTAMPTZ,
    heartbeat_at        TIMESTAMPTZ,
    total_input_tokens  BIGINT       NOT NULL DEFAULT 0,
    total_output_tokens BIGINT       NOT NULL DEFAULT 0,
    total_cost_usd      DECIMAL(14, 6) NOT NULL DEFAULT 0,
    is_stale            BOOLEAN      NOT NULL DEFAULT FALSE,
    stale_reason        TEXT,
    created_at          TIMESTAMPTZ  NOT NULL DEFAULT now(),
    queued_at           TIMESTAMPTZ,
    started_at          TIMESTAMPTZ,
    completed_at        TIMESTAMPTZ,
    updated_at          TIMESTAMPTZ  NOT NULL DEFAULT now()
);

CREATE INDEX idx_llm_workflow_jobs_user_id ON llm_workflow_jobs (user_id);
CREATE INDEX idx_llm_workflow_jobs_status ON llm_workflow_jobs (status);
CREATE INDEX idx_llm_workflow_jobs_created_at ON llm_workflow_jobs (created_at);
CREATE INDEX idx_llm_workflow_jobs_workflow_name ON llm_workflow_jobs (workflow_name);
-- The reconciler scans only unfinished jobs.
CREATE INDEX idx_llm_workflow_jobs_active ON llm_workflow_jobs (status, updated_at)
    WHERE status IN ('pending', 'queued', 'processing');
CREATE UNIQUE INDEX idx_llm_workflow_jobs_idempotency ON llm_workflow_jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE llm_job_steps (
    id             UUID PRIMARY KEY,
    job_id         UUID         NOT NULL REFERENCES llm_workflow_jobs (id) ON DELETE CASCADE,
    step_id        VARCHAR(255) NOT NULL,
    step_type      VARCHAR(32)  NOT NULL,
    position       INTEGER      NOT NULL,
    status         VARCHAR(20)  NOT NULL
        CHECK (status IN ('completed', 'failed', 'skipped')),
    input          JSONB,
    output         JSONB,
    error_kind     VARCHAR(32),
    error_message  TEXT,
    attempts       INTEGER      NOT NULL DEFAULT 1,
    input_tokens   BIGINT       NOT NULL DEFAULT 0,
    output_tokens  BIGINT       NOT NULL DEFAULT 0,
    cost_usd       DECIMAL(14, 6) NOT NULL DEFAULT 0,
    started_at     TIMESTAMPTZ  NOT NULL,
    completed_at   TIMESTAMPTZ  NOT NULL,
    duration_ms    INTEGER      NOT NULL,
    -- A finished step is recorded once: resume reads these rows instead of running the step again.
    UNIQUE (job_id, step_id)
);

CREATE TABLE llm_provider_usage (
    id                 UUID PRIMARY KEY,
    job_id             UUID         REFERENCES llm_workflow_jobs (id) ON DELETE SET NULL,
    step_id            VARCHAR(255),
    user_id            UUID,
    provider           VARCHAR(50)  NOT NULL,
    model              VARCHAR(100) NOT NULL,
    input_tokens       INTEGER      NOT NULL,
    output_tokens      INTEGER      NOT NULL,
    total_tokens       INTEGER      NOT NULL,
    cached_input_tokens INTEGER     NOT NULL DEFAULT 0,
    cost_usd           DECIMAL(12, 6) NOT NULL,
    table_cost_usd     DECIMAL(12, 6) NOT NULL,
    provider_cost_usd  DECIMAL(12, 6),
    usage_estimated    BOOLEAN      NOT NULL DEFAULT FALSE,
    provider_request_id VARCHAR(255),
    duration_ms        INTEGER      NOT NULL,
    created_at         TIMESTAMPTZ  NOT NULL DEFAULT now()
);

CREATE INDEX idx_llm_provider_usage_job_id ON llm_provider_usage (job_id);
CREATE INDEX idx_llm_provider_usage_user_id ON llm_provider_usage (user_id);
CREATE INDEX idx_llm_provider_usage_created_at ON llm_provider_usage (created_at);
CREATE INDEX idx_llm_provider_usage_provider_model ON llm_provider_usage (provider, model);

CREATE TABLE llm_webhook_deliveries (
    id               UUID PRIMARY KEY,
    job_id           UUID         NOT NULL REFERENCES llm_workflow_jobs (id) ON DELETE CASCADE,
    url              TEXT         NOT NULL,
    webhook_id       VARCHAR(64)  NOT NULL,
    event_type       VARCHAR(64)  NOT NULL,
    payload          JSONB        NOT NULL,
    status           VARCHAR(20)  NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivering', 'delivered', 'failed', 'dead')),
    attempts         INTEGER      NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ,
    last_status_code INTEGER,
    last_error       TEXT,
    dead_lettered_at TIMESTAMPTZ,
    delivered_at     TIMESTAMPTZ,
    created_at       TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ  NOT NULL DEFAULT now(),
    UNIQUE (job_id, url, event_type)
);

CREATE INDEX idx_llm_webhook_deliveries_due ON llm_webhook_deliveries (next_attempt_at)
    WHERE status IN ('pending', 'delivering', 'failed');
CREATE INDEX idx_llm_webhook_deliveries_dead ON llm_webhook_deliveries (dead_lettered_at)
    WHERE status = 'dead';

CREATE TABLE llm_webhook_attempts (
    id              UUID PRIMARY KEY,
    delivery_id     UUID         NOT NULL REFERENCES llm_webhook_deliveries (id) ON DELETE CASCADE,
    job_id          UUID         NOT NULL REFERENCES llm_workflow_jobs (id) ON DELETE CASCADE,
    webhook_url     TEXT         NOT NULL,
    attempt_number  INTEGER      NOT NULL,
    trigger         VARCHAR(16)  NOT NULL DEFAULT 'scheduled' CHECK (trigger IN ('scheduled', 'manual')),
    status_code     INTEGER,
    success         BOOLEAN      NOT NULL,
    error_class     VARCHAR(16),
    error_message   TEXT,
    response_body   TEXT,
    remote_addr     VARCHAR(64),
    duration_ms     INTEGER      NOT NULL,
    next_retry_at   TIMESTAMPTZ,
    attempted_at    TIMESTAMPTZ  NOT NULL DEFAULT now(),
    -- One row per attempt number: a delivery claimed twice is sent once per attempt.
    UNIQUE (delivery_id, attempt_number, trigger)
);

CREATE INDEX idx_llm_webhook_attempts_job_id ON llm_webhook_attempts (job_id);

CREATE TABLE llm_external_api_cache (
    request_hash  VARCHAR(64) PRIMARY KEY,
    service       VARCHAR(64) NOT NULL,
    response      JSONB       NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL
);

CREATE INDEX idx_llm_external_api_cache_expires ON llm_external_api_cache (expires_at);
