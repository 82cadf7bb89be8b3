//! Queries only tests make.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use llmflow_core::db::models::AttemptRow;
use llmflow_core::db::schema::llm_webhook_attempts as attempts;
use llmflow_core::db::DbError;

/// Attempts recorded for a delivery, oldest first.
pub async fn attempts_of(
    conn: &mut AsyncPgConnection,
    delivery_id: Uuid,
) -> Result<Vec<AttemptRow>, DbError> {
    Ok(attempts::table
        .filter(attempts::delivery_id.eq(delivery_id))
        .order((attempts::attempt_number.asc(), attempts::attempted_at.asc()))
        .select(AttemptRow::as_select())
        .load(conn)
        .await?)
}
