// The llmflow stack a test or script talks to: LLMFLOW_* variables from the environment, filled
// in from the env file at LLMFLOW_STACK_ENV (KEY=value lines, written by scripts/stack.sh).
import { readFileSync } from "node:fs";

export function stackEnv() {
  const env = {};
  const file = process.env.LLMFLOW_STACK_ENV;
  if (file) {
    for (const line of readFileSync(file, "utf8").split("\n")) {
      const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
      if (match) env[match[1]] = match[2];
    }
  }
  for (const [key, value] of Object.entries(process.env)) {
    if (key.startsWith("LLMFLOW_") && value !== undefined) env[key] = value;
  }
  if (!env.LLMFLOW_BASE_URL) {
    throw new Error("no llmflow stack: set LLMFLOW_STACK_ENV (scripts/stack.sh start DIR) or LLMFLOW_BASE_URL");
  }
  return env;
}
