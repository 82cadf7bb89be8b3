// What the tests share: the llmflow stack started by scripts/test.sh (scripts/stack.sh), a
// client for it, and a local HTTP server that receives its webhooks as an app would.
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

import { LlmflowClient } from "../src/index.js";
import { stackEnv } from "../scripts/stack-env.mjs";

export const env = stackEnv();
export const client = new LlmflowClient({ baseUrl: env.LLMFLOW_BASE_URL!, apiKey: env.LLMFLOW_API_KEY! });
export const webhookSecret = env.LLMFLOW_WEBHOOK_SECRET!;

/** Waits until `check` gives a value (not undefined), or fails after `timeoutMs`. */
export async function waitUntil<T>(what: string, timeoutMs: number, check: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export interface Captured {
  headers: IncomingHttpHeaders;
  body: string;
}

/** A webhook endpoint on loopback that records each delivery's raw body and headers. */
export async function receiver(): Promise<{ url: string; deliveries: Captured[]; close: () => Promise<void> }> {
  const deliveries: Captured[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      deliveries.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/webhooks/llmflow`,
    deliveries,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Sets the emulator's pace of streamed chunks (ms between deltas); answers the one before. */
export async function emulatorChunkDelay(ms: number): Promise<number> {
  const current = await fetch(`${env.LLMFLOW_EMULATOR_URL}/_emulator/config`);
  const { stream_chunk_ms } = (await current.json()) as { stream_chunk_ms: number };
  const response = await fetch(`${env.LLMFLOW_EMULATOR_URL}/_emulator/config`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ stream_chunk_ms: ms }),
  });
  if (!response.ok) throw new Error(`emulator config answered ${response.status}`);
  return stream_chunk_ms;
}
