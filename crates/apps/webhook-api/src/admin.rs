//! The operator's API under `/v1/admin`, behind `Authorization: Bearer <admin_token>` (compared
//! in constant time; the routes are absent when no token is configured):
//!
//! - `POST /v1/admin/tenants`: add a tenant with its provider credentials; with
//!   `"register_webhook": true` it registers the Attio webhook through Attio's API (target
//!   `{public_url}/v1/webhooks/attio/{tenant}`, every event type the pipeline handles) and stores
//!   the secret Attio returns. `GET /v1/admin/tenants`, `GET`/`DELETE /v1/admin/tenants/{id}`
//!   (secrets never leave: they show as `***`). A CRM connection naming a system no plugin of
//!   the registry serves, or missing a setting its plugin needs, is refused with 400 naming it.
//! - `GET /v1/admin/tenants/{id}/dead-letters`, `GET …/dead-letters/{job}`,
//!   `POST …/dead-letters/{job}/replay`; `GET …/quarantine`, `GET …/quarantine/{delivery}`.
//! - `POST /v1/admin/tenants/{id}/backfills` `{object, system}` queues a backfill for a worker;
//!   `GET /v1/admin/tenants/{id}/sync-state` shows its progress; `GET /v1/admin/queue`.
//! - `POST /v1/admin/tenants/{id}/rotate-webhook` registers a new Attio webhook, stores its
//!   secret (keeping the old one as the previous) and removes the old webhook.
//! - `POST /v1/admin/tenants/{id}/api-keys` makes a key for the tenant's app (shown once; only its
//!   SHA-256 is stored); `GET` lists them by fingerprint; `DELETE` revokes them all, and
//!   `DELETE …/api-keys/{fingerprint}` one.

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
    /// A client for one tenant's workspace that gives up quickly: an operator is waiting.
    fn client(&self, tenant: &TenantId, token: &Secret) -> Result<AttioClient, PortError> {
        let mut cfg = AttioConfig::new(&self.base_url, token.clone(), tenant.clone())
            .map_err(|e| PortError::Invalid(e.to_string()))?;
        cfg.timeout = std::time::Duration::from_secs(8);
        cfg.max_retries = 1;
        AttioClient::new(cfg, self.limiter.clone()).map_err(|e| PortError::Invalid(e.to_string()))
    }

    /// Registers the webhook; returns its id and secret.
    async fn register(
        &self,
        tenant: &TenantId,
        token: &Secret,
        target_url: String,
    ) -> Result<(domain::ids::WebhookId, String), PortError> {
        let subscriptions = SUBSCRIBED
            .iter()
            .map(|t| Subscription {
                event_type: EventType::from(*t),
                filter: None,
            })
            .collect();
        let hook = self
            .client(tenant, token)?
            .create_webhook(&NewWebhook {
                target_url,
                subscriptions,
            })
            .await?;
        let secret = hook.secret.ok_or_else(|| {
            PortError::backend("Attio", "the new webhook came back without its secret")
        })?;
        Ok((hook.id.webhook_id, secret))
    }

    /// Deletes every webhook of the workspace that targets `target_url`; returns how many.
    async fn unregister(
        &self,
        tenant: &TenantId,
        token: &Secret,
        target_url: &str,
    ) -> Result<usize, PortError> {
        let client = self.client(tenant, token)?;
        let mut removed = 0;
        for hook in client.list_webhooks().await? {
            if hook.target_url == target_url {
                client.delete_webhook(hook.id.webhook_id).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

pub(crate) fn port_error(e: &PortError) -> Response {
    match e {
        PortError::NotFound(_) => error(StatusCode::NOT_FOUND, "not found"),
        PortError::Conflict(m) | PortError::Stale(m) => error(StatusCode::CONFLICT, m.clone()),
        PortError::Invalid(m) => error(StatusCode::BAD_REQUEST, m.clone()),
        PortError::Domain(d) => error(StatusCode::BAD_REQUEST, d.to_string()),
        e if e.is_retryable() => {
            tracing::warn!(error = %ports::Chain(&e), "admin request: a store is unavailable");
            error(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable")
        }
        e => {
            tracing::error!(error = %ports::Chain(&e), "admin request failed");
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

/// A time as the admin API shows it (RFC 3339).
pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn shown(t: &Tenant) -> Value {
    json!({
        "id": t.id.to_string(),
        "name": t.name,
        "created_at": rfc3339(t.created_at),
        "attio": {"api_token": "***", "webhook_secrets": t.attio.webhook_secrets.iter().map(|_| "***").collect::<Vec<_>>()},
        "api_keys": t.api_keys.len(),
        "crms": t.crms.iter().map(|c| json!({
            "system": c.system.to_string(),
            "settings": c.settings,
            "secrets": c.secrets.keys().map(|k| (k.clone(), "***")).collect::<BTreeMap<_, _>>(),
        })).collect::<Vec<_>>(),
    })
}

/// The shortest webhook secret an operator may give.
const MIN_WEBHOOK_SECRET: usize = 16;

fn secret(what: &str, v: String) -> Result<Secret, Response> {
    Secret::new(v).map_err(|_| error(StatusCode::BAD_REQUEST, format!("{what} must not be empty")))
}

/// The URL Attio delivers a tenant's webhooks to.
fn attio_target(state: &AppState, id: &TenantId) -> String {
    format!("{}/v1/webhooks/attio/{id}", state.settings.public_url)
}

/// A tenant from a request, every part checked; the answer names the first problem.
fn new_tenant(state: &AppState, req: NewTenant) -> Result<Tenant, Response> {
    let bad = |m: String| error(StatusCode::BAD_REQUEST, m);
    let id = TenantId::parse(&req.id).map_err(|e| bad(e.to_string()))?;
    let token = secret("attio.api_token", req.attio.api_token)?;
    if token.expose().chars().any(char::is_control) {
        return Err(bad(
            "attio.api_token must not contain control characters".into()
        ));
    }
    if req.attio.webhook_secrets.len() > 2 {
        return Err(bad(format!(
            "attio.webhook_secrets takes at most two (current and previous), got {}",
            req.attio.webhook_secrets.len()
        )));
    }
    let mut webhook_secrets = Vec::new();
    for s in req.attio.webhook_secrets {
        if s.chars().count() < MIN_WEBHOOK_SECRET {
            return Err(bad(format!(
                "a webhook secret must be at least {MIN_WEBHOOK_SECRET} characters"
            )));
        }
        webhook_secrets.push(secret("a webhook secret", s)?);
    }
    if req.crms.len() > domain::tenant::MAX_CRMS {
        return Err(bad(format!(
            "crms takes at most {} connections, got {}",
            domain::tenant::MAX_CRMS,
            req.crms.len()
        )));
    }
    let mut crms = Vec::new();
    for c in req.crms {
        let system = SystemId::parse(&c.system).map_err(|e| bad(e.to_string()))?;
        let mut secrets = BTreeMap::new();
        for (k, v) in c.secrets {
            let s = secret(&format!("{system} secret {k}"), v)?;
            secrets.insert(k, s);
        }
        let connection = CrmConnection {
            system,
            settings: c.settings,
            secrets,
        };
        connection.validate().map_err(|e| bad(e.to_string()))?;
        // An unknown system, or a connection its plugin cannot build, is refused here rather
        // than skipped by every worker later.
        state
            .registry
            .check(&connection)
            .map_err(|e| bad(e.to_string()))?;
        crms.push(connection);
    }
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
    tenant.validate().map_err(|e| bad(e.to_string()))?;
    Ok(tenant)
}

/// `POST /v1/admin/tenants`. Everything is checked first; the tenant is then stored, so of
/// concurrent creates of one id only one goes on; only then is the Attio webhook registered,
/// and its secret stored. A failure after the insert undoes what was done (the webhook, the
/// tenant), so a refused create leaves nothing behind in Attio or here.
async fn create_tenant(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    let req: NewTenant = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not a tenant: {e}")),
    };
    let register = req.register_webhook;
    let mut tenant = match new_tenant(&state, req) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let registrar = match (register, &state.registrar) {
        (false, _) => None,
        (true, Some(r)) => Some(r),
        (true, None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "webhook registration is not configured (set attio_base_url in webhook-api's settings)",
            );
        }
    };
    if register && tenant.attio.webhook_secrets.len() > 1 {
        return error(
            StatusCode::BAD_REQUEST,
            "with register_webhook, give at most one webhook secret (the registered one is added)",
        );
    }
    state.tenant_cache.forget(&tenant.id);
    match state.tenants.create(&tenant).await {
        Ok(()) => {}
        Err(PortError::Conflict(_)) => {
            return error(StatusCode::CONFLICT, format!("tenant {} exists", tenant.id));
        }
        Err(e) => return port_error(&e),
    }
    let mut webhook = Value::Null;
    if let Some(registrar) = registrar {
        match registered(&state, registrar, &mut tenant).await {
            Ok(target) => webhook = json!({"target_url": target}),
            Err(answer) => {
                if let Err(e) = state.tenants.delete(&tenant.id).await {
                    tracing::error!(tenant = %tenant.id, error = %ports::Chain(&e), "cannot undo a tenant whose webhook registration failed; delete it by hand");
                }
                state.tenant_cache.forget(&tenant.id);
                return answer;
            }
        }
    }
    let mut body = shown(&tenant);
    body["webhook"] = webhook;
    (StatusCode::CREATED, Json(body)).into_response()
}

/// Registers a stored tenant's Attio webhook and stores its secret; on a failure after the
/// registration the webhook is removed again. `Err` is the answer to give.
async fn registered(
    state: &AppState,
    registrar: &AttioRegistrar,
    tenant: &mut Tenant,
) -> Result<String, Response> {
    let target = attio_target(state, &tenant.id);
    let token = tenant.attio.api_token.clone();
    let secret = match registrar.register(&tenant.id, &token, target.clone()).await {
        Ok((_, s)) => Secret::new(s).map_err(|_| {
            error(
                StatusCode::BAD_GATEWAY,
                "Attio returned an empty webhook secret",
            )
        }),
        Err(e) => Err(attio_failed(registrar, &tenant.id, e)),
    };
    let stored = match secret {
        Ok(secret) => {
            tenant.attio.webhook_secrets.insert(0, secret);
            state
                .tenants
                .update(tenant)
                .await
                .map_err(|e| port_error(&e))
        }
        Err(answer) => Err(answer),
    };
    match stored {
        Ok(()) => {
            state.tenant_cache.forget(&tenant.id);
            Ok(target)
        }
        Err(answer) => {
            if let Err(e) = registrar.unregister(&tenant.id, &token, &target).await {
                tracing::error!(tenant = %tenant.id, error = %ports::Chain(&e), target = %target, "cannot remove a webhook registered for a tenant that was not created; delete it in Attio");
            }
            Err(answer)
        }
    }
}

#[derive(Debug, Deserialize)]
struct Page {
    limit: Option<usize>,
    /// The last id of the previous page.
    after: Option<String>,
}

/// `GET /v1/admin/tenants?limit=&after=`: tenants in id order, at most `limit` (100 unless
/// given, 500 at most); when more follow, `x-next-after` names the id to continue after.
async fn list_tenants(State(state): State<AppState>, Query(page): Query<Page>) -> Response {
    let limit = page.limit.unwrap_or(100).clamp(1, 500);
    let mut ts = match state.tenants.list().await {
        Ok(ts) => ts,
        Err(e) => return port_error(&e),
    };
    ts.sort_by(|a, b| a.id.cmp(&b.id));
    let start = page
        .after
        .map(|after| ts.partition_point(|t| t.id.as_str() <= after.as_str()))
        .unwrap_or(0);
    let rest = &ts[start.min(ts.len())..];
    let shown_page: Vec<Value> = rest.iter().take(limit).map(shown).collect();
    let mut answer = Json(shown_page).into_response();
    if rest.len() > limit
        && let Some(last) = rest.get(limit - 1)
        && let Ok(v) = axum::http::HeaderValue::from_str(last.id.as_str())
    {
        answer.headers_mut().insert("x-next-after", v);
    }
    answer
}

pub(crate) fn tenant_id(raw: &str) -> Result<TenantId, Response> {
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

#[derive(Debug, Deserialize)]
struct DeleteQuery {
    /// Delete even when Attio cannot be asked to remove the tenant's webhook.
    #[serde(default)]
    force: bool,
}

/// `POST /v1/admin/tenants/{id}/rotate-webhook`: a new Attio webhook (Attio has no secret
/// rotation of its own): it is registered, its secret stored as the current one with the old
/// current one kept as the previous (so deliveries signed with either are accepted meanwhile),
/// and only then are the old webhooks to this service removed. A failure before the secret is
/// stored removes the new webhook again.
async fn rotate_webhook(State(state): State<AppState>, Path(raw): Path<String>) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let Some(registrar) = &state.registrar else {
        return error(
            StatusCode::BAD_REQUEST,
            "webhook registration is not configured (set attio_base_url in webhook-api's settings)",
        );
    };
    let mut tenant = match state.tenants.get(&id).await {
        Ok(t) => t,
        Err(e) => return port_error(&e),
    };
    let target = attio_target(&state, &id);
    let token = tenant.attio.api_token.clone();
    let old = match registrar.client(&id, &token) {
        Ok(c) => match c.list_webhooks().await {
            Ok(hooks) => hooks
                .into_iter()
                .filter(|h| h.target_url == target)
                .map(|h| h.id.webhook_id)
                .collect::<Vec<_>>(),
            Err(e) => return attio_failed(registrar, &id, e),
        },
        Err(e) => return port_error(&e),
    };
    let (new_id, secret) = match registrar.register(&id, &token, target.clone()).await {
        Ok((new_id, s)) => match Secret::new(s) {
            Ok(s) => (new_id, s),
            Err(_) => {
                return error(
                    StatusCode::BAD_GATEWAY,
                    "Attio returned an empty webhook secret",
                );
            }
        },
        Err(e) => return attio_failed(registrar, &id, e),
    };
    let previous = tenant.attio.webhook_secrets.first().cloned();
    tenant.attio.webhook_secrets = std::iter::once(secret).chain(previous).collect();
    if let Err(e) = state.tenants.update(&tenant).await {
        if let Ok(c) = registrar.client(&id, &token)
            && let Err(undo) = c.delete_webhook(new_id).await
        {
            tracing::error!(tenant = %id, error = %ports::Chain(&undo), "cannot remove a webhook registered by a failed rotation; delete it in Attio");
        }
        return port_error(&e);
    }
    state.tenant_cache.forget(&id);
    let mut removed = 0;
    if let Ok(c) = registrar.client(&id, &token) {
        for hook in old {
            match c.delete_webhook(hook).await {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(tenant = %id, error = %ports::Chain(&e), "cannot remove the old webhook; its deliveries are still accepted with the previous secret");
                }
            }
        }
    }
    tracing::info!(tenant = %id, removed, "rotated the tenant's Attio webhook");
    Json(json!({"target_url": target, "old_webhooks_removed": removed})).into_response()
}

/// A webhook step Attio did not do: 422 when it refuses the tenant's token (the request's
/// credentials are wrong), else 502 naming where it was asked.
fn attio_failed(registrar: &AttioRegistrar, id: &TenantId, e: PortError) -> Response {
    tracing::warn!(tenant = %id, attio = %registrar.base_url, error = %ports::Chain(&e), "Attio refused or did not answer the webhook registration");
    if let PortError::Unauthorized(m) = &e {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "attio.api_token: Attio refuses this token ({m}); check it and its scopes (webhook:read-write)"
            ),
        );
    }
    error(
        StatusCode::BAD_GATEWAY,
        format!(
            "Attio at {} (attio_base_url in webhook-api's settings) did not register the webhook: {e}",
            registrar.base_url
        ),
    )
}

/// `DELETE /v1/admin/tenants/{id}`: removes the tenant's Attio webhook (every one targeting this
/// service's URL for it), the tenant, then everything every store keeps of it (deliveries and
/// their claims, jobs, dead letters, links, sync states, conflicts, ledger entries), and answers
/// what went. When Attio does not answer, nothing is deleted (the tenant's token is what removes
/// the webhook) unless `?force=true`; a token Attio no longer accepts cannot remove anything, so
/// that is logged and the deletion goes on. A deletion whose erasure failed is finished by
/// deleting again: an unknown tenant's leftovers are erased too, and 404 answers only when there
/// were none.
async fn delete_tenant(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let tenant = match state.tenants.get(&id).await {
        Ok(t) => Some(t),
        Err(PortError::NotFound(_)) => None,
        Err(e) => return port_error(&e),
    };
    let mut webhooks = 0;
    if let (Some(registrar), Some(tenant)) = (&state.registrar, &tenant) {
        let target = attio_target(&state, &id);
        match registrar
            .unregister(&id, &tenant.attio.api_token, &target)
            .await
        {
            Ok(n) => webhooks = n,
            Err(e @ PortError::Unauthorized(_)) => {
                tracing::warn!(tenant = %id, error = %ports::Chain(&e), "Attio no longer accepts the tenant's token; its webhook, if any, is left to Attio");
            }
            Err(e) if q.force => {
                tracing::warn!(tenant = %id, error = %ports::Chain(&e), "deleting the tenant without removing its Attio webhook (force)");
            }
            Err(e) => {
                tracing::warn!(tenant = %id, error = %ports::Chain(&e), "cannot remove the tenant's Attio webhook; the tenant is kept");
                return error(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "cannot remove the tenant's Attio webhook ({e}); retry, or delete with ?force=true and remove it in Attio"
                    ),
                );
            }
        }
    }
    state.tenant_cache.forget(&id);
    if tenant.is_some()
        && let Err(e) = state.tenants.delete(&id).await
        && !matches!(e, PortError::NotFound(_))
    {
        return port_error(&e);
    }
    let erased = match state.stores.erase_tenant(&id).await {
        Ok(erased) => erased,
        Err(e) => {
            tracing::error!(tenant = %id, error = %ports::Chain(&e), "the tenant is deleted but its data is not erased yet; delete it again to finish");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the tenant is deleted but its data is not erased yet; delete it again to finish",
            );
        }
    };
    if tenant.is_none() && erased.values().all(|n| *n == 0) {
        return error(StatusCode::NOT_FOUND, "not found");
    }
    tracing::info!(tenant = %id, attio_webhooks = webhooks, erased = ?erased, "deleted a tenant");
    Json(json!({
        "deleted": id.to_string(),
        "attio_webhooks_removed": webhooks,
        "erased": erased,
    }))
    .into_response()
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
        dead_letter_view,
    )
    .await
}

/// A dead letter as the API lists it.
fn dead_letter_view(d: &domain::job::DeadLetter) -> Value {
    json!({
        "job_id": d.job.id.to_string(),
        "key": d.job.key.to_string(),
        "attempts": d.job.attempts,
        "cause": d.cause(),
        "error": d.error,
        "failed_at": rfc3339(d.failed_at),
        "needs_reconciliation": d.needs_reconciliation,
    })
}

/// A stored delivery with its quarantine reason and its body as received (as text; bytes that
/// are not UTF-8 are replaced).
fn delivery_view(d: &ports::stores::StoredDelivery) -> Value {
    json!({
        "id": d.id.to_string(),
        "source": d.delivery.source.as_str(),
        "idempotency_key": d.delivery.key.as_str(),
        "received_at": rfc3339(d.delivery.received_at),
        "reason": d.delivery.quarantine,
        "body": String::from_utf8_lossy(&d.delivery.body),
    })
}

/// One dead letter with its payloads (what a replay would run again).
async fn dead_letter(
    State(state): State<AppState>,
    Path((raw, job)): Path<(String, String)>,
) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let Ok(job) = JobId::parse(&job) else {
        return error(StatusCode::NOT_FOUND, "no such dead letter");
    };
    match state.dead.dead_letter_of(&id, job).await {
        Ok(d) => {
            let mut v = dead_letter_view(&d);
            v["max_attempts"] = json!(d.job.max_attempts);
            v["enqueued_at"] = json!(rfc3339(d.job.enqueued_at));
            v["payloads"] = json!(d.job.payloads);
            Json(v).into_response()
        }
        Err(e) => port_error(&e),
    }
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
        delivery_view,
    )
    .await
}

/// One quarantined delivery (any stored delivery of the tenant, by its inbox id).
async fn quarantined_delivery(
    State(state): State<AppState>,
    Path((raw, delivery)): Path<(String, String)>,
) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let Ok(delivery) = domain::ids::InboxId::parse(&delivery) else {
        return error(StatusCode::NOT_FOUND, "no such delivery");
    };
    match state.inbox.get(&id, delivery).await {
        Ok(d) => Json(delivery_view(&d)).into_response(),
        Err(e) => port_error(&e),
    }
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
            Json(json!({
                "api_key": key,
                "fingerprint": domain::tenant::ApiKeyDigest::of(&key).fingerprint(),
                "keys": tenant.api_keys.len(),
            })),
        )
            .into_response(),
        Err(e) => port_error(&e),
    }
}

/// The tenant's API keys by fingerprint (the key itself is never kept).
async fn list_api_keys(State(state): State<AppState>, Path(raw): Path<String>) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    match state.tenants.get(&id).await {
        Ok(t) => Json(
            t.api_keys
                .iter()
                .map(|k| json!({"fingerprint": k.fingerprint()}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => port_error(&e),
    }
}

/// Revokes the tenant's API key with that fingerprint.
async fn revoke_api_key(
    State(state): State<AppState>,
    Path((raw, fingerprint)): Path<(String, String)>,
) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let mut tenant = match state.tenants.get(&id).await {
        Ok(t) => t,
        Err(e) => return port_error(&e),
    };
    let before = tenant.api_keys.len();
    tenant.api_keys.retain(|k| k.fingerprint() != fingerprint);
    if tenant.api_keys.len() == before {
        return error(
            StatusCode::NOT_FOUND,
            "the tenant has no key with that fingerprint",
        );
    }
    state.tenant_cache.forget(&id);
    match state.tenants.update(&tenant).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
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
            "/v1/admin/tenants/{id}/quarantine/{delivery}",
            get(quarantined_delivery),
        )
        .route(
            "/v1/admin/tenants/{id}/dead-letters/{job}",
            get(dead_letter),
        )
        .route(
            "/v1/admin/tenants/{id}/dead-letters/{job}/replay",
            post(replay),
        )
        .route("/v1/admin/tenants/{id}/sync-state", get(sync_state))
        .route(
            "/v1/admin/tenants/{id}/rotate-webhook",
            post(rotate_webhook),
        )
        .route("/v1/admin/tenants/{id}/backfills", post(start_backfill))
        .route(
            "/v1/admin/tenants/{id}/api-keys",
            get(list_api_keys)
                .post(create_api_key)
                .delete(revoke_api_keys),
        )
        .route(
            "/v1/admin/tenants/{id}/api-keys/{fingerprint}",
            axum::routing::delete(revoke_api_key),
        )
        .route("/v1/admin/queue", get(queue))
        .merge(crate::control::routes())
        .merge(crate::mappings::routes())
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
