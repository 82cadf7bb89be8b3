//! `GET /openapi.json` (OpenAPI 3, generated from the route annotations and response types with
//! `utoipa`) and `GET /docs` (Swagger UI; its assets are compiled in from `swagger-ui-dist`).

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::error::ErrorBody;
use crate::routes::{
    admin, cancel, events, health, status, validate, webhooks, workflow, workflows,
};

/// A submission.
#[derive(Serialize, ToSchema)]
pub struct SubmitRequest {
    /// A workflow from `GET /api/v1/workflows`.
    workflow_name: String,
    /// Checked against the workflow's input schema.
    #[schema(value_type = Object)]
    input_data: Value,
    user_id: Option<uuid::Uuid>,
    /// Where the result is POSTed (Standard Webhooks signature).
    webhook_url: Option<String>,
    /// Signing secret for this job (`whsec_…`); the deployment's default when absent.
    webhook_secret: Option<String>,
    /// 0 (lowest) to 10 (highest); default 5.
    #[schema(minimum = 0, maximum = 10)]
    priority: Option<u8>,
    /// Budget in USD: the job fails before a call that would exceed it.
    max_cost_usd: Option<f64>,
    /// Extra webhook events: `workflow.progress`, `workflow.chunk`.
    webhook_events: Option<Vec<String>>,
}

/// A dry run: `workflow_name` or `definition`, and optionally `input_data`.
#[derive(Serialize, ToSchema)]
pub struct ValidateRequest {
    workflow_name: Option<String>,
    /// A whole workflow definition, as in `workflows/*.json`.
    #[schema(value_type = Option<Object>)]
    definition: Option<Value>,
    #[schema(value_type = Option<Object>)]
    input_data: Option<Value>,
}

/// Stale cleanup options.
#[derive(Serialize, ToSchema)]
pub struct CleanupRequest {
    /// Default `STALE_JOB_HOURS` (72).
    older_than_hours: Option<u64>,
}

struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "llmflow",
        description = "Runs JSON-defined LLM workflows outside the web app's request cycle: submit a job (202), follow it by status, SSE or signed webhook. Every error has the body `ErrorBody`; unknown routes answer 404 and wrong methods 405 with it."
    ),
    paths(
        workflow::submit,
        validate::validate,
        cancel::cancel,
        status::status,
        events::stream,
        health::health,
        admin::cleanup_stale,
        webhooks::dead,
        webhooks::replay,
        workflows::list,
        workflows::schema,
    ),
    components(schemas(ErrorBody, SubmitRequest, ValidateRequest, CleanupRequest)),
    modifiers(&ApiKeyScheme),
    tags(
        (name = "jobs", description = "Submit, follow and cancel jobs"),
        (name = "workflows", description = "The workflow catalog and the language's JSON Schema"),
        (name = "admin", description = "Needs the admin key"),
        (name = "health", description = "Liveness"),
    )
)]
pub struct ApiDoc;

/// The document as JSON text.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_json()
        .unwrap_or_else(|_| "{}".to_owned())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let json = document();
    cfg.route(
        "/openapi.json",
        web::get().to(move || {
            let json = json.clone();
            async move {
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(json)
            }
        }),
    );
    cfg.route(
        "/docs",
        web::get().to(|| async {
            HttpResponse::PermanentRedirect()
                .insert_header(("Location", "/docs/"))
                .finish()
        }),
    );
    cfg.service(swagger_ui_dist::generate_scope(
        swagger_ui_dist::ApiDefinition {
            uri_prefix: "/docs".to_owned(),
            api_definition: swagger_ui_dist::OpenApiSource::Uri("/openapi.json".to_owned()),
            title: Some("llmflow API".to_owned()),
        },
    ));
}
