//! `salesforce-sim`: a local simulator of Salesforce's REST API for one org, written from
//! Salesforce's documentation (see `shared/reference/salesforce.md`), not from our adapter, for
//! tests, benchmarks and development.
//!
//! Served: the OAuth 2.0 token endpoint (client credentials, JWT bearer; `instance_url` is the
//! simulator's own URL), `/revoke` and `/introspect`; under `/services/data/vNN.N` (20.0–67.0;
//! upsert answers switch at 46.0) single records (create, read, update, delete,
//! `?_HttpMethod=PATCH`), upsert by external id (201/200/204/300, `updateOnly`), sObject
//! Collections (create, update, upsert, retrieve, delete; ≤ 200 records, always 200 with
//! per-item `statusCode` errors, `allOrNone` rollback), SOQL `query`/`queryAll` with
//! `nextRecordsUrl` paging and `Sforce-Query-Options: batchSize`, getUpdated/getDeleted with
//! minute granularity and the 30/15-day windows, `/limits`, and `GET /services/data`.
//! Limits: a rolling 24-hour per-org request counter reported in `Sforce-Limit-Info` on every data
//! response; past it, 403 `REQUEST_LIMIT_EXCEEDED` (never 429, no `Retry-After`); URIs over
//! 16,384 bytes → 414, URI plus headers → 431. Expired, revoked or unknown tokens → 401
//! `INVALID_SESSION_ID`.
//!
//! Simulator controls (no token, no limit): `GET`/`PUT /_sim/faults`, `POST /_sim/clock`
//! (`{"advance_s": N}` moves the org's clock forward), `POST /_sim/expire-tokens`,
//! `POST /_sim/purge-delete-log`, `POST /_sim/merge` (`{"object": "Contact", "master": ID,
//! "merged": [ID…]}`: a merge as a person makes it in Salesforce's UI, which REST cannot).
//!
//! Not simulated: ETags on Account, the long-running concurrency limit, Composite batch and
//! graph calls, relationship fields in SOQL, TLS, CDC and Outbound Messaging.

mod api;
mod faults;
mod oauth;
mod soql;
mod store;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use time::OffsetDateTime;

pub use faults::Faults;

/// Parses a SOQL query as the simulator reads it; `Err` names what Salesforce would answer (its
/// error code and message). For fuzzing and tests of the parser.
pub fn parse_soql(q: &str) -> Result<(), String> {
    soql::parse(q)
        .map(|_| ())
        .map_err(|f| format!("{}: {}", f.code, f.message))
}
use store::{ObjectSpec, Record, SfFault, Table};

/// The connected app the org trusts.
#[derive(Debug, Clone)]
pub struct ConnectedApp {
    /// The consumer key (also the JWT `iss`).
    pub client_id: String,
    pub client_secret: String,
    /// The public key (SPKI PEM) of the certificate uploaded for the JWT bearer flow; `None`
    /// refuses that flow.
    pub jwt_public_key_pem: Option<String>,
    /// The only user the JWT flow accepts as `sub`; `None` accepts any.
    pub jwt_username: Option<String>,
}

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct SalesforceConfig {
    pub app: ConnectedApp,
    pub org_id: String,
    /// The run-as user (`LastModifiedById` of API writes, the end of the identity URL).
    pub user_id: String,
    /// How long an access token lives (the session timeout).
    pub token_ttl: Duration,
    /// API requests per rolling 24 hours (Developer Edition 15,000; Enterprise 100,000 +
    /// 1,000 per licence).
    pub daily_limit: u64,
    /// The highest API version served (the lowest is 20.0).
    pub max_version: f64,
    /// External-id fields on every object, and whether each is also Unique.
    pub external_ids: Vec<(String, bool)>,
    /// getUpdated/getDeleted answer `EXCEEDED_ID_LIMIT` above this many ids (Salesforce: 600,000).
    pub max_replication_ids: usize,
    pub faults: Faults,
}

impl Default for SalesforceConfig {
    fn default() -> Self {
        Self {
            app: ConnectedApp {
                client_id: "sim-consumer-key".into(),
                client_secret: "sim-consumer-secret".into(),
                jwt_public_key_pem: None,
                jwt_username: None,
            },
            org_id: "00D5g000004SIMORG".into(),
            user_id: "0055g00000SIMUSER".into(),
            token_ttl: Duration::from_secs(2 * 3600),
            daily_limit: 100_000,
            max_version: 67.0,
            external_ids: vec![("Attio_Id__c".into(), true)],
            max_replication_ids: 600_000,
            faults: Faults::default(),
        }
    }
}

/// A query's remaining rows, served page by page through `nextRecordsUrl`.
#[derive(Debug)]
pub(crate) struct Cursor {
    rows: Vec<serde_json::Value>,
    batch: usize,
}

/// The org's data.
#[derive(Debug)]
pub(crate) struct Org {
    tables: HashMap<String, Table>,
    cursors: HashMap<String, Cursor>,
    /// Requests per minute over the last 24 hours (minute number, count).
    usage: VecDeque<(i64, u64)>,
    /// No delete-log entry is older than this (`earliestDateAvailable`).
    delete_log_start: OffsetDateTime,
    next_cursor: u64,
}

impl Org {
    /// The table of an object (object names are case-insensitive); `NOT_FOUND` otherwise.
    fn table(&mut self, object: &str) -> Result<&mut Table, SfFault> {
        self.tables
            .get_mut(&object.to_ascii_lowercase())
            .ok_or_else(|| SfFault::new(404, "NOT_FOUND", "The requested resource does not exist"))
    }

    /// What deleting record `id` deletes with it, as Salesforce cascades: a contact's or an
    /// opportunity's contact roles.
    pub(crate) fn cascade(&mut self, id: &str, now: OffsetDateTime) {
        let Some(roles) = self.tables.get_mut("opportunitycontactrole") else {
            return;
        };
        for field in ["ContactId", "OpportunityId"] {
            for role in roles.referring(field, id) {
                let _ = roles.delete(&role, now);
            }
        }
    }

    /// The schema of every object of the org.
    pub(crate) fn specs(&self) -> impl Iterator<Item = &ObjectSpec> {
        self.tables.values().map(|t| &t.spec)
    }

    /// A live record by its id (any object, found by the id's prefix), with its table.
    fn record_by_id(&self, id: &str) -> Option<(&Table, Record)> {
        let table = self
            .tables
            .values()
            .find(|t| id.starts_with(t.spec.prefix))?;
        let record = table
            .records
            .get(id)
            .filter(|r| r.deleted.is_none())?
            .clone();
        Some((table, record))
    }

    fn used(&mut self, now: OffsetDateTime) -> u64 {
        let minute = now.unix_timestamp().div_euclid(60);
        while self
            .usage
            .front()
            .is_some_and(|(m, _)| *m <= minute - 24 * 60)
        {
            self.usage.pop_front();
        }
        self.usage.iter().map(|(_, n)| n).sum()
    }

    fn count(&mut self, now: OffsetDateTime) {
        let minute = now.unix_timestamp().div_euclid(60);
        match self.usage.back_mut() {
            Some((m, n)) if *m == minute => *n += 1,
            _ => self.usage.push_back((minute, 1)),
        }
    }
}

/// Shared state.
#[derive(Debug)]
pub struct Sim {
    config: SalesforceConfig,
    url: OnceLock<String>,
    tokens: Mutex<HashMap<String, Instant>>,
    org: Mutex<Org>,
    faults: RwLock<Faults>,
    clock_offset: Mutex<Duration>,
}

impl IntoResponse for SfFault {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        (status, axum::Json(serde_json::json!([self.single()]))).into_response()
    }
}

impl Sim {
    pub fn new(config: SalesforceConfig) -> Self {
        let tables = ObjectSpec::standard(&config.external_ids)
            .into_iter()
            .map(|s| (s.name.to_ascii_lowercase(), Table::new(s)))
            .collect();
        let now = OffsetDateTime::now_utc();
        Self {
            faults: RwLock::new(config.faults.clone()),
            config,
            url: OnceLock::new(),
            tokens: Mutex::default(),
            org: Mutex::new(Org {
                tables,
                cursors: HashMap::new(),
                usage: VecDeque::new(),
                // A fresh org's log reaches back as far as getDeleted may ask.
                delete_log_start: now - time::Duration::days(15),
                next_cursor: 0,
            }),
            clock_offset: Mutex::default(),
        }
    }

    /// The simulator's base URL (also every token's `instance_url`).
    pub fn url(&self) -> String {
        self.url.get().cloned().unwrap_or_default()
    }

    /// The org's clock: real UTC time plus any `advance_clock`.
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
            + *self
                .clock_offset
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves the org's clock forward (records' timestamps, windows, the 24-hour counter).
    pub fn advance_clock(&self, by: Duration) {
        *self
            .clock_offset
            .lock()
            .unwrap_or_else(PoisonError::into_inner) += by;
    }

    pub fn faults(&self) -> Faults {
        self.faults
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.faults.write().unwrap_or_else(PoisonError::into_inner) = faults;
    }

    /// Invalidates every access token, as a session timeout would.
    pub fn expire_tokens(&self) {
        self.tokens().clear();
    }

    /// Requests counted in the last 24 hours.
    pub fn api_usage(&self) -> u64 {
        let now = self.now();
        self.org().used(now)
    }

    /// Empties the delete log, as Salesforce's purge does; `earliestDateAvailable` becomes now.
    /// Merges records of `object` into `master` (Contact or Account), as a person does in
    /// Salesforce's UI: the merged records are deleted with `MasterRecordId` set, and every live
    /// record that referred to one of them refers to `master` instead.
    pub fn merge(&self, object: &str, master: &str, merged: &[String]) -> Result<(), SfFault> {
        let now = self.now();
        let mut org = self.org();
        org.table(object)?.merge(master, merged, now)?;
        for t in org.tables.values_mut() {
            t.reparent(merged, master, now);
        }
        Ok(())
    }

    pub fn purge_delete_log(&self) {
        let now = self.now();
        let mut org = self.org();
        org.delete_log_start = now;
        for t in org.tables.values_mut() {
            t.delete_log.clear();
        }
    }

    pub(crate) fn tokens(&self) -> MutexGuard<'_, HashMap<String, Instant>> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn org(&self) -> MutexGuard<'_, Org> {
        self.org.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn issue_token(&self) -> String {
        let token = format!("{}!{}", self.config.org_id, uuid::Uuid::new_v4().simple());
        self.tokens()
            .insert(token.clone(), Instant::now() + self.config.token_ttl);
        token
    }

    fn limit_info(&self, used: u64) -> HeaderValue {
        HeaderValue::from_str(&format!("api-usage={used}/{}", self.config.daily_limit))
            .unwrap_or_else(|_| HeaderValue::from_static("api-usage=0/0"))
    }
}

impl sim_support::HasFaults for Sim {
    type Faults = Faults;

    fn faults(&self) -> Faults {
        Sim::faults(self)
    }

    fn set_faults(&self, faults: Faults) {
        Sim::set_faults(self, faults);
    }
}

/// The API version of a data request, from its path.
#[derive(Debug, Clone)]
pub(crate) struct ApiVersion(pub String, pub f64);

const MAX_URI_AND_HEADERS: usize = 16_384;

/// Size limits, the token, the version and the daily counter for `/services/data/vNN.N/…`;
/// adds `Sforce-Limit-Info` to the answer.
async fn data_layer(State(sim): State<Arc<Sim>>, mut req: Request, next: Next) -> Response {
    let uri_len = req.uri().to_string().len();
    if uri_len > MAX_URI_AND_HEADERS {
        return SfFault::new(
            414,
            "URI_TOO_LONG",
            "The request URI is longer than 16,384 bytes",
        )
        .into_response();
    }
    let header_len: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if uri_len + header_len > MAX_URI_AND_HEADERS {
        return SfFault::new(
            431,
            "REQUEST_HEADER_FIELDS_TOO_LARGE",
            "The URI and headers together exceed 16,384 bytes",
        )
        .into_response();
    }
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("OAuth "))
        })
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    let valid = sim
        .tokens()
        .get(&token)
        .is_some_and(|e| *e > Instant::now());
    if !valid {
        return SfFault::new(401, "INVALID_SESSION_ID", "Session expired or invalid")
            .into_response();
    }
    let segment = req
        .uri()
        .path()
        .trim_start_matches("/services/data/")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let version = segment
        .strip_prefix('v')
        .filter(|v| v.contains('.'))
        .and_then(|v| v.parse::<f64>().ok().map(|n| (v.to_owned(), n)))
        .filter(|(_, n)| (20.0..=sim.config.max_version).contains(n));
    let Some((label, number)) = version else {
        return SfFault::new(404, "NOT_FOUND", "The requested resource does not exist")
            .into_response();
    };
    let now = sim.now();
    let used = {
        let mut org = sim.org();
        let used = org.used(now);
        if used >= sim.config.daily_limit {
            drop(org);
            let mut r = SfFault::new(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded.",
            )
            .into_response();
            r.headers_mut()
                .insert("sforce-limit-info", sim.limit_info(used));
            return r;
        }
        org.count(now);
        used + 1
    };
    req.extensions_mut().insert(ApiVersion(label, number));
    let mut r = next.run(req).await;
    r.headers_mut()
        .insert("sforce-limit-info", sim.limit_info(used));
    r
}

async fn versions(State(sim): State<Arc<Sim>>) -> Response {
    let max = sim.config.max_version as u32;
    let list: Vec<_> = (20..=max)
        .map(|v| serde_json::json!({"label": format!("API {v}.0"), "url": format!("/services/data/v{v}.0"), "version": format!("{v}.0")}))
        .collect();
    axum::Json(list).into_response()
}

#[derive(Debug, Deserialize)]
struct Advance {
    advance_s: u64,
}

async fn sim_clock(State(sim): State<Arc<Sim>>, axum::Json(a): axum::Json<Advance>) -> Response {
    sim.advance_clock(Duration::from_secs(a.advance_s));
    axum::Json(serde_json::json!({"now": store::sf_time(sim.now())})).into_response()
}

async fn sim_expire(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.expire_tokens();
    StatusCode::NO_CONTENT
}

/// A merge as a person makes it in Salesforce's UI.
#[derive(serde::Deserialize)]
struct Merge {
    object: String,
    master: String,
    merged: Vec<String>,
}

async fn sim_merge(State(sim): State<Arc<Sim>>, axum::Json(m): axum::Json<Merge>) -> Response {
    match sim.merge(&m.object, &m.master, &m.merged) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn sim_purge(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.purge_delete_log();
    StatusCode::NO_CONTENT
}

/// What Salesforce answers for a path it does not serve: its JSON error list, never an empty
/// body.
async fn unknown_resource() -> axum::response::Response {
    SfFault::new(404, "NOT_FOUND", "The requested resource does not exist").into_response()
}

/// A method the resource does not take, as Salesforce answers it.
async fn wrong_method(method: axum::http::Method) -> axum::response::Response {
    SfFault::new(
        405,
        "METHOD_NOT_ALLOWED",
        format!("HTTP Method '{method}' not allowed. Allowed are GET,HEAD,POST,PATCH,DELETE"),
    )
    .into_response()
}

/// The whole service.
pub fn router(sim: Arc<Sim>) -> Router {
    let data = api::routes()
        .layer(from_fn_with_state(sim.clone(), faults::layer))
        .layer(from_fn_with_state(sim.clone(), data_layer));
    let app = Router::new()
        .route("/services/oauth2/token", post(oauth::token))
        .route("/services/oauth2/revoke", post(oauth::revoke))
        .route("/services/oauth2/introspect", post(oauth::introspect))
        .route("/services/data", get(versions))
        .route("/_sim/faults", sim_support::faults_route::<Sim>())
        .route("/_sim/clock", post(sim_clock))
        .route("/_sim/expire-tokens", post(sim_expire))
        .route("/_sim/purge-delete-log", post(sim_purge))
        .route("/_sim/merge", post(sim_merge))
        .merge(data)
        .fallback(unknown_resource)
        .method_not_allowed_fallback(wrong_method)
        .with_state(sim);
    sim_support::requests::RequestLog::default().wrap(app)
}

/// A simulator serving on a local port; stops when dropped. `url()` is the login URL and every
/// token's `instance_url`.
pub type RunningSim = sim_support::Running<Sim>;

/// Binds `addr` (port 0 for any) and serves in the background.
pub async fn start(addr: SocketAddr, config: SalesforceConfig) -> std::io::Result<RunningSim> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let sim = Arc::new(Sim::new(config));
    let _ = sim.url.set(format!("http://{}", listener.local_addr()?));
    let app = router(sim.clone());
    sim_support::spawn("salesforce-sim", listener, app, sim, Vec::new())
}
