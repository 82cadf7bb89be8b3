//! Signed webhook delivery: Standard Webhooks signatures, an SSRF-safe HTTP client, the retry
//! schedule, and the apalis consumer that records every attempt in PostgreSQL.

pub mod schedule;
pub mod signing;
pub mod ssrf;
