// Headless Chromium (Debian's, driven by playwright-core; no browser download): a page served
// on another origin than llmflow follows a running job with a stream token and EventSource,
// using lib/follow-job.mjs as the app does; a page on an origin not in CORS_ALLOWED_ORIGINS is
// refused. The stack is started with CORS_ALLOWED_ORIGINS=$BROWSER_TEST_ORIGIN (scripts/test.sh).
import { readFileSync, mkdirSync } from "node:fs";
import { createServer, type Server } from "node:http";

import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { client, emulatorChunkDelay, waitUntil } from "../../../clients/typescript/test/stack";

const allowed = new URL(process.env.BROWSER_TEST_ORIGIN ?? "http://127.0.0.1:18300");
const other = new URL(`http://127.0.0.1:${Number(allowed.port) + 1}`);

function pageServer(origin: URL): Promise<Server> {
  const files: Record<string, [string, string]> = {
    "/": ["text/html", readFileSync(new URL("./page/index.html", import.meta.url), "utf8")],
    "/follow-job.mjs": ["text/javascript", readFileSync(new URL("../lib/follow-job.mjs", import.meta.url), "utf8")],
  };
  const server = createServer((req, res) => {
    const file = files[new URL(req.url ?? "/", origin).pathname];
    if (!file) return res.writeHead(404).end();
    res.writeHead(200, { "Content-Type": file[0] }).end(file[1]);
  });
  return new Promise((resolve) => server.listen(Number(origin.port), origin.hostname, () => resolve(server)));
}

let browser: Browser;
let pace = 0;
const servers: Server[] = [];
beforeAll(async () => {
  servers.push(await pageServer(allowed), await pageServer(other));
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox"],
  });
  // Slow enough streaming that the page sees the job while it runs.
  pace = await emulatorChunkDelay(250);
});
afterAll(async () => {
  await emulatorChunkDelay(pace);
  await browser?.close();
  for (const server of servers) server.close();
});

async function openJob(origin: URL) {
  const { job_id } = await client.submit("story_stream", { topic: "a cartographer who maps clouds" });
  const { token } = await client.streamToken(job_id);
  const page = await browser.newPage();
  const refusals: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") refusals.push(message.text());
  });
  await page.goto(`${origin.origin}/?events=${encodeURIComponent(client.eventsUrl(job_id, token))}`);
  return { job_id, page, refusals };
}

describe("browser streaming", () => {
  it("shows the streamed text of a running job on a page of an allowed origin", async () => {
    const { job_id, page } = await openJob(allowed);
    // Text on the page while the job is still running (the page has seen its step start and
    // not its end).
    const partial = await waitUntil("streamed text while running", 60_000, async () => {
      const text = (await page.textContent("#text")) ?? "";
      const status = await page.textContent("#status");
      return text.length > 0 && status === "running story" ? text : undefined;
    });
    mkdirSync(new URL("./artifacts/", import.meta.url), { recursive: true });
    await page.screenshot({ path: new URL("./artifacts/streaming-running.png", import.meta.url).pathname });

    await page.waitForFunction(() => document.getElementById("status")?.textContent === "completed", undefined, {
      timeout: 120_000,
    });
    const done = await client.status(job_id);
    const story = (done.result as { story: string }).story;
    const shown = (await page.textContent("#text")) ?? "";
    expect(shown.startsWith(partial)).toBe(true);
    expect(shown).toBe(story);
    await page.screenshot({ path: new URL("./artifacts/streaming-completed.png", import.meta.url).pathname });
    await page.close();
  });

  it("is refused by CORS on a page of another origin", async () => {
    const { page, refusals } = await openJob(other);
    await page.waitForFunction(() => document.getElementById("status")?.textContent === "refused", undefined, {
      timeout: 30_000,
    });
    expect(await page.textContent("#text")).toBe("");
    expect(refusals.join("\n")).toMatch(/CORS|Access-Control-Allow-Origin/);
    await page.screenshot({ path: new URL("./artifacts/streaming-refused.png", import.meta.url).pathname });
    await page.close();
  });
});
