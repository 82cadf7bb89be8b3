//! Tests of the webhook sender alone against the real PostgreSQL and Redis: delivery rows
//! written and pushed as the worker writes and pushes them, receiving HTTP servers as the app,
//! and no API or worker running.

mod delivery;
