-- Updates that stay on their page (HOT). PostgreSQL can update a row without writing an entry
-- into every index of the table only when no indexed column changes (a column in an index's key
-- or in a partial index's predicate) and the page has room for the new version. So:
-- - no index of `llm_workflow_jobs` holds a column that a step commit, a heartbeat, a re-push or
--   a cancel request changes (`updated_at`, `heartbeat_at`, `current_step`, `steps_*`, totals,
--   `queue_task_id`, `cancel_requested`): those updates are HOT. The claim and the finish change
--   `status` (and the finish `completed_at`), which the admin list and the retention sweep need
--   indexed, so they still write every index;
-- - no index of `llm_webhook_deliveries` holds `status`, `attempts`, `claim_token` or
--   `updated_at`: the claim of an attempt is HOT, and recording it writes the indexes once;
-- - the registry's heartbeat changes only `last_heartbeat`, which is no longer indexed (the
--   table holds one row per running process: it is read whole);
-- - a fillfactor of 75 leaves a quarter of each new page free for the new versions. It applies
--   to pages written from now on; existing pages fill as rows are deleted by retention.

-- Unused, or served by another index (a B-tree is read backwards as well as forwards):
--   (status)        the admin list by status and the counts by status use (status, created_at, id);
--   (created_at)    the admin list uses (created_at DESC, id DESC); retention uses completed_at;
--   (workflow_name) the admin list by workflow uses (workflow_name, created_at, id).
DROP INDEX idx_llm_workflow_jobs_status;
DROP INDEX idx_llm_workflow_jobs_created_at;
DROP INDEX idx_llm_workflow_jobs_workflow_name;

-- The reconciler, the stale cleanup and the release of lost claims look at unfinished jobs
-- only. The index holds their ids and nothing a running job changes, so a finished job's entries
-- are dead once it ends (the scans in id order mark them so and skip them on the next pass, and
-- vacuum removes them); the staleness tests (`updated_at`, `heartbeat_at`) read the row.
DROP INDEX idx_llm_workflow_jobs_active;
CREATE INDEX idx_llm_workflow_jobs_unfinished ON llm_workflow_jobs (id)
    WHERE status IN ('pending', 'queued', 'processing');

-- Deliveries still owed an attempt (pending, being sent, or waiting for a retry) are exactly the
-- ones with a `next_attempt_at`: delivered and dead ones have none. Keyed by id for the
-- reconciler's pages, with a predicate the claim does not change.
DROP INDEX idx_llm_webhook_deliveries_due;
CREATE INDEX idx_llm_webhook_deliveries_owed ON llm_webhook_deliveries (id)
    WHERE next_attempt_at IS NOT NULL;
-- Dead deliveries are exactly the ones with a `dead_lettered_at` (a replay clears it).
DROP INDEX idx_llm_webhook_deliveries_dead;
CREATE INDEX idx_llm_webhook_deliveries_dead ON llm_webhook_deliveries
    (dead_lettered_at DESC, id DESC) WHERE dead_lettered_at IS NOT NULL;

DROP INDEX idx_llm_workers_heartbeat;

ALTER TABLE llm_workflow_jobs SET (fillfactor = 75);
ALTER TABLE llm_webhook_deliveries SET (fillfactor = 75);
