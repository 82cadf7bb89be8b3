"use client";
// Submits through the server action, then follows the job live.
import { useState } from "react";

import { submitStory } from "./actions";
import { JobProgress } from "./job-progress";

export function StoryForm() {
  const [jobId, setJobId] = useState<string>();
  return (
    <>
      <form action={async (data) => setJobId((await submitStory(data)).jobId)}>
        <input name="topic" placeholder="A story about…" />
        <button type="submit">Write</button>
      </form>
      {jobId ? <JobProgress key={jobId} jobId={jobId} /> : null}
    </>
  );
}
