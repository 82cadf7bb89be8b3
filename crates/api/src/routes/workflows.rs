//! The workflow catalog: `GET /api/v1/workflows` lists what can be submitted (name, version,
//! description, input schema, definition hash), and `GET /api/v1/workflows/schema` serves the
//! JSON Schema of a workflow file (`workflows/schema.json`, compiled in) for editors.

use std::sync::Arc;

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// `workflows/schema.json`, as built into the binary.
pub const WORKFLOW_SCHEMA: &str = include_str!("../../../../workflows/schema.json");

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/workflows", web::get().to(list))
        .route("/workflows/schema", web::get().to(schema));
}

/// The workflows this deployment offers.
#[utoipa::path(
    get,
    path = "/api/v1/workflows",
    tag = "workflows",
    responses(
        (status = 200, description = "`{workflows: [{name, version, description, input_schema, hash, steps}]}`", body = Object),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
) -> Result<HttpResponse, ApiError> {
    state.require_client(&req)?;
    let workflows: Vec<Value> = state
        .catalog
        .iter()
        .map(|loaded| {
            let w = &loaded.workflow;
            json!({
                "name": w.name,
                "version": w.version,
                "description": w.description,
                "input_schema": w.input_schema_source,
                "hash": loaded.hash,
                "steps": w.steps.len(),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "workflows": workflows })))
}

/// Public like any published schema: it describes the language, not this deployment.
#[utoipa::path(
    get,
    path = "/api/v1/workflows/schema",
    tag = "workflows",
    responses(
        (status = 200, description = "JSON Schema (draft 2020-12) of a workflow file", content_type = "application/schema+json", body = Object),
    )
)]
pub async fn schema() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/schema+json"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(WORKFLOW_SCHEMA)
}
