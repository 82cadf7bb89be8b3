ALTER TABLE llm_webhook_deliveries DROP COLUMN IF EXISTS claimed_by;
