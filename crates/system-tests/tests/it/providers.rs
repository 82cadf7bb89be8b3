//! LLM providers end to end: usage rows name who answered (fallbacks), structured output is
//! repaired and both calls billed, cost comes from the table or from OpenRouter's `usage.cost`,
//! and the shared concurrency limit holds across two worker processes.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use diesel_async::RunQueryDsl;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use llmflow_core::pricing::{round_usd, PriceTable};
use llmflow_emulator::{openrouter_cost, ScriptStep};

use crate::processes::WorkerProcess;
use crate::support::{TestApp, API_KEY};

/// (provider, model) for each provider, as the emulator serves them.
const PROVIDERS: [(&str, &str); 3] = [
    ("openrouter", "openai/gpt-4o-mini"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-3-5-sonnet-20241022"),
];

/// A folder of workflow files for one test.
fn workflows(files: &[(&str, Value)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llmflow-wf-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("workflow dir");
    for (name, definition) in files {
        std::fs::write(
            dir.join(format!("{name}.json")),
            serde_json::to_vec_pretty(definition).expect("json"),
        )
        .expect("write workflow");
    }
    dir
}

fn one_step(name: &str, step: Value) -> (String, Value) {
    (
        name.to_owned(),
        json!({"name": name, "steps": [step], "output": {"answer": "${steps.ask.output}"}}),
    )
}

async fn submit(app: &TestApp, workflow: &str) -> String {
    let response = app
        .submit(json!({"workflow_name": workflow, "input_data": {}}))
        .await;
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
    let body: Value = response.json().await.expect("json");
    body["job_id"].as_str().expect("job_id").to_owned()
}

async fn usage(app: &TestApp, job_id: &str) -> Vec<llmflow_core::db::models::UsageRow> {
    let mut conn = app.conn().await;
    llmflow_core::db::jobs::job_usage(&mut conn, job_id.parse().expect("uuid"))
        .await
        .expect("usage")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_answers_and_the_usage_row_names_it() {
    let (name, definition) = one_step(
        "fallback_demo",
        json!({"id": "ask", "type": "llm", "provider": "openai", "model": "gpt-4o",
               "prompt": "EMULATOR_REPLY: from the fallback",
               "fallbacks": [{"provider": "anthropic", "model": "claude-3-5-sonnet-20241022"}]}),
    );
    let dir = workflows(&[(&name, definition)]);
    let app = TestApp::spawn_with(json!({"workflows_dir": dir})).await;
    // OpenAI refuses the key: no retry, straight to the fallback.
    app.emulator.push_script(vec![ScriptStep::Status {
        status: 401,
        retry_after: None,
        body: None,
    }]);
    let job_id = submit(&app, &name).await;
    let status = app
        .wait_for_status(&job_id, "completed", Duration::from_secs(30))
        .await;
    assert_eq!(status["result"]["answer"], "from the fallback", "{status}");
    let rows = usage(&app, &job_id).await;
    assert_eq!(rows.len(), 1, "the failed call cost nothing");
    assert_eq!(rows[0].provider, "anthropic");
    assert_eq!(rows[0].model, "claude-3-5-sonnet-20241022");
    let stats = app.emulator.stats();
    assert_eq!(stats.calls_by_model.get("gpt-4o"), Some(&1));
    assert_eq!(
        stats.calls_by_model.get("claude-3-5-sonnet-20241022"),
        Some(&1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_output_is_repaired_and_the_repair_is_billed_for_each_provider() {
    let schema = json!({"type": "object", "required": ["summary", "score"],
                        "properties": {"summary": {"type": "string"}, "score": {"type": "integer"}}});
    let files: Vec<(String, Value)> = PROVIDERS
        .iter()
        .map(|(provider, model)| {
            one_step(
                &format!("repair_{provider}"),
                json!({"id": "ask", "type": "llm", "provider": provider, "model": model,
                       "system": "Answer in JSON.", "prompt": "Rate this text.",
                       "response_format": "json", "json_schema": schema}),
            )
        })
        .collect();
    let files: Vec<(&str, Value)> = files.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
    let dir = workflows(&files);
    let app = TestApp::spawn_with(json!({"workflows_dir": dir})).await;
    for (provider, model) in PROVIDERS {
        app.emulator.reset();
        // The first answer is not JSON; the repair call gets the normal (valid) answer.
        app.emulator.push_script(vec![ScriptStep::Content(
            "Sure! Here you go: score=7".into(),
        )]);
        let job_id = submit(&app, &format!("repair_{provider}")).await;
        let status = app
            .wait_for_status(&job_id, "completed", Duration::from_secs(30))
            .await;
        let answer = &status["result"]["answer"];
        assert!(
            answer["summary"].is_string() && answer["score"].is_i64(),
            "{provider}: {status}"
        );
        assert_eq!(app.emulator.stats().calls, 2, "{provider}: one repair call");
        let rows = usage(&app, &job_id).await;
        assert_eq!(rows.len(), 2, "{provider}: both calls recorded");
        for row in &rows {
            assert_eq!(row.provider, provider);
            assert_eq!(row.model, model);
            assert!(row.input_tokens > 0 && row.output_tokens > 0);
        }
        assert!(
            rows[1].input_tokens > rows[0].input_tokens,
            "{provider}: the repair call carries the first answer and the errors"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_comes_from_the_table_or_from_openrouter_with_the_table_beside_it() {
    let files: Vec<(String, Value)> = PROVIDERS
        .iter()
        .map(|(provider, model)| {
            one_step(
                &format!("cost_{provider}"),
                json!({"id": "ask", "type": "llm", "provider": provider, "model": model,
                       "prompt": "Summarise the quarterly report in one line.", "stream": true}),
            )
        })
        .collect();
    let files: Vec<(&str, Value)> = files.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
    let dir = workflows(&files);
    let app = TestApp::spawn_with(json!({"workflows_dir": dir})).await;
    let pricing = PriceTable::built_in().expect("pricing");
    for (provider, model) in PROVIDERS {
        let job_id = submit(&app, &format!("cost_{provider}")).await;
        app.wait_for_status(&job_id, "completed", Duration::from_secs(30))
            .await;
        let rows = usage(&app, &job_id).await;
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert!(!row.usage_estimated, "{provider}: streamed usage recorded");
        let tokens = llmflow_core::pricing::TokenUsage {
            input_tokens: u64::try_from(row.input_tokens).expect("tokens"),
            output_tokens: u64::try_from(row.output_tokens).expect("tokens"),
            cached_input_tokens: u64::try_from(row.cached_input_tokens).expect("tokens"),
        };
        let table = round_usd(pricing.cost(model, tokens).expect("priced"));
        assert_eq!(row.table_cost_usd, table, "{provider}");
        if provider == "openrouter" {
            let reported = openrouter_cost(model, tokens.input_tokens, tokens.output_tokens);
            let reported = round_usd(Decimal::from_str(&reported.to_string()).expect("decimal"));
            assert_eq!(row.provider_cost_usd, Some(reported));
            assert_eq!(row.cost_usd, reported, "OpenRouter's figure is the cost");
        } else {
            assert_eq!(row.provider_cost_usd, None, "{provider}");
            assert_eq!(row.cost_usd, table, "{provider}");
        }
    }
}

/// A worker process with the test's settings; killed when dropped.
/// Waits until every one of these worker processes is in the worker registry.
async fn wait_registered(app: &TestApp, pids: &[u32]) {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let pids: Vec<i32> = pids
        .iter()
        .map(|&p| i32::try_from(p).expect("pid"))
        .collect();
    let host = llmflow_core::db::workers::host_name();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut conn = app.conn().await;
    loop {
        let count: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM llm_workers WHERE kind = 'worker' AND host = $1 \
             AND pid = ANY($2)",
        )
        .bind::<diesel::sql_types::Text, _>(&host)
        .bind::<diesel::sql_types::Array<diesel::sql_types::Integer>, _>(&pids)
        .get_result(&mut conn)
        .await
        .expect("registry");
        if usize::try_from(count.n).ok() == Some(pids.len()) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "worker processes {pids:?} did not register"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A worker process with the provider limits `limits`, six jobs at a time.
fn spawn_worker(app: &TestApp, limits: &str) -> WorkerProcess {
    WorkerProcess::spawn(
        app,
        &[
            ("LLM_LIMITS", limits),
            ("WORKER_CONCURRENCY", "6"),
            ("DATABASE_POOL_SIZE", "4"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_holds_across_two_worker_processes() {
    let (name, definition) = one_step(
        "limited",
        json!({"id": "ask", "type": "llm", "provider": "openrouter", "model": "openai/gpt-4o-mini",
               "prompt": "Say something about job {{ input.n }}."}),
    );
    let dir = workflows(&[(&name, definition)]);
    let limits = r#"{"openrouter": {"max_concurrency": 2}}"#;
    // API only: the two worker processes are the only consumers.
    let app = TestApp::spawn_api(json!({"workflows_dir": dir, "llm_limits": limits})).await;
    app.emulator.set_latency(Duration::from_millis(250));
    // No answer until two calls are in flight at once: the limit is reached, not just allowed.
    app.emulator.set_rendezvous(2);
    let a = spawn_worker(&app, limits);
    let b = spawn_worker(&app, limits);
    // Both processes are consuming before the first job goes in, however long each takes to
    // start: each registers in the worker registry when its consumers start.
    wait_registered(&app, &[a.pid(), b.pid()]).await;
    let mut jobs = Vec::new();
    for n in 0..12 {
        let response = app
            .http
            .post(app.url("/workflow"))
            .header("X-API-Key", API_KEY)
            .json(&json!({"workflow_name": name, "input_data": {"n": n}}))
            .send()
            .await
            .expect("submit");
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.expect("json");
        jobs.push(body["job_id"].as_str().expect("job_id").to_owned());
    }
    for job_id in &jobs {
        app.wait_for_status(job_id, "completed", Duration::from_secs(90))
            .await;
    }
    let stats = app.emulator.stats();
    assert_eq!(stats.calls, 12);
    assert!(
        stats.max_in_flight <= 2,
        "the emulator saw {} calls at once with a limit of 2",
        stats.max_in_flight
    );
    assert_eq!(stats.max_in_flight, 2, "the limit was reached");

    #[derive(diesel::QueryableByName)]
    struct Workers {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.conn().await;
    let workers: Workers = diesel::sql_query(
        "SELECT count(DISTINCT claimed_by) AS n FROM llm_workflow_jobs WHERE status = 'completed'",
    )
    .get_result(&mut conn)
    .await
    .expect("claims");
    assert_eq!(workers.n, 2, "both worker processes ran jobs");
}
