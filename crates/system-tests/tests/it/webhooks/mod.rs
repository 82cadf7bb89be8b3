//! Webhook delivery end to end: the retry schedule, 410, redirects, Retry-After, dead letters and
//! replay, a sender killed mid-attempt, SSRF refusals, what each attempt row records, and
//! captures for the official verifiers (`scripts/verify-webhooks.mjs`, `scripts/verify_webhooks.py`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use llmflow_core::db::deliveries;
use llmflow_core::db::models::{AttemptRow, DeliveryRow};

use llmflow_testkit::queries::{attempts_of, wait_for_delivery};
use llmflow_testkit::{verifies, Counter, Reply, Scripted};

use crate::support::{wait_until, TestApp, ADMIN_KEY, API_KEY, WEBHOOK_SECRET};

/// The previous key during rotation (both signatures are sent).
const PREVIOUS_SECRET: &str = "whsec_CCBWqeKDC5uxTta4tLIZqKByDD1QBop+pcHo1h77xRI=";
/// A job's own secret, given on submit.
const JOB_SECRET: &str = "whsec_qKR2ccv7PrdvAYJmU415K4EIpH08tmyQ/aAZF3omXag=";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Submits a one-LLM-call job that sends its webhook to `url`; returns the job id.
async fn submit_to(app: &TestApp, url: &str, extra: Value) -> Uuid {
    let mut body = json!({
        "workflow_name": "bench_pipeline",
        "input_data": {"text": "Hello.\nEMULATOR_SCORE: 20"},
        "webhook_url": url,
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            body.insert(k.clone(), v.clone());
        }
    }
    let response = app.submit(body).await;
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
    let body: Value = response.json().await.expect("json");
    body["job_id"]
        .as_str()
        .expect("job_id")
        .parse()
        .expect("uuid")
}

/// A completed job without a webhook, to hang events on.
async fn completed_job(app: &TestApp) -> Uuid {
    let job = app.submit_bench("Events.\nEMULATOR_SCORE: 20", false).await;
    app.wait_for_status(&job, "completed", Duration::from_secs(30))
        .await;
    job.parse().expect("uuid")
}

async fn terminal_delivery(app: &TestApp, job_id: Uuid, status: &str) -> DeliveryRow {
    wait_until(
        &format!("the delivery of job {job_id} to be {status}"),
        Duration::from_secs(45),
        || async {
            let mut conn = app.conn().await;
            let row = deliveries::terminal_of_job(&mut conn, job_id)
                .await
                .ok()??;
            (row.status == status).then_some(row)
        },
    )
    .await
}

async fn delivery_in(app: &TestApp, id: Uuid, status: &str) -> DeliveryRow {
    wait_for_delivery(&app.pool, id, status).await
}

async fn attempts(app: &TestApp, delivery_id: Uuid) -> Vec<AttemptRow> {
    let mut conn = app.conn().await;
    attempts_of(&mut conn, delivery_id).await.expect("attempts")
}

fn seconds_between(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_milliseconds() as f64 / 1000.0
}

/// A failed attempt's retry is due `delay` seconds after the attempt ended: `next_retry_at` is
/// `attempted_at + duration + delay`, to the millisecond the duration is stored in (and the
/// microsecond PostgreSQL keeps of each time).
fn assert_scheduled_after(row: &AttemptRow, delay: f64) {
    let due = row
        .next_retry_at
        .expect("a failed attempt schedules its retry");
    let waited = (due - row.attempted_at).num_microseconds().expect("span") as f64 / 1000.0
        - f64::from(row.duration_ms);
    assert!(
        (delay * 1000.0 - 0.01..delay * 1000.0 + 1.01).contains(&waited),
        "attempt {} scheduled its retry {waited:.3} ms after it ended, not {delay} s: {row:#?}",
        row.attempt_number
    );
}

/// The next attempt started no earlier than the time its predecessor scheduled.
fn assert_not_early(row: &AttemptRow, next: &AttemptRow) {
    let due = row
        .next_retry_at
        .expect("a failed attempt schedules its retry");
    assert!(
        next.attempted_at >= due,
        "attempt {} ran at {} before it was due at {due}",
        next.attempt_number,
        next.attempted_at
    );
}

async fn admin_get(app: &TestApp, path: &str, key: Option<&str>) -> reqwest::Response {
    let mut request = app.http.get(app.url(path));
    if let Some(key) = key {
        request = request.header("X-API-Key", key);
    }
    request.send().await.expect("request")
}

async fn replay(app: &TestApp, id: &str, key: Option<&str>) -> reqwest::Response {
    let mut request = app
        .http
        .post(app.url(&format!("/admin/webhooks/{id}/replay")));
    if let Some(key) = key {
        request = request.header("X-API-Key", key);
    }
    request.send().await.expect("request")
}

// ---------------------------------------------------------------------------------------------
// Schedule
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_failures_then_success_follow_the_schedule_with_one_webhook_id() {
    // Delays 1, 2, 3 s: attempts at 0, 1, 3 and 6 s (the default 5/15/45 is asserted by the
    // pure schedule function in crates/webhook/src/schedule.rs).
    let app = TestApp::spawn_with(json!({"webhook_retry_schedule": "1,2,3"})).await;
    let receiver = Scripted::spawn(vec![
        Reply::Status(500),
        Reply::Status(503),
        Reply::Status(500),
    ])
    .await;
    let job_id = submit_to(&app, &receiver.url, json!({})).await;
    let delivery = terminal_delivery(&app, job_id, "delivered").await;
    let rows = attempts(&app, delivery.id).await;
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let numbers: Vec<i32> = rows.iter().map(|r| r.attempt_number).collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
    let codes: Vec<Option<i32>> = rows.iter().map(|r| r.status_code).collect();
    assert_eq!(codes, [Some(500), Some(503), Some(500), Some(200)]);
    assert!(rows.iter().all(|r| r.trigger == "scheduled"));
    assert!(rows[3].success && rows[..3].iter().all(|r| !r.success));
    assert!(rows[..3].iter().all(|r| r.next_retry_at.is_some()));
    assert!(rows[3].next_retry_at.is_none());

    // Each failed attempt scheduled its retry exactly its delay after it ended, and no retry ran
    // before it was due. How soon after that a sender picks it up is load, measured by
    // scripts/bench.sh, not asserted here.
    for (k, delay) in [1.0, 2.0, 3.0].into_iter().enumerate() {
        assert_scheduled_after(&rows[k], delay);
        assert_not_early(&rows[k], &rows[k + 1]);
    }

    // Four requests, one webhook-id, four timestamps, each verified.
    let hits = receiver.wait_hits(4, Duration::from_secs(5)).await;
    assert_eq!(hits.len(), 4);
    let id = hits[0].header("webhook-id");
    assert_eq!(id, delivery.webhook_id);
    assert!(hits.iter().all(|h| h.header("webhook-id") == id));
    let mut stamps: Vec<&str> = hits.iter().map(|h| h.header("webhook-timestamp")).collect();
    stamps.dedup();
    assert_eq!(stamps.len(), 4, "a fresh timestamp per attempt: {stamps:?}");
    assert!(hits.iter().all(|h| verifies(h, &h.body, WEBHOOK_SECRET)));
    assert_eq!(hits[3].json()["type"], "workflow.completed");

    // The status shows the delivery.
    let status = app.status(&job_id.to_string()).await;
    let webhook = &status["webhook"];
    assert_eq!(webhook["status"], "delivered", "{status}");
    assert_eq!(webhook["attempts"], 4);
    assert_eq!(webhook["last_status_code"], 200);
    assert!(webhook["dead_lettered_at"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_stops_after_one_attempt() {
    let app = TestApp::spawn_with(json!({"webhook_retry_schedule": "1,1,1"})).await;
    let receiver = Scripted::spawn(vec![Reply::Status(410)]).await;
    let job_id = submit_to(&app, &receiver.url, json!({})).await;
    let delivery = terminal_delivery(&app, job_id, "dead").await;
    assert_eq!(delivery.attempts, 1);
    assert!(delivery.dead_lettered_at.is_some());
    assert!(delivery.next_attempt_at.is_none());
    let rows = attempts(&app, delivery.id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status_code, Some(410));
    assert!(rows[0].next_retry_at.is_none());
    assert_eq!(receiver.hits().len(), 1);
    let status = app.status(&job_id.to_string()).await;
    assert_eq!(status["webhook"]["status"], "dead", "{status}");
    assert_eq!(status["webhook"]["last_status_code"], 410);
    assert!(status["webhook"]["dead_lettered_at"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_a_failure_and_is_never_followed() {
    // The redirect target listens on 127.0.0.2; only 127.0.0.1 is allow-listed.
    let target = Counter::spawn("127.0.0.2").await;
    let private = Counter::spawn("127.0.0.1").await;
    let app = TestApp::spawn_with(json!({
        "webhook_retry_schedule": "1,1",
        "webhook_allowed_cidrs": "127.0.0.1/32",
    }))
    .await;
    let receiver = Scripted::spawn(vec![
        Reply::Full {
            status: 302,
            headers: vec![("Location", format!("http://{}/steal", target.addr))],
            body: String::new(),
        },
        Reply::Full {
            status: 307,
            headers: vec![("Location", "http://10.0.0.1/".to_owned())],
            body: String::new(),
        },
        Reply::Full {
            status: 301,
            headers: vec![("Location", format!("http://{}/", private.addr))],
            body: String::new(),
        },
    ])
    .await;
    let job_id = submit_to(&app, &receiver.url, json!({})).await;
    let delivery = terminal_delivery(&app, job_id, "dead").await;
    let rows = attempts(&app, delivery.id).await;
    let codes: Vec<Option<i32>> = rows.iter().map(|r| r.status_code).collect();
    assert_eq!(codes, [Some(302), Some(307), Some(301)]);
    assert!(rows.iter().all(|r| !r.success));
    assert!(rows
        .iter()
        .all(|r| r.error_class.as_deref() == Some("http")));
    assert!(rows[0].next_retry_at.is_some(), "a 3xx is retried");
    assert_eq!(receiver.hits().len(), 3);
    assert_eq!(target.connections(), 0, "the redirect target was contacted");
    assert_eq!(
        private.connections(),
        0,
        "the redirect target was contacted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_up_to_the_cap() {
    let app = TestApp::spawn_with(json!({
        "webhook_retry_schedule": "1,1",
        "webhook_retry_after_cap_secs": 3,
    }))
    .await;
    let receiver = Scripted::spawn(vec![
        Reply::Full {
            status: 429,
            headers: vec![("Retry-After", "2".to_owned())],
            body: "slow down".to_owned(),
        },
        Reply::Full {
            status: 503,
            headers: vec![("Retry-After", "3600".to_owned())],
            body: "later".to_owned(),
        },
    ])
    .await;
    let job_id = submit_to(&app, &receiver.url, json!({})).await;
    let delivery = terminal_delivery(&app, job_id, "delivered").await;
    let rows = attempts(&app, delivery.id).await;
    assert_eq!(rows.len(), 3, "{rows:#?}");
    // Retry-After: 2 beats the 1 s schedule; Retry-After: 3600 is capped at 3 s.
    assert_scheduled_after(&rows[0], 2.0);
    assert_not_early(&rows[0], &rows[1]);
    assert_scheduled_after(&rows[1], 3.0);
    assert_not_early(&rows[1], &rows[2]);
    let hits = receiver.hits();
    assert!(seconds_between(hits[0].at, hits[1].at) >= 2.0);
}

// ---------------------------------------------------------------------------------------------
// Dead letters and replay
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed_with_the_same_id_and_a_fresh_signature() {
    let app = TestApp::spawn_with(json!({"webhook_retry_schedule": "1"})).await;
    // Two attempts per delivery for two jobs, then the first manual attempt fails too.
    let receiver = Scripted::spawn(vec![
        Reply::Status(500),
        Reply::Status(500),
        Reply::Status(502),
        Reply::Status(500),
        Reply::Status(500),
    ])
    .await;
    let first_job = submit_to(&app, &receiver.url, json!({})).await;
    let first = terminal_delivery(&app, first_job, "dead").await;
    let second_job = submit_to(&app, &receiver.url, json!({})).await;
    let second = terminal_delivery(&app, second_job, "dead").await;
    assert_eq!(first.attempts, 2);
    assert!(first.dead_lettered_at.is_some());
    let status = app.status(&first_job.to_string()).await;
    assert_eq!(status["webhook"]["status"], "dead", "{status}");
    assert_eq!(status["webhook"]["attempts"], 2);
    assert_eq!(status["webhook"]["last_status_code"], 500);
    assert!(status["webhook"]["dead_lettered_at"].is_string());

    // Admin key only.
    assert_eq!(
        admin_get(&app, "/admin/webhooks/dead", None).await.status(),
        401
    );
    let forbidden = admin_get(&app, "/admin/webhooks/dead", Some(API_KEY)).await;
    assert_eq!(forbidden.status(), 403);
    assert!(forbidden.json::<Value>().await.expect("json")["detail"].is_string());
    assert_eq!(
        replay(&app, &first.id.to_string(), None).await.status(),
        401
    );
    assert_eq!(
        replay(&app, &first.id.to_string(), Some(API_KEY))
            .await
            .status(),
        403
    );

    // Paged, newest dead first.
    let page: Value = admin_get(&app, "/admin/webhooks/dead", Some(ADMIN_KEY))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(page["total"], 2, "{page}");
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], second.id.to_string());
    assert_eq!(items[1]["id"], first.id.to_string());
    let item = &items[1];
    assert_eq!(item["job_id"], first_job.to_string());
    assert_eq!(item["url"], receiver.url);
    assert_eq!(item["event_type"], "workflow.completed");
    assert_eq!(item["attempts"], 2);
    assert_eq!(item["last_status_code"], 500);
    assert!(item["last_error"]
        .as_str()
        .expect("last_error")
        .contains("500"));
    assert!(item["dead_lettered_at"].is_string());
    let one: Value = admin_get(
        &app,
        "/admin/webhooks/dead?limit=1&offset=1",
        Some(ADMIN_KEY),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(one["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(one["items"][0]["id"], first.id.to_string());
    assert_eq!(
        (one["limit"].clone(), one["offset"].clone()),
        (json!(1), json!(1))
    );
    let bad = admin_get(
        &app,
        "/admin/webhooks/dead?limit=0&offset=-1",
        Some(ADMIN_KEY),
    )
    .await;
    assert_eq!(bad.status(), 422);
    let bad: Value = bad.json().await.expect("json");
    assert_eq!(bad["errors"].as_array().map(Vec::len), Some(2), "{bad}");

    // Unknown ids.
    assert_eq!(
        replay(&app, &Uuid::now_v7().to_string(), Some(ADMIN_KEY))
            .await
            .status(),
        404
    );
    assert_eq!(
        replay(&app, "not-a-uuid", Some(ADMIN_KEY)).await.status(),
        404
    );

    // Make the dead letter days old: a replay is signed now, so it still verifies.
    {
        use diesel_async::RunQueryDsl;
        let mut conn = app.conn().await;
        diesel::sql_query(
            "UPDATE llm_webhook_deliveries SET created_at = now() - interval '3 days', \
             dead_lettered_at = now() - interval '3 days' WHERE id = $1",
        )
        .bind::<diesel::sql_types::Uuid, _>(first.id)
        .execute(&mut conn)
        .await
        .expect("age the delivery");
    }
    let before = receiver.hits().len();
    // The receiver answers the first manual attempt 500: dead again after that single attempt.
    let accepted = replay(&app, &first.id.to_string(), Some(ADMIN_KEY)).await;
    assert_eq!(accepted.status(), 202);
    let body: Value = accepted.json().await.expect("json");
    assert_eq!(body["attempt"], 3);
    assert_eq!(body["trigger"], "manual");
    let again_dead = wait_until("the manual attempt", Duration::from_secs(20), || async {
        let mut conn = app.conn().await;
        let row = deliveries::find(&mut conn, first.id).await.ok()??;
        (row.status == "dead" && row.attempts == 3).then_some(row)
    })
    .await;
    assert!(again_dead.dead_lettered_at.is_some());
    // A second replay: the receiver now answers 200.
    let accepted = replay(&app, &first.id.to_string(), Some(ADMIN_KEY)).await;
    assert_eq!(accepted.status(), 202);
    let delivered = delivery_in(&app, first.id, "delivered").await;
    assert_eq!(delivered.attempts, 4);
    assert!(delivered.dead_lettered_at.is_none());
    let rows = attempts(&app, first.id).await;
    let triggers: Vec<&str> = rows.iter().map(|r| r.trigger.as_str()).collect();
    assert_eq!(triggers, ["scheduled", "scheduled", "manual", "manual"]);
    assert_eq!(rows[2].status_code, Some(500));
    assert_eq!(rows[3].status_code, Some(200));
    assert!(rows[3].success);

    let hits = receiver.hits();
    assert_eq!(hits.len(), before + 2);
    let manual = &hits[hits.len() - 1];
    assert_eq!(manual.header("webhook-id"), first.webhook_id);
    let stamp: i64 = manual.header("webhook-timestamp").parse().expect("integer");
    assert!((Utc::now().timestamp() - stamp).abs() < 60, "signed afresh");
    assert!(verifies(manual, &manual.body, WEBHOOK_SECRET));
    assert_eq!(manual.json()["job_id"], first_job.to_string());

    // Replaying what is not dead is a conflict.
    let conflict = replay(&app, &first.id.to_string(), Some(ADMIN_KEY)).await;
    assert_eq!(conflict.status(), 409);
    let listed: Value = admin_get(&app, "/admin/webhooks/dead", Some(ADMIN_KEY))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed["total"], 1, "the replayed delivery left the list");
    let status = app.status(&first_job.to_string()).await;
    assert_eq!(status["webhook"]["status"], "delivered");
}

// ---------------------------------------------------------------------------------------------
// Crash safety
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_killed_between_send_and_record_is_redelivered_with_the_same_id() {
    let mut app = TestApp::spawn_with(json!({"claim_timeout_secs": 2})).await;
    let receiver = Scripted::spawn(vec![Reply::Stall]).await;
    let job_id = submit_to(&app, &receiver.url, json!({})).await;
    // The request is in the receiver's hands and will never be answered: kill the sender.
    receiver.wait_hits(1, Duration::from_secs(30)).await;
    let delivering = terminal_delivery(&app, job_id, "delivering").await;
    app.webhook.take().expect("webhook sender").abort();
    app.start_webhook().await;
    // The reconciler re-pushes the abandoned attempt once the claim times out.
    let hits = receiver.wait_hits(2, Duration::from_secs(30)).await;
    assert_eq!(hits[0].header("webhook-id"), delivering.webhook_id);
    assert_eq!(hits[1].header("webhook-id"), delivering.webhook_id);
    assert!(verifies(&hits[1], &hits[1].body, WEBHOOK_SECRET));
    let delivered = terminal_delivery(&app, job_id, "delivered").await;
    assert_eq!(delivered.attempts, 1, "the same attempt, made again");
    let rows = attempts(&app, delivered.id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status_code, Some(200));
}

// ---------------------------------------------------------------------------------------------
// SSRF
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_destinations_go_straight_to_dead_letters_without_a_connection() {
    let listener = Counter::spawn("127.0.0.1").await;
    let port = listener.addr.port();
    let app = TestApp::spawn_with(json!({"webhook_allowed_cidrs": ""})).await;

    // Through the API: a name resolving to 127.0.0.1 (a literal blocked address is refused on
    // submit).
    let job_id = submit_to(&app, &format!("http://localhost:{port}/hook"), json!({})).await;
    app.wait_for_status(&job_id.to_string(), "completed", Duration::from_secs(30))
        .await;
    let delivery = terminal_delivery(&app, job_id, "dead").await;
    let rows = attempts(&app, delivery.id).await;
    assert_eq!(rows.len(), 1, "no retries for a blocked URL");
    assert_eq!(rows[0].error_class.as_deref(), Some("blocked"));
    assert!(rows[0].status_code.is_none());
    let status = app.status(&job_id.to_string()).await;
    assert_eq!(status["webhook"]["status"], "dead");

    // Every listed literal form, as events of a finished job.
    let job = completed_job(&app).await;
    let urls = [
        format!("http://127.0.0.1:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://2130706433:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://100.64.0.1/".to_owned(),
    ];
    let mut ids = Vec::new();
    for url in &urls {
        let mut conn = app.conn().await;
        let id = deliveries::enqueue_event(
            &mut conn,
            job,
            url,
            "workflow.progress",
            json!({"job_id": job, "step": "x"}),
        )
        .await
        .expect("enqueue");
        ids.push(id);
    }
    // Nobody pushed these: the reconciler finds them due.
    for (id, url) in ids.iter().zip(&urls) {
        let dead = delivery_in(&app, id.0, "dead").await;
        let rows = attempts(&app, dead.id).await;
        assert_eq!(rows.len(), 1, "{url}");
        assert_eq!(rows[0].error_class.as_deref(), Some("blocked"), "{url}");
        assert!(rows[0].error_message.is_some(), "{url}");
    }
    assert_eq!(listener.connections(), 0, "a blocked address was contacted");
}

// ---------------------------------------------------------------------------------------------
// Attempt rows
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempt_rows_keep_20_kb_of_body_and_classify_a_timeout() {
    let app = TestApp::spawn_with(json!({
        "webhook_retry_schedule": "1,1",
        "webhook_request_timeout_secs": 1,
    }))
    .await;
    let big = "x".repeat(30 * 1024);
    let receiver = Scripted::spawn(vec![
        Reply::Full {
            status: 500,
            headers: Vec::new(),
            body: big,
        },
        Reply::Stall,
    ])
    .await;
    let job_id = submit_to(&app, &receiver.url, json!({})).await;
    let delivery = terminal_delivery(&app, job_id, "delivered").await;
    let rows = attempts(&app, delivery.id).await;
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let first = &rows[0];
    assert_eq!(first.status_code, Some(500));
    assert_eq!(first.error_class.as_deref(), Some("http"));
    assert_eq!(
        first.response_body.as_deref().map(str::len),
        Some(20 * 1024)
    );
    let receiver_addr = receiver
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/hooks");
    assert_eq!(first.remote_addr.as_deref(), Some(receiver_addr));
    assert!(first
        .error_message
        .as_deref()
        .is_some_and(|m| m.contains("500")));
    assert!(first
        .next_retry_at
        .is_some_and(|at| at > first.attempted_at));
    let second = &rows[1];
    assert_eq!(second.error_class.as_deref(), Some("timeout"), "{second:?}");
    assert!(second.status_code.is_none());
    assert!(second.duration_ms >= 900, "{}", second.duration_ms);
    assert!(second.next_retry_at.is_some());
    assert_eq!(rows[2].status_code, Some(200));
    assert_eq!(rows[2].response_body.as_deref(), Some("ok"));
}

// ---------------------------------------------------------------------------------------------
// Events of any type
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_events_each_get_a_delivery_and_terminal_events_stay_unique() {
    let app = TestApp::spawn().await;
    let receiver = Scripted::spawn(Vec::new()).await;
    let job = completed_job(&app).await;
    let mut conn = app.conn().await;
    let mut ids = Vec::new();
    for step in ["analyze", "extract"] {
        ids.push(
            deliveries::enqueue_event(
                &mut conn,
                job,
                &receiver.url,
                "workflow.progress",
                json!({"job_id": job, "step_id": step, "event": "step_finished"}),
            )
            .await
            .expect("enqueue"),
        );
    }
    assert_ne!(ids[0], ids[1]);
    let done = json!({"job_id": job, "status": "completed"});
    let terminal = deliveries::enqueue_event(
        &mut conn,
        job,
        &receiver.url,
        "workflow.completed",
        done.clone(),
    )
    .await
    .expect("enqueue");
    let again =
        deliveries::enqueue_event(&mut conn, job, &receiver.url, "workflow.completed", done)
            .await
            .expect("enqueue twice");
    assert_eq!(terminal, again, "one terminal delivery per job and URL");
    drop(conn);
    for id in ids.iter().chain([&terminal]) {
        delivery_in(&app, id.0, "delivered").await;
    }
    let hits = receiver.wait_hits(3, Duration::from_secs(10)).await;
    assert_eq!(hits.len(), 3);
    let mut webhook_ids: Vec<&str> = hits.iter().map(|h| h.header("webhook-id")).collect();
    webhook_ids.sort_unstable();
    webhook_ids.dedup();
    assert_eq!(webhook_ids.len(), 3);
    let mut types: Vec<String> = hits
        .iter()
        .map(|h| h.json()["type"].as_str().expect("type").to_owned())
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "workflow.completed",
            "workflow.progress",
            "workflow.progress"
        ]
    );
    assert!(hits.iter().all(|h| verifies(h, &h.body, WEBHOOK_SECRET)));
}

// ---------------------------------------------------------------------------------------------
// Captures for the official npm and PyPI verifiers
// ---------------------------------------------------------------------------------------------

/// Deliveries signed during key rotation (two signatures) and with a job's own secret, verified
/// here with the crate and written to `LLMFLOW_CAPTURE_DIR` (when set) for `scripts/test.sh`
/// to verify with the npm and PyPI packages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_deliveries_verify_with_each_key() {
    let app = TestApp::spawn_with(json!({"llm_webhook_secret_previous": PREVIOUS_SECRET})).await;
    let receiver = Scripted::spawn(vec![Reply::Status(500)]).await;
    let rotated = submit_to(&app, &receiver.url, json!({})).await;
    terminal_delivery(&app, rotated, "delivered").await;
    let own = submit_to(&app, &receiver.url, json!({"webhook_secret": JOB_SECRET})).await;
    terminal_delivery(&app, own, "delivered").await;
    let hits = receiver.wait_hits(3, Duration::from_secs(10)).await;
    assert_eq!(hits.len(), 3);

    let mut captures = Vec::new();
    for hit in &hits {
        let job = hit.json()["job_id"].as_str().expect("job_id").to_owned();
        let signatures = hit.header("webhook-signature").split(' ').count();
        let secrets: Vec<&str> = if job == own.to_string() {
            assert_eq!(signatures, 1, "a job's own secret signs alone");
            vec![JOB_SECRET]
        } else {
            assert_eq!(signatures, 2, "rotation sends both signatures");
            vec![WEBHOOK_SECRET, PREVIOUS_SECRET]
        };
        for secret in &secrets {
            assert!(verifies(hit, &hit.body, secret), "each key alone verifies");
        }
        let mut tampered = hit.body.clone();
        tampered.extend_from_slice(b" ");
        assert!(
            !verifies(hit, &tampered, secrets[0]),
            "a tampered body fails"
        );
        assert!(!verifies(
            hit,
            &hit.body,
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        ));
        captures.push(json!({
            "secrets": secrets,
            "headers": {
                "webhook-id": hit.header("webhook-id"),
                "webhook-timestamp": hit.header("webhook-timestamp"),
                "webhook-signature": hit.header("webhook-signature"),
            },
            "body": String::from_utf8(hit.body.clone()).expect("UTF-8 body"),
        }));
    }
    if let Ok(dir) = std::env::var("LLMFLOW_CAPTURE_DIR") {
        std::fs::create_dir_all(&dir).expect("capture dir");
        for (n, capture) in captures.iter().enumerate() {
            let path = std::path::Path::new(&dir).join(format!("delivery-{n}.json"));
            std::fs::write(&path, serde_json::to_vec_pretty(capture).expect("json"))
                .expect("write capture");
        }
    }
}
