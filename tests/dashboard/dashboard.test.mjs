// The llmflow dashboard driven in headless Debian Chromium (playwright-core, no browser
// download) against a running stack: API, worker, webhook sender and the emulator, whose URLs and
// keys are in the file named by LLMFLOW_STACK_ENV (scripts/stack.sh writes it). Writes the
// screenshots docs/dashboard-overview.png and docs/dashboard-job.png.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, mkdirSync } from "node:fs";
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { chromium } from "playwright-core";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const envFile = process.env.LLMFLOW_STACK_ENV;
assert.ok(envFile, "LLMFLOW_STACK_ENV must name the stack's env file (scripts/stack.sh start DIR)");
const env = Object.fromEntries(
  readFileSync(envFile, "utf8")
    .split("\n")
    .filter((line) => line.includes("="))
    .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
);
const BASE = env.LLMFLOW_BASE_URL;
const EMULATOR = env.LLMFLOW_EMULATOR_URL;

let browser;
let context;
let page;

async function api(method, route, { body, admin = false } = {}) {
  const response = await fetch(`${BASE}/api/v1${route}`, {
    method,
    headers: {
      "X-API-Key": admin ? env.LLMFLOW_ADMIN_KEY : env.LLMFLOW_API_KEY,
      ...(body ? { "Content-Type": "application/json" } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

async function script(steps) {
  const response = await fetch(`${EMULATOR}/_emulator/script`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(steps),
  });
  assert.equal(response.status, 200, await response.text());
}

async function submit(text, user, extra = {}) {
  const { status, body } = await api("POST", "/workflow", {
    body: { workflow_name: "bench_pipeline", input_data: { text }, user_id: user, ...extra },
  });
  assert.equal(status, 202, JSON.stringify(body));
  return body.job_id;
}

/** Polls `check` until it returns a truthy value or the deadline passes. */
async function waitUntil(what, check, ms = 30_000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await check();
    if (last) return last;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

async function statusOf(jobId) {
  return (await api("GET", `/status/${jobId}`)).body.status;
}

before(async () => {
  mkdirSync(path.join(ROOT, "docs"), { recursive: true });
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox"],
  });
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
});

after(async () => {
  await browser?.close();
});

test("the dashboard is refused without a session", async () => {
  const stranger = await browser.newContext();
  const other = await stranger.newPage();
  await other.goto(`${BASE}/dashboard/jobs`);
  assert.match(other.url(), /\/dashboard\/login$/);
  const refused = await other.request.get(`${BASE}/api/v1/admin/jobs`);
  assert.equal(refused.status(), 401);
  const post = await other.request.post(`${BASE}/dashboard/dead/replay`);
  assert.equal(post.status(), 401);
  await other.fill("input[name=key]", "not-the-key");
  await other.click("button[type=submit]");
  await other.getByText("That is not the admin key.").waitFor();
  await stranger.close();
});

test("an operator signs in with the admin key", async () => {
  await page.goto(`${BASE}/dashboard`);
  assert.match(page.url(), /\/dashboard\/login$/);
  await page.fill("input[name=key]", env.LLMFLOW_ADMIN_KEY);
  await page.click("button[type=submit]");
  await page.waitForURL(`${BASE}/dashboard`);
  assert.ok(!page.url().includes(env.LLMFLOW_ADMIN_KEY), "the key never goes in a URL");
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "llmflow_session");
  assert.ok(session?.httpOnly, "HttpOnly session cookie");
  assert.equal(session.sameSite, "Strict");
});

test("a running job's timeline updates live", async () => {
  const user = randomUUID();
  await script([{ type: "delay", ms: 3000 }]);
  const jobId = await submit("a text for the live timeline", user);
  await page.goto(`${BASE}/dashboard/jobs/${jobId}`);
  await page.locator("#timeline .badge.running").waitFor({ timeout: 15_000 });
  // No reload: the page's script brings in each finished step.
  await page.locator("[data-step=analyze] .badge.completed").waitFor({ timeout: 30_000 });
  await page.locator("dl.kv .badge.completed").waitFor({ timeout: 30_000 });
  assert.equal(await page.locator("#timeline .badge.running").count(), 0);
  const steps = await page.locator("#timeline .step").count();
  assert.ok(steps >= 3, `steps shown: ${steps}`);
  await page.locator("[data-step=analyze] details summary").click();
  await page.screenshot({ path: path.join(ROOT, "docs/dashboard-job.png"), fullPage: true });
});

test("the list filters, and a failed job is retried to completion", async () => {
  const user = randomUUID();
  const marker = `retry-me-${randomUUID().slice(0, 8)}`;
  await script([{ type: "status", status: 400 }]);
  const failed = await submit(`${marker} please`, user);
  await submit("another job of the same user", user);
  await waitUntil("the job to fail", async () => (await statusOf(failed)) === "failed");

  await page.goto(`${BASE}/dashboard/jobs`);
  await page.selectOption("select[name=status]", "failed");
  await page.fill("input[name=q]", marker);
  await page.click("form.filters button[type=submit]");
  await page.waitForURL(/status=failed/);
  assert.ok(page.url().includes(`q=${marker}`), page.url());
  const rows = page.locator("#jobs tbody tr");
  assert.equal(await rows.count(), 1);
  assert.equal(await rows.first().getAttribute("data-job"), failed);
  await page.reload();
  assert.equal(await page.locator("#jobs tbody tr").count(), 1, "the filter survives a reload");

  await rows.first().locator("a").click();
  await page.getByRole("button", { name: "Retry from failed step" }).click();
  await page.getByText("Retry 1 queued").waitFor();
  await page.locator("dl.kv .badge.completed").waitFor({ timeout: 30_000 });
  assert.equal(await statusOf(failed), "completed");
});

test("queued jobs are bulk-cancelled after the preview", async () => {
  const user = randomUUID();
  // The stack's worker has two run slots (WORKER_CONCURRENCY=2): two slow jobs fill them.
  await script([{ type: "delay", ms: 20_000 }, { type: "delay", ms: 20_000 }]);
  const blockers = [await submit("blocker one", randomUUID()), await submit("blocker two", randomUUID())];
  await waitUntil("both blockers running", async () =>
    (await Promise.all(blockers.map(statusOf))).every((s) => s === "processing"),
  );
  const queued = [];
  for (let i = 0; i < 3; i += 1) queued.push(await submit(`waiting ${i}`, user));
  await page.goto(`${BASE}/dashboard/jobs?status=queued&user_id=${user}`);
  assert.equal(await page.locator("#jobs tbody tr").count(), 3);
  await page.getByRole("button", { name: "Cancel waiting and running…" }).click();
  await page.locator("#preview-count").waitFor();
  assert.equal((await page.locator("#preview-count").textContent()).trim(), "This will cancel 3 jobs.");
  await page.getByRole("button", { name: "Yes, cancel 3 jobs" }).click();
  await page.getByText("Bulk cancel: 3 jobs done, 0 skipped.").waitFor();
  for (const id of queued) assert.equal(await statusOf(id), "cancelled");
  for (const id of blockers) await api("DELETE", `/workflow/${id}`);
  const audit = await api("GET", "/admin/audit", { admin: true });
  const row = audit.body.items.find((r) => r.action === "bulk_cancel");
  assert.equal(row.affected, 3);
  assert.equal(row.actor, "dashboard");
});

test("a dead letter is replayed and delivered", async () => {
  let hits = 0;
  const receiver = createServer((req, res) => {
    hits += 1;
    req.resume();
    res.writeHead(hits === 1 ? 410 : 200).end();
  });
  await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  try {
    const url = `http://127.0.0.1:${receiver.address().port}/hook`;
    const jobId = await submit("a job whose webhook is gone", randomUUID(), { webhook_url: url });
    const letter = await waitUntil("a dead letter", async () => {
      const dead = await api("GET", "/admin/webhooks/dead?limit=500", { admin: true });
      return dead.body.items.find((d) => d.job_id === jobId);
    });
    await page.goto(`${BASE}/dashboard/dead`);
    const row = page.locator(`tr[data-delivery="${letter.id}"]`);
    await row.locator("details summary").click();
    await row.getByText(jobId).first().waitFor();
    await row.getByRole("button", { name: "Replay" }).click();
    await page.getByText("Replay queued").waitFor();
    await waitUntil("the replay delivered", async () => {
      const one = await api("GET", `/admin/webhooks/${letter.id}`, { admin: true });
      return one.body.delivery.status === "delivered";
    });
    assert.equal(hits, 2);
  } finally {
    receiver.close();
  }
});

test("the overview shows what failed, why, and what it cost", async () => {
  await script([{ type: "status", status: 400, body: { error: { message: "the model refused this input" } } }]);
  const failed = await submit("a job that fails for good", randomUUID());
  await waitUntil("the job to fail", async () => (await statusOf(failed)) === "failed");
  await page.goto(`${BASE}/dashboard`);
  await page.getByRole("heading", { name: "Failed in the last hour" }).waitFor();
  await page.getByRole("link", { name: failed.replaceAll("-", "").slice(-10) }).waitFor();
  await page.getByRole("heading", { name: "Cost today per workflow and model" }).waitFor();
  await page.screenshot({ path: path.join(ROOT, "docs/dashboard-overview.png"), fullPage: true });
});
