// Hands the page a short-lived, read-only token for one job's events, so the browser follows
// the job without ever holding the API key. Check here that the job is the signed-in user's
// (llmflow also scopes it with X-User-Id when the client sends one).
import { llmflow } from "../../../../../lib/llmflow";

export async function POST(_req: Request, context: { params: Promise<{ jobId: string }> }): Promise<Response> {
  const { jobId } = await context.params;
  const { token, expires_at } = await llmflow.streamToken(jobId);
  return Response.json({ eventsUrl: llmflow.eventsUrl(jobId, token), expiresAt: expires_at });
}
