// The one llmflow client of the app's server side. The API key never reaches the browser.
import { LlmflowClient } from "@llmflow/client";

export const llmflow = new LlmflowClient({
  baseUrl: process.env.LLMFLOW_BASE_URL ?? "http://localhost:8000",
  apiKey: process.env.LLMFLOW_API_KEY ?? "",
});
