//! The operator's JSON API on the API alone: who may call it, the job list's filters and
//! keyset cursor, bulk cancel with its preview and confirmation, and the audit rows.

use diesel_async::RunQueryDsl;
use serde_json::{json, Value};

use llmflow_core::db::workers::{self, ProcessKind, Registration};

use crate::support::{TestApp, ADMIN_KEY, API_KEY};

const ALICE: &str = "0b9f5c4e-6c7e-4a8e-9a57-8a1f3f0e2d11";
const BOB: &str = "7d3c1a2b-0000-4000-8000-000000000001";

async fn admin_get(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app
        .http
        .get(app.url(path))
        .header("X-API-Key", ADMIN_KEY)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

async fn admin_post(app: &TestApp, path: &str, body: &Value) -> (u16, Value) {
    let response = app
        .http
        .post(app.url(path))
        .header("X-API-Key", ADMIN_KEY)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

async fn submit(app: &TestApp, text: &str, user: &str) -> String {
    app.submit_accepted(json!({"workflow_name": "bench_pipeline",
        "input_data": {"text": text}, "user_id": user}))
        .await
}

async fn fail(app: &TestApp, job_id: &str, error: &str) {
    let mut conn = app.conn().await;
    diesel::sql_query(format!(
        "UPDATE llm_workflow_jobs SET status = 'failed', error_message = '{error}', \
         completed_at = now() WHERE id = '{job_id}'"
    ))
    .execute(&mut conn)
    .await
    .expect("fail the job");
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|j| j["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_admin_key_reads_the_operator_api() {
    let app = TestApp::spawn_api(json!({})).await;
    for path in ["/admin/jobs", "/admin/overview", "/admin/audit"] {
        let none = app.http.get(app.url(path)).send().await.expect("request");
        assert_eq!(none.status().as_u16(), 401, "{path}");
        let body: Value = none.json().await.expect("json");
        assert!(body["detail"].is_string(), "{body}");
        let client = app
            .http
            .get(app.url(path))
            .header("X-API-Key", API_KEY)
            .send()
            .await
            .expect("request");
        assert_eq!(client.status().as_u16(), 403, "{path}");
        let forged = app
            .http
            .get(app.url(path))
            .header("Cookie", "llmflow_session=v1.99999999999.AAAA")
            .send()
            .await
            .expect("request");
        assert_eq!(forged.status().as_u16(), 401, "{path}: a forged session");
        let (status, body) = admin_get(&app, path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (status, body) = admin_get(&app, "/admin/overview").await;
    assert_eq!(status, 200);
    assert_eq!(body["dead_letters"], 0, "{body:#}");
    assert!(body["queue_depth"]["normal"].is_number(), "{body:#}");
    assert_eq!(body["workers"]["live"], 0, "{body:#}");

    // The overview's workers come from the registry: a registered worker is live and listed.
    let me = Registration::this_process("worker-overview-test".to_owned(), ProcessKind::Worker, 7);
    let mut conn = app.conn().await;
    workers::register(&mut conn, &me).await.expect("register");
    drop(conn);
    let (_, body) = admin_get(&app, "/admin/overview").await;
    assert_eq!(body["workers"]["live"], 1, "{body:#}");
    let listed = &body["workers"]["processes"][0];
    assert_eq!(listed["name"], "worker-overview-test", "{body:#}");
    assert_eq!(listed["concurrency"], 7);
    assert_eq!(listed["lost"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_list_filters_and_pages_by_cursor() {
    let app = TestApp::spawn_api(json!({})).await;
    let mut alice = Vec::new();
    for i in 0..5 {
        alice.push(submit(&app, &format!("alice text {i}"), ALICE).await);
    }
    let bob = submit(&app, "bob's 50%_special text", BOB).await;
    fail(&app, &alice[1], "provider said: quota exceeded").await;

    let (_, all) = admin_get(&app, "/admin/jobs").await;
    assert_eq!(ids(&all).len(), 6, "{all:#}");
    assert_eq!(ids(&all)[0], bob, "newest first");
    assert!(all["next_cursor"].is_null());

    let (_, failed) = admin_get(&app, "/admin/jobs?status=failed").await;
    assert_eq!(ids(&failed), [alice[1].clone()]);
    let (_, by_user) = admin_get(&app, &format!("/admin/jobs?user_id={BOB}")).await;
    assert_eq!(ids(&by_user), vec![bob.clone()]);
    let (_, by_error) = admin_get(&app, "/admin/jobs?q=QUOTA").await;
    assert_eq!(ids(&by_error), [alice[1].clone()], "text in the error");
    let (_, by_input) = admin_get(&app, "/admin/jobs?q=50%25_special").await;
    assert_eq!(ids(&by_input), vec![bob.clone()], "text in the input");
    let (_, literal) = admin_get(&app, "/admin/jobs?q=50%25%25").await;
    assert_eq!(ids(&literal), Vec::<String>::new(), "% matches itself only");
    let (_, none) = admin_get(&app, "/admin/jobs?workflow=other").await;
    assert_eq!(ids(&none).len(), 0);
    let (_, future) = admin_get(&app, "/admin/jobs?from=2099-01-01T00:00:00Z").await;
    assert_eq!(ids(&future).len(), 0);

    // Pages of two: every job once, in order, then no cursor.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => format!("/admin/jobs?user_id={ALICE}&limit=2"),
            Some(c) => format!("/admin/jobs?user_id={ALICE}&limit=2&cursor={c}"),
        };
        let (status, page) = admin_get(&app, &path).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut expected = alice.clone();
    expected.reverse();
    assert_eq!(seen, expected);

    let (status, body) = admin_get(
        &app,
        "/admin/jobs?status=done&user_id=x&cursor=nope&limit=900",
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field"))
        .collect();
    assert_eq!(fields, ["status", "user_id", "cursor", "limit"]);

    let (status, detail) = admin_get(&app, &format!("/admin/jobs/{}", alice[1])).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["job"]["status"], "failed");
    assert!(detail["job"].get("webhook_secret").is_none());
    assert_eq!(detail["steps"], json!([]));
    let (status, _) = admin_get(&app, &format!("/admin/jobs/{}", uuid::Uuid::now_v7())).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_cancel_touches_only_what_its_preview_counted() {
    let app = TestApp::spawn_api(json!({})).await;
    let mut queued = Vec::new();
    for i in 0..3 {
        queued.push(submit(&app, &format!("bulk {i}"), ALICE).await);
    }
    let other = submit(&app, "not alice's", BOB).await;
    let filter = json!({"status": "queued", "user_id": ALICE});
    let (status, preview) = admin_post(
        &app,
        "/admin/jobs/bulk/preview",
        &json!({"action": "cancel", "filter": filter}),
    )
    .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["count"], 3);
    let confirm = |count: i64, filter: &Value| {
        json!({"action": "cancel", "filter": filter, "as_of": preview["as_of"],
               "expected_count": count, "token": preview["token"]})
    };

    // A larger count or another filter than previewed is refused.
    let (status, body) = admin_post(&app, "/admin/jobs/bulk", &confirm(4, &filter)).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = admin_post(
        &app,
        "/admin/jobs/bulk",
        &confirm(3, &json!({"status": "queued"})),
    )
    .await;
    assert_eq!(status, 409, "a widened filter: {body}");
    // A job created after the preview is not counted; one that changed state is.
    submit(&app, "bulk late", ALICE).await;
    fail(&app, &queued[0], "boom").await;
    let (status, body) = admin_post(&app, "/admin/jobs/bulk", &confirm(3, &filter)).await;
    assert_eq!(status, 409, "the count changed: {body}");
    assert!(body["detail"]
        .as_str()
        .expect("detail")
        .contains("now matches 2"));

    let (_, preview) = admin_post(
        &app,
        "/admin/jobs/bulk/preview",
        &json!({"action": "cancel", "filter": filter}),
    )
    .await;
    assert_eq!(preview["count"], 3, "two left and the late one");
    let body = json!({"action": "cancel", "filter": filter, "as_of": preview["as_of"],
                      "expected_count": 3, "token": preview["token"]});
    let (status, done) = admin_post(&app, "/admin/jobs/bulk", &body).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["affected"], 3);
    for job in &queued[1..] {
        assert_eq!(app.status(job).await["status"], "cancelled");
    }
    assert_eq!(app.status(&queued[0]).await["status"], "failed");
    assert_eq!(app.status(&other).await["status"], "queued");

    let (status, body) = admin_post(
        &app,
        "/admin/jobs/bulk/preview",
        &json!({"action": "delete", "filter": {"status": "nope", "q": 3}}),
    )
    .await;
    assert_eq!(status, 422, "{body}");

    let (_, audit) = admin_get(&app, "/admin/audit").await;
    let rows = audit["items"].as_array().expect("items");
    assert_eq!(rows.len(), 1, "{audit:#}");
    assert_eq!(rows[0]["action"], "bulk_cancel");
    assert_eq!(rows[0]["actor"], "api-key");
    assert_eq!(rows[0]["affected"], 3);
    assert_eq!(rows[0]["detail"]["previewed"], 3);

    let (status, body) = admin_post(&app, &format!("/admin/jobs/{other}/cancel"), &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = admin_post(&app, &format!("/admin/jobs/{other}/cancel"), &json!({})).await;
    assert_eq!(status, 409);
    let (_, audit) = admin_get(&app, "/admin/audit").await;
    assert_eq!(audit["items"][0]["action"], "cancel");
    assert_eq!(audit["items"][0]["detail"]["job_id"], other.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_retry_sends_back_only_the_failed_jobs_it_previewed() {
    let app = TestApp::spawn_api(json!({})).await;
    let failed = submit(&app, "will fail", ALICE).await;
    let waiting = submit(&app, "still queued", ALICE).await;
    fail(&app, &failed, "step `analyze` failed: server: boom").await;
    let filter = json!({"user_id": ALICE});
    let (status, preview) = admin_post(
        &app,
        "/admin/jobs/bulk/preview",
        &json!({"action": "retry", "filter": filter}),
    )
    .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["count"], 1, "only the failed job: {preview}");
    let body = json!({"action": "retry", "filter": filter, "as_of": preview["as_of"],
                      "expected_count": 1, "token": preview["token"]});
    let (status, done) = admin_post(&app, "/admin/jobs/bulk", &body).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["affected"], 1);
    let doc = app.status(&failed).await;
    assert_eq!(doc["status"], "queued", "{doc:#}");
    assert_eq!(doc["retry_count"], 1);
    assert_eq!(app.status(&waiting).await["status"], "queued");
    // The same confirmation again: the failed job is gone from the count.
    let (status, body) = admin_post(&app, "/admin/jobs/bulk", &body).await;
    assert_eq!(status, 409, "{body}");
    let (_, audit) = admin_get(&app, "/admin/audit").await;
    assert_eq!(audit["items"][0]["action"], "bulk_retry");
    assert_eq!(audit["items"][0]["affected"], 1);
}
