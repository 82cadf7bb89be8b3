// The webhook route handler, called through its exported POST with real signed deliveries
// captured from llmflow (the stack started by scripts/test.sh).
import { randomUUID } from "node:crypto";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { client, env, receiver, waitUntil, webhookSecret } from "../../../clients/typescript/test/stack";
import { appDatabase } from "./app-db";

let drop = async () => {};
beforeAll(async () => {
  const database = await appDatabase(env.LLMFLOW_DATABASE_URL!);
  drop = database.drop;
  process.env.DATABASE_URL = database.url;
  process.env.LLMFLOW_WEBHOOK_SECRET = webhookSecret;
});
afterAll(async () => {
  const { db } = await import("../lib/db");
  await db().end();
  await drop();
});

/** A captured delivery as the request Next.js hands the route. */
function request(body: string, headers: Record<string, string | string[] | undefined>): Request {
  const sent = new Headers({ "content-type": "application/json" });
  for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature"]) {
    const value = headers[name];
    if (typeof value === "string") sent.set(name, value);
  }
  return new Request("http://localhost:3000/api/webhooks/llmflow", { method: "POST", headers: sent, body });
}

async function counts(): Promise<{ events: number; activity: number }> {
  const { db } = await import("../lib/db");
  const { rows } = await db().query<{ events: string; activity: string }>(
    "SELECT (SELECT count(*) FROM llmflow_webhook_events) AS events, (SELECT count(*) FROM user_activity_log) AS activity",
  );
  return { events: Number(rows[0]!.events), activity: Number(rows[0]!.activity) };
}

describe("POST /api/webhooks/llmflow", () => {
  it("stores a real delivery once, however often it arrives, and refuses a bad signature", async () => {
    const { POST } = await import("../app/api/webhooks/llmflow/route");
    const app = await receiver();
    const userId = randomUUID();
    try {
      const { job_id } = await client.submit("bench_pipeline", { text: "log my cost" }, { userId, webhookUrl: app.url });
      const delivery = await waitUntil("the terminal webhook", 60_000, () => app.deliveries[0]);

      const tampered = await POST(request(delivery.body.replace("completed", "cancelled"), delivery.headers));
      expect(tampered.status).toBe(401);
      const unsigned = await POST(request(delivery.body, { ...delivery.headers, "webhook-signature": "v1,AAAA" }));
      expect(unsigned.status).toBe(401);
      expect(await counts()).toEqual({ events: 0, activity: 0 });

      for (let arrival = 0; arrival < 3; arrival += 1) {
        const response = await POST(request(delivery.body, delivery.headers));
        expect(response.status).toBe(204);
      }
      expect(await counts()).toEqual({ events: 1, activity: 1 });

      const { db } = await import("../lib/db");
      const { rows } = await db().query(
        "SELECT user_id::text, job_id::text, status, input_tokens, output_tokens, cost_usd::float8 AS cost, result FROM user_activity_log",
      );
      const status = await client.status(job_id);
      expect(rows[0]).toMatchObject({
        user_id: userId,
        job_id,
        status: "completed",
        input_tokens: String(status.cost.input_tokens),
        output_tokens: String(status.cost.output_tokens),
      });
      expect(rows[0].cost).toBeGreaterThan(0);
      expect(rows[0].result).toEqual(status.result);
    } finally {
      await app.close();
    }
  });
});
