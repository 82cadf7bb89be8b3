// The app's PostgreSQL (DATABASE_URL), where sql/user_activity_log.sql has been applied.
import pg from "pg";

let pool: pg.Pool | undefined;

export function db(): pg.Pool {
  pool ??= new pg.Pool({ connectionString: process.env.DATABASE_URL });
  return pool;
}
