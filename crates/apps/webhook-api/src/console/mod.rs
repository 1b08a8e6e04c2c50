//! The sync console: server-rendered pages under `/console` where an operator sees each
//! tenant's health and acts on its conflicts, dead letters and held deletes (docs/console.md).
//!
//! - **Sign-in**: the admin token, typed into `/console/login`, buys a session cookie
//!   (`HttpOnly`, `Secure`, `SameSite=Strict`, 12 hours) holding its expiry and an HMAC of it
//!   keyed by the admin token — no session store, so every replica accepts it, and changing the
//!   token signs everyone out. Without a valid cookie every page redirects to the sign-in page.
//! - **CSRF**: every form carries a token, the HMAC of the session; an action without it (or
//!   with another session's) is refused with 403.
//! - **One source of truth**: the pages are a client of the admin API, called in process
//!   ([`api`]), so they show and do exactly what `attio-sync` and `curl` do.
//! - Figures refresh every 5 s through a few lines of script (`data-refresh` fragments); without
//!   JavaScript the pages still read and act.

// Handlers return their answer early as a `Response`; boxing it would only add noise.
#![allow(clippy::result_large_err)]

mod pages;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, RawForm, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use hmac::{KeyInit, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tower::ServiceExt;

use crate::AppState;

const COOKIE: &str = "attio_sync_console";
/// How long a sign-in lasts.
const LIFETIME_S: i64 = 12 * 3600;

/// The HMAC-SHA256 of `what` keyed by the admin token, in hex.
fn mac(token: &str, what: &str) -> String {
    match <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(token.as_bytes()) {
        Ok(mut m) => {
            m.update(what.as_bytes());
            hex::encode(m.finalize().into_bytes())
        }
        // HMAC takes a key of any length; this arm is never taken.
        Err(_) => String::new(),
    }
}

/// A session cookie's value: its expiry (Unix seconds) and the MAC of it.
fn new_session(token: &str, now: i64) -> String {
    let expires = now + LIFETIME_S;
    format!("{expires}.{}", mac(token, &format!("session:{expires}")))
}

/// Whether `value` is a session this token signed that has not expired.
fn valid_session(token: &str, value: &str, now: i64) -> bool {
    let Some((expires, given)) = value.split_once('.') else {
        return false;
    };
    let Ok(at) = expires.parse::<i64>() else {
        return false;
    };
    let want = mac(token, &format!("session:{expires}"));
    at > now && bool::from(given.as_bytes().ct_eq(want.as_bytes()))
}

/// The CSRF token of a session.
fn csrf_of(token: &str, session: &str) -> String {
    mac(token, &format!("csrf:{session}"))
}

/// The signed-in session, put in the request by [`require_session`].
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The form token of this session.
    pub csrf: String,
}

fn admin_token(state: &AppState) -> Option<&str> {
    state.settings.admin_token.as_ref().map(|t| t.expose())
}

fn cookie_of(req: &Request) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_owned)
        })
}

/// Lets a request through with a valid session (and puts the [`Session`] in it); sends anything
/// else to the sign-in page.
async fn require_session(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(token) = admin_token(&state) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let now = state.clock.now().unix_timestamp();
    match cookie_of(&req) {
        Some(session) if valid_session(token, &session, now) => {
            let csrf = csrf_of(token, &session);
            req.extensions_mut().insert(Session { csrf });
            next.run(req).await
        }
        _ => Redirect::to("/console/login").into_response(),
    }
}

/// The pairs of a submitted form.
fn fields(form: &RawForm) -> Vec<(String, String)> {
    form_urlencoded::parse(&form.0).into_owned().collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Refuses a form whose CSRF token is not this session's.
fn check_csrf(session: &Session, fields: &[(String, String)]) -> Result<(), Response> {
    let given = field(fields, "csrf").unwrap_or_default();
    if bool::from(given.as_bytes().ct_eq(session.csrf.as_bytes())) {
        Ok(())
    } else {
        tracing::warn!("a console action was refused: its form token is missing or wrong");
        Err((
            StatusCode::FORBIDDEN,
            pages::message(
                "Refused",
                "This form's token is missing or belongs to another session. Reload the page and try again.",
            ),
        )
            .into_response())
    }
}

/// The pairs of a submitted form whose CSRF token is this session's; the refusal otherwise.
fn checked(session: &Session, form: &RawForm) -> Result<Vec<(String, String)>, Response> {
    let fields = fields(form);
    check_csrf(session, &fields)?;
    Ok(fields)
}

/// An admin API call that did not succeed: its status and the API's message.
#[derive(Debug)]
pub(crate) struct Failed {
    pub status: u16,
    pub message: String,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
    }
}

/// Calls the admin API in process, as the operator: its JSON answer (`null` when empty).
pub(crate) async fn api(
    state: &AppState,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, Failed> {
    let token = admin_token(state).unwrap_or_default();
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
        .map_err(|e| Failed {
            status: 400,
            message: e.to_string(),
        })?;
    let router = crate::admin::routes(state.clone()).with_state(state.clone());
    let answer = match router.oneshot(req).await {
        Ok(a) => a,
        Err(never) => match never {},
    };
    let status = answer.status().as_u16();
    let bytes = axum::body::to_bytes(answer.into_body(), 16 * 1024 * 1024)
        .await
        .map_err(|e| Failed {
            status: 500,
            message: e.to_string(),
        })?;
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        Ok(value)
    } else {
        Err(Failed {
            status,
            message: value["error"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("the admin API answered {status}")),
        })
    }
}

async fn login_page(State(state): State<AppState>) -> Response {
    if admin_token(&state).is_none() {
        return StatusCode::NOT_FOUND.into_response();
    }
    pages::login(None).into_response()
}

async fn login(State(state): State<AppState>, form: RawForm) -> Response {
    let Some(token) = admin_token(&state) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let fields = fields(&form);
    let given = field(&fields, "token").unwrap_or_default();
    if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
        tracing::warn!("a console sign-in was refused: wrong admin token");
        return (
            StatusCode::UNAUTHORIZED,
            pages::login(Some("That is not the admin token.")),
        )
            .into_response();
    }
    let session = new_session(token, state.clock.now().unix_timestamp());
    let cookie = format!(
        "{COOKIE}={session}; Path=/console; HttpOnly; Secure; SameSite=Strict; Max-Age={LIFETIME_S}"
    );
    let mut answer = Redirect::to("/console").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        answer.headers_mut().insert(header::SET_COOKIE, v);
    }
    answer
}

async fn logout(axum::Extension(session): axum::Extension<Session>, form: RawForm) -> Response {
    if let Err(r) = checked(&session, &form) {
        return r;
    }
    let mut answer = Redirect::to("/console/login").into_response();
    let gone = format!("{COOKIE}=; Path=/console; HttpOnly; Secure; SameSite=Strict; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&gone) {
        answer.headers_mut().insert(header::SET_COOKIE, v);
    }
    answer
}

/// Every tenant with its status.
async fn tenants_with_status(state: &AppState) -> Result<Vec<(Value, Value)>, Failed> {
    let tenants = api(state, Method::GET, "/v1/admin/tenants?limit=1000", None).await?;
    let mut out = Vec::new();
    for t in tenants.as_array().cloned().unwrap_or_default() {
        let id = t["id"].as_str().unwrap_or_default().to_owned();
        let status = api(
            state,
            Method::GET,
            &format!("/v1/admin/tenants/{id}/status"),
            None,
        )
        .await
        .unwrap_or_else(|e| json!({"error": e.to_string()}));
        out.push((t, status));
    }
    Ok(out)
}

async fn tenants_page(
    State(state): State<AppState>,
    axum::Extension(session): axum::Extension<Session>,
) -> Response {
    let rows = tenants_with_status(&state).await;
    pages::tenants(&session, &rows).into_response()
}

async fn tenants_fragment(State(state): State<AppState>) -> Response {
    pages::tenants_table(&tenants_with_status(&state).await).into_response()
}

/// What a tenant's page shows, read from the admin API.
pub(crate) struct TenantView {
    pub id: String,
    pub tenant: Result<Value, Failed>,
    pub status: Result<Value, Failed>,
    pub dead: Result<Value, Failed>,
    pub conflicts: Result<Value, Failed>,
    pub deletes: Result<Value, Failed>,
    pub mappings: Result<Value, Failed>,
    pub problems: Option<Result<Value, Failed>>,
    pub passes: Result<Value, Failed>,
}

async fn tenant_view(state: &AppState, id: &str) -> TenantView {
    let get = |path: String| async move { api(state, Method::GET, &path, None).await };
    let base = format!("/v1/admin/tenants/{id}");
    let mappings = get(format!("{base}/mappings")).await;
    let problems = match &mappings {
        Ok(m) if !m["mappings"].is_null() => Some(
            api(
                state,
                Method::POST,
                &format!("{base}/mappings/validate"),
                Some(json!({"mappings": m["mappings"]})),
            )
            .await,
        ),
        _ => None,
    };
    TenantView {
        id: id.to_owned(),
        tenant: get(base.clone()).await,
        status: get(format!("{base}/status")).await,
        dead: get(format!("{base}/dead-letters?limit=200")).await,
        conflicts: get(format!("{base}/conflicts?limit=200")).await,
        deletes: get(format!("{base}/deletes?limit=200")).await,
        mappings,
        problems,
        passes: get(format!("{base}/reconciliations")).await,
    }
}

#[derive(Debug, Deserialize)]
struct Note {
    note: Option<String>,
}

async fn tenant_page(
    State(state): State<AppState>,
    axum::Extension(session): axum::Extension<Session>,
    Path(id): Path<String>,
    Query(note): Query<Note>,
) -> Response {
    let view = tenant_view(&state, &id).await;
    if let Err(Failed { status: 404, .. }) = &view.tenant {
        return (
            StatusCode::NOT_FOUND,
            pages::message("Not found", "No such tenant."),
        )
            .into_response();
    }
    pages::tenant(&session, &view, note.note.as_deref()).into_response()
}

/// The ids ticked (`ids`), or the one a row's button names (`one` = `id:choice`) with its
/// choice.
fn chosen<'a>(fields: &'a [(String, String)], choice: &'a str) -> (Vec<&'a str>, &'a str) {
    if let Some((id, c)) = field(fields, "one").and_then(|o| o.split_once(':')) {
        return (vec![id], c);
    }
    let ids = fields
        .iter()
        .filter(|(k, _)| k == "ids")
        .map(|(_, v)| v.as_str())
        .collect();
    (ids, field(fields, choice).unwrap_or_default())
}

async fn figures_fragment(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let status = api(
        &state,
        Method::GET,
        &format!("/v1/admin/tenants/{id}/status"),
        None,
    )
    .await;
    pages::figures(&status).into_response()
}

#[derive(Debug, Deserialize)]
struct Search {
    #[serde(default)]
    q: String,
    #[serde(default)]
    object: Option<String>,
}

async fn records_page(
    State(state): State<AppState>,
    axum::Extension(session): axum::Extension<Session>,
    Path(id): Path<String>,
    Query(search): Query<Search>,
) -> Response {
    let object = search.object.unwrap_or_else(|| "people".into());
    let q = search.q.trim().to_owned();
    let found = if q.is_empty() {
        None
    } else {
        let path = format!(
            "/v1/admin/tenants/{id}/records/{object}?q={}",
            form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
        );
        let mut found = api(&state, Method::GET, &path, None).await;
        if let Ok(records) = &mut found {
            for r in records.as_array_mut().into_iter().flatten() {
                let record = r["record"].as_str().unwrap_or_default().to_owned();
                let history = format!("/v1/admin/tenants/{id}/records/{object}/{record}/history");
                r["history"] = api(&state, Method::GET, &history, None)
                    .await
                    .map(|h| h["entries"].clone())
                    .unwrap_or_else(|e| json!({"error": e.to_string()}));
            }
        }
        Some(found)
    };
    pages::records(&session, &id, &object, &q, found.as_ref()).into_response()
}

/// Sends the operator back to the tenant's page, at `section`, with what happened.
fn back(id: &str, section: &str, note: &str) -> Response {
    let note = form_urlencoded::byte_serialize(note.as_bytes()).collect::<String>();
    Redirect::to(&format!("/console/tenants/{id}?note={note}#{section}")).into_response()
}

/// Resolves the conflicts ticked (`ids`) keeping `keep` (`attio`, `external`, or `value` with
/// `value`), or the one a row's button names.
async fn resolve(
    State(state): State<AppState>,
    axum::Extension(session): axum::Extension<Session>,
    Path(id): Path<String>,
    form: RawForm,
) -> Response {
    let fields = match checked(&session, &form) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let (ids, keep) = chosen(&fields, "keep");
    let mut body = json!({"ids": ids, "keep": keep});
    if keep == "value" {
        let typed = field(&fields, "value").unwrap_or_default();
        body["value"] = serde_json::from_str(typed).unwrap_or_else(|_| json!(typed));
    }
    let path = format!("/v1/admin/tenants/{id}/resolutions");
    let note = match api(&state, Method::POST, &path, Some(body)).await {
        Ok(v) => format!(
            "{} conflict(s) resolved",
            v["resolved"].as_u64().unwrap_or(0)
        ),
        Err(e) => format!("not resolved: {e}"),
    };
    back(&id, "conflicts", &note)
}

/// Approves or rejects the held deletes ticked, the one a row's button names, or all of them.
async fn decide_deletes(
    State(state): State<AppState>,
    axum::Extension(session): axum::Extension<Session>,
    Path(id): Path<String>,
    form: RawForm,
) -> Response {
    let fields = match checked(&session, &form) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let (body, decision) = match field(&fields, "all") {
        Some(all) => (json!({"decision": all, "all": true}), all),
        None => {
            let (ids, decision) = chosen(&fields, "decision");
            (json!({"decision": decision, "ids": ids}), decision)
        }
    };
    let path = format!("/v1/admin/tenants/{id}/delete-decisions");
    let note = match api(&state, Method::POST, &path, Some(body)).await {
        Ok(v) => format!(
            "{} delete(s): {decision}",
            v["decided"].as_u64().unwrap_or(0)
        ),
        Err(e) => format!("not decided: {e}"),
    };
    back(&id, "deletes", &note)
}

/// Replays the dead letters named (`job`), or every one of a cause (`cause`).
async fn replay(
    State(state): State<AppState>,
    axum::Extension(session): axum::Extension<Session>,
    Path(id): Path<String>,
    form: RawForm,
) -> Response {
    let fields = match checked(&session, &form) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let mut jobs: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k == "job")
        .map(|(_, v)| v.clone())
        .collect();
    if let Some(cause) = field(&fields, "cause") {
        let path = format!("/v1/admin/tenants/{id}/dead-letters?limit=1000");
        if let Ok(dead) = api(&state, Method::GET, &path, None).await {
            jobs.extend(
                dead.as_array()
                    .into_iter()
                    .flatten()
                    .filter(|d| d["cause"] == cause)
                    .filter_map(|d| d["job_id"].as_str().map(str::to_owned)),
            );
        }
    }
    let (mut replayed, mut failed) = (0, Vec::new());
    for job in &jobs {
        let path = format!("/v1/admin/tenants/{id}/dead-letters/{job}/replay");
        match api(&state, Method::POST, &path, None).await {
            Ok(_) => replayed += 1,
            Err(e) => failed.push(format!("{job}: {e}")),
        }
    }
    let note = if failed.is_empty() {
        format!("{replayed} dead letter(s) queued again")
    } else {
        format!(
            "{replayed} queued again; not replayed: {}",
            failed.join("; ")
        )
    };
    back(&id, "errors", &note)
}

/// Queues a dry run of one mapping.
async fn dry_run(
    State(state): State<AppState>,
    axum::Extension(session): axum::Extension<Session>,
    Path(id): Path<String>,
    form: RawForm,
) -> Response {
    let fields = match checked(&session, &form) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let body = json!({
        "object": field(&fields, "object").unwrap_or_default(),
        "system": field(&fields, "system").unwrap_or_default(),
        "dry_run": true,
    });
    let path = format!("/v1/admin/tenants/{id}/reconciliations");
    let note = match api(&state, Method::POST, &path, Some(body)).await {
        Ok(_) => "dry run queued: its report appears below when a worker has run it".to_owned(),
        Err(e) => format!("not queued: {e}"),
    };
    back(&id, "mappings", &note)
}

/// The console's routes (none without an admin token).
pub(crate) fn routes(state: AppState) -> Router<AppState> {
    let guarded = Router::new()
        .route("/console", get(tenants_page))
        .route("/console/fragments/tenants", get(tenants_fragment))
        .route("/console/tenants/{id}", get(tenant_page))
        .route("/console/tenants/{id}/figures", get(figures_fragment))
        .route("/console/tenants/{id}/records", get(records_page))
        .route("/console/tenants/{id}/resolutions", post(resolve))
        .route(
            "/console/tenants/{id}/delete-decisions",
            post(decide_deletes),
        )
        .route("/console/tenants/{id}/replays", post(replay))
        .route("/console/tenants/{id}/dry-runs", post(dry_run))
        .route("/console/logout", post(logout))
        .route_layer(from_fn_with_state(state, require_session));
    Router::new()
        .route("/console/login", get(login_page).post(login))
        .merge(guarded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_valid_until_it_expires_and_only_under_its_token() {
        let s = new_session("token-a", 1_000);
        assert!(valid_session("token-a", &s, 1_000));
        assert!(valid_session("token-a", &s, 1_000 + LIFETIME_S - 1));
        assert!(!valid_session("token-a", &s, 1_000 + LIFETIME_S), "expired");
        assert!(!valid_session("token-b", &s, 1_000), "another token's");
        let (expires, m) = s.split_once('.').unwrap();
        let later = format!("{}.{m}", expires.parse::<i64>().unwrap() + 3600);
        assert!(
            !valid_session("token-a", &later, 1_000),
            "an expiry moved on"
        );
        for bad in ["", ".", "x.y", "1.", &format!("{expires}.")] {
            assert!(!valid_session("token-a", bad, 1_000), "{bad:?}");
        }
        assert_ne!(
            csrf_of("token-a", &s),
            csrf_of("token-a", &new_session("token-a", 2_000))
        );
    }
}
