// The llmflow client: plain `fetch`, so it runs in Node 20+, Next.js route handlers and server
// actions, and Edge runtimes.

import type { components } from "./schema.js";
import {
  LlmflowError,
  NetworkError,
  RateLimitedError,
  ServerError,
  errorFromResponse,
  retryAfterSeconds,
} from "./errors.js";
import { type JobEvent, TERMINAL_EVENTS, parseEventStream } from "./sse.js";

type Schemas = components["schemas"];
export type Accepted = Schemas["Accepted"];
export type JobStatus = Schemas["StatusView"];
export type StreamToken = Schemas["StreamToken"];
export type Validation = Schemas["Validation"];
export type Cancelled = Schemas["Cancelled"];
export type Retried = Schemas["Retried"];
export type StepDetail = Schemas["StepDetail"];

/** What `validate` checks: a catalog workflow by name, or a whole definition, with an input. */
export interface ValidateRequest {
  workflow_name?: string;
  definition?: Record<string, unknown>;
  input_data?: Record<string, unknown>;
}

/** One workflow of the catalog (`GET /api/v1/workflows`). */
export interface WorkflowInfo {
  name: string;
  version: string;
  description?: string;
  input_schema?: Record<string, unknown>;
  hash: string;
  steps: unknown[];
}

export interface ClientOptions {
  /** Where llmflow's API is, e.g. `http://localhost:8000` (without `/api/v1`). */
  baseUrl: string;
  /** `LLM_MICROSERVICE_API_KEY`; keep it on the server. */
  apiKey: string;
  /** A `fetch` of your own (tests, instrumentation); the global one by default. */
  fetch?: typeof fetch;
  /** Attempts of a submit in all when the connection fails or llmflow answers 5xx (default 3). */
  submitAttempts?: number;
}

export interface SubmitOptions {
  userId?: string;
  webhookUrl?: string;
  webhookSecret?: string;
  /** The user's rate-limit tier (`X-User-Tier`), as `RATE_LIMITS` names it. */
  userTier?: string;
  /** 0 (lowest) to 10 (highest); 5 by default. */
  priority?: number;
  /** The same key and body within 24 h give the same job. Made up when absent. */
  idempotencyKey?: string;
  maxCostUsd?: number;
  /** Extra webhook events besides the terminal one. */
  webhookEvents?: Array<"workflow.progress" | "workflow.chunk">;
  signal?: AbortSignal;
}

export interface WaitOptions {
  /** Give up after this long (default 10 minutes) with a `TimeoutError`. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface EventsOptions {
  /** Resume after this event id (what an earlier stream last gave). */
  lastEventId?: string;
  signal?: AbortSignal;
  /** Reconnections in a row that may fail before the iterator throws (default 5). */
  maxReconnects?: number;
}

/** `waitFor` ran out of time; `lastStatus` is what the job looked like then. */
export class TimeoutError extends Error {
  constructor(
    message: string,
    readonly lastStatus: JobStatus | undefined,
  ) {
    super(message);
    this.name = "TimeoutError";
  }
}

interface RequestParts {
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal | undefined;
}

const TERMINAL_STATUSES = new Set(["completed", "failed", "cancelled"]);

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export class LlmflowClient {
  readonly #base: string;
  readonly #apiKey: string;
  readonly #fetch: typeof fetch;
  readonly #submitAttempts: number;

  constructor(options: ClientOptions) {
    this.#base = options.baseUrl.replace(/\/+$/, "");
    this.#apiKey = options.apiKey;
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.#submitAttempts = Math.max(1, options.submitAttempts ?? 3);
  }

  /** One request; a non-2xx answer throws its typed error, a failed connection `NetworkError`. */
  async #send(method: string, path: string, init: RequestParts = {}): Promise<Response> {
    const headers: Record<string, string> = { "X-API-Key": this.#apiKey, ...init.headers };
    if (init.body !== undefined) headers["Content-Type"] = "application/json";
    let response: Response;
    try {
      response = await this.#fetch(`${this.#base}/api/v1${path}`, {
        method,
        headers,
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
        signal: init.signal,
      });
    } catch (cause) {
      if (init.signal?.aborted) throw cause;
      throw new NetworkError(`cannot reach llmflow at ${this.#base}`, { cause });
    }
    if (!response.ok) throw await errorFromResponse(response);
    return response;
  }

  async #json<T>(method: string, path: string, init?: RequestParts): Promise<T> {
    const response = await this.#send(method, path, init);
    return (await response.json()) as T;
  }

  /**
   * Submits a job (llmflow answers 202 at once). A failed connection or a 5xx is retried with
   * the same `Idempotency-Key` (one is made up when none is given), so a retry never makes a
   * second job.
   */
  async submit(workflow: string, input: Record<string, unknown>, options: SubmitOptions = {}): Promise<Accepted> {
    const body = {
      workflow_name: workflow,
      input_data: input,
      user_id: options.userId,
      webhook_url: options.webhookUrl,
      webhook_secret: options.webhookSecret,
      priority: options.priority,
      max_cost_usd: options.maxCostUsd,
      webhook_events: options.webhookEvents,
    };
    const headers: Record<string, string> = { "Idempotency-Key": options.idempotencyKey ?? crypto.randomUUID() };
    if (options.userTier !== undefined) headers["X-User-Tier"] = options.userTier;
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.#json<Accepted>("POST", "/workflow", { body, headers, signal: options.signal });
      } catch (error) {
        const retryable = error instanceof NetworkError || error instanceof ServerError;
        if (!retryable || attempt >= this.#submitAttempts) throw error;
        await sleep(Math.min(200 * 2 ** (attempt - 1), 2000), options.signal);
      }
    }
  }

  /** Where a job is, its result and its cost. */
  status(jobId: string, signal?: AbortSignal): Promise<JobStatus> {
    return this.#json("GET", `/status/${encodeURIComponent(jobId)}`, { signal });
  }

  /** The output of one completed step (readable while the job runs). */
  step(jobId: string, stepId: string): Promise<StepDetail> {
    return this.#json("GET", `/status/${encodeURIComponent(jobId)}/steps/${encodeURIComponent(stepId)}`);
  }

  /** Cancels a job that has not ended. */
  cancel(jobId: string): Promise<Cancelled> {
    return this.#json("DELETE", `/workflow/${encodeURIComponent(jobId)}`);
  }

  /** Runs a failed job again from its first unfinished step (its completed steps are reused). */
  retry(jobId: string): Promise<Retried> {
    return this.#json("POST", `/workflow/${encodeURIComponent(jobId)}/retry`);
  }

  /** Checks a workflow definition or a submission without running anything. */
  validate(request: ValidateRequest): Promise<Validation> {
    return this.#json("POST", "/workflow/validate", { body: request });
  }

  /** The workflow catalog. */
  async workflows(): Promise<WorkflowInfo[]> {
    const { workflows } = await this.#json<{ workflows: WorkflowInfo[] }>("GET", "/workflows");
    return workflows;
  }

  /**
   * A short-lived, read-only token for one job's events and status, for a browser. With
   * `userId`, llmflow answers `NotFoundError` unless the job is that user's.
   */
  streamToken(jobId: string, options: { userId?: string } = {}): Promise<StreamToken> {
    const headers: Record<string, string> = {};
    if (options.userId !== undefined) headers["X-User-Id"] = options.userId;
    return this.#json("POST", `/status/${encodeURIComponent(jobId)}/stream-token`, { headers });
  }

  /** The URL a browser's `EventSource` opens with a stream token. */
  eventsUrl(jobId: string, token: string): string {
    return `${this.#base}/api/v1/status/${encodeURIComponent(jobId)}/events?token=${encodeURIComponent(token)}`;
  }

  /**
   * Polls until the job ends and returns its final status. The interval grows from 250 ms to
   * 5 s; a 429 or 503 waits its `Retry-After`.
   */
  async waitFor(jobId: string, options: WaitOptions = {}): Promise<JobStatus> {
    const deadline = Date.now() + (options.timeoutMs ?? 600_000);
    let interval = 250;
    let last: JobStatus | undefined;
    for (;;) {
      let pause = interval;
      try {
        last = await this.status(jobId, options.signal);
        if (TERMINAL_STATUSES.has(last.status)) return last;
        interval = Math.min(interval * 1.5, 5000);
      } catch (error) {
        if (error instanceof RateLimitedError) pause = error.retryAfter * 1000;
        else if (!(error instanceof NetworkError || (error instanceof ServerError && error.status === 503))) throw error;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new TimeoutError(`job ${jobId} had not ended in time`, last);
      await sleep(Math.min(pause, left), options.signal);
    }
  }

  /**
   * The job's live events: `connected` (the status), step events, `chunk`s, and the terminal
   * event, after which the iterator ends. A dropped connection is reopened with
   * `Last-Event-ID`, so no event is lost or repeated.
   */
  async *events(jobId: string, options: EventsOptions = {}): AsyncGenerator<JobEvent> {
    let lastEventId = options.lastEventId;
    let failures = 0;
    const maxReconnects = options.maxReconnects ?? 5;
    for (;;) {
      let response: Response;
      try {
        const headers: Record<string, string> = { Accept: "text/event-stream" };
        if (lastEventId !== undefined) headers["Last-Event-ID"] = lastEventId;
        response = await this.#send("GET", `/status/${encodeURIComponent(jobId)}/events`, { headers, signal: options.signal });
      } catch (error) {
        if (!(error instanceof NetworkError || (error instanceof LlmflowError && error.status === 503))) throw error;
        failures += 1;
        if (failures > maxReconnects) throw error;
        await sleep(Math.min(250 * 2 ** failures, 5000), options.signal);
        continue;
      }
      try {
        for await (const raw of parseEventStream(response.body!)) {
          failures = 0;
          let data: unknown = raw.data;
          try {
            data = JSON.parse(raw.data);
          } catch {
            // Not JSON: handed on as text.
          }
          if (raw.id !== undefined) lastEventId = raw.id;
          yield { id: raw.id, event: raw.event, data };
          if ((TERMINAL_EVENTS as readonly string[]).includes(raw.event)) return;
        }
      } catch (error) {
        if (options.signal?.aborted) throw error;
        // The connection dropped mid-stream: reopened below from the last event.
      }
      failures += 1;
      if (failures > maxReconnects) throw new NetworkError(`the events of job ${jobId} kept dropping`);
      await sleep(Math.min(100 * 2 ** failures, 5000), options.signal);
    }
  }
}
