//! A job all the way through: worker, LLM (emulator), step and usage rows, signed webhook.

use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;

use llmflow_core::pricing::{round_usd, PriceTable, TokenUsage};

use crate::support::{wait_until, TestApp, WEBHOOK_SECRET};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_pipeline_completes_with_steps_usage_costs_and_a_signed_webhook() {
    let app = TestApp::spawn().await;
    bench_pipeline_completes(&app).await;
}

/// The pipeline job all the way through on `app`: steps, usage and costs, the signed webhook
/// and its recorded attempt (also run through a transaction-mode pooler, see `pooler`).
pub(crate) async fn bench_pipeline_completes(app: &TestApp) {
    // A high score takes the `refine` branch: two LLM calls.
    let job_id = app
        .submit_bench(
            "Ship the quarterly report by Friday.\nEMULATOR_SCORE: 80",
            true,
        )
        .await;
    let status = app
        .wait_for_status(&job_id, "completed", Duration::from_secs(30))
        .await;

    let result = &status["result"];
    assert_eq!(result["score"], 80, "{status}");
    assert_eq!(result["branch"], "then");
    assert!(result["refined"].is_string());
    assert!(
        result.get("fallback").is_none(),
        "branch not taken is left out: {result}"
    );
    assert_eq!(status["progress"], 100);
    let step_ids: Vec<&str> = status["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["step_id"].as_str())
        .collect();
    assert_eq!(step_ids, ["analyze", "extract", "route", "refine"]);

    // One usage row per LLM call, priced from the table.
    let job_uuid = job_id.parse().expect("uuid");
    let mut conn = app.conn().await;
    let usage = llmflow_core::db::jobs::job_usage(&mut conn, job_uuid)
        .await
        .expect("usage");
    assert_eq!(usage.len(), 2);
    assert_eq!(app.emulator.stats().calls, 2);
    let pricing = PriceTable::built_in().expect("pricing");
    let mut total = Decimal::ZERO;
    for row in &usage {
        assert_eq!(row.model, "openai/gpt-4o-mini");
        assert!(row.input_tokens > 0 && row.output_tokens > 0);
        let table = round_usd(
            pricing
                .cost(
                    &row.model,
                    TokenUsage {
                        input_tokens: row.input_tokens as u64,
                        output_tokens: row.output_tokens as u64,
                        cached_input_tokens: row.cached_input_tokens as u64,
                    },
                )
                .expect("priced"),
        );
        assert_eq!(row.table_cost_usd, table, "table cost of {row:?}");
        // OpenRouter reports its own cost; it is the recorded one.
        let reported = row
            .provider_cost_usd
            .expect("openrouter reports usage.cost");
        assert_eq!(row.cost_usd, reported);
        total += row.cost_usd;
    }
    let cost_data = &result["cost_data"];
    assert_eq!(cost_data["provider"], "openrouter");
    assert_eq!(cost_data["model"], "openai/gpt-4o-mini");
    let tokens: i64 = usage
        .iter()
        .map(|u| i64::from(u.input_tokens + u.output_tokens))
        .sum();
    assert_eq!(cost_data["total_tokens"], tokens);
    assert_eq!(
        Decimal::from_str(&cost_data["cost_usd"].to_string()).expect("decimal"),
        total.normalize()
    );
    assert_eq!(cost_data["steps"].as_array().expect("per-step").len(), 2);

    // The webhook: signed per Standard Webhooks, verified with the official crate.
    let delivered = wait_until("the webhook", Duration::from_secs(20), || async {
        app.receiver.requests().into_iter().next()
    })
    .await;
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let value = delivered
            .header(name)
            .unwrap_or_else(|| panic!("{name} header"));
        headers.insert(name, value.parse().expect("header value"));
    }
    standardwebhooks::Webhook::new(WEBHOOK_SECRET)
        .expect("secret")
        .verify(&delivered.body, &headers)
        .expect("signature verifies");
    let payload = delivered.json();
    assert_eq!(payload["type"], "workflow.completed");
    assert_eq!(payload["job_id"], job_id);
    assert_eq!(payload["status"], "completed");
    assert_eq!(payload["result"]["score"], 80);
    assert_eq!(payload["cost_data"]["total_tokens"], tokens);

    // The attempt is recorded.
    let deliveries = llmflow_core::db::deliveries::of_job(&mut conn, job_uuid)
        .await
        .expect("deliveries");
    assert_eq!(deliveries.len(), 1);
    let delivered_row = wait_until("the delivery row", Duration::from_secs(10), || async {
        let mut conn = app.conn().await;
        let rows = llmflow_core::db::deliveries::of_job(&mut conn, job_uuid)
            .await
            .ok()?;
        rows.into_iter().find(|d| d.status == "delivered")
    })
    .await;
    let attempts = llmflow_testkit::queries::attempts_of(&mut conn, delivered_row.id)
        .await
        .expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status_code, Some(200));
    assert!(attempts[0].success);
    assert_eq!(
        delivered_row.webhook_id,
        delivered.header("webhook-id").expect("id")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_score_takes_the_template_branch() {
    let app = TestApp::spawn().await;
    let job_id = app
        .submit_bench("Nothing much.\nEMULATOR_SCORE: 20", false)
        .await;
    let status = app
        .wait_for_status(&job_id, "completed", Duration::from_secs(30))
        .await;
    let result = &status["result"];
    assert_eq!(result["branch"], "else");
    assert!(result.get("refined").is_none());
    let fallback = result["fallback"].as_str().expect("fallback text");
    assert!(fallback.starts_with("Low-priority (20): "), "{fallback}");
    assert_eq!(app.emulator.stats().calls, 1);
    assert_eq!(
        result["cost_data"]["steps"].as_array().map(Vec::len),
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_is_recorded_not_lost() {
    let app = TestApp::spawn().await;
    app.receiver.reply_with(&[500]);
    let job_id = app
        .submit_bench("Retry me.\nEMULATOR_SCORE: 20", true)
        .await;
    app.wait_for_status(&job_id, "completed", Duration::from_secs(30))
        .await;
    let received = wait_until("two webhook attempts", Duration::from_secs(30), || async {
        let got = app.receiver.requests();
        (got.len() >= 2).then_some(got)
    })
    .await;
    assert_eq!(
        received[0].header("webhook-id"),
        received[1].header("webhook-id"),
        "same id on retry"
    );
    let job_uuid: uuid::Uuid = job_id.parse().expect("uuid");
    let attempts = wait_until("two attempt rows", Duration::from_secs(10), || async {
        let mut conn = app.conn().await;
        let delivery = llmflow_core::db::deliveries::of_job(&mut conn, job_uuid)
            .await
            .ok()?
            .pop()?;
        let attempts = llmflow_testkit::queries::attempts_of(&mut conn, delivery.id)
            .await
            .ok()?;
        (attempts.len() == 2 && delivery.status == "delivered").then_some(attempts)
    })
    .await;
    assert_eq!(attempts[0].status_code, Some(500));
    assert_eq!(attempts[0].error_class.as_deref(), Some("http"));
    assert!(!attempts[0].success);
    assert_eq!(attempts[1].status_code, Some(200));
}
