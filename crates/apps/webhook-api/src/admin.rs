//! The operator's API under `/v1/admin`, behind `Authorization: Bearer <admin_token>` (compared
//! in constant time; the routes are absent when no token is configured):
//!
//! - `POST /v1/admin/tenants`: add a tenant with its provider credentials; with
//!   `"register_webhook": true` it registers the Attio webhook through Attio's API (target
//!   `{public_url}/v1/webhooks/attio/{tenant}`, every event type the pipeline handles) and stores
//!   the secret Attio returns. `GET /v1/admin/tenants`, `GET`/`DELETE /v1/admin/tenants/{id}`
//!   (secrets never leave: they show as `***`). A CRM connection naming a system no plugin of
//!   the registry serves, or missing a setting its plugin needs, is refused with 400 naming it.
//! - `GET /v1/admin/tenants/{id}/dead-letters`, `POST …/dead-letters/{job}/replay`.
//! - `POST /v1/admin/tenants/{id}/backfills` `{object, system}` queues a backfill for a worker;
//!   `GET /v1/admin/tenants/{id}/sync-state` shows its progress; `GET /v1/admin/queue`.
//! - `POST /v1/admin/tenants/{id}/api-keys` makes a key for the tenant's app (shown once; only its
//!   SHA-256 is stored); `DELETE` revokes them all.

// Handlers return their answer early as a `Response`; boxing it would only add noise.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use adapter_attio_http::{AttioClient, AttioConfig};
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use domain::ids::{JobId, SystemId, TenantId};
use domain::schema::Subscription;
use domain::tenant::{AttioCredentials, CrmConnection, Secret, Tenant};
use domain::webhook::EventType;
use ports::attio::{AttioWebhooks, NewWebhook};
use ports::error::PortError;
use ports::limiter::RateLimiter;
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::AppState;

/// Registers Attio webhooks with a tenant's token.
#[derive(Clone)]
pub struct AttioRegistrar {
    pub base_url: String,
    pub limiter: Arc<dyn RateLimiter>,
}

impl std::fmt::Debug for AttioRegistrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttioRegistrar")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// The event types the pipeline reads (others would only be stored).
const SUBSCRIBED: &[&str] = &[
    "record.created",
    "record.updated",
    "record.deleted",
    "record.merged",
    "list-entry.created",
    "list-entry.updated",
    "list-entry.deleted",
    "note.created",
    "note.updated",
    "note.deleted",
    "task.created",
    "task.updated",
    "task.deleted",
    "object-attribute.created",
    "object-attribute.updated",
];

impl AttioRegistrar {
    async fn register(
        &self,
        tenant: &TenantId,
        token: &Secret,
        target_url: String,
    ) -> Result<String, PortError> {
        let cfg = AttioConfig::new(&self.base_url, token.clone(), tenant.clone())
            .map_err(|e| PortError::Invalid(e.to_string()))?;
        let client = AttioClient::new(cfg, self.limiter.clone())
            .map_err(|e| PortError::Invalid(e.to_string()))?;
        let subscriptions = SUBSCRIBED
            .iter()
            .map(|t| Subscription {
                event_type: EventType::from(*t),
                filter: None,
            })
            .collect();
        let hook = client
            .create_webhook(&NewWebhook {
                target_url,
                subscriptions,
            })
            .await?;
        hook.secret.ok_or_else(|| {
            PortError::backend("Attio", "the new webhook came back without its secret")
        })
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

fn port_error(e: &PortError) -> Response {
    match e {
        PortError::NotFound(_) => error(StatusCode::NOT_FOUND, "not found"),
        PortError::Conflict(m) | PortError::Stale(m) => error(StatusCode::CONFLICT, m.clone()),
        PortError::Invalid(m) => error(StatusCode::BAD_REQUEST, m.clone()),
        PortError::Domain(d) => error(StatusCode::BAD_REQUEST, d.to_string()),
        e if e.is_retryable() => {
            tracing::warn!(error = %e, "admin request: a store is unavailable");
            error(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable")
        }
        e => {
            tracing::error!(error = %e, "admin request failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

async fn authorize(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(expected) = &state.settings.admin_token else {
        return error(StatusCode::NOT_FOUND, "not found");
    };
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(given.as_bytes().ct_eq(expected.expose().as_bytes())) {
        next.run(req).await
    } else {
        error(
            StatusCode::UNAUTHORIZED,
            "a valid operator token is required",
        )
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAttio {
    api_token: String,
    #[serde(default)]
    webhook_secrets: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCrm {
    system: String,
    #[serde(default)]
    settings: BTreeMap<String, String>,
    #[serde(default)]
    secrets: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    id: String,
    name: String,
    attio: NewAttio,
    #[serde(default)]
    crms: Vec<NewCrm>,
    #[serde(default)]
    register_webhook: bool,
}

fn shown(t: &Tenant) -> Value {
    json!({
        "id": t.id.to_string(),
        "name": t.name,
        "created_at": t.created_at.to_string(),
        "attio": {"api_token": "***", "webhook_secrets": t.attio.webhook_secrets.iter().map(|_| "***").collect::<Vec<_>>()},
        "api_keys": t.api_keys.len(),
        "crms": t.crms.iter().map(|c| json!({
            "system": c.system.to_string(),
            "settings": c.settings,
            "secrets": c.secrets.keys().map(|k| (k.clone(), "***")).collect::<BTreeMap<_, _>>(),
        })).collect::<Vec<_>>(),
    })
}

fn secret(what: &str, v: String) -> Result<Secret, Response> {
    Secret::new(v).map_err(|_| error(StatusCode::BAD_REQUEST, format!("{what} must not be empty")))
}

async fn create_tenant(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    let req: NewTenant = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not a tenant: {e}")),
    };
    let id = match TenantId::parse(&req.id) {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let token = match secret("attio.api_token", req.attio.api_token) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut webhook_secrets = Vec::new();
    for s in req.attio.webhook_secrets {
        match secret("a webhook secret", s) {
            Ok(s) => webhook_secrets.push(s),
            Err(r) => return r,
        }
    }
    let mut crms = Vec::new();
    for c in req.crms {
        let system = match SystemId::parse(&c.system) {
            Ok(s) => s,
            Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
        };
        let mut secrets = BTreeMap::new();
        for (k, v) in c.secrets {
            match secret(&format!("{system} secret {k}"), v) {
                Ok(s) => {
                    secrets.insert(k, s);
                }
                Err(r) => return r,
            }
        }
        let connection = CrmConnection {
            system,
            settings: c.settings,
            secrets,
        };
        // An unknown system, or a connection its plugin cannot build, is refused here rather
        // than skipped by every worker later.
        if let Err(e) = state.registry.check(&connection) {
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
        crms.push(connection);
    }
    match state.tenants.get(&id).await {
        Ok(_) => return error(StatusCode::CONFLICT, format!("tenant {id} exists")),
        Err(PortError::NotFound(_)) => {}
        Err(e) => return port_error(&e),
    }
    let mut webhook = Value::Null;
    if req.register_webhook {
        let Some(registrar) = &state.registrar else {
            return error(
                StatusCode::BAD_REQUEST,
                "webhook registration is not configured",
            );
        };
        let target = format!("{}/v1/webhooks/attio/{id}", state.settings.public_url);
        match registrar.register(&id, &token, target.clone()).await {
            Ok(s) => match Secret::new(s) {
                Ok(s) => {
                    webhook_secrets.insert(0, s);
                    webhook = json!({"target_url": target});
                }
                Err(_) => {
                    return error(
                        StatusCode::BAD_GATEWAY,
                        "Attio returned an empty webhook secret",
                    );
                }
            },
            Err(e) => {
                tracing::warn!(tenant = %id, error = %e, "Attio refused the webhook registration");
                return error(
                    StatusCode::BAD_GATEWAY,
                    format!("Attio refused the webhook: {e}"),
                );
            }
        }
    }
    webhook_secrets.truncate(2);
    let tenant = Tenant {
        id,
        name: req.name,
        attio: AttioCredentials {
            api_token: token,
            webhook_secrets,
        },
        crms,
        api_keys: Vec::new(),
        created_at: state.clock.now(),
    };
    if let Err(e) = tenant.validate() {
        return error(StatusCode::BAD_REQUEST, e.to_string());
    }
    state.tenant_cache.forget(&tenant.id);
    match state.tenants.create(&tenant).await {
        Ok(()) => {
            let mut body = shown(&tenant);
            body["webhook"] = webhook;
            (StatusCode::CREATED, Json(body)).into_response()
        }
        Err(e) => port_error(&e),
    }
}

async fn list_tenants(State(state): State<AppState>) -> Response {
    match state.tenants.list().await {
        Ok(ts) => Json(ts.iter().map(shown).collect::<Vec<_>>()).into_response(),
        Err(e) => port_error(&e),
    }
}

fn tenant_id(raw: &str) -> Result<TenantId, Response> {
    TenantId::parse(raw).map_err(|_| error(StatusCode::NOT_FOUND, "not found"))
}

async fn show_tenant(State(state): State<AppState>, Path(raw): Path<String>) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    match state.tenants.get(&id).await {
        Ok(t) => Json(shown(&t)).into_response(),
        Err(e) => port_error(&e),
    }
}

async fn delete_tenant(State(state): State<AppState>, Path(raw): Path<String>) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    state.tenant_cache.forget(&id);
    match state.tenants.delete(&id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => port_error(&e),
    }
}

#[derive(Debug, Deserialize)]
struct Limit {
    limit: Option<usize>,
}

/// A tenant's items from a port as a JSON array: at most `limit` (50 unless given, 500 at most),
/// each shown by `show`.
async fn listing<T, Fut>(
    raw: &str,
    q: Limit,
    fetch: impl FnOnce(TenantId, usize) -> Fut,
    show: fn(&T) -> Value,
) -> Response
where
    Fut: std::future::Future<Output = Result<Vec<T>, PortError>>,
{
    let id = match tenant_id(raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    match fetch(id, q.limit.unwrap_or(50).min(500)).await {
        Ok(items) => Json(items.iter().map(show).collect::<Vec<_>>()).into_response(),
        Err(e) => port_error(&e),
    }
}

async fn dead_letters(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<Limit>,
) -> Response {
    listing(
        &raw,
        q,
        |id, limit| async move { state.dead.list_dead(&id, limit).await },
        |d| {
            json!({
                "job_id": d.job.id.to_string(),
                "key": d.job.key.to_string(),
                "attempts": d.job.attempts,
                "error": d.error,
                "failed_at": d.failed_at.to_string(),
                "needs_reconciliation": d.needs_reconciliation,
            })
        },
    )
    .await
}

/// Signed deliveries that could not be processed, oldest first, with the reason and the body as
/// received (as text; bytes that are not UTF-8 are replaced).
async fn quarantine(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<Limit>,
) -> Response {
    listing(
        &raw,
        q,
        |id, limit| async move { state.inbox.quarantined(&id, limit).await },
        |d| {
            json!({
                "id": d.id.to_string(),
                "source": d.delivery.source.as_str(),
                "idempotency_key": d.delivery.key.as_str(),
                "received_at": d.delivery.received_at.to_string(),
                "reason": d.delivery.quarantine,
                "body": String::from_utf8_lossy(&d.delivery.body),
            })
        },
    )
    .await
}

async fn replay(
    State(state): State<AppState>,
    Path((raw, job)): Path<(String, String)>,
) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let Ok(job) = JobId::parse(&job) else {
        return error(StatusCode::NOT_FOUND, "not found");
    };
    match state.dead.replay(&id, job).await {
        Ok(new) => (
            StatusCode::ACCEPTED,
            Json(json!({"job_id": new.to_string()})),
        )
            .into_response(),
        Err(e) => port_error(&e),
    }
}

/// Makes an API key for the tenant's app: shown once in the answer, only its digest is kept.
/// Keys are 256 random bits from the operating system's generator.
async fn create_api_key(State(state): State<AppState>, Path(raw): Path<String>) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let mut tenant = match state.tenants.get(&id).await {
        Ok(t) => t,
        Err(e) => return port_error(&e),
    };
    let key = format!(
        "ask_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    tenant.api_keys.push(domain::tenant::ApiKeyDigest::of(&key));
    state.tenant_cache.forget(&id);
    match state.tenants.update(&tenant).await {
        Ok(()) => (
            StatusCode::CREATED,
            Json(json!({"api_key": key, "keys": tenant.api_keys.len()})),
        )
            .into_response(),
        Err(e) => port_error(&e),
    }
}

/// Revokes every API key of the tenant.
async fn revoke_api_keys(State(state): State<AppState>, Path(raw): Path<String>) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let mut tenant = match state.tenants.get(&id).await {
        Ok(t) => t,
        Err(e) => return port_error(&e),
    };
    tenant.api_keys.clear();
    state.tenant_cache.forget(&id);
    match state.tenants.update(&tenant).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => port_error(&e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackfillRequest {
    object: String,
    system: String,
}

/// Queues a backfill of one object to one system; a worker runs it (resuming from its checkpoint
/// if it ran before). One backfill per pair is queued at a time (the job key folds repeats).
async fn start_backfill(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let req: BackfillRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("not a backfill request: {e}"),
            );
        }
    };
    if let Err(e) =
        domain::ids::ObjectSlug::parse(&req.object).and(SystemId::parse(&req.system).map(|_| ()))
    {
        return error(StatusCode::BAD_REQUEST, e.to_string());
    }
    if let Err(e) = state.registry.get(&req.system) {
        return error(StatusCode::BAD_REQUEST, e.to_string());
    }
    if let Err(e) = state.tenants.get(&id).await {
        return port_error(&e);
    }
    let key = match domain::job::JobKey::new(
        id.clone(),
        "backfill",
        &format!("{}-{}", req.object, req.system),
    ) {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let job = domain::job::NewJob::new(
        key,
        json!({"source": "backfill", "object": req.object, "system": req.system}),
    )
    .with_max_attempts(state.settings.max_attempts);
    match state.queue.enqueue(job).await {
        Ok(_) => (StatusCode::ACCEPTED, Json(json!({"queued": true}))).into_response(),
        Err(e) => port_error(&e),
    }
}

async fn sync_state(State(state): State<AppState>, Path(raw): Path<String>) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    match state.sync_state.list(&id).await {
        Ok(states) => Json(states).into_response(),
        Err(e) => port_error(&e),
    }
}

async fn queue(State(state): State<AppState>) -> Response {
    match state.queue.depth().await {
        Ok(d) => Json(json!({"ready": d.ready, "delayed": d.delayed, "in_flight": d.in_flight, "dead": d.dead})).into_response(),
        Err(e) => port_error(&e),
    }
}

/// The admin routes with their authorization.
pub(crate) fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/admin/tenants", post(create_tenant).get(list_tenants))
        .route(
            "/v1/admin/tenants/{id}",
            get(show_tenant).delete(delete_tenant),
        )
        .route("/v1/admin/tenants/{id}/dead-letters", get(dead_letters))
        .route("/v1/admin/tenants/{id}/quarantine", get(quarantine))
        .route(
            "/v1/admin/tenants/{id}/dead-letters/{job}/replay",
            post(replay),
        )
        .route("/v1/admin/tenants/{id}/sync-state", get(sync_state))
        .route("/v1/admin/tenants/{id}/backfills", post(start_backfill))
        .route(
            "/v1/admin/tenants/{id}/api-keys",
            post(create_api_key).delete(revoke_api_keys),
        )
        .route("/v1/admin/queue", get(queue))
        .route_layer(axum::middleware::from_fn_with_state(state, authorize))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(e: &PortError) -> (StatusCode, Value) {
        let r = port_error(e);
        let status = r.status();
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .expect("the body is in memory");
        (status, serde_json::from_slice(&body).expect("a JSON body"))
    }

    /// Each store error becomes one status. What the operator can act on is said; what is
    /// internal (a backend's own message, which may name hosts or queries) is not.
    #[tokio::test]
    async fn store_errors_map_to_one_status_each_and_internal_detail_stays_inside() {
        let domain = domain::ids::TenantId::parse("").expect_err("an empty tenant id");
        let domain_said = domain.to_string();
        let cases = [
            (PortError::NotFound("tenant acme".into()), 404, "not found"),
            (
                PortError::Conflict("tenant acme exists".into()),
                409,
                "tenant acme exists",
            ),
            // A lost race (ADR 0016) is the caller's to retry, as a conflict is.
            (
                PortError::Stale("version 3 moved on".into()),
                409,
                "version 3 moved on",
            ),
            (
                PortError::Invalid("no such system".into()),
                400,
                "no such system",
            ),
            (PortError::Domain(domain), 400, domain_said.as_str()),
            (
                PortError::Unavailable {
                    what: "PostgreSQL".into(),
                    source: "connection to db.internal:5432 refused".into(),
                },
                503,
                "temporarily unavailable",
            ),
            (
                PortError::Backend {
                    what: "PostgreSQL".into(),
                    source: "syntax error at or near \"secret_table\"".into(),
                },
                500,
                "internal error",
            ),
        ];
        for (e, status, said) in cases {
            let (got, body) = answer(&e).await;
            assert_eq!(got.as_u16(), status, "{e}");
            assert_eq!(body, json!({ "error": said }), "{e}");
        }
    }
}
