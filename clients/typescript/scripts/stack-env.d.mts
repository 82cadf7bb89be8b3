export function stackEnv(): Record<string, string>;
