//! The contact service's HTTP API for the tenant's own app, under `/v1/tenants/{tenant}/`,
//! authenticated with the tenant's API keys (`Authorization: Bearer ask_…`; only SHA-256 digests
//! are stored; a key of another tenant, or none, is 401):
//!
//! - `GET people?email=…` → the person, or 404;
//! - `PUT people` `{email, first_name?, last_name?, job_title?}` → the person (idempotent);
//! - `POST people/{record}/notes` `{title, content}` → 201 `{note_id}`;
//! - `POST tasks` `{content, deadline?, record?}` → 201 `{task_id}` (linked to a person);
//! - `POST lists/{list}/entries` `{object, record, stage}` → 201 `{entry_id}` (idempotent per
//!   record).

// Handlers return their answer early as a `Response`; boxing it would only add noise.
#![allow(clippy::result_large_err)]

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use domain::ids::{RecordId, TenantId};
use domain::tenant::ApiKeyDigest;
use ports::error::PortError;
use serde::Deserialize;
use serde_json::json;
use services::ServiceError;
use services::contact::{ContactService, PersonInput};
use subtle::ConstantTimeEq;

use crate::AppState;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

fn service_error(e: &ServiceError) -> Response {
    match e {
        ServiceError::Domain(d) => error(StatusCode::BAD_REQUEST, d.to_string()),
        ServiceError::Port(PortError::Invalid(m)) => error(StatusCode::BAD_REQUEST, m.clone()),
        ServiceError::Port(PortError::Domain(d)) => error(StatusCode::BAD_REQUEST, d.to_string()),
        ServiceError::Port(PortError::NotFound(_)) => error(StatusCode::NOT_FOUND, "not found"),
        ServiceError::Port(PortError::Rejected {
            status, message, ..
        }) if (400..500).contains(status) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Attio refused: {message}"),
        ),
        e if e.is_retryable() => {
            tracing::warn!(error = %ports::Chain(&e), "contact API: a provider is unavailable");
            error(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable")
        }
        e => {
            tracing::error!(error = %ports::Chain(&e), "contact API request failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// The tenant of the path, when the bearer key is one of its keys.
async fn authorize(
    State(state): State<AppState>,
    Path(params): Path<Vec<(String, String)>>,
    req: Request,
    next: Next,
) -> Response {
    let unauthorized = || {
        error(
            StatusCode::UNAUTHORIZED,
            "a valid API key of this tenant is required",
        )
    };
    let Some(raw) = params
        .iter()
        .find(|(k, _)| k == "tenant")
        .map(|(_, v)| v.clone())
    else {
        return unauthorized();
    };
    let Ok(id) = TenantId::parse(&raw) else {
        return unauthorized();
    };
    let Some(key) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return unauthorized();
    };
    let tenant = match state.tenant_cache.get(&id, &state.tenants).await {
        Ok(t) => t,
        Err(PortError::NotFound(_)) => return unauthorized(),
        Err(e) if e.is_retryable() => {
            return error(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable");
        }
        Err(e) => {
            tracing::error!(error = %ports::Chain(&e), "cannot read a tenant");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    let presented = ApiKeyDigest::of(key.trim());
    let known = tenant.api_keys.iter().fold(false, |hit, d| {
        hit | bool::from(d.as_str().as_bytes().ct_eq(presented.as_str().as_bytes()))
    });
    if known {
        next.run(req).await
    } else {
        unauthorized()
    }
}

fn service(state: &AppState) -> Result<&ContactService, Response> {
    state
        .contacts
        .as_deref()
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "the contact API is not configured"))
}

/// The contact service and the path's tenant, or the answer when either is missing.
fn context<'a>(state: &'a AppState, raw: &str) -> Result<(&'a ContactService, TenantId), Response> {
    let service = service(state)?;
    let tenant = TenantId::parse(raw).map_err(|_| error(StatusCode::NOT_FOUND, "not found"))?;
    Ok((service, tenant))
}

#[derive(Debug, Deserialize)]
struct EmailQuery {
    email: String,
}

async fn find_person(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<EmailQuery>,
) -> Response {
    let (s, tenant) = match context(&state, &raw) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match s.find_by_email(&tenant, &q.email).await {
        Ok(Some(p)) => Json(p).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "no person has this e-mail address"),
        Err(e) => service_error(&e),
    }
}

async fn upsert_person(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let (s, tenant) = match context(&state, &raw) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let input: PersonInput = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not a person: {e}")),
    };
    match s.upsert_person(&tenant, &input).await {
        Ok(p) => Json(p).into_response(),
        Err(e) => service_error(&e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    title: String,
    content: String,
}

async fn add_note(
    State(state): State<AppState>,
    Path((raw, record)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let (s, tenant) = match context(&state, &raw) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Ok(record) = RecordId::parse(&record) else {
        return error(StatusCode::NOT_FOUND, "not found");
    };
    let note: NoteBody = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not a note: {e}")),
    };
    match s
        .add_note(&tenant, "people", record, &note.title, &note.content)
        .await
    {
        Ok(id) => (
            StatusCode::CREATED,
            Json(json!({"note_id": id.to_string()})),
        )
            .into_response(),
        Err(e) => service_error(&e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskBody {
    content: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    deadline: Option<time::OffsetDateTime>,
    /// A person the task is about.
    record: Option<RecordId>,
}

async fn create_task(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let (s, tenant) = match context(&state, &raw) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let task: TaskBody = match serde_json::from_slice(&body) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not a task: {e}")),
    };
    match s
        .create_task(
            &tenant,
            &task.content,
            task.deadline,
            task.record.map(|r| ("people".to_owned(), r)),
        )
        .await
    {
        Ok(id) => (
            StatusCode::CREATED,
            Json(json!({"task_id": id.to_string()})),
        )
            .into_response(),
        Err(e) => service_error(&e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryBody {
    object: String,
    record: RecordId,
    stage: String,
}

async fn add_entry(
    State(state): State<AppState>,
    Path((raw, list)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let (s, tenant) = match context(&state, &raw) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let entry: EntryBody = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not an entry: {e}")),
    };
    match s
        .add_to_list(&tenant, &list, &entry.object, entry.record, &entry.stage)
        .await
    {
        Ok(id) => (
            StatusCode::CREATED,
            Json(json!({"entry_id": id.to_string()})),
        )
            .into_response(),
        Err(e) => service_error(&e),
    }
}

pub(crate) fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/v1/tenants/{tenant}/people",
            get(find_person).put(upsert_person),
        )
        .route("/v1/tenants/{tenant}/people/{record}/notes", post(add_note))
        .route("/v1/tenants/{tenant}/tasks", post(create_task))
        .route("/v1/tenants/{tenant}/lists/{list}/entries", post(add_entry))
        .route_layer(axum::middleware::from_fn_with_state(state, authorize))
}
