// @llmflow/client against the real llmflow stack (API, worker, webhook sender, PostgreSQL, Redis,
// the emulator as the LLM provider): no mocks.
import { randomUUID } from "node:crypto";

import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";

import {
  AuthError,
  ConflictError,
  LlmflowClient,
  NotFoundError,
  RateLimitedError,
  ValidationError,
  verifyWebhook,
  type JobEvent,
} from "../src/index.js";
import { client, emulatorChunkDelay, env, receiver, waitUntil, webhookSecret } from "./stack.js";

const db = new pg.Pool({ connectionString: env.LLMFLOW_DATABASE_URL });
afterAll(() => db.end());

describe("submit and wait", () => {
  it("submits, waits for the job and reads its result", async () => {
    const accepted = await client.submit("bench_pipeline", { text: "quarterly report for the board" });
    expect(accepted.status).toMatch(/queued|pending/);
    const done = await client.waitFor(accepted.job_id, { timeoutMs: 60_000 });
    expect(done.status).toBe("completed");
    expect(done.result).toBeTruthy();
    expect(done.finished_steps).toContain("analyze");
    const step = await client.step(accepted.job_id, "analyze");
    expect(step.step_id).toBe("analyze");
    // A finished job can be neither cancelled nor retried.
    await expect(client.cancel(accepted.job_id)).rejects.toBeInstanceOf(ConflictError);
    await expect(client.retry(accepted.job_id)).rejects.toBeInstanceOf(ConflictError);
  });

  it("lists the workflows and validates a submission without running it", async () => {
    const names = (await client.workflows()).map((w) => w.name);
    expect(names).toEqual(expect.arrayContaining(["bench_pipeline", "story_stream"]));
    const ok = await client.validate({ workflow_name: "story_stream", input_data: { topic: "tides" } });
    expect(ok.valid).toBe(true);
    const bad = await client.validate({ workflow_name: "story_stream", input_data: {} });
    expect(bad.valid).toBe(false);
    expect(bad.problems.map((p) => p.field)).toContain("input_data.topic");
  });
});

describe("events", () => {
  it("yields step events and chunks, and resumes after the connection drops", async () => {
    // The first two events responses are cut after their fourth block (`retry:`, `connected`
    // and two events): the client must reopen with Last-Event-ID each time and still see every
    // event once.
    let cuts = 0;
    const dropping: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      if (!String(input).endsWith("/events") || cuts >= 2 || !response.body) return response;
      cuts += 1;
      let events = 0;
      const reader = response.body.getReader();
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const { value, done } = await reader.read();
          if (done) return controller.close();
          events += new TextDecoder().decode(value).split("\n\n").length - 1;
          controller.enqueue(value);
          if (events >= 4) {
            await reader.cancel();
            controller.error(new TypeError("connection reset by the test"));
          }
        },
      });
      return new Response(body, { status: response.status, headers: response.headers });
    };
    const flaky = new LlmflowClient({ baseUrl: env.LLMFLOW_BASE_URL!, apiKey: env.LLMFLOW_API_KEY!, fetch: dropping });
    // Streamed slowly enough that the text comes in several chunks.
    const pace = await emulatorChunkDelay(40);
    const seen: JobEvent[] = [];
    let job_id: string;
    try {
      ({ job_id } = await client.submit("story_stream", { topic: "a lighthouse keeper" }));
      for await (const event of flaky.events(job_id)) seen.push(event);
    } finally {
      await emulatorChunkDelay(pace);
    }

    expect(cuts).toBe(2);
    const names = seen.map((e) => e.event);
    expect(names).toContain("step_started");
    expect(names).toContain("step_completed");
    expect(names.at(-1)).toBe("job_completed");
    const ids = seen.filter((e) => e.id !== undefined).map((e) => e.id!);
    expect(new Set(ids).size).toBe(ids.length);
    const chunks = seen.filter((e) => e.event === "chunk").map((e) => e.data as { seq: number; text: string });
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.map((c) => c.seq)).toEqual(chunks.map((_, i) => i));
    const status = await client.status(job_id);
    const story = (status.result as { story: string }).story;
    expect(chunks.map((c) => c.text).join("")).toBe(story);
  });
});

describe("errors", () => {
  it("answers each error class from a real bad request", async () => {
    const invalid = await client.submit("bench_pipeline", { nottext: 1 }).catch((e: unknown) => e);
    expect(invalid).toBeInstanceOf(ValidationError);
    expect((invalid as ValidationError).status).toBe(422);
    expect((invalid as ValidationError).errors.map((e) => e.field)).toContain("input_data.text");

    const wrongKey = new LlmflowClient({ baseUrl: env.LLMFLOW_BASE_URL!, apiKey: "not-the-key" });
    await expect(wrongKey.workflows()).rejects.toBeInstanceOf(AuthError);

    await expect(client.status(randomUUID())).rejects.toBeInstanceOf(NotFoundError);
    const mine = await client.submit("bench_pipeline", { text: "mine" }, { userId: randomUUID() });
    await expect(client.streamToken(mine.job_id, { userId: randomUUID() })).rejects.toBeInstanceOf(NotFoundError);
    await expect(client.submit("no_such_workflow", { text: "x" })).rejects.toBeInstanceOf(NotFoundError);

    const key = randomUUID();
    await client.submit("bench_pipeline", { text: "first body" }, { idempotencyKey: key });
    await expect(client.submit("bench_pipeline", { text: "another body" }, { idempotencyKey: key })).rejects.toBeInstanceOf(
      ConflictError,
    );

    // The stack allows the `tight` tier one submit a minute per user.
    const user = randomUUID();
    await client.submit("bench_pipeline", { text: "one" }, { userId: user, userTier: "tight" });
    const limited = await client
      .submit("bench_pipeline", { text: "two" }, { userId: user, userTier: "tight" })
      .catch((e: unknown) => e);
    expect(limited).toBeInstanceOf(RateLimitedError);
    expect((limited as RateLimitedError).retryAfter).toBeGreaterThan(0);
  });
});

describe("retries", () => {
  it("a submit whose answer is lost is retried and makes one job", async () => {
    let calls = 0;
    const losing: typeof fetch = async (input, init) => {
      calls += 1;
      const response = await fetch(input, init);
      if (calls === 1) {
        await response.body?.cancel();
        throw new TypeError("fetch failed: socket hang up (injected by the test)");
      }
      return response;
    };
    const unlucky = new LlmflowClient({ baseUrl: env.LLMFLOW_BASE_URL!, apiKey: env.LLMFLOW_API_KEY!, fetch: losing });
    const text = `lost answer ${randomUUID()}`;
    const accepted = await unlucky.submit("bench_pipeline", { text });
    expect(calls).toBe(2);
    const { rows } = await db.query<{ id: string }>(
      "SELECT id::text FROM llm_workflow_jobs WHERE input_data->>'text' = $1",
      [text],
    );
    expect(rows.map((r) => r.id)).toEqual([accepted.job_id]);
  });
});

describe("verifyWebhook", () => {
  it("accepts a real delivery and rejects a tampered one", async () => {
    const app = await receiver();
    try {
      const { job_id } = await client.submit("bench_pipeline", { text: "webhook me" }, { webhookUrl: app.url });
      const delivery = await waitUntil("the terminal webhook", 60_000, () => app.deliveries[0]);
      const headers = delivery.headers as Record<string, string>;
      const event = verifyWebhook(delivery.body, headers, webhookSecret);
      expect(event.type).toBe("workflow.completed");
      expect(event.job_id).toBe(job_id);
      if (event.type === "workflow.completed") expect(event.cost_data).toBeTruthy();

      const tampered = delivery.body.replace(job_id, randomUUID());
      expect(() => verifyWebhook(tampered, headers, webhookSecret)).toThrow();
      expect(() => verifyWebhook(delivery.body, headers, "whsec_" + Buffer.from("another secret!!").toString("base64"))).toThrow();
      const stale = { ...headers, "webhook-timestamp": String(Math.floor(Date.now() / 1000) - 3600) };
      expect(() => verifyWebhook(delivery.body, stale, webhookSecret)).toThrow();
    } finally {
      await app.close();
    }
  });
});
