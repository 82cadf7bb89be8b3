//! The dashboard's markup. Every value is escaped by `maud`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};
use rust_decimal::Decimal;

use llmflow_core::db::admin::{JobFilter, JobSummary, Throughput};
use llmflow_core::db::models::DeliveryRow;
use llmflow_core::JobStatus;

use super::link;
use crate::error::FieldError;
use crate::routes::bulk::{Action, Preview};
use crate::routes::filter::ListQuery;
use crate::routes::operator::{JobDetail, JobPage, Overview};

const TERMINAL: [&str; 3] = ["completed", "failed", "cancelled"];

fn page(title: &str, nav: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · llmflow" }
                link rel="stylesheet" href="/dashboard/assets/app.css";
            }
            body {
                header.top {
                    a.brand href="/dashboard" { "llm" span { "flow" } }
                    nav {
                        @for (href, name) in [("/dashboard", "Overview"), ("/dashboard/jobs", "Jobs"), ("/dashboard/dead", "Dead letters")] {
                            a class=@if name == nav { "on" } href=(href) { (name) }
                        }
                    }
                    span #live-status .muted { span.live-dot {} "live" }
                    form method="post" action="/dashboard/logout" { button.secondary type="submit" { "Sign out" } }
                }
                main { (body) }
                script src="/dashboard/assets/app.js" defer {}
            }
        }
    }
}

pub fn login(error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Sign in · llmflow" }
                link rel="stylesheet" href="/dashboard/assets/app.css";
            }
            body {
                div.card.login {
                    h1 { "llmflow dashboard" }
                    p.muted { "Sign in with the admin key (ADMIN_API_KEY)." }
                    @if let Some(e) = error { div.notice.bad { (e) } }
                    form method="post" action="/dashboard/login" {
                        label for="key" { "Admin key" }
                        input #key type="password" name="key" autocomplete="current-password" required autofocus;
                        button type="submit" { "Sign in" }
                    }
                }
            }
        }
    }
}

fn notice(text: Option<&str>) -> Markup {
    html! { @if let Some(t) = text { div.notice role="status" { (t) } } }
}

fn badge(status: &str) -> Markup {
    html! { span class={ "badge " (status) } { (status) } }
}

fn money(d: Decimal) -> String {
    format!("${}", d.round_dp(6).normalize())
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A time as an HTML `datetime-local` input shows it (UTC), so a filter given in RFC 3339 in the
/// URL stays in the form and is not lost on the next submit.
fn local(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_default()
}

fn seconds(s: Option<f64>) -> String {
    match s {
        None => "–".to_owned(),
        Some(s) if s < 1.0 => format!("{:.0} ms", s * 1000.0),
        Some(s) => format!("{s:.1} s"),
    }
}

fn millis(ms: i64) -> String {
    seconds(Some(ms as f64 / 1000.0))
}

fn throughput_card(label: &str, t: &Throughput) -> Markup {
    let rate = t.success_rate.map(|r| r * 100.0);
    html! {
        div.card.stat {
            div.label { (label) }
            div.value { (t.finished) " jobs" }
            div.sub {
                @match rate { Some(r) => { (format!("{r:.0}% success")) }, None => { "no finished jobs" } }
                " · " (t.completed) " completed · " (t.failed) " failed · " (t.cancelled) " cancelled"
            }
            div.bar-track { div.bar-fill style=(format!("width:{:.1}%", rate.unwrap_or(0.0))) {} }
        }
    }
}

pub fn overview(live: Markup) -> Markup {
    page(
        "Overview",
        "Overview",
        html! {
            h1 { "Overview" }
            div data-live="/dashboard" { (live) }
        },
    )
}

pub fn overview_live(o: &Overview, failures: &[JobSummary], failed_filter: &JobFilter) -> Markup {
    let depth = |band: &str| {
        o.queue_depth
            .as_ref()
            .and_then(|d| d.get(band).copied())
            .map_or("–".to_owned(), |n| n.to_string())
    };
    let cost_total: Decimal = o.cost_today.iter().map(|c| c.cost_usd).sum();
    html! {
        div.grid {
            (throughput_card("Last hour", &o.last_hour))
            (throughput_card("Last 24 hours", &o.last_day))
            div.card.stat {
                div.label { "Queue depth" }
                div.value { (depth("normal")) }
                div.sub { "high " (depth("high")) " · normal " (depth("normal")) " · low " (depth("low")) }
            }
            div.card.stat {
                div.label { "Workers" }
                div.value { (o.workers.live) }
                div.sub { "live job workers · " (o.workers.processes.iter().filter(|p| p.lost).count()) " lost" }
            }
            a.card.stat.(if o.dead_letters > 0 { "alert" } else { "" }) href="/dashboard/dead" {
                div.label { "Dead letters" }
                div.value { (o.dead_letters) }
                div.sub { "webhook deliveries waiting for a replay" }
            }
            div.card.stat {
                div.label { "Cost today" }
                div.value { (money(cost_total)) }
                div.sub { "LLM spend since 00:00 UTC" }
            }
        }
        div.card {
            h2 { "Failed in the last hour" }
            @if failures.is_empty() { p.muted { "Nothing failed in the last hour." } }
            @else {
                table.list {
                    thead { tr { th { "Job" } th { "Workflow" } th { "Error" } th.num { "Cost" } th { "Finished" } } }
                    tbody {
                        @for j in failures {
                            tr {
                                td.mono { a href=(format!("/dashboard/jobs/{}", j.id)) { (short(j.id)) } }
                                td { (j.workflow_name) }
                                td.err { (j.error_message.as_deref().unwrap_or("")) }
                                td.num { (money(j.total_cost_usd)) }
                                td.muted { (j.completed_at.map(when).unwrap_or_default()) }
                            }
                        }
                    }
                }
                p { a href=(link("/dashboard/jobs", failed_filter, &[])) { "All of them in the job list →" } }
            }
        }
        div.cols {
            div.card {
                h2 { "Run time per workflow (24 h)" }
                @if o.run_times.is_empty() { p.muted { "No completed jobs yet." } }
                @else {
                    table.list {
                        thead { tr { th { "Workflow" } th.num { "Jobs" } th.num { "p50" } th.num { "p95" } } }
                        tbody { @for r in &o.run_times { tr {
                            td { (r.workflow) } td.num { (r.jobs) }
                            td.num { (seconds(r.p50_seconds)) } td.num { (seconds(r.p95_seconds)) }
                        } } }
                    }
                }
            }
            div.card {
                h2 { "Cost today per workflow and model" }
                @if o.cost_today.is_empty() { p.muted { "No LLM calls today." } }
                @else {
                    table.list {
                        thead { tr { th { "Workflow" } th { "Model" } th.num { "Calls" } th.num { "Cost" } } }
                        tbody { @for c in &o.cost_today { tr {
                            td { (c.workflow) } td.mono { (c.model) } td.num { (c.calls) } td.num { (money(c.cost_usd)) }
                        } } }
                    }
                }
            }
        }
        div.card {
            h2 { "Workers and webhook senders" }
            @if o.workers.processes.is_empty() { p.muted { "No process has registered." } }
            @else {
                table.list {
                    thead { tr { th { "Process" } th { "Kind" } th { "Host" } th.num { "PID" } th.num { "In flight" } th { "Heartbeat" } th { "State" } } }
                    tbody { @for p in &o.workers.processes { tr {
                        td.mono { (p.row.name) } td { (p.row.kind) } td { (p.row.host) } td.num { (p.row.pid) }
                        td.num { (p.row.in_flight) " / " (p.row.concurrency) }
                        td.muted { (when(p.row.last_heartbeat)) }
                        td { (badge(if p.lost { "lost" } else { "live" })) }
                    } } }
                }
            }
        }
        div.card {
            h2 { "Jobs by status" }
            div.actions {
                @for s in &o.by_status {
                    a href=(link("/dashboard/jobs", &JobFilter { status: Some(s.status.clone()), ..JobFilter::default() }, &[])) {
                        (badge(&s.status)) " " (s.jobs)
                    }
                }
            }
            p.muted { "Updated " (when(o.generated_at)) }
        }
    }
}

/// The end of the id: ids are UUIDv7, whose first digits are the creation time and alike for
/// jobs created together.
fn short(id: uuid::Uuid) -> String {
    let text = id.simple().to_string();
    format!("…{}", &text[text.len() - 10..])
}

pub fn jobs(
    params: &HashMap<String, String>,
    workflows: &[String],
    query: &ListQuery,
    jobs: &JobPage,
    message: Option<&str>,
    errors: &[FieldError],
) -> Markup {
    let value = |k: &str| params.get(k).cloned().unwrap_or_default();
    let f = &query.filter;
    page(
        "Jobs",
        "Jobs",
        html! {
            h1 { "Jobs" }
            (notice(message))
            @if !errors.is_empty() {
                div.notice.bad { @for e in errors { div { b { (e.field) } ": " (e.message) } } }
            }
            form.card.filters method="get" action="/dashboard/jobs" {
                label { "Status" select name="status" {
                    option value="" { "any" }
                    @for s in JobStatus::ALL { option value=(s.as_str()) selected[value("status") == s.as_str()] { (s.as_str()) } }
                } }
                label { "Workflow" select name="workflow" {
                    option value="" { "any" }
                    @for w in workflows { option value=(w) selected[&value("workflow") == w] { (w) } }
                } }
                label { "User id" input name="user_id" value=(value("user_id")) placeholder="uuid" size="14"; }
                label { "Job id" input name="job_id" value=(value("job_id")) placeholder="uuid" size="14"; }
                label { "From (UTC)" input type="datetime-local" step="1" name="from" value=(local(f.from)); }
                label { "To (UTC)" input type="datetime-local" step="1" name="to" value=(local(f.to)); }
                label { "Text in input or error" input name="q" value=(value("q")) placeholder="search"; }
                button type="submit" { "Filter" }
                a.button.secondary href="/dashboard/jobs" { "Clear" }
            }
            div.card {
                div.actions style="justify-content: space-between; margin-bottom: 8px" {
                    h2 style="margin:0" { "Matching jobs" }
                    form.actions method="post" action="/dashboard/jobs/bulk/preview" {
                        @for (k, v) in crate::routes::filter::to_params(f) { input type="hidden" name=(k) value=(v); }
                        button.secondary type="submit" name="action" value="retry" { "Retry failed…" }
                        button.secondary type="submit" name="action" value="cancel" { "Cancel waiting and running…" }
                    }
                }
                @if jobs.items.is_empty() { p.muted { "No jobs match." } }
                @else {
                    table.list #jobs {
                        thead { tr { th { "Job" } th { "Status" } th { "Workflow" } th { "Progress" } th { "Error" } th.num { "Cost" } th { "Created" } } }
                        tbody {
                            @for j in &jobs.items {
                                tr data-job=(j.id) {
                                    td.mono { a href=(format!("/dashboard/jobs/{}", j.id)) { (short(j.id)) } }
                                    td { (badge(&j.status)) @if j.retry_count > 0 { " " span.muted { "retry " (j.retry_count) } } }
                                    td { (j.workflow_name) }
                                    td.muted { (j.steps_completed) " / " (j.steps_planned)
                                        @if let Some(s) = &j.current_step { @if !TERMINAL.contains(&j.status.as_str()) { " · " (s) } } }
                                    td.err { (j.error_message.as_deref().unwrap_or("")) }
                                    td.num { (money(j.total_cost_usd)) }
                                    td.muted { (when(j.created_at)) }
                                }
                            }
                        }
                    }
                }
                @if let Some(c) = &jobs.next_cursor {
                    div.pager { a.button.secondary href=(link("/dashboard/jobs", f, &[("cursor", c.clone())])) { "Older →" } }
                }
            }
        },
    )
}

pub fn bulk_preview(p: &Preview) -> Markup {
    let verb = match p.action {
        Action::Cancel => "cancel",
        Action::Retry => "retry",
    };
    page(
        "Confirm",
        "Jobs",
        html! {
            h1 { "Confirm a bulk " (verb) }
            div.card.confirm {
                div.big #preview-count { "This will " (verb) " " (p.count) @if p.count == 1 { " job." } @else { " jobs." } }
                p.muted { "Jobs matching the filter below, created up to " (when(p.as_of)) ". If the count has changed when you confirm, nothing is touched and you are asked to preview again." }
                dl.kv {
                    @for (k, v) in crate::routes::filter::to_params(&p.filter) { dt { (k) } dd.mono { (v) } }
                    @if crate::routes::filter::to_params(&p.filter).is_empty() { dt { "filter" } dd { "none: every job" } }
                }
                form.actions method="post" action="/dashboard/jobs/bulk" style="margin-top:16px" {
                    input type="hidden" name="action" value=(verb);
                    @for (k, v) in crate::routes::filter::to_params(&p.filter) { input type="hidden" name=(k) value=(v); }
                    input type="hidden" name="as_of" value=(p.as_of.to_rfc3339());
                    input type="hidden" name="expected_count" value=(p.count);
                    input type="hidden" name="token" value=(p.token);
                    button.danger type="submit" disabled[p.count == 0] { "Yes, " (verb) " " (p.count) @if p.count == 1 { " job" } @else { " jobs" } }
                    a.button.secondary href=(link("/dashboard/jobs", &p.filter, &[])) { "Back" }
                }
            }
        },
    )
}

pub fn job(d: &JobDetail, live: Markup, message: Option<&str>) -> Markup {
    let j = &d.job;
    let running = !TERMINAL.contains(&j.status.as_str());
    page(
        "Job",
        "Jobs",
        html! {
            h1 { "Job " span.mono { (j.id) } }
            (notice(message))
            div data-live=[running.then(|| format!("/dashboard/jobs/{}", j.id))] { (live) }
        },
    )
}

pub fn job_live(d: &JobDetail) -> Markup {
    let j = &d.job;
    let running = !TERMINAL.contains(&j.status.as_str());
    let start = d.steps.iter().map(|s| s.started_at).min().or(j.started_at);
    let end = d
        .steps
        .iter()
        .map(|s| s.completed_at)
        .max()
        .into_iter()
        .chain(j.completed_at)
        .chain(running.then(Utc::now))
        .max();
    let span_ms = match (start, end) {
        (Some(a), Some(b)) => (b - a).num_milliseconds().max(1),
        _ => 1,
    };
    let offset = |t: DateTime<Utc>| {
        start.map_or(0.0, |s| {
            (t - s).num_milliseconds() as f64 * 100.0 / span_ms as f64
        })
    };
    html! {
        @if !running { span data-live-stop {} }
        @if running || j.status == "failed" {
            div.actions style="justify-content: flex-end; margin-bottom: 12px" {
                @if running {
                    form method="post" action=(format!("/dashboard/jobs/{}/cancel", j.id)) { button.danger type="submit" { "Cancel job" } }
                }
                @if j.status == "failed" {
                    form method="post" action=(format!("/dashboard/jobs/{}/retry", j.id)) { button type="submit" { "Retry from failed step" } }
                }
            }
        }
        div.card {
            dl.kv {
                dt { "Status" } dd { (badge(&j.status)) @if j.cancel_requested && running { " cancel requested" } }
                dt { "Workflow" } dd { (j.workflow_name) " " span.muted { "v" (j.workflow_version) } }
                dt { "User" } dd.mono { (j.user_id.map(|u| u.to_string()).unwrap_or_else(|| "–".to_owned())) }
                dt { "Progress" } dd { (j.steps_completed) " of " (j.steps_planned) " steps"
                    @if let Some(s) = &j.current_step { @if running { " · running " b { (s) } } } }
                dt { "Tokens" } dd { (j.total_input_tokens) " in · " (j.total_output_tokens) " out" }
                dt { "Cost" } dd { (money(j.total_cost_usd)) }
                dt { "Created" } dd { (when(j.created_at)) }
                @if let (Some(s), Some(c)) = (j.started_at, j.completed_at) { dt { "Run time" } dd { (millis((c - s).num_milliseconds())) } }
                @if j.retry_count > 0 { dt { "Retries" } dd { (j.retry_count) } }
                @if let Some(e) = &j.error_message { dt { "Error" } dd.err { (e) } }
            }
        }
        div.card {
            h2 { "Steps" }
            @if d.steps.is_empty() && !running { p.muted { "No step ran." } }
            div.timeline #timeline {
                @for s in &d.steps {
                    div.step data-step=(s.step_id) {
                        div {
                            div.name { (s.step_id) " " (badge(&s.status)) }
                            div.meta { (s.step_type) " · " (millis(i64::from(s.duration_ms))) }
                        }
                        div {
                            div.lane { div class={ "span " (s.status) } style=(format!("left:{:.2}%;width:{:.2}%",
                                offset(s.started_at), ((s.completed_at - s.started_at).num_milliseconds() as f64 * 100.0 / span_ms as f64).max(0.5))) {} }
                            div.figures {
                                span { "attempts " b { (s.attempts) } }
                                span { "tokens " b { (s.input_tokens) " / " (s.output_tokens) } }
                                span { "cost " b { (money(s.cost_usd)) } }
                                @if let Some(e) = &s.error_message { span.err { (s.error_kind.as_deref().unwrap_or("error")) ": " (e) } }
                            }
                            @if let Some(out) = &s.output {
                                details id=(format!("out-{}", s.step_id)) { summary { "Output" } pre { (pretty(out)) } }
                            }
                        }
                    }
                }
                @if j.status == "processing" {
                    @let cur = j.current_step.as_deref().unwrap_or("next step");
                    div.step data-step=(cur) {
                        div { div.name { (cur) " " (badge("running")) } div.meta { "in progress" } }
                        div { div.lane { div.span.running style=(format!("left:{:.2}%;width:{:.2}%",
                            d.steps.iter().map(|s| s.completed_at).max().map_or(0.0, offset).min(99.0),
                            (100.0 - d.steps.iter().map(|s| s.completed_at).max().map_or(0.0, offset)).max(1.0))) {} } }
                    }
                }
            }
        }
        @if !d.calls.is_empty() {
            div.card {
                h2 { "LLM calls" }
                table.list {
                    thead { tr { th { "Step" } th { "Provider" } th { "Model" } th.num { "Tokens" } th.num { "Cost" } th.num { "Time" } } }
                    tbody { @for c in &d.calls { tr {
                        td { (c.step_id.as_deref().unwrap_or("")) } td { (c.provider) } td.mono { (c.model) }
                        td.num { (c.input_tokens) " / " (c.output_tokens) } td.num { (money(c.cost_usd)) } td.num { (millis(i64::from(c.duration_ms))) }
                    } } }
                }
            }
        }
        div.card {
            h2 { "Webhook deliveries" }
            @if d.deliveries.is_empty() { p.muted { "No webhook for this job." } }
            @for del in &d.deliveries {
                div style="margin-bottom:12px" {
                    div { (badge(&del.status)) " " b { (del.event_type) } " → " span.mono { (del.url) } }
                    table.list {
                        @for a in d.attempts.iter().filter(|a| a.delivery_id == del.id) { tr {
                            td { "#" (a.attempt_number) } td { (a.trigger) }
                            td { @if a.success { (badge("ok")) } @else { (badge("failed")) } }
                            td { (a.status_code.map(|c| c.to_string()).unwrap_or_default()) }
                            td.err { (a.error_class.as_deref().unwrap_or("")) " " (a.error_message.as_deref().unwrap_or("")) }
                            td.num { (millis(i64::from(a.duration_ms))) } td.muted { (when(a.attempted_at)) }
                        } }
                    }
                }
            }
        }
        div.card {
            h2 { "Input" }
            pre { (pretty(&j.input_data)) }
            @if let Some(r) = &j.result { h2 style="margin-top:14px" { "Result" } pre { (pretty(r)) } }
        }
    }
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

pub fn dead(letters: &[DeliveryRow], total: i64, message: Option<&str>) -> Markup {
    page(
        "Dead letters",
        "Dead letters",
        html! {
            div.actions style="justify-content: space-between" {
                h1 { "Dead letters " span.muted { "(" (total) ")" } }
                @if total > 0 {
                    form method="post" action="/dashboard/dead/replay" { button type="submit" { "Replay all" } }
                }
            }
            (notice(message))
            div.card {
                @if letters.is_empty() { p.muted { "No dead letters: every webhook was delivered or is still being tried." } }
                table.list #dead {
                    @for d in letters { tr data-delivery=(d.id) {
                        td {
                            b { (d.event_type) } " " span.mono.muted { (d.webhook_id) } br;
                            span.mono { (d.url) } br;
                            span.muted { "job " a.mono href=(format!("/dashboard/jobs/{}", d.job_id)) { (short(d.job_id)) }
                                " · " (d.attempts) " attempts · dead since " (d.dead_lettered_at.map(when).unwrap_or_default()) }
                            div.err { (d.last_status_code.map(|c| format!("HTTP {c} ")).unwrap_or_default()) (d.last_error.as_deref().unwrap_or("")) }
                            details { summary { "Payload" } pre { (pretty(&d.payload)) } }
                        }
                        td style="text-align:right" {
                            form method="post" action=(format!("/dashboard/dead/{}/replay", d.id)) { button.secondary type="submit" { "Replay" } }
                        }
                    } }
                }
            }
        },
    )
}
