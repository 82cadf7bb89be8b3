// Typed errors built from llmflow's one error envelope:
// `{"detail": "...", "errors": [{"field", "message"}], "request_id": "..."}`.

/** One problem with a request field (422). */
export interface FieldError {
  field: string;
  message: string;
}

/** Any error answer of llmflow; the subclasses say which kind. */
export class LlmflowError extends Error {
  readonly status: number;
  readonly detail: string;
  readonly requestId: string | undefined;

  constructor(status: number, detail: string, requestId?: string) {
    super(`llmflow answered ${status}: ${detail}`);
    this.name = new.target.name;
    this.status = status;
    this.detail = detail;
    this.requestId = requestId;
  }
}

/** 400 and 422: the request is wrong; `errors` names each field at fault. */
export class ValidationError extends LlmflowError {
  readonly errors: FieldError[];

  constructor(status: number, detail: string, errors: FieldError[]) {
    super(status, detail);
    this.errors = errors;
  }
}

/** 401 (missing or wrong API key, or a stream token that is not valid) and 403. */
export class AuthError extends LlmflowError {}

/** 404: no such job, workflow or route (or a job of another user). */
export class NotFoundError extends LlmflowError {}

/** 409: an `Idempotency-Key` reused with another body, or an action the job's state refuses. */
export class ConflictError extends LlmflowError {}

/** 429: the user's submit rate is exceeded; try again after `retryAfter` seconds. */
export class RateLimitedError extends LlmflowError {
  readonly retryAfter: number;

  constructor(status: number, detail: string, retryAfter: number) {
    super(status, detail);
    this.retryAfter = retryAfter;
  }
}

/** 5xx: llmflow could not do it; `requestId` finds the cause in its logs. */
export class ServerError extends LlmflowError {}

/** The connection failed or timed out before any answer came. */
export class NetworkError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NetworkError";
  }
}

interface Envelope {
  detail?: unknown;
  errors?: unknown;
  request_id?: unknown;
}

function isFieldError(value: unknown): value is FieldError {
  const v = value as FieldError | null;
  return typeof v?.field === "string" && typeof v.message === "string";
}

/** The error for a non-2xx response (its body is read here). */
export async function errorFromResponse(response: Response): Promise<LlmflowError> {
  const text = await response.text();
  let body: Envelope = {};
  try {
    body = JSON.parse(text) as Envelope;
  } catch {
    body = { detail: text || response.statusText };
  }
  const status = response.status;
  const detail = typeof body.detail === "string" ? body.detail : response.statusText;
  const requestId = typeof body.request_id === "string" ? body.request_id : undefined;
  if (status === 400 || status === 422) {
    const errors = Array.isArray(body.errors) ? body.errors.filter(isFieldError) : [];
    return new ValidationError(status, detail, errors);
  }
  if (status === 401 || status === 403) return new AuthError(status, detail, requestId);
  if (status === 404) return new NotFoundError(status, detail, requestId);
  if (status === 409) return new ConflictError(status, detail, requestId);
  if (status === 429) {
    return new RateLimitedError(status, detail, retryAfterSeconds(response) ?? 1);
  }
  if (status >= 500) return new ServerError(status, detail, requestId);
  return new LlmflowError(status, detail, requestId);
}

/** The `Retry-After` of a response in seconds (delta-seconds or an HTTP date), if any. */
export function retryAfterSeconds(response: Response): number | undefined {
  const value = response.headers.get("retry-after");
  if (value === null) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - Date.now()) / 1000);
}
