// llmflow's webhooks: verify the raw body, store each delivery once (by `webhook-id`), log what
// finished jobs cost per user, answer 2xx at once.
import { verifyWebhook, type WebhookEvent } from "@llmflow/client";

import { db } from "../../../../lib/db";

export const runtime = "nodejs";

export async function POST(req: Request): Promise<Response> {
  // The signature covers the body byte for byte: read it as text, never re-serialise JSON.
  const rawBody = await req.text();
  let event: WebhookEvent;
  try {
    event = verifyWebhook(rawBody, req.headers, process.env.LLMFLOW_WEBHOOK_SECRET ?? "");
  } catch {
    return Response.json({ error: "invalid signature" }, { status: 401 });
  }
  const webhookId = req.headers.get("webhook-id") ?? "";
  const client = await db().connect();
  try {
    await client.query("BEGIN");
    const inserted = await client.query(
      `INSERT INTO llmflow_webhook_events (webhook_id, event_type, job_id, payload)
       VALUES ($1, $2, $3, $4) ON CONFLICT (webhook_id) DO NOTHING`,
      [webhookId, event.type, event.job_id, rawBody],
    );
    // A retry of a delivery already stored: nothing more to do.
    if (inserted.rowCount === 1 && "cost_data" in event) {
      await client.query(
        `INSERT INTO user_activity_log
           (user_id, job_id, workflow_name, status, input_tokens, output_tokens, cost_usd, result)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [
          event.user_id,
          event.job_id,
          event.workflow_name,
          event.status,
          event.cost_data?.input_tokens ?? 0,
          event.cost_data?.output_tokens ?? 0,
          String(event.cost_data?.cost_usd ?? 0),
          JSON.stringify(event.result ?? null),
        ],
      );
    }
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK");
    throw error; // 500: llmflow retries the delivery with the same webhook-id.
  } finally {
    client.release();
  }
  return new Response(null, { status: 204 });
}
