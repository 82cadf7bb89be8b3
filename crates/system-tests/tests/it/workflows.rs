//! The workflow language end to end: parallel branches (concurrent, fail-fast or collect-all),
//! external APIs (Google Places through the emulator with its cache, a generic HTTP call with an
//! allow-listed env secret), error modes and timeouts in real jobs.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use llmflow_core::db::jobs;
use llmflow_core::db::models::StepRow;
use llmflow_emulator::ScriptStep;

use crate::support::{wait_until, Receiver, TestApp};

const MODEL: &str = "openai/gpt-4o-mini";

/// A folder holding the given workflow definitions (one file each).
fn workflows_dir(definitions: &[Value]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llmflow-wf-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("workflows dir");
    for definition in definitions {
        let name = definition["name"].as_str().expect("name");
        std::fs::write(
            dir.join(format!("{name}.json")),
            serde_json::to_vec_pretty(definition).expect("json"),
        )
        .expect("write workflow");
    }
    dir
}

async fn spawn(definitions: &[Value], extra: Value) -> TestApp {
    let mut overrides = json!({"workflows_dir": workflows_dir(definitions)});
    if let (Some(o), Some(extra)) = (overrides.as_object_mut(), extra.as_object()) {
        o.extend(extra.clone());
    }
    TestApp::spawn_with(overrides).await
}

async fn submit(app: &TestApp, name: &str, input: Value) -> String {
    let response = app
        .submit(json!({"workflow_name": name, "input_data": input}))
        .await;
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
    let body: Value = response.json().await.expect("json");
    body["job_id"].as_str().expect("job_id").to_owned()
}

async fn finished(app: &TestApp, job_id: &str) -> Value {
    wait_until("the job to finish", Duration::from_secs(30), || async {
        let doc = app.status(job_id).await;
        matches!(
            doc["status"].as_str(),
            Some("completed" | "failed" | "cancelled")
        )
        .then_some(doc)
    })
    .await
}

async fn step_rows(app: &TestApp, job_id: &str) -> Vec<StepRow> {
    let mut conn = app.conn().await;
    jobs::job_steps(&mut conn, job_id.parse().expect("uuid"))
        .await
        .expect("steps")
}

fn llm(id: &str, prompt: &str) -> Value {
    json!({"id": id, "type": "llm", "model": MODEL, "prompt": prompt, "max_tokens": 40})
}

fn template(id: &str, text: &str) -> Value {
    json!({"id": id, "type": "transform", "operation": "template", "template": text})
}

/// Two branches: an LLM call on the left; on the right a Places search, then `failing`. With
/// the emulator's rendezvous at 2 the search is answered only once the LLM call is in flight,
/// so the right branch always fails while the left one's call is running.
fn fan_out(name: &str, fail_fast: bool, failing: Value) -> Value {
    json!({
        "name": name,
        "steps": [
            {"id": "fan", "type": "parallel", "fail_fast": fail_fast, "branches": {
                "left": [llm("left_llm", "Left: ${input.text}")],
                "right": [
                    {"id": "near", "type": "external_api", "service": "google_places",
                     "query": "hospitals in ${input.text}", "max_results": 1},
                    failing
                ]
            }},
            template("after", "{{ steps.fan.output | tojson }}")
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_llm_branches_run_concurrently_and_are_committed_each() {
    let definition = json!({
        "name": "fan_llm",
        "steps": [
            template("intro", "Topic: ${input.text}"),
            {"id": "fan", "type": "parallel", "branches": {
                "pros": [llm("pros_llm", "${steps.intro.output}: list pros\nEMULATOR_REPLY: pros!")],
                "cons": [
                    llm("cons_llm", "${steps.intro.output}: list cons\nEMULATOR_REPLY: cons!"),
                    template("cons_upper", "{{ steps.cons_llm.output | upper }}")
                ]
            }},
            template("joined", "${steps.pros_llm.output} / ${steps.cons_upper.output}")
        ],
        "output": {"fan": "${steps.fan.output}", "joined": "${steps.joined.output}"}
    });
    let app = spawn(&[definition], json!({})).await;
    // Neither branch's call is answered until both are in flight.
    app.emulator.set_rendezvous(2);
    let job_id = submit(&app, "fan_llm", json!({"text": "tabs"})).await;
    let doc = finished(&app, &job_id).await;
    assert_eq!(doc["status"], "completed", "{doc:#}");
    let result = &doc["result"];
    assert_eq!(result["fan"], json!({"pros": "pros!", "cons": "CONS!"}));
    assert_eq!(result["joined"], "pros! / CONS!");
    let stats = app.emulator.stats();
    assert_eq!(stats.calls, 2);
    assert_eq!(
        stats.max_in_flight, 2,
        "both branches' calls were in flight together"
    );
    let rows = step_rows(&app, &job_id).await;
    let ids: Vec<&str> = rows.iter().map(|r| r.step_id.as_str()).collect();
    for id in [
        "intro",
        "pros_llm",
        "cons_llm",
        "cons_upper",
        "fan",
        "joined",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    assert_eq!(
        result["cost_data"]["steps"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(doc["progress"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_fast_cancels_the_other_branches_and_collect_all_reports_each() {
    // The right branch fails (printing an undefined value is an error) once the left one's
    // LLM call is in flight; that call hangs until dropped.
    let failing = template("boom", "${input.missing}");
    let app = spawn(
        &[
            fan_out("fan_fast", true, failing.clone()),
            fan_out("fan_all", false, failing),
        ],
        json!({}),
    )
    .await;
    app.emulator.set_rendezvous(2);
    app.emulator.push_script(vec![ScriptStep::Hang]);
    let job_id = submit(&app, "fan_fast", json!({"text": "x"})).await;
    let doc = finished(&app, &job_id).await;
    assert_eq!(doc["status"], "failed", "{doc:#}");
    let error = doc["error_message"].as_str().unwrap_or_default();
    assert!(error.contains("branch `right` failed"), "{error}");
    wait_until(
        "the hanging call to be dropped",
        Duration::from_secs(10),
        || async { (app.emulator.stats().dropped == 1).then_some(()) },
    )
    .await;

    let job_id = submit(&app, "fan_all", json!({"text": "x"})).await;
    let doc = finished(&app, &job_id).await;
    assert_eq!(doc["status"], "completed", "{doc:#}");
    let fan = &doc["result"]["fan"];
    assert!(
        fan["left"]
            .as_str()
            .is_some_and(|s| s.starts_with("Emulated reply")),
        "{fan}"
    );
    let right_error = fan["right"]["error"].as_str().unwrap_or_default();
    assert!(right_error.contains("boom"), "{fan}");
    let rows = step_rows(&app, &job_id).await;
    let boom = rows.iter().find(|r| r.step_id == "boom").expect("boom row");
    assert_eq!(boom.status, "failed");
    assert_eq!(boom.error_kind.as_deref(), Some("transform"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_places_answers_are_cached_across_jobs() {
    let definition = json!({
        "name": "hospitals",
        "input_schema": {"type": "object", "required": ["city"]},
        "steps": [
            {"id": "search", "type": "external_api", "service": "google_places",
             "query": "hospitals in ${input.city}", "max_results": 2},
            {"id": "names", "type": "transform", "input": "${steps.search.output.places}",
             "operation": "map", "template": "{{ item.displayName.text }}"}
        ],
        "output": {"names": "${steps.names.output}", "places": "${steps.search.output.places}"}
    });
    let app = spawn(&[definition], json!({})).await;
    let first = submit(&app, "hospitals", json!({"city": "Lyon"})).await;
    let first = finished(&app, &first).await;
    assert_eq!(first["status"], "completed", "{first:#}");
    let names = first["result"]["names"].as_array().expect("names");
    assert_eq!(names.len(), 2);
    assert!(
        names
            .iter()
            .all(|n| n.as_str().is_some_and(|n| n.contains("Hospitals"))),
        "{names:?}"
    );
    assert!(first["result"]["places"][0]["formattedAddress"]
        .as_str()
        .is_some_and(|a| a.ends_with("Lyon")));

    let second = submit(&app, "hospitals", json!({"city": "Lyon"})).await;
    let second = finished(&app, &second).await;
    assert_eq!(second["status"], "completed", "{second:#}");
    assert_eq!(second["result"]["places"], first["result"]["places"]);
    assert_eq!(
        app.emulator.stats().places_calls,
        1,
        "the second job was answered from the cache"
    );

    #[derive(diesel::QueryableByName)]
    struct Cached {
        #[diesel(sql_type = diesel::sql_types::Text)]
        service: String,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        fresh: bool,
    }
    let mut conn = app.conn().await;
    let rows: Vec<Cached> = diesel_async::RunQueryDsl::load(
        diesel::sql_query(
            "SELECT service, expires_at > now() + interval '50 minutes' AS fresh FROM llm_external_api_cache",
        ),
        &mut conn,
    )
    .await
    .expect("cache rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].service, "google_places");
    assert!(rows[0].fresh, "default TTL of an hour");

    let other = submit(&app, "hospitals", json!({"city": "Nantes"})).await;
    assert_eq!(finished(&app, &other).await["status"], "completed");
    assert_eq!(
        app.emulator.stats().places_calls,
        2,
        "another query is another call"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_http_calls_send_allow_listed_secrets_and_report_statuses() {
    let partner = Receiver::spawn().await;
    let base = partner.url.trim_end_matches("/hooks/llmflow").to_owned();
    let definition = json!({
        "name": "partner",
        "steps": [
            {"id": "post", "type": "external_api", "method": "POST",
             "url": format!("{base}/items/${{input.id}}"),
             "query": {"lang": "${input.lang}"},
             "headers": {"Authorization": "Bearer ${env.PARTNER_TOKEN}", "X-Trace": "job-${input.id}"},
             "body": {"id": "${input.id}", "tags": ["a", "b"]}},
            {"id": "missing", "type": "external_api", "url": format!("{base}/missing"),
             "on_error": {"mode": "continue"}}
        ]
    });
    let app = spawn(
        &[definition],
        json!({"workflow_env_allowlist": "PARTNER_TOKEN", "workflow_env": {"PARTNER_TOKEN": "tok-123"}}),
    )
    .await;
    partner.reply_with(&[200, 404]);
    let job_id = submit(&app, "partner", json!({"id": 7, "lang": "fr"})).await;
    let doc = finished(&app, &job_id).await;
    assert_eq!(doc["status"], "completed", "{doc:#}");
    let post = &doc["result"]["post"];
    assert_eq!(
        post["status"], 200,
        "a body that is not JSON is wrapped: {post}"
    );
    assert_eq!(post["text"], "ok", "{post}");
    assert_eq!(doc["result"]["missing"], Value::Null);
    let requests = partner.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].header("authorization"), Some("Bearer tok-123"));
    assert_eq!(requests[0].header("x-trace"), Some("job-7"));
    assert_eq!(requests[0].json(), json!({"id": 7, "tags": ["a", "b"]}));
    let rows = step_rows(&app, &job_id).await;
    let missing = rows.iter().find(|r| r.step_id == "missing").expect("row");
    assert_eq!(missing.error_kind.as_deref(), Some("http"));
    assert!(
        missing
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains("HTTP 404")),
        "{missing:?}"
    );
    // The secret is nowhere in what the job recorded.
    let recorded = serde_json::to_string(&doc).expect("json");
    assert!(!recorded.contains("tok-123"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_modes_and_timeouts_in_a_real_job() {
    let definition = json!({
        "name": "modes",
        "steps": [
            {"id": "flaky", "type": "llm", "model": MODEL, "prompt": "EMULATOR_REPLY: steady",
             "on_error": {"mode": "retry", "attempts": 3, "backoff_ms": 10}},
            {"id": "broken", "type": "transform", "operation": "template",
             "template": "${input.missing}", "on_error": {"mode": "continue"}},
            {"id": "fallback", "type": "transform", "operation": "template",
             "template": "${input.missing}", "on_error": {"mode": "default", "value": {"n": "a"}}},
            {"id": "slow", "type": "llm", "model": MODEL, "prompt": "slow", "timeout_ms": 300,
             "on_error": {"mode": "default", "value": "too slow"}}
        ]
    });
    let failing = json!({
        "name": "times_out",
        "steps": [{"id": "slow", "type": "llm", "model": MODEL, "prompt": "slow", "timeout_ms": 300}]
    });
    // Provider-level retries off, so the 500 reaches the step and its `on_error: retry` policy.
    let app = spawn(&[definition, failing], json!({"llm_retry_max_attempts": 1})).await;
    app.emulator.push_script(vec![
        ScriptStep::Status {
            status: 500,
            retry_after: None,
            body: None,
        },
        ScriptStep::Ok,
        ScriptStep::Hang,
        ScriptStep::Hang,
    ]);
    let job_id = submit(&app, "modes", json!({})).await;
    let doc = finished(&app, &job_id).await;
    assert_eq!(doc["status"], "completed", "{doc:#}");
    let result = &doc["result"];
    assert_eq!(result["flaky"], "steady");
    assert_eq!(result["broken"], Value::Null);
    assert_eq!(result["fallback"], json!({"n": "a"}));
    assert_eq!(result["slow"], "too slow");
    let rows = step_rows(&app, &job_id).await;
    let row = |id: &str| rows.iter().find(|r| r.step_id == id).expect("row").clone();
    assert_eq!(row("flaky").attempts, 2);
    assert_eq!(row("flaky").status, "completed");
    assert_eq!(row("broken").status, "failed");
    assert_eq!(row("fallback").status, "failed");
    assert_eq!(row("slow").error_kind.as_deref(), Some("timeout"));
    // One usage row: the attempt that failed with a 500 and the timed-out call billed nothing.
    assert_eq!(
        result["cost_data"]["steps"].as_array().map(Vec::len),
        Some(1)
    );

    let job_id = submit(&app, "times_out", json!({})).await;
    let doc = finished(&app, &job_id).await;
    assert_eq!(doc["status"], "failed");
    let error = doc["error_message"].as_str().unwrap_or_default();
    assert!(
        error.contains("timeout: took longer than 300 ms"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_city_guide_example_runs_end_to_end() {
    let app = TestApp::spawn().await;
    // Neither the Places call nor the LLM call is answered until both are in flight.
    app.emulator.set_rendezvous(2);
    let job_id = submit(&app, "city_guide", json!({"city": "Lyon"})).await;
    let doc = finished(&app, &job_id).await;
    assert_eq!(doc["status"], "completed", "{doc:#}");
    let result = &doc["result"];
    let hospitals = result["card"]["hospitals"].as_array().expect("hospitals");
    assert!(!hospitals.is_empty(), "{result:#}");
    let ratings: Vec<f64> = hospitals
        .iter()
        .filter_map(|h| h["rating"].as_f64())
        .collect();
    assert!(
        ratings.windows(2).all(|w| w[0] >= w[1]),
        "sorted by rating: {ratings:?}"
    );
    assert!(
        result["headline"]
            .as_str()
            .is_some_and(|h| h.starts_with("Hospitals in Lyon: ")),
        "{result:#}"
    );
    assert!(
        result.get("headline_none").is_none(),
        "the branch not taken is left out"
    );
    // The guide's Markdown has the sections its prompt lists, parsed into JSON.
    let guide = &result["card"]["guide"];
    let numbers = guide["emergency_numbers"].as_array().expect("a table");
    assert!(numbers.len() >= 3, "{guide:#}");
    assert!(
        numbers
            .iter()
            .all(|row| row["Service"].as_str().is_some_and(|s| !s.is_empty())
                && row["Number"].as_str().is_some_and(|n| n.starts_with('+'))),
        "{guide:#}"
    );
    assert_eq!(
        guide["what_to_do"].as_array().map(Vec::len),
        Some(5),
        "{guide:#}"
    );
    assert!(guide["notes"]["content"].is_string(), "{guide:#}");
    assert!(
        !result["card"]["numbers"]
            .as_array()
            .expect("numbers")
            .is_empty(),
        "phone numbers were found in the guide: {result:#}"
    );
    assert_eq!(result["best"], hospitals[0]);
    let stats = app.emulator.stats();
    assert_eq!((stats.places_calls, stats.calls), (1, 1));
    assert_eq!(
        stats.max_in_flight, 2,
        "places and the LLM were called concurrently"
    );
}
