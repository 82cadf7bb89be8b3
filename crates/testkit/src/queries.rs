//! Queries only tests make, and waits on what they read.

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use llmflow_core::db::deliveries;
use llmflow_core::db::models::{AttemptRow, DeliveryRow};
use llmflow_core::db::schema::llm_webhook_attempts as attempts;
use llmflow_core::db::{DbError, PgPool};

use crate::wait_until;

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

/// Waits (up to 45 s) for a delivery to reach `status` and returns its row.
pub async fn wait_for_delivery(pool: &PgPool, id: Uuid, status: &str) -> DeliveryRow {
    wait_until(
        &format!("delivery {id} to be {status}"),
        Duration::from_secs(45),
        || async {
            let mut conn = pool.get().await.ok()?;
            let row = deliveries::find(&mut conn, id).await.ok()??;
            (row.status == status).then_some(row)
        },
    )
    .await
}
