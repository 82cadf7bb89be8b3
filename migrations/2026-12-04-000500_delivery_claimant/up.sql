-- The webhook sender holding a delivery's current attempt (its name in `llm_workers`), set with
-- the claim. When that sender's registry heartbeat lapses (killed, or cut off), the reconciler
-- gives the attempt back at once instead of waiting out CLAIM_TIMEOUT_SECS, which stays the
-- backstop for a live sender that is stuck and for claims made before this column existed.
ALTER TABLE llm_webhook_deliveries ADD COLUMN claimed_by VARCHAR(120);
