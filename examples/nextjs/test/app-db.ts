// The example app's own tables, in a schema of their own in the stack's database (the app's
// connections reach it through `search_path`), with sql/user_activity_log.sql applied; dropped
// after the tests.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";

import pg from "pg";

export async function appDatabase(serverUrl: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const schema = `example_app_${randomUUID().replaceAll("-", "")}`;
  const url = new URL(serverUrl);
  url.searchParams.set("options", `-c search_path=${schema}`);
  const setup = new pg.Client({ connectionString: url.toString() });
  await setup.connect();
  await setup.query(`CREATE SCHEMA ${schema}`);
  await setup.query(readFileSync(new URL("../sql/user_activity_log.sql", import.meta.url), "utf8"));
  await setup.end();
  return {
    url: url.toString(),
    drop: async () => {
      const admin = new pg.Client({ connectionString: serverUrl });
      await admin.connect();
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await admin.end();
    },
  };
}
