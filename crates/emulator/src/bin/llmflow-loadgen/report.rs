//! The JSON line of a scenario and the table of several.

use anyhow::Context;
use serde_json::{Map, Value};

use crate::args::ReportArgs;

/// Reads a run's JSON and adds `--set` figures (numbers as numbers): one JSON line.
pub fn merge(args: &ReportArgs) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(&args.run)
        .with_context(|| format!("reading {}", args.run.display()))?;
    let mut object: Map<String, Value> = serde_json::from_str(text.trim())
        .with_context(|| format!("{} is not a JSON object", args.run.display()))?;
    merge_pairs(&mut object, &args.set);
    Ok(serde_json::to_string(&object)?)
}

/// Adds `key=value` pairs; a value that parses as a number is stored as one. The `errors`
/// figure is summed rather than replaced, so outside counts add to the run's own.
pub fn merge_pairs(object: &mut Map<String, Value>, pairs: &[(String, String)]) {
    for (key, value) in pairs {
        let value = match value.parse::<f64>() {
            Ok(n) if n.is_finite() => serde_json::Number::from_f64(n)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(value.clone())),
            _ => Value::String(value.clone()),
        };
        if key == "errors" {
            let sum = object.get("errors").and_then(Value::as_f64).unwrap_or(0.0)
                + value.as_f64().unwrap_or(0.0);
            object.insert(key.clone(), number(sum));
        } else {
            object.insert(key.clone(), value);
        }
    }
}

fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

/// Columns of the table: a header and the keys shown in it (joined with `/`).
const COLUMNS: &[(&str, &[&str])] = &[
    ("scenario", &["scenario"]),
    ("jobs", &["jobs"]),
    ("in flight", &["concurrency"]),
    (
        "submit p50/p99/max ms",
        &["submit_p50_ms", "submit_p99_ms", "submit_max_ms"],
    ),
    ("submit/s", &["submit_rate"]),
    ("e2e jobs/s", &["e2e_throughput"]),
    ("e2e p50/p99 ms", &["e2e_p50_ms", "e2e_p99_ms"]),
    (
        "peak RSS MB api/worker/webhook",
        &["api_rss_mb", "worker_rss_mb", "webhook_rss_mb"],
    ),
    (
        "CPU s api/worker/webhook",
        &["api_cpu_s", "worker_cpu_s", "webhook_cpu_s"],
    ),
    ("CPU ms/job, all", &["cpu_ms_per_job"]),
    ("PG commits/job", &["commits_per_job"]),
    ("errors", &["errors"]),
];

/// Keys not worth repeating under the table.
const QUIET: &[&str] = &[
    "workflow",
    "submitted",
    "webhooks",
    "e2e_max_ms",
    "failures",
];

fn cell(object: &Map<String, Value>, keys: &[&str]) -> String {
    keys.iter()
        .map(|key| match object.get(*key) {
            None | Some(Value::Null) => "–".to_owned(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(f) if f.fract() == 0.0 => format!("{}", f as i64),
                Some(f) if f.abs() >= 100.0 => format!("{f:.0}"),
                Some(f) if f.abs() >= 10.0 => format!("{f:.1}"),
                Some(f) => format!("{f:.2}"),
                None => n.to_string(),
            },
            Some(other) => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A Markdown table of JSON lines, then each scenario's other figures.
pub fn table(jsonl: &str) -> anyhow::Result<String> {
    let rows: Vec<Map<String, Value>> = jsonl
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("not a JSON object: {l}")))
        .collect::<anyhow::Result<_>>()?;
    let mut out = String::new();
    let header: Vec<&str> = COLUMNS.iter().map(|(h, _)| *h).collect();
    out.push_str(&format!("| {} |\n", header.join(" | ")));
    out.push_str(&format!("|{}\n", "---|".repeat(COLUMNS.len())));
    for row in &rows {
        let cells: Vec<String> = COLUMNS.iter().map(|(_, keys)| cell(row, keys)).collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out.push('\n');
    for row in &rows {
        let shown: Vec<&str> = COLUMNS
            .iter()
            .flat_map(|(_, keys)| keys.iter().copied())
            .collect();
        let rest: Vec<String> = row
            .keys()
            .filter(|k| !shown.contains(&k.as_str()) && !QUIET.contains(&k.as_str()))
            .map(|k| format!("{k}={}", cell(row, &[k.as_str()])))
            .collect();
        if !rest.is_empty() {
            out.push_str(&format!(
                "- {}: {}\n",
                cell(row, &["scenario"]),
                rest.join(", ")
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pairs_become_numbers_and_errors_add_up() {
        let mut object = json!({"scenario": "submit", "errors": 2})
            .as_object()
            .cloned()
            .expect("object");
        let pairs = [
            ("api_rss_mb".to_owned(), "21.5".to_owned()),
            ("errors".to_owned(), "3".to_owned()),
            ("note".to_owned(), "workers stopped".to_owned()),
        ];
        merge_pairs(&mut object, &pairs);
        assert_eq!(object["api_rss_mb"], json!(21.5));
        assert_eq!(object["errors"], json!(5));
        assert_eq!(object["note"], json!("workers stopped"));
    }

    #[test]
    fn the_table_has_one_row_per_line_and_lists_the_rest() {
        let lines = concat!(
            r#"{"scenario":"submit","jobs":1000,"concurrency":50,"submit_p50_ms":1.234,"#,
            r#""submit_p99_ms":4.5,"submit_max_ms":12.0,"submit_rate":2500.0,"errors":0,"#,
            r#""api_rss_mb":18.25,"commits_per_job":2.01}"#,
            "\n\n",
            r#"{"scenario":"overhead","jobs":200,"overhead_p99_ms":0.42}"#,
            "\n"
        );
        let text = table(lines).expect("table");
        let rows: Vec<&str> = text.lines().collect();
        assert!(
            rows[0].starts_with("| scenario | jobs | in flight |"),
            "{text}"
        );
        assert_eq!(
            rows[2],
            "| submit | 1000 | 50 | 1.23/4.50/12 | 2500 | – | –/– | 18.2/–/– | –/–/– | – | 2.01 | 0 |"
        );
        assert!(rows[3].starts_with("| overhead | 200 |"), "{text}");
        assert!(text.contains("- overhead: overhead_p99_ms=0.42"), "{text}");
        assert!(table("not json").is_err());
    }
}
