//! OTLP traces of one real job, received by a real OTLP/HTTP endpoint in the test (the
//! collector's own protobuf types behind a small actix server). A test binary of its own: the
//! tracing subscriber is one per process, and the span exporter is installed here, through the
//! services' own `telemetry::init_service`, before the services start.

#[path = "../it/support.rs"]
#[allow(unused_imports, dead_code)]
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use figment::providers::Serialized;
use figment::Figment;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Span};
use prost::Message;
use serde_json::json;

use llmflow_core::config::Config;
use llmflow_core::db::schema::{llm_provider_usage as usage, llm_workflow_jobs as jobs};

use support::{TestApp, API_KEY};

/// A span as received, with the `service.name` of the resource it came with.
#[derive(Clone, Debug)]
struct Received {
    service: String,
    span: Span,
}

/// An OTLP/HTTP receiver: `POST /v1/traces` with a protobuf `ExportTraceServiceRequest`.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
}

impl Collector {
    /// Serves on a free local port; answers the base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    fn spawn(&self) -> String {
        let (listener, addr) = llmflow_testkit::local_listener();
        let collector = self.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(collector.clone()))
                .route("/v1/traces", web::post().to(export))
        })
        .workers(1)
        .listen(listener)
        .expect("collector listens")
        .run();
        tokio::spawn(server);
        format!("http://{addr}")
    }

    fn spans(&self) -> Vec<Received> {
        self.spans.lock().expect("spans").clone()
    }
}

async fn export(
    collector: web::Data<Collector>,
    req: actix_web::HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let kind = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    if kind != Some("application/x-protobuf") {
        return HttpResponse::UnsupportedMediaType().finish();
    }
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return HttpResponse::BadRequest().finish();
    };
    let mut spans = collector.spans.lock().expect("spans");
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .as_ref()
            .and_then(|r| string_attr(&r.attributes, "service.name"))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            spans.extend(scope.spans.into_iter().map(|span| Received {
                service: service.clone(),
                span,
            }));
        }
    }
    // An empty `ExportTraceServiceResponse`: everything accepted.
    HttpResponse::Ok()
        .content_type("application/x-protobuf")
        .finish()
}

fn value<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn string_attr(attributes: &[KeyValue], key: &str) -> Option<String> {
    match value(attributes, key)? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn int_attr(attributes: &[KeyValue], key: &str) -> Option<i64> {
    match value(attributes, key)? {
        any_value::Value::IntValue(n) => Some(*n),
        _ => None,
    }
}

fn strings_attr(attributes: &[KeyValue], key: &str) -> Option<Vec<String>> {
    match value(attributes, key)? {
        any_value::Value::ArrayValue(array) => Some(
            array
                .values
                .iter()
                .filter_map(|AnyValue { value }| match value {
                    Some(any_value::Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The caller's own trace: the job must join it.
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_job_is_one_trace_from_submit_to_webhook() {
    let collector = Collector::default();
    let endpoint = collector.spawn();
    let settings = Config::from_overrides(Figment::from(Serialized::defaults(json!({
        "database_url": "postgres://telemetry-only",
        "redis_url": "redis://telemetry-only",
        "log_format": "pretty",
        "otel_exporter_otlp_endpoint": endpoint,
        "otel_service_name": "llmflow-system-test",
    }))))
    .expect("telemetry settings");
    let telemetry =
        llmflow_core::telemetry::init_service(&settings, "llmflow-api").expect("telemetry starts");
    assert!(telemetry.exports_traces());

    let app = TestApp::spawn().await;
    let response = app
        .http
        .post(app.url("/workflow"))
        .header("X-API-Key", API_KEY)
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .json(&json!({
            "workflow_name": "bench_pipeline",
            "input_data": {"text": "traces of one job"},
            "webhook_url": app.receiver.url,
        }))
        .send()
        .await
        .expect("submit");
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.expect("json");
    let job_id = body["job_id"].as_str().expect("job_id").to_owned();
    app.wait_for_status(&job_id, "completed", Duration::from_secs(30))
        .await;
    support::wait_until("the webhook", Duration::from_secs(30), || async {
        (!app.receiver.requests().is_empty()).then_some(())
    })
    .await;

    // Every span of the job's trace, once the webhook attempt's has arrived.
    let spans = support::wait_until("the job's spans", Duration::from_secs(30), || async {
        telemetry.flush().await;
        let spans: Vec<Received> = collector
            .spans()
            .into_iter()
            .filter(|r| hex(&r.span.trace_id) == CALLER_TRACE)
            .collect();
        spans
            .iter()
            .any(|r| r.span.name == "webhook attempt")
            .then_some(spans)
    })
    .await;
    let names: Vec<&str> = spans.iter().map(|r| r.span.name.as_str()).collect();
    for r in &spans {
        assert_eq!(r.service, "llmflow-system-test", "{}", r.span.name);
    }
    let one = |name: &str| -> &Span {
        let found: Vec<&Span> = spans
            .iter()
            .map(|r| &r.span)
            .filter(|s| s.name == name)
            .collect();
        assert_eq!(found.len(), 1, "one `{name}` span in {names:?}");
        found[0]
    };
    let step = |id: &str| -> &Span {
        spans
            .iter()
            .map(|r| &r.span)
            .find(|s| {
                s.name == "step" && string_attr(&s.attributes, "step_id").as_deref() == Some(id)
            })
            .unwrap_or_else(|| panic!("step `{id}` in {names:?}"))
    };

    // The submit continues the caller's trace; the job run is its child.
    let submit = one("submit");
    assert_eq!(hex(&submit.parent_span_id), CALLER_SPAN);
    assert_eq!(submit.kind, SpanKind::Server as i32);
    assert_eq!(
        string_attr(&submit.attributes, "job_id").as_deref(),
        Some(job_id.as_str())
    );
    assert_eq!(
        string_attr(&submit.attributes, "workflow").as_deref(),
        Some("bench_pipeline")
    );
    let job = one("job");
    assert_eq!(job.parent_span_id, submit.span_id, "job under submit");
    assert_eq!(job.kind, SpanKind::Consumer as i32);
    assert_eq!(
        string_attr(&job.attributes, "job_id").as_deref(),
        Some(job_id.as_str())
    );

    // Each step under the job; the branch's step under the conditional.
    for id in ["analyze", "extract", "route"] {
        assert_eq!(step(id).parent_span_id, job.span_id, "step {id} under job");
    }
    let branch = spans
        .iter()
        .map(|r| &r.span)
        .find(|s| {
            matches!(
                string_attr(&s.attributes, "step_id").as_deref(),
                Some("refine" | "fallback")
            )
        })
        .expect("the branch's step");
    assert_eq!(branch.parent_span_id, step("route").span_id);
    let llm_type = string_attr(&step("analyze").attributes, "step_type");
    assert_eq!(llm_type.as_deref(), Some("llm"));

    // The LLM call of `analyze`, with the GenAI attributes, matching its usage row.
    let analyze = step("analyze");
    let call = spans
        .iter()
        .map(|r| &r.span)
        .find(|s| s.name == "chat openai/gpt-4o-mini" && s.parent_span_id == analyze.span_id)
        .unwrap_or_else(|| panic!("the LLM call under `analyze` in {names:?}"));
    assert_eq!(call.kind, SpanKind::Client as i32);
    let attrs = &call.attributes;
    assert_eq!(
        string_attr(attrs, "gen_ai.operation.name").as_deref(),
        Some("chat")
    );
    assert_eq!(
        string_attr(attrs, "gen_ai.provider.name").as_deref(),
        Some("openrouter")
    );
    assert_eq!(
        string_attr(attrs, "gen_ai.request.model").as_deref(),
        Some("openai/gpt-4o-mini")
    );
    let mut conn = app.conn().await;
    let job_uuid: uuid::Uuid = job_id.parse().expect("uuid");
    let (input, output): (i32, i32) = usage::table
        .filter(usage::job_id.eq(job_uuid))
        .filter(usage::step_id.eq("analyze"))
        .select((usage::input_tokens, usage::output_tokens))
        .first(&mut conn)
        .await
        .expect("usage row of analyze");
    assert_eq!(
        int_attr(attrs, "gen_ai.usage.input_tokens"),
        Some(i64::from(input))
    );
    assert_eq!(
        int_attr(attrs, "gen_ai.usage.output_tokens"),
        Some(i64::from(output))
    );
    assert_eq!(
        strings_attr(attrs, "gen_ai.response.finish_reasons"),
        Some(vec!["stop".to_owned()])
    );
    assert!(string_attr(attrs, "gen_ai.response.model").is_some());

    // The webhook attempt joins the submit's trace, from the job row.
    let attempt = one("webhook attempt");
    assert_eq!(
        attempt.parent_span_id, submit.span_id,
        "attempt under submit"
    );
    assert_eq!(attempt.kind, SpanKind::Client as i32);
    assert_eq!(
        int_attr(&attempt.attributes, "http.response.status_code"),
        Some(200)
    );
    assert_eq!(int_attr(&attempt.attributes, "attempt"), Some(1));
    assert_eq!(
        string_attr(&attempt.attributes, "event_type").as_deref(),
        Some("workflow.completed")
    );
    let failed = |s: &Span| s.status.as_ref().map(|st| st.code) == Some(StatusCode::Error as i32);
    assert!(!spans.iter().any(|r| failed(&r.span)), "no span failed");

    // The context the job row carried: the submit's.
    let stored: Option<String> = jobs::table
        .find(job_uuid)
        .select(jobs::traceparent)
        .first(&mut conn)
        .await
        .expect("job row");
    assert_eq!(
        stored,
        Some(format!("00-{CALLER_TRACE}-{}-01", hex(&submit.span_id)))
    );

    // One trace per job: a second job without a caller's trace gets a trace of its own.
    let second = app.submit_bench("a second job", false).await;
    app.wait_for_status(&second, "completed", Duration::from_secs(30))
        .await;
    let jobs_by_trace = support::wait_until(
        "the second job's spans",
        Duration::from_secs(30),
        || async {
            telemetry.flush().await;
            let mut traces: HashMap<String, String> = HashMap::new();
            for r in collector.spans() {
                if r.span.name == "job" {
                    let id = string_attr(&r.span.attributes, "job_id").unwrap_or_default();
                    traces.insert(id, hex(&r.span.trace_id));
                }
            }
            traces.contains_key(&second).then_some(traces)
        },
    )
    .await;
    assert_eq!(jobs_by_trace[&job_id], CALLER_TRACE);
    assert_ne!(jobs_by_trace[&second], CALLER_TRACE);
    telemetry.shutdown().await;
}
