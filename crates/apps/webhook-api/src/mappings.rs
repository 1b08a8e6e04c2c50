//! A tenant's mappings through the admin API (behind the admin token):
//!
//! - `GET /v1/admin/tenants/{id}/mappings`: the version in force (`version`, `changed_by`,
//!   `changed_at`, `mappings`), or `version: null` when the tenant uses the workers' file.
//! - `POST …/mappings/validate` `{"mappings": {"targets": [...]}}`: every problem, checked
//!   without a provider (names, systems, policies, fields mapped twice) and then against the live
//!   schemas of the tenant's Attio workspace and CRMs; changes nothing.
//! - `PUT …/mappings` `{"mappings": …, "expected_version": n | null, "changed_by": "who"}`:
//!   validates as above and stores the next version (422 with every problem; 409 when
//!   `expected_version` is not the newest). Workers read it within two seconds.
//! - `GET …/mappings/versions`: every version, newest first.

// Handlers return their answer early as a `Response`; boxing it would only add noise.
#![allow(clippy::result_large_err)]

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use domain::ids::TenantId;
use domain::mapping_doc::{MappingDocument, MappingProblem, StoredMappings};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::admin::{error, port_error, rfc3339, tenant_id};

fn bad(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

fn stored_view(m: &StoredMappings) -> Value {
    json!({
        "version": m.version,
        "changed_by": m.changed_by,
        "changed_at": rfc3339(m.changed_at),
        "mappings": m.document,
    })
}

/// A body carrying a document (and, for a change, who makes it against which version).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    mappings: MappingDocument,
    #[serde(default)]
    expected_version: Option<u64>,
    #[serde(default)]
    changed_by: Option<String>,
}

fn change(body: &[u8]) -> Result<Change, Response> {
    serde_json::from_slice(body).map_err(|e| bad(format!("not a mappings change: {e}")))
}

/// Every problem of `document` for `tenant`: those that need no provider, then (when there are
/// none) those against the live schemas. `Err` is the answer when the providers cannot be asked.
async fn problems(
    state: &AppState,
    tenant: &TenantId,
    document: &MappingDocument,
) -> Result<Vec<MappingProblem>, Response> {
    // The systems this build serves (looked up before any await: the registry is not `Sync`).
    let known: Vec<domain::ids::SystemId> = state.registry.iter().map(|p| p.system()).collect();
    let system_of = |name: &str| known.iter().find(|s| s.as_str() == name).cloned();
    let Some(directory) = &state.directory else {
        return Ok(document.check(system_of).err().unwrap_or_default());
    };
    let clients = directory
        .clients(tenant)
        .await
        .map_err(|e| port_error(&e))?;
    services::mappings::validate(document, &clients, system_of)
        .await
        .map_err(|e| {
            tracing::warn!(tenant = %tenant, error = %ports::Chain(&e), "mappings could not be checked against the live schemas");
            error(
                StatusCode::BAD_GATEWAY,
                format!("a provider could not be asked for its schema: {e}"),
            )
        })
}

async fn show(State(state): State<AppState>, Path(raw): Path<String>) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    if let Err(e) = state.tenants.get(&id).await {
        return port_error(&e);
    }
    match state.stores.mappings.current(&id).await {
        Ok(Some(m)) => Json(stored_view(&m)).into_response(),
        Ok(None) => Json(json!({
            "version": null,
            "mappings": null,
            "note": "the tenant has no mappings of its own: workers use their file's",
        }))
        .into_response(),
        Err(e) => port_error(&e),
    }
}

async fn validate(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let c = match change(&body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Err(e) = state.tenants.get(&id).await {
        return port_error(&e);
    }
    match problems(&state, &id, &c.mappings).await {
        Ok(p) => Json(json!({"valid": p.is_empty(), "problems": p})).into_response(),
        Err(r) => r,
    }
}

async fn replace(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let c = match change(&body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let by = match c.changed_by.as_deref().map(str::trim) {
        Some(by) if !by.is_empty() && by.len() <= 200 => by.to_owned(),
        _ => return bad("changed_by must name who makes the change (1 to 200 characters)"),
    };
    if let Err(e) = state.tenants.get(&id).await {
        return port_error(&e);
    }
    let found = match problems(&state, &id, &c.mappings).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !found.is_empty() {
        tracing::info!(tenant = %id, problems = found.len(), "a mappings change was refused");
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": format!("the mappings have {} problem(s)", found.len()), "problems": found})),
        )
            .into_response();
    }
    match state
        .stores
        .mappings
        .put(&id, &c.mappings, c.expected_version, &by, state.clock.now())
        .await
    {
        Ok(m) => {
            tracing::info!(tenant = %id, version = m.version, changed_by = %by, "the tenant's mappings changed");
            Json(stored_view(&m)).into_response()
        }
        Err(e) => port_error(&e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionsQuery {
    limit: Option<usize>,
}

async fn versions(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    query: Result<Query<VersionsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let limit = match query {
        Ok(Query(q)) => match q.limit.unwrap_or(50) {
            n @ 1..=1000 => n,
            n => return bad(format!("limit must be 1 to 1000, not {n}")),
        },
        Err(e) => return bad(format!("bad query: {}", e.body_text())),
    };
    if let Err(e) = state.tenants.get(&id).await {
        return port_error(&e);
    }
    match state.stores.mappings.versions(&id, limit).await {
        Ok(v) => Json(v.iter().map(stored_view).collect::<Vec<_>>()).into_response(),
        Err(e) => port_error(&e),
    }
}

/// The mapping routes (the caller adds the admin authorization).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/tenants/{id}/mappings", get(show).put(replace))
        .route("/v1/admin/tenants/{id}/mappings/validate", post(validate))
        .route("/v1/admin/tenants/{id}/mappings/versions", get(versions))
}
