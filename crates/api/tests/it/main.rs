//! Tests of the API alone: the service's routes in-process against the real PostgreSQL and
//! Redis, with no worker or webhook sender running (those are in `crates/system-tests`).

mod cancel;
mod dashboard;
mod errors;
mod events;
mod limits;
mod operator;
mod retry;
mod schema;
mod shutdown;
mod submit;
mod support;
mod validate;
mod workflows;
