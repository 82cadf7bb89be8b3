"use server";
// Submits a job from a form; the result comes back by webhook, the live text by the stream.
import { llmflow } from "../lib/llmflow";

export async function submitStory(formData: FormData): Promise<{ jobId: string }> {
  const topic = String(formData.get("topic") ?? "").trim() || "a lighthouse keeper";
  const accepted = await llmflow.submit(
    "story_stream",
    { topic },
    { webhookUrl: process.env.LLMFLOW_WEBHOOK_URL },
  );
  return { jobId: accepted.job_id };
}
