// A database of the example app's own, next to the stack's, with sql/user_activity_log.sql
// applied; dropped after the tests.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";

import pg from "pg";

export async function appDatabase(serverUrl: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `llmflow_example_app_${randomUUID().replaceAll("-", "")}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const schema = new pg.Client({ connectionString: url.toString() });
  await schema.connect();
  await schema.query(readFileSync(new URL("../sql/user_activity_log.sql", import.meta.url), "utf8"));
  await schema.end();
  return {
    url: url.toString(),
    drop: async () => {
      const admin = new pg.Client({ connectionString: serverUrl });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}
