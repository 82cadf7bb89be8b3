// Follows one llmflow job in the browser: an EventSource on the job's events URL (which carries
// a stream token, never the API key). The browser resumes a dropped stream by itself with
// Last-Event-ID. Plain JavaScript, so a page can load it as a module as it is.

/**
 * @param {string} eventsUrl from the app's stream-token route
 * @param {{
 *   onText: (text: string) => void,
 *   onStatus?: (status: string) => void,
 *   onDone?: (event: string, data: unknown) => void,
 *   onError?: () => void,
 * }} handlers
 * @returns {() => void} closes the stream
 */
export function followJob(eventsUrl, handlers) {
  const source = new EventSource(eventsUrl);
  const read = (/** @type {MessageEvent} */ e) => JSON.parse(e.data);
  source.addEventListener("connected", (e) => handlers.onStatus?.(read(e).status));
  source.addEventListener("step_started", (e) => handlers.onStatus?.(`running ${read(e).step_id}`));
  source.addEventListener("chunk", (e) => handlers.onText(read(e).text));
  for (const name of ["job_completed", "job_failed", "job_cancelled"]) {
    source.addEventListener(name, (e) => {
      source.close();
      handlers.onStatus?.(name.replace("job_", ""));
      handlers.onDone?.(name, read(e));
    });
  }
  source.onerror = () => {
    // CLOSED: refused (CORS, an expired token); otherwise the browser is reconnecting.
    if (source.readyState === EventSource.CLOSED) handlers.onError?.();
  };
  return () => source.close();
}
