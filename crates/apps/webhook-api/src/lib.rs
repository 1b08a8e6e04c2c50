//! `webhook-api`: the HTTP edge of attio-sync.
//!
//! - `POST /v1/webhooks/attio/{tenant}`: checks `Attio-Signature` against the tenant's webhook
//!   secrets (current and previous) in constant time over the raw body, then deduplicates by
//!   `Idempotency-Key`, stores the delivery and enqueues its job in one step (the inbox), and
//!   only then answers 200. Unknown tenant → 404, bad signature → 401 (nothing stored), body over
//!   the limit → 413, signed but unparseable → stored in quarantine with the reason and 202,
//!   event types the pipeline does not handle → stored and acknowledged without a job.
//! - `POST /v1/webhooks/{system}/{tenant}`: the same for every CRM plugin that takes webhooks
//!   (its own signature check against the tenant's connection, its events turned into
//!   provider-neutral changes); an unknown system answers 404 naming it.
//! - `GET /healthz` (the process answers), `GET /readyz` (the queue answers), `GET /metrics`
//!   (Prometheus; see [`telemetry`]).
//! - The operator's API under `/v1/admin` (see [`admin`]); `GET /openapi.json` describes every
//!   route ([`openapi`]).
//! - The contact service's API for the tenant's app under `/v1/tenants/{tenant}/`, with the
//!   tenant's API keys.
//!
//! Internal errors are logged and answered with a generic body; a store that cannot be reached
//! answers 503 so the sender retries.

pub mod admin;
pub mod config;
mod console;
mod contacts;
mod control;
mod mappings;
pub mod openapi;
mod schemas;
pub mod server;
pub mod telemetry;
mod tenant_cache;
mod webhooks;

use std::future::Future;
use std::sync::Arc;

use app_common::registry::Registry;
use axum::Router;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use ports::clock::Clock;
use ports::queue::{DeadLetterQueue, JobQueue};
use ports::stores::{Inbox, SyncStateStore, TenantStore};
use serde_json::json;

pub use admin::AttioRegistrar;
pub use config::{RawConfig, Settings, StoreSettings};
pub use tenant_cache::TenantCache;

/// What the handlers use. Cheap to clone (one reference count; axum clones it per request).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Parts>);

impl std::ops::Deref for AppState {
    type Target = Parts;
    fn deref(&self) -> &Parts {
        &self.0
    }
}

/// The state's parts, reached through [`AppState`].
#[derive(Clone)]
pub struct Parts {
    pub tenants: Arc<dyn TenantStore>,
    pub inbox: Arc<dyn Inbox>,
    pub queue: Arc<dyn JobQueue>,
    pub dead: Arc<dyn DeadLetterQueue>,
    pub sync_state: Arc<dyn SyncStateStore>,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
    /// Registers Attio webhooks for new tenants; `None` refuses `register_webhook`.
    pub registrar: Option<AttioRegistrar>,
    /// Tenants read recently (their secrets are needed on every delivery).
    pub tenant_cache: TenantCache,
    /// The contact service behind `/v1/tenants/{tenant}/…`; `None` leaves those routes answering
    /// 404.
    pub contacts: Option<Arc<services::contact::ContactService>>,
    /// The CRM plugins: webhook routes, tenant checks and the API document come from it.
    pub registry: Registry,
    /// Every store that keeps tenant data, erased when a tenant is deleted.
    pub stores: app_common::Stores,
    /// The tenants' provider clients, for checking mappings against the live schemas; `None`
    /// checks only what needs no provider.
    pub directory: Option<Arc<dyn ports::directory::ClientDirectory>>,
}

impl AppState {
    /// The state over a set of stores: the system clock, no webhook registration, no contact
    /// service (see [`AppState::with_registrar`], [`AppState::with_contacts`]).
    pub fn new(stores: &app_common::Stores, settings: Settings) -> Self {
        Self(Arc::new(Parts {
            tenants: stores.tenants.clone(),
            inbox: stores.inbox.clone(),
            queue: stores.queue.clone(),
            dead: stores.dead.clone(),
            sync_state: stores.sync_state.clone(),
            clock: Arc::new(adapter_memory::SystemClock),
            settings: Arc::new(settings),
            registrar: None,
            tenant_cache: TenantCache::default(),
            contacts: None,
            registry: Registry::builtin(),
            stores: stores.clone(),
            directory: None,
        }))
    }

    /// The state a deployment serves: Attio webhook registration at `attio_base_url` and the
    /// contact service over the tenants' clients, both budgeted by `limiter`.
    pub fn serving(
        stores: &app_common::Stores,
        settings: Settings,
        limiter: Arc<dyn ports::limiter::RateLimiter>,
    ) -> Self {
        let directory = Arc::new(app_common::directory::TenantDirectory::new(
            stores.tenants.clone(),
            limiter.clone(),
            &settings.attio_base_url,
        ));
        let contacts =
            services::contact::ContactService::new(directory.clone(), stores.cache.clone());
        let registrar = AttioRegistrar {
            base_url: settings.attio_base_url.clone(),
            limiter,
        };
        Self::new(stores, settings)
            .with_registrar(Some(registrar))
            .with_contacts(Some(Arc::new(contacts)))
            .with_directory(Some(directory))
    }

    pub fn with_directory(
        mut self,
        directory: Option<Arc<dyn ports::directory::ClientDirectory>>,
    ) -> Self {
        Arc::make_mut(&mut self.0).directory = directory;
        self
    }

    pub fn with_registrar(mut self, registrar: Option<AttioRegistrar>) -> Self {
        Arc::make_mut(&mut self.0).registrar = registrar;
        self
    }

    pub fn with_contacts(
        mut self,
        contacts: Option<Arc<services::contact::ContactService>>,
    ) -> Self {
        Arc::make_mut(&mut self.0).contacts = contacts;
        self
    }
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

async fn openapi_json(State(state): State<AppState>) -> impl IntoResponse {
    Json(openapi::document(&state.registry))
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let Some(handle) = telemetry::handle() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not available in this process".to_owned(),
        );
    };
    if let Ok(d) = state.queue.depth().await {
        for (label, v) in [
            ("ready", d.ready),
            ("delayed", d.delayed),
            ("in_flight", d.in_flight),
            ("dead", d.dead),
        ] {
            metrics::gauge!("queue_jobs", "state" => label).set(v as f64);
        }
    }
    (StatusCode::OK, handle.render())
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.queue.depth().await {
        Ok(d) => (
            StatusCode::OK,
            Json(
                json!({"status": "ready", "queue": {"ready": d.ready, "in_flight": d.in_flight, "dead": d.dead}}),
            ),
        ),
        Err(e) => {
            tracing::warn!(error = %ports::Chain(&e), "not ready: the queue does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable"})),
            )
        }
    }
}

/// The routes with their limits: body size, and a time to answer within (Attio waits 5 s; the
/// admin API, which may wait for Attio, has its own).
pub fn app(state: AppState) -> Router {
    // Install the recorder before the first delivery is counted.
    let _ = telemetry::handle();
    let settings = state.settings.clone();
    let served = Router::new()
        .route("/v1/webhooks/attio/{tenant}", post(webhooks::attio))
        .route("/v1/webhooks/{system}/{tenant}", post(webhooks::crm))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_json))
        .merge(contacts::routes(state.clone()))
        .layer(from_fn_with_state(settings.request_timeout, within));
    let admin =
        admin::routes(state.clone()).layer(from_fn_with_state(settings.admin_timeout, within));
    served
        .merge(admin)
        .merge(console::routes(state.clone()))
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .with_state(state)
}

/// Answers 503 with a JSON body, and logs the route, when the handler has not answered within
/// `limit`; the sender retries.
async fn within(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(answer) => answer,
        Err(_) => {
            tracing::warn!(%method, %path, timeout_ms = limit.as_millis() as u64, "a request was not answered in time; answered 503");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "not answered in time; retry"})),
            )
                .into_response()
        }
    }
}

/// Starts forgetting the inbox's deliveries once they are past the dedupe retention (ADR 0020),
/// unless `purge_interval` turns that off. The task runs until aborted.
pub fn spawn_retention(
    settings: &Settings,
    inbox: Arc<dyn Inbox>,
) -> Option<tokio::task::JoinHandle<()>> {
    let interval = settings.purge_interval?;
    // The first pass runs at once: install the recorder first, or what it counts is lost.
    let _ = telemetry::handle();
    let retention = services::retention::Retention::new(Arc::new(adapter_memory::SystemClock))
        .with_inbox(inbox, settings.dedupe_retention, settings.purge_batch);
    Some(tokio::spawn(retention.run(interval)))
}

/// Serves until `shutdown` resolves, then finishes the requests in flight; connections are
/// bounded by the settings' limits ([`server`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = server::Limits {
        max_connections: state.settings.max_connections,
        header_read_timeout: state.settings.header_read_timeout,
        idle_timeout: state.settings.idle_timeout,
    };
    server::serve(listener, app(state), limits, shutdown).await
}
