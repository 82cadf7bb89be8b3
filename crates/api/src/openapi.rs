//! `GET /openapi.json` (OpenAPI 3, generated from the route annotations and response types with
//! `utoipa`) and `GET /docs` (Swagger UI; its assets are compiled in from `swagger-ui-dist`).

use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;
use crate::routes::admin::CleanupRequest;
use crate::routes::validate::ValidateRequest;
use crate::routes::workflow::SubmitRequest;
use crate::routes::{
    admin, bulk, cancel, events, health, operator, retry, status, step, stream_token, validate,
    webhooks, workflow, workflows,
};

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
        retry::retry,
        status::status,
        step::step,
        stream_token::issue,
        events::stream,
        health::health,
        admin::cleanup_stale,
        webhooks::dead,
        webhooks::replay,
        webhooks::inspect,
        webhooks::replay_all,
        operator::list,
        operator::detail,
        operator::overview,
        operator::cancel,
        operator::retry,
        operator::audit,
        bulk::preview,
        bulk::confirm,
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
