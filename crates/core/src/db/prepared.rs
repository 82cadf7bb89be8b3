//! Keeping the prepared form of the hot statements on each connection.
//!
//! diesel marks every UPDATE, and every INSERT that leaves a column to its default, as unsafe
//! to cache, because such a statement's SQL text can change from call to call (a changeset may
//! skip `None` fields). diesel-async then prepares it again on every call: a Parse round trip,
//! and a parse and plan inside PostgreSQL, before the statement runs. For the statements each
//! job runs (claim, commits, finish, webhook attempts) that was a large share of PostgreSQL's CPU
//! per job (BENCHMARKS.md).
//!
//! [`Prepared`] marks a statement as safe to keep. The cache key of such a statement is its SQL
//! text with the types of its binds, so a call that renders different text gets an entry of its
//! own and never runs another statement's plan. Use it only where the text takes few shapes
//! (no multi-row VALUES of varying length), since each shape stays prepared on the connection.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::QueryResult;

/// A statement whose prepared form is kept per connection (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Prepared<Q>(pub Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

// No static query id: the cache is keyed by the SQL text instead of the Rust type.
impl<Q> QueryId for Prepared<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}
