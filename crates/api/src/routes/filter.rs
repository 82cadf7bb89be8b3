//! The job filter of the admin API and the dashboard, read from query parameters (or form
//! fields) by hand so that every bad value is a 422 naming its field. Empty values mean "not
//! set", as an HTML form sends them.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use uuid::Uuid;

use llmflow_core::db::admin::{Cursor, JobFilter};
use llmflow_core::JobStatus;

use crate::error::FieldError;

/// Longest search text.
pub const MAX_Q: usize = 200;
/// Page size of the job list when not given, and the largest.
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// A filter, a page position and a page size.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub filter: JobFilter,
    pub cursor: Option<Cursor>,
    pub limit: i64,
}

/// RFC 3339, or the `YYYY-MM-DDTHH:MM[:SS]` of an HTML `datetime-local` input, taken as UTC.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .map(|t| t.and_utc())
}

fn uuid_field(
    params: &HashMap<String, String>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Uuid> {
    let text = params.get(field)?.trim();
    if text.is_empty() {
        return None;
    }
    text.parse()
        .map_err(|_| errors.push(FieldError::new(field, "must be a UUID")))
        .ok()
}

fn time_field(
    params: &HashMap<String, String>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<DateTime<Utc>> {
    let text = params.get(field)?.trim();
    if text.is_empty() {
        return None;
    }
    parse_time(text).or_else(|| {
        errors.push(FieldError::new(
            field,
            "must be a time: RFC 3339 (2026-12-04T10:00:00Z) or YYYY-MM-DDTHH:MM (UTC)",
        ));
        None
    })
}

fn text_field(params: &HashMap<String, String>, field: &str) -> Option<String> {
    params
        .get(field)
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// The filter alone (a bulk action's body uses the same fields).
pub fn parse_filter(params: &HashMap<String, String>) -> Result<JobFilter, Vec<FieldError>> {
    let mut errors = Vec::new();
    let status = text_field(params, "status");
    if let Some(s) = &status {
        if !JobStatus::ALL.iter().any(|k| k.as_str() == s) {
            let names: Vec<&str> = JobStatus::ALL.iter().map(|k| k.as_str()).collect();
            errors.push(FieldError::new(
                "status",
                format!("must be one of {}", names.join(", ")),
            ));
        }
    }
    let q = text_field(params, "q");
    if q.as_ref().is_some_and(|q| q.chars().count() > MAX_Q) {
        errors.push(FieldError::new(
            "q",
            format!("must be at most {MAX_Q} characters"),
        ));
    }
    let filter = JobFilter {
        status,
        workflow: text_field(params, "workflow"),
        user_id: uuid_field(params, "user_id", &mut errors),
        job_id: uuid_field(params, "job_id", &mut errors),
        from: time_field(params, "from", &mut errors),
        to: time_field(params, "to", &mut errors),
        q,
    };
    if let (Some(from), Some(to)) = (filter.from, filter.to) {
        if from >= to {
            errors.push(FieldError::new("to", "must be after `from`"));
        }
    }
    if errors.is_empty() {
        Ok(filter)
    } else {
        Err(errors)
    }
}

/// Filter, cursor and limit from a query string's parameters.
pub fn parse_list(params: &HashMap<String, String>) -> Result<ListQuery, Vec<FieldError>> {
    let mut errors = Vec::new();
    let filter = parse_filter(params).unwrap_or_else(|e| {
        errors.extend(e);
        JobFilter::default()
    });
    let cursor = match text_field(params, "cursor") {
        None => None,
        Some(text) => Cursor::decode(&text).or_else(|| {
            errors.push(FieldError::new(
                "cursor",
                "is not a cursor this API gave out",
            ));
            None
        }),
    };
    let limit = match text_field(params, "limit") {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                errors.push(FieldError::new(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_LIMIT}"),
                ));
                DEFAULT_LIMIT
            }
        },
    };
    if errors.is_empty() {
        Ok(ListQuery {
            filter,
            cursor,
            limit,
        })
    } else {
        Err(errors)
    }
}

/// The filter as query parameters (for links that keep it: next page, bulk forms).
pub fn to_params(filter: &JobFilter) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut push = |k: &'static str, v: Option<String>| {
        if let Some(v) = v {
            out.push((k, v));
        }
    };
    push("status", filter.status.clone());
    push("workflow", filter.workflow.clone());
    push("user_id", filter.user_id.map(|u| u.to_string()));
    push("job_id", filter.job_id.map(|u| u.to_string()));
    push("from", filter.from.map(|t| t.to_rfc3339()));
    push("to", filter.to.map(|t| t.to_rfc3339()));
    push("q", filter.q.clone());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn every_bad_value_is_named_and_empty_ones_are_unset() {
        let errors = parse_list(&params(&[
            ("status", "done"),
            ("user_id", "x"),
            ("from", "yesterday"),
            ("cursor", "abc"),
            ("limit", "0"),
            ("workflow", ""),
        ]))
        .expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["status", "user_id", "from", "cursor", "limit"]);
        let ok =
            parse_list(&params(&[("status", ""), ("from", "2026-12-04T10:00")])).expect("valid");
        assert_eq!(ok.filter.status, None);
        assert_eq!(
            ok.filter.from.map(|t| t.to_rfc3339()),
            Some("2026-12-04T10:00:00+00:00".to_owned())
        );
        let reversed = parse_filter(&params(&[
            ("from", "2026-12-04T10:00:00Z"),
            ("to", "2026-12-04T09:00:00Z"),
        ]))
        .expect_err("to before from");
        assert_eq!(reversed[0].field, "to");
    }
}
