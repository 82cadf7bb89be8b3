//! The operator's queries: the filtered job list (keyset-paged), counts and ids for bulk
//! actions, the overview's statistics, and the audit of admin actions.

use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Double, Nullable, Numeric, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::schema::llm_admin_audit as audit;
use super::schema::llm_workflow_jobs as jobs;
use super::DbError;

/// Which jobs an operator is looking at. Every field narrows; none set means all jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct JobFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<Uuid>,
    /// Created at or after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    /// Created before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    /// Text found (case-insensitively) in the job's input or its error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
}

/// A page position: the last row seen, newest-first order `(created_at, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    /// `<micros>_<uuid>`: opaque to clients, safe in a URL.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.created_at.timestamp_micros(), self.id)
    }

    pub fn decode(text: &str) -> Option<Cursor> {
        let (micros, id) = text.split_once('_')?;
        Some(Cursor {
            created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: id.parse().ok()?,
        })
    }
}

/// One row of the job list.
#[derive(Debug, Clone, Queryable, Serialize)]
pub struct JobSummary {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub workflow_name: String,
    pub status: String,
    pub current_step: Option<String>,
    pub steps_completed: i32,
    pub steps_planned: i32,
    pub error_message: Option<String>,
    pub total_cost_usd: Decimal,
    pub retry_count: i32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// Escapes `%`, `_` and `\` so the text matches itself in `ILIKE`.
fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

fn filtered(filter: &JobFilter) -> jobs::BoxedQuery<'static, diesel::pg::Pg> {
    let mut query = jobs::table.into_boxed();
    if let Some(status) = &filter.status {
        query = query.filter(jobs::status.eq(status.clone()));
    }
    if let Some(workflow) = &filter.workflow {
        query = query.filter(jobs::workflow_name.eq(workflow.clone()));
    }
    if let Some(user_id) = filter.user_id {
        query = query.filter(jobs::user_id.eq(user_id));
    }
    if let Some(job_id) = filter.job_id {
        query = query.filter(jobs::id.eq(job_id));
    }
    if let Some(from) = filter.from {
        query = query.filter(jobs::created_at.ge(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(jobs::created_at.lt(to));
    }
    if let Some(q) = filter.q.as_deref().filter(|q| !q.is_empty()) {
        let pattern = like_pattern(q);
        query = query.filter(
            sql::<Bool>("(input_data::text ILIKE ")
                .bind::<Text, _>(pattern.clone())
                .sql(" OR coalesce(error_message, '') ILIKE ")
                .bind::<Text, _>(pattern)
                .sql(")"),
        );
    }
    query
}

/// A page of matching jobs, newest first, after `cursor`; the next cursor when there may be more.
pub async fn list_jobs(
    conn: &mut AsyncPgConnection,
    filter: &JobFilter,
    after: Option<Cursor>,
    limit: i64,
) -> Result<(Vec<JobSummary>, Option<Cursor>), DbError> {
    let mut query = filtered(filter);
    if let Some(c) = after {
        query = query.filter(
            jobs::created_at
                .lt(c.created_at)
                .or(jobs::created_at.eq(c.created_at).and(jobs::id.lt(c.id))),
        );
    }
    let rows: Vec<JobSummary> = query
        .order((jobs::created_at.desc(), jobs::id.desc()))
        .limit(limit)
        .select((
            jobs::id,
            jobs::user_id,
            jobs::workflow_name,
            jobs::status,
            jobs::current_step,
            jobs::steps_completed,
            jobs::steps_planned,
            jobs::error_message,
            jobs::total_cost_usd,
            jobs::retry_count,
            jobs::created_at,
            jobs::started_at,
            jobs::completed_at,
        ))
        .load(conn)
        .await?;
    let next = (i64::try_from(rows.len()).unwrap_or(i64::MAX) == limit)
        .then(|| rows.last())
        .flatten()
        .map(|r| Cursor {
            created_at: r.created_at,
            id: r.id,
        });
    Ok((rows, next))
}

/// The jobs a bulk action may touch: those matching `filter`, created no later than `as_of`,
/// in one of `statuses`.
pub async fn count_eligible(
    conn: &mut AsyncPgConnection,
    filter: &JobFilter,
    as_of: DateTime<Utc>,
    statuses: &[&str],
) -> Result<i64, DbError> {
    Ok(filtered(filter)
        .filter(jobs::created_at.le(as_of))
        .filter(jobs::status.eq_any(statuses.iter().map(|s| (*s).to_owned())))
        .count()
        .get_result(conn)
        .await?)
}

/// Ids of the eligible jobs (see [`count_eligible`]), oldest first, at most `limit`.
pub async fn eligible_ids(
    conn: &mut AsyncPgConnection,
    filter: &JobFilter,
    as_of: DateTime<Utc>,
    statuses: &[&str],
    limit: i64,
) -> Result<Vec<Uuid>, DbError> {
    Ok(filtered(filter)
        .filter(jobs::created_at.le(as_of))
        .filter(jobs::status.eq_any(statuses.iter().map(|s| (*s).to_owned())))
        .order((jobs::created_at.asc(), jobs::id.asc()))
        .limit(limit)
        .select(jobs::id)
        .load(conn)
        .await?)
}

/// Workflow names seen in the record, for the filter's choices.
pub async fn workflow_names(conn: &mut AsyncPgConnection) -> Result<Vec<String>, DbError> {
    Ok(super::schema::llm_workflow_definitions::table
        .select(super::schema::llm_workflow_definitions::name)
        .distinct()
        .order(super::schema::llm_workflow_definitions::name.asc())
        .load(conn)
        .await?)
}

/// Finished jobs over a window: how many, how many completed, failed, cancelled.
#[derive(Debug, Clone, Default, QueryableByName, Serialize)]
pub struct Throughput {
    #[diesel(sql_type = BigInt)]
    pub finished: i64,
    #[diesel(sql_type = BigInt)]
    pub completed: i64,
    #[diesel(sql_type = BigInt)]
    pub failed: i64,
    #[diesel(sql_type = BigInt)]
    pub cancelled: i64,
    /// `completed / (completed + failed)`, absent when none finished either way.
    #[diesel(sql_type = Nullable<Double>)]
    pub success_rate: Option<f64>,
}

/// Run time (started → completed) of one workflow's completed jobs in a window.
#[derive(Debug, Clone, QueryableByName, Serialize)]
pub struct RunTime {
    #[diesel(sql_type = Text)]
    pub workflow: String,
    #[diesel(sql_type = BigInt)]
    pub jobs: i64,
    #[diesel(sql_type = Nullable<Double>)]
    pub p50_seconds: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub p95_seconds: Option<f64>,
}

/// LLM spend of one workflow and model since a time.
#[derive(Debug, Clone, QueryableByName, Serialize)]
pub struct Cost {
    #[diesel(sql_type = Text)]
    pub workflow: String,
    #[diesel(sql_type = Text)]
    pub model: String,
    #[diesel(sql_type = BigInt)]
    pub calls: i64,
    #[diesel(sql_type = Numeric)]
    pub cost_usd: Decimal,
}

/// Jobs counted by status (the whole record).
#[derive(Debug, Clone, QueryableByName, Serialize)]
pub struct StatusCount {
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = BigInt)]
    pub jobs: i64,
}

pub async fn throughput(
    conn: &mut AsyncPgConnection,
    since: DateTime<Utc>,
) -> Result<Throughput, DbError> {
    Ok(diesel::sql_query(
        "SELECT count(*) AS finished, \
           count(*) FILTER (WHERE status = 'completed') AS completed, \
           count(*) FILTER (WHERE status = 'failed') AS failed, \
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled, \
           (count(*) FILTER (WHERE status = 'completed'))::float8 \
             / NULLIF(count(*) FILTER (WHERE status IN ('completed', 'failed')), 0) AS success_rate \
         FROM llm_workflow_jobs WHERE completed_at >= $1",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(since)
    .get_result(conn)
    .await?)
}

pub async fn run_times(
    conn: &mut AsyncPgConnection,
    since: DateTime<Utc>,
) -> Result<Vec<RunTime>, DbError> {
    Ok(diesel::sql_query(
        "SELECT workflow_name AS workflow, count(*) AS jobs, \
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - started_at))::float8 AS p50_seconds, \
           percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - started_at))::float8 AS p95_seconds \
         FROM llm_workflow_jobs \
         WHERE status = 'completed' AND completed_at >= $1 AND started_at IS NOT NULL \
         GROUP BY workflow_name ORDER BY workflow_name",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(since)
    .load(conn)
    .await?)
}

pub async fn costs(
    conn: &mut AsyncPgConnection,
    since: DateTime<Utc>,
) -> Result<Vec<Cost>, DbError> {
    Ok(diesel::sql_query(
        "SELECT coalesce(j.workflow_name, '(none)') AS workflow, u.model AS model, \
           count(*) AS calls, coalesce(sum(u.cost_usd), 0) AS cost_usd \
         FROM llm_provider_usage u LEFT JOIN llm_workflow_jobs j ON j.id = u.job_id \
         WHERE u.created_at >= $1 \
         GROUP BY 1, 2 ORDER BY cost_usd DESC, 1, 2",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(since)
    .load(conn)
    .await?)
}

pub async fn status_counts(conn: &mut AsyncPgConnection) -> Result<Vec<StatusCount>, DbError> {
    Ok(diesel::sql_query(
        "SELECT status, count(*) AS jobs FROM llm_workflow_jobs GROUP BY status ORDER BY status",
    )
    .load(conn)
    .await?)
}

/// Dead-lettered webhook deliveries waiting for an operator.
pub async fn dead_letter_count(conn: &mut AsyncPgConnection) -> Result<i64, DbError> {
    use super::schema::llm_webhook_deliveries as d;
    Ok(d::table
        // The predicate of `idx_llm_webhook_deliveries_dead`: only dead deliveries are read.
        .filter(d::dead_lettered_at.is_not_null())
        .filter(d::status.eq(super::deliveries::state::DEAD))
        .count()
        .get_result(conn)
        .await?)
}

/// One admin action as recorded.
#[derive(Debug, Clone, Queryable, Insertable, Serialize)]
#[diesel(table_name = audit)]
pub struct AuditRow {
    pub id: Uuid,
    /// `dashboard` (a signed-in session) or `api-key` (the admin key in a header).
    pub actor: String,
    pub action: String,
    pub detail: Value,
    pub affected: i32,
    pub created_at: DateTime<Utc>,
}

/// Records an action.
pub async fn record(
    conn: &mut AsyncPgConnection,
    actor: &str,
    action: &str,
    detail: Value,
    affected: i32,
) -> Result<AuditRow, DbError> {
    let row = AuditRow {
        id: Uuid::now_v7(),
        actor: actor.to_owned(),
        action: action.to_owned(),
        detail,
        affected,
        created_at: Utc::now(),
    };
    diesel::insert_into(audit::table)
        .values(&row)
        .execute(conn)
        .await?;
    Ok(row)
}

/// The latest actions, newest first.
pub async fn audit_log(conn: &mut AsyncPgConnection, limit: i64) -> Result<Vec<AuditRow>, DbError> {
    Ok(audit::table
        .order((audit::created_at.desc(), audit::id.desc()))
        .limit(limit)
        .load(conn)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let cursor = Cursor {
            created_at: DateTime::from_timestamp_micros(1_764_000_000_123_456).expect("time"),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        for junk in [
            "",
            "x",
            "12_",
            "_abc",
            "12_not-a-uuid",
            "9999999999999999999_x",
        ] {
            assert_eq!(Cursor::decode(junk), None, "{junk}");
        }
    }

    #[test]
    fn like_patterns_match_text_literally() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
