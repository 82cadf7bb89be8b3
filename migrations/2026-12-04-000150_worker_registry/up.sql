-- The registry of running llmflow processes (workers and webhook senders): each registers at
-- start, refreshes `last_heartbeat` while it runs, and deletes its row when it stops cleanly.
-- A row whose heartbeat is older than WORKER_LOST_SECS belongs to a process that died: it is
-- shown as lost, and removed a day later.
CREATE TABLE llm_workers (
    name           VARCHAR(120) PRIMARY KEY,
    kind           VARCHAR(16)  NOT NULL CHECK (kind IN ('worker', 'webhook')),
    host           VARCHAR(255) NOT NULL,
    pid            INTEGER      NOT NULL,
    version        VARCHAR(40)  NOT NULL,
    started_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    concurrency    INTEGER      NOT NULL,
    in_flight      INTEGER      NOT NULL DEFAULT 0,
    last_heartbeat TIMESTAMPTZ  NOT NULL DEFAULT now()
);
CREATE INDEX idx_llm_workers_heartbeat ON llm_workers (kind, last_heartbeat);
