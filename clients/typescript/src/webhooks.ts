// Verifying llmflow's Standard Webhooks deliveries with the official `standardwebhooks` package.

import { Webhook } from "standardwebhooks";

/** What every delivery carries. */
interface Delivery<T extends string> {
  type: T;
  job_id: string;
  user_id: string | null;
  workflow_name: string;
  timestamp: string;
}

/** Money and tokens of a finished job (`cost_data`), in all and per LLM call. */
export interface CostData {
  provider: string;
  model: string;
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
  /** USD as a JSON number with the record's decimal digits. */
  cost_usd: number;
  steps: Array<{
    step_id: string;
    provider: string;
    model: string;
    input_tokens: number;
    output_tokens: number;
    total_tokens: number;
    cost_usd: number;
    usage_estimated: boolean;
  }>;
}

/** `workflow.completed`, `workflow.failed`, `workflow.cancelled`: one per job, URL and run. */
export interface TerminalEvent
  extends Delivery<"workflow.completed" | "workflow.failed" | "workflow.cancelled"> {
  status: "completed" | "failed" | "cancelled";
  result: unknown;
  error_message: string | null;
  is_stale: boolean;
  stale_reason: string | null;
  retry_count: number;
  cost_data: CostData | null;
  duration_ms: number | null;
}

/** `workflow.progress` (asked for with `webhookEvents`): a step started, completed or failed. */
export interface ProgressEvent extends Delivery<"workflow.progress"> {
  data: { event: string; step: Record<string, unknown> };
}

/** `workflow.chunk` (asked for with `webhookEvents`): streamed text; `seq` orders the chunks. */
export interface ChunkEvent extends Delivery<"workflow.chunk"> {
  data: { step_id: string; attempt: number; seq: number; offset: number; text: string };
}

export type WebhookEvent = TerminalEvent | ProgressEvent | ChunkEvent;

/** Headers as a `Headers` object (Next.js, fetch) or a plain record (Node's http). */
export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

/** The webhook-* headers the signature covers. */
function signatureHeaders(headers: WebhookHeaders): Record<string, string> {
  const get = (name: string): string => {
    if (headers instanceof Headers) return headers.get(name) ?? "";
    const value = headers[name] ?? headers[name.toLowerCase()];
    return Array.isArray(value) ? (value[0] ?? "") : (value ?? "");
  };
  return {
    "webhook-id": get("webhook-id"),
    "webhook-timestamp": get("webhook-timestamp"),
    "webhook-signature": get("webhook-signature"),
  };
}

/**
 * Verifies a delivery and returns its event. `rawBody` is the body exactly as received
 * (`await req.text()`), `secret` llmflow's signing secret: `whsec_…` is base64, anything else
 * raw bytes, as llmflow signs. Throws on a bad signature or a timestamp more than five minutes
 * away.
 */
export function verifyWebhook(rawBody: string, headers: WebhookHeaders, secret: string): WebhookEvent {
  const webhook = secret.startsWith("whsec_")
    ? new Webhook(secret)
    : new Webhook(secret, { format: "raw" });
  return webhook.verify(rawBody, signatureHeaders(headers)) as WebhookEvent;
}
