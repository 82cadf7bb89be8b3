//! `GET /dashboard`: the operator's pages, server-rendered with `maud` (templates are Rust
//! code, checked by the compiler, with no template files to ship), plus one small script and one
//! stylesheet compiled into the binary. Signing in posts the admin key once
//! (`POST /dashboard/login`, form field `key`) and sets a signed, HttpOnly, SameSite=Strict
//! session cookie; the pages and their actions read the same functions as `/api/v1/admin/…`.

mod views;

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use maud::Markup;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use llmflow_core::db::{self, admin::JobFilter};

use crate::auth::Actor;
use crate::error::ApiError;
use crate::routes::{bulk, filter, operator, webhooks};
use crate::{session, AppState};

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/dashboard", web::get().to(overview))
        .route("/dashboard/login", web::get().to(login_form))
        .route("/dashboard/login", web::post().to(login))
        .route("/dashboard/logout", web::post().to(logout))
        .route("/dashboard/assets/app.css", web::get().to(css))
        .route("/dashboard/assets/app.js", web::get().to(js))
        .route("/dashboard/jobs", web::get().to(jobs))
        .route("/dashboard/jobs/bulk/preview", web::post().to(bulk_preview))
        .route("/dashboard/jobs/bulk", web::post().to(bulk_confirm))
        .route("/dashboard/jobs/{job_id}", web::get().to(job))
        .route("/dashboard/jobs/{job_id}/cancel", web::post().to(cancel))
        .route("/dashboard/jobs/{job_id}/retry", web::post().to(retry))
        .route("/dashboard/dead", web::get().to(dead))
        .route("/dashboard/dead/replay", web::post().to(replay_all))
        .route(
            "/dashboard/dead/{delivery_id}/replay",
            web::post().to(replay),
        );
}

async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(CSS)
}

async fn js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(JS)
}

fn html(markup: Markup) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(markup.into_string())
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// A page needs a session: without one, the browser is sent to the login form (a script's
/// fetch of a live fragment gets 401 and does the same).
fn signed_in(state: &AppState, req: &HttpRequest) -> Result<Actor, Box<HttpResponse>> {
    match state.require_operator(req) {
        Ok(actor) => Ok(actor),
        Err(ApiError::Unauthorized) if !is_fragment(req) && req.method() == "GET" => {
            Err(Box::new(see_other("/dashboard/login")))
        }
        Err(e) => Err(Box::new(actix_web::ResponseError::error_response(&e))),
    }
}

fn is_fragment(req: &HttpRequest) -> bool {
    req.headers().contains_key("x-fragment")
}

fn params(req: &HttpRequest) -> HashMap<String, String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// `path?k=v&…` with the filter (and any extra pairs) encoded.
pub(crate) fn link(path: &str, filter: &JobFilter, extra: &[(&str, String)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in filter::to_params(filter) {
        query.append_pair(k, &v);
    }
    for (k, v) in extra {
        query.append_pair(k, v);
    }
    let query = query.finish();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

fn notice_link(path: &str, text: &str) -> String {
    link(path, &JobFilter::default(), &[("notice", text.to_owned())])
}

async fn login_form(req: HttpRequest, state: web::Data<Arc<AppState>>) -> HttpResponse {
    if state.require_operator(&req).is_ok() {
        return see_other("/dashboard");
    }
    html(views::login(None))
}

async fn login(state: web::Data<Arc<AppState>>, body: web::Bytes) -> HttpResponse {
    let fields = form(&body);
    let given = fields.get("key").map(String::as_bytes).unwrap_or_default();
    let Some(admin) = state.admin_key() else {
        let page = views::login(Some("The dashboard needs ADMIN_API_KEY to be set."));
        return HttpResponse::ServiceUnavailable()
            .content_type("text/html; charset=utf-8")
            .body(page.into_string());
    };
    if !bool::from(given.ct_eq(admin.as_bytes())) {
        tracing::warn!("dashboard sign-in refused");
        return HttpResponse::Unauthorized()
            .content_type("text/html; charset=utf-8")
            .body(views::login(Some("That is not the admin key.")).into_string());
    }
    let cookie = Cookie::build(session::COOKIE, session::issue(admin, Utc::now()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(actix_web::cookie::time::Duration::seconds(
            session::LIFETIME.num_seconds(),
        ))
        .finish();
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/dashboard"))
        .cookie(cookie)
        .finish()
}

async fn logout() -> HttpResponse {
    let mut cookie = Cookie::build(session::COOKIE, "")
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .finish();
    cookie.make_removal();
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/dashboard/login"))
        .cookie(cookie)
        .finish()
}

fn failure(e: &ApiError) -> HttpResponse {
    actix_web::ResponseError::error_response(e)
}

async fn overview(req: HttpRequest, state: web::Data<Arc<AppState>>) -> HttpResponse {
    if let Err(r) = signed_in(&state, &req) {
        return *r;
    }
    let data = match operator::overview_data(&state).await {
        Ok(d) => d,
        Err(e) => return failure(&e),
    };
    let failures = JobFilter {
        status: Some("failed".to_owned()),
        from: Some(Utc::now() - chrono::Duration::hours(1)),
        ..JobFilter::default()
    };
    let query = filter::ListQuery {
        filter: failures.clone(),
        cursor: None,
        limit: 10,
    };
    let recent = match operator::job_page(&state, &query).await {
        Ok(p) => p.items,
        Err(e) => return failure(&e),
    };
    let body = views::overview_live(&data, &recent, &failures);
    if is_fragment(&req) {
        return html(body);
    }
    html(views::overview(body))
}

async fn jobs(req: HttpRequest, state: web::Data<Arc<AppState>>) -> HttpResponse {
    if let Err(r) = signed_in(&state, &req) {
        return *r;
    }
    let params = params(&req);
    let notice = params.get("notice").cloned();
    let workflows = match state.pool.get().await {
        Ok(mut conn) => db::admin::workflow_names(&mut conn)
            .await
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    match filter::parse_list(&params) {
        Ok(query) => match operator::job_page(&state, &query).await {
            Ok(page) => html(views::jobs(
                &params,
                &workflows,
                &query,
                &page,
                notice.as_deref(),
                &[],
            )),
            Err(e) => failure(&e),
        },
        Err(errors) => {
            let empty = operator::JobPage {
                items: Vec::new(),
                next_cursor: None,
                limit: filter::DEFAULT_LIMIT,
            };
            let query = filter::ListQuery::default();
            html(views::jobs(
                &params, &workflows, &query, &empty, None, &errors,
            ))
        }
    }
}

async fn job(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
    job_id: web::Path<Uuid>,
) -> HttpResponse {
    if let Err(r) = signed_in(&state, &req) {
        return *r;
    }
    let notice = params(&req).get("notice").cloned();
    match operator::job_detail(&state, job_id.into_inner()).await {
        Ok(detail) => {
            let live = views::job_live(&detail);
            if is_fragment(&req) {
                html(live)
            } else {
                html(views::job(&detail, live, notice.as_deref()))
            }
        }
        Err(e) => failure(&e),
    }
}

async fn cancel(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
    job_id: web::Path<Uuid>,
) -> HttpResponse {
    let actor = match signed_in(&state, &req) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let job_id = job_id.into_inner();
    let path = format!("/dashboard/jobs/{job_id}");
    match operator::cancel_one(&state, actor, job_id).await {
        Ok(status) => see_other(&notice_link(&path, &format!("Job {status}."))),
        Err(e @ (ApiError::Conflict(_) | ApiError::NotFound(_))) => {
            see_other(&notice_link(&path, &e.to_string()))
        }
        Err(e) => failure(&e),
    }
}

async fn retry(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
    job_id: web::Path<Uuid>,
) -> HttpResponse {
    let actor = match signed_in(&state, &req) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let job_id = job_id.into_inner();
    let path = format!("/dashboard/jobs/{job_id}");
    match operator::retry_one(&state, actor, job_id).await {
        Ok(n) => see_other(&notice_link(
            &path,
            &format!("Retry {n} queued: the job resumes at its failed step."),
        )),
        Err(e @ (ApiError::Conflict(_) | ApiError::NotFound(_))) => {
            see_other(&notice_link(&path, &e.to_string()))
        }
        Err(e) => failure(&e),
    }
}

fn form_filter(fields: &HashMap<String, String>) -> Result<(bulk::Action, JobFilter), String> {
    let action = fields
        .get("action")
        .and_then(|a| bulk::Action::parse(a))
        .ok_or("choose cancel or retry")?;
    let filter = filter::parse_filter(fields).map_err(|errors| {
        errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    Ok((action, filter))
}

async fn bulk_preview(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
    body: web::Bytes,
) -> HttpResponse {
    if let Err(r) = signed_in(&state, &req) {
        return *r;
    }
    let fields = form(&body);
    let (action, filter) = match form_filter(&fields) {
        Ok(x) => x,
        Err(message) => return see_other(&notice_link("/dashboard/jobs", &message)),
    };
    match bulk::make_preview(&state, action, filter).await {
        Ok(preview) => html(views::bulk_preview(&preview)),
        Err(e) => failure(&e),
    }
}

async fn bulk_confirm(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
    body: web::Bytes,
) -> HttpResponse {
    let actor = match signed_in(&state, &req) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let fields = form(&body);
    let (action, filter) = match form_filter(&fields) {
        Ok(x) => x,
        Err(message) => return see_other(&notice_link("/dashboard/jobs", &message)),
    };
    let as_of = fields.get("as_of").and_then(|t| filter::parse_time(t));
    let count = fields
        .get("expected_count")
        .and_then(|n| n.parse::<i64>().ok());
    let (Some(as_of), Some(expected_count), Some(token)) = (as_of, count, fields.get("token"))
    else {
        return see_other(&notice_link(
            "/dashboard/jobs",
            "The confirmation was incomplete: preview again.",
        ));
    };
    let back = |text: String| link("/dashboard/jobs", &filter, &[("notice", text)]);
    let confirm = bulk::Confirm {
        action,
        filter: filter.clone(),
        as_of,
        expected_count,
        token: token.clone(),
    };
    match bulk::apply(&state, actor, confirm).await {
        Ok(done) => see_other(&back(format!(
            "Bulk {}: {} jobs done, {} skipped.",
            done.action.as_str(),
            done.affected,
            done.skipped
        ))),
        Err(e @ ApiError::Conflict(_)) => see_other(&back(e.to_string())),
        Err(ApiError::Validation { errors, .. }) => {
            let text: Vec<String> = errors.into_iter().map(|e| e.message).collect();
            see_other(&back(text.join("; ")))
        }
        Err(e) => failure(&e),
    }
}

async fn dead(req: HttpRequest, state: web::Data<Arc<AppState>>) -> HttpResponse {
    if let Err(r) = signed_in(&state, &req) {
        return *r;
    }
    let notice = params(&req).get("notice").cloned();
    let mut conn = match state.pool.get().await {
        Ok(c) => c,
        Err(e) => return failure(&ApiError::from(db::DbError::from(e))),
    };
    let (letters, total) = match db::deliveries::dead_letters(&mut conn, 200, 0).await {
        Ok(x) => x,
        Err(e) => return failure(&e.into()),
    };
    let mut full = Vec::with_capacity(letters.len());
    for letter in &letters {
        match db::deliveries::find(&mut conn, letter.id).await {
            Ok(Some(row)) => full.push(row),
            Ok(None) => {}
            Err(e) => return failure(&e.into()),
        }
    }
    html(views::dead(&full, total, notice.as_deref()))
}

async fn replay(
    req: HttpRequest,
    state: web::Data<Arc<AppState>>,
    delivery_id: web::Path<Uuid>,
) -> HttpResponse {
    let actor = match signed_in(&state, &req) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let delivery_id = delivery_id.into_inner();
    let result = webhooks::replay_one(&state, delivery_id).await;
    match result {
        Ok(attempt) => {
            let detail = serde_json::json!({"delivery_id": delivery_id});
            if let Err(e) = operator::audit_row(&state, actor, "replay", detail, 1).await {
                return failure(&e);
            }
            see_other(&notice_link(
                "/dashboard/dead",
                &format!("Replay queued (attempt {attempt})."),
            ))
        }
        Err(e @ (ApiError::Conflict(_) | ApiError::NotFound(_))) => {
            see_other(&notice_link("/dashboard/dead", &e.to_string()))
        }
        Err(e) => failure(&e),
    }
}

async fn replay_all(req: HttpRequest, state: web::Data<Arc<AppState>>) -> HttpResponse {
    let actor = match signed_in(&state, &req) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    match webhooks::replay_every(&state, actor).await {
        Ok(n) => see_other(&notice_link(
            "/dashboard/dead",
            &format!("{n} replays queued."),
        )),
        Err(e) => failure(&e),
    }
}
