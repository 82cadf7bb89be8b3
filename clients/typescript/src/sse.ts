// A minimal Server-Sent Events parser over a fetch body (the WHATWG event-stream format), and
// the async iterator of `LlmflowClient.events()` that resumes with `Last-Event-ID`.

/** One event of a job's stream. `id` is its Redis Stream id (absent on `connected`). */
export interface JobEvent {
  id: string | undefined;
  event: string;
  data: unknown;
}

/** The events that end a job's stream. */
export const TERMINAL_EVENTS = ["job_completed", "job_failed", "job_cancelled"] as const;

/** Splits an event-stream body into events; comments and `retry:` lines are skipped. */
export async function* parseEventStream(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<{ id: string | undefined; event: string; data: string }> {
  const decoder = new TextDecoder();
  const reader = body.getReader();
  let buffer = "";
  let id: string | undefined;
  let event = "";
  let data: string[] = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
        if (line === "") {
          if (data.length > 0) yield { id, event: event || "message", data: data.join("\n") };
          event = "";
          data = [];
          id = undefined;
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") data.push(value);
        else if (field === "event") event = value;
        else if (field === "id") id = value;
      }
    }
  } finally {
    reader.releaseLock();
    await body.cancel().catch(() => undefined);
  }
}
