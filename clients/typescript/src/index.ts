// @llmflow/client: a typed client for llmflow.
export {
  LlmflowClient,
  TimeoutError,
  type Accepted,
  type Cancelled,
  type Retried,
  type StepDetail,
  type Validation,
  type WorkflowInfo,
  type ClientOptions,
  type EventsOptions,
  type JobStatus,
  type StreamToken,
  type SubmitOptions,
  type ValidateRequest,
  type WaitOptions,
} from "./client.js";
export {
  AuthError,
  ConflictError,
  LlmflowError,
  NetworkError,
  NotFoundError,
  RateLimitedError,
  ServerError,
  ValidationError,
  type FieldError,
} from "./errors.js";
export { type JobEvent, TERMINAL_EVENTS } from "./sse.js";
export {
  verifyWebhook,
  type ChunkEvent,
  type CostData,
  type ProgressEvent,
  type TerminalEvent,
  type WebhookEvent,
  type WebhookHeaders,
} from "./webhooks.js";
export type { components, paths } from "./schema.js";
