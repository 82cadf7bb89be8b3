"use client";
// Live progress and streamed text of one job, through a stream token from the app's server.
import { useEffect, useState } from "react";

import { followJob } from "../lib/follow-job.mjs";

export function JobProgress({ jobId }: { jobId: string }) {
  const [status, setStatus] = useState("connecting");
  const [text, setText] = useState("");
  useEffect(() => {
    let close = () => {};
    let cancelled = false;
    void (async () => {
      const response = await fetch(`/api/jobs/${jobId}/stream-token`, { method: "POST" });
      const { eventsUrl } = (await response.json()) as { eventsUrl: string };
      if (cancelled) return;
      close = followJob(eventsUrl, {
        onText: (chunk) => setText((shown) => shown + chunk),
        onStatus: setStatus,
        onError: () => setStatus("disconnected"),
      });
    })();
    return () => {
      cancelled = true;
      close();
    };
  }, [jobId]);
  return (
    <section>
      <p>Status: {status}</p>
      <p style={{ whiteSpace: "pre-wrap" }}>{text}</p>
    </section>
  );
}
