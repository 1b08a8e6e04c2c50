//! `hubspot-sim`: a local simulator of HubSpot's CRM objects API in v3 shapes, written from
//! HubSpot's documentation (not from our adapter), for tests, benchmarks and development.
//!
//! Served: contacts, companies and deals, and the engagements notes and tasks (whose create
//! needs `hs_timestamp`), under `/crm/v3/objects/{type}` and the date-versioned
//! `/crm/objects/{YYYY-MM}/{type}`: list with `after` paging, create (201; duplicate e-mail →
//! 409), get/update/archive by id or `idProperty`, batch read (207 for missing ids), batch upsert
//! (`new` per result; over 100 inputs → 400; a unique-value conflict fails the whole batch with 409,
//! as observed live), batch archive, and search (filter groups, operators, one sort, `after`,
//! `total`, the 10,000-result cap). Values are strings; every write bumps `updatedAt` and the
//! last-modified property; history per property. Every bearer token is an account of its own.
//! Budgets: a rolling 10-second window per token (190 by default) with HubSpot's rate-limit
//! headers, and 5 searches per second; merge; default associations v4 (`assoc.rs`). Not served
//! yet: OAuth.

mod assoc;
mod faults;
pub mod owners;
mod properties;
mod query;
mod search;
mod store;
mod webhooks;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use time::OffsetDateTime;

pub use faults::Faults;
use query::ListQuery;
use store::{Account, ObjectSpec, ObjectStore, Record};
pub use webhooks::{Subscription, WebhookSettings};

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct HubSpotConfig {
    /// Requests per rolling 10 s per token (HubSpot: 100, 110, 190 or 250 by tier).
    pub per_ten_seconds: u32,
    /// Searches per second per account (HubSpot: 5).
    pub searches_per_second: u32,
    /// Extra unique-value properties on every object (e.g. `attio_record_id` for upserts).
    pub unique_properties: Vec<String>,
    /// Requests per day per account (Professional: 625,000); the day ends at UTC midnight.
    pub daily_limit: u64,
    /// Faults to inject from the start (changeable later through `/_sim/faults`).
    pub faults: Faults,
    /// Where and what to deliver as webhooks; `None` sends nothing.
    pub webhooks: Option<WebhookSettings>,
}

impl Default for HubSpotConfig {
    fn default() -> Self {
        Self {
            per_ten_seconds: 190,
            searches_per_second: 5,
            unique_properties: vec!["attio_record_id".into()],
            daily_limit: 625_000,
            faults: Faults::default(),
            webhooks: None,
        }
    }
}

/// Shared state.
#[derive(Debug)]
pub struct Sim {
    config: HubSpotConfig,
    accounts: Mutex<HashMap<String, Account>>,
    faults: std::sync::RwLock<Faults>,
    events: tokio::sync::mpsc::UnboundedSender<Value>,
    events_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Value>>>,
    next_event: std::sync::atomic::AtomicU64,
    owners: Mutex<Vec<owners::Owner>>,
}

type S = State<Arc<Sim>>;

impl sim_support::HasFaults for Sim {
    type Faults = Faults;

    fn faults(&self) -> Faults {
        Sim::faults(self)
    }

    fn set_faults(&self, faults: Faults) {
        Sim::set_faults(self, faults);
    }
}

/// A HubSpot error response: `{status, message, correlationId, category, context?}`.
#[derive(Debug)]
pub(crate) struct HsError {
    status: StatusCode,
    body: Value,
}

impl HsError {
    pub(crate) fn new(status: StatusCode, category: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({"status": "error", "message": message.into(), "correlationId": uuid::Uuid::new_v4(), "category": category}),
        }
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
    }

    fn with(mut self, key: &str, value: Value) -> Self {
        self.body[key] = value;
        self
    }

    fn not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "Object not found.  objectId are usually numeric.",
        )
        .with("context", json!({"id": [id]}))
    }
}

impl IntoResponse for HsError {
    fn into_response(self) -> Response {
        let id = self.body["correlationId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut r = (self.status, axum::Json(self.body)).into_response();
        if let Ok(v) = HeaderValue::from_str(&id) {
            r.headers_mut().insert("x-hubspot-correlation-id", v);
        }
        r
    }
}

pub(crate) type HsResult<T> = Result<T, HsError>;

/// What a request may do with its token's budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Budget {
    Burst,
    Search,
}

impl Sim {
    pub fn new(config: HubSpotConfig) -> Self {
        let (events, rx) = tokio::sync::mpsc::unbounded_channel();
        Self {
            events,
            events_rx: Mutex::new(Some(rx)),
            next_event: 1.into(),
            faults: std::sync::RwLock::new(config.faults.clone()),
            config,
            accounts: Mutex::default(),
            owners: Mutex::default(),
        }
    }

    /// The account's owners (the same for every account here).
    pub(crate) fn owners(&self) -> Vec<owners::Owner> {
        self.owners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Adds an owner, as adding a user in HubSpot's settings does; returns it.
    pub fn add_owner(&self, email: &str, first: &str, last: &str) -> owners::Owner {
        let mut all = self.owners.lock().unwrap_or_else(PoisonError::into_inner);
        let owner = owners::Owner {
            id: 41_629_779 + all.len() as u64,
            email: email.to_owned(),
            first_name: first.to_owned(),
            last_name: last.to_owned(),
        };
        all.push(owner.clone());
        owner
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.faults
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the faults in force.
    pub fn set_faults(&self, faults: Faults) {
        *self.faults.write().unwrap_or_else(PoisonError::into_inner) = faults;
    }

    fn accounts(&self) -> MutexGuard<'_, HashMap<String, Account>> {
        self.accounts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The token; its account (created on first use); the budget check. Returns the token and the
    /// rate-limit headers to send (none for search).
    pub(crate) fn enter(
        &self,
        headers: &HeaderMap,
        budget: Budget,
    ) -> HsResult<(String, Vec<(&'static str, String)>)> {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| {
                HsError::new(
                    StatusCode::UNAUTHORIZED,
                    "INVALID_AUTHENTICATION",
                    "Authentication credentials not found.",
                )
            })?
            .to_owned();
        let mut accounts = self.accounts();
        let account = accounts
            .entry(token.clone())
            .or_insert_with(|| Account::new(&self.config.unique_properties));
        let today = OffsetDateTime::now_utc().date();
        if account.day != today {
            account.day = today;
            account.daily_used = 0;
        }
        if account.daily_used >= self.config.daily_limit {
            return Err(rate_limited("You have reached your daily limit.", "DAILY"));
        }
        account.daily_used += 1;
        let daily_remaining = self.config.daily_limit - account.daily_used;
        let now = Instant::now();
        let limited = |w: &mut std::collections::VecDeque<Instant>, span: Duration, max: u32| {
            while w.front().is_some_and(|t| now.duration_since(*t) >= span) {
                w.pop_front();
            }
            if w.len() >= max as usize {
                return true;
            }
            w.push_back(now);
            false
        };
        match budget {
            Budget::Search => {
                if limited(
                    &mut account.search_window,
                    Duration::from_secs(1),
                    self.config.searches_per_second,
                ) {
                    return Err(rate_limited(
                        "You have reached your secondly limit.",
                        "SECONDLY",
                    ));
                }
                Ok((token, vec![]))
            }
            Budget::Burst => {
                if limited(
                    &mut account.window,
                    Duration::from_secs(10),
                    self.config.per_ten_seconds,
                ) {
                    return Err(rate_limited(
                        "You have reached your ten_secondly_rolling limit.",
                        "TEN_SECONDLY_ROLLING",
                    ));
                }
                let remaining = self.config.per_ten_seconds as usize - account.window.len();
                Ok((
                    token,
                    vec![
                        (
                            "x-hubspot-ratelimit-max",
                            self.config.per_ten_seconds.to_string(),
                        ),
                        ("x-hubspot-ratelimit-remaining", remaining.to_string()),
                        ("x-hubspot-ratelimit-interval-milliseconds", "10000".into()),
                        (
                            "x-hubspot-ratelimit-daily",
                            self.config.daily_limit.to_string(),
                        ),
                        (
                            "x-hubspot-ratelimit-daily-remaining",
                            daily_remaining.to_string(),
                        ),
                    ],
                ))
            }
        }
    }
}

fn rate_limited(message: &str, policy: &str) -> HsError {
    HsError {
        status: StatusCode::TOO_MANY_REQUESTS,
        body: json!({"status": "error", "message": message, "errorType": "RATE_LIMIT", "correlationId": uuid::Uuid::new_v4(), "policyName": policy, "requestId": uuid::Uuid::new_v4()}),
    }
}

pub(crate) fn reply(
    status: StatusCode,
    body: Option<Value>,
    headers: Vec<(&'static str, String)>,
) -> Response {
    let mut r = match body {
        Some(b) => (status, axum::Json(b)).into_response(),
        None => status.into_response(),
    };
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

fn body_json(body: &Bytes) -> HsResult<Value> {
    serde_json::from_slice(body)
        .map_err(|e| HsError::validation(format!("Invalid input JSON: {e}")))
}

fn names(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// HubSpot's 400 for a property value it refuses: the message lists the property's error as
/// JSON text.
fn invalid_property(name: &str, message: &str, error: &str) -> HsError {
    let listed = json!([{"isValid": false, "message": message, "error": error, "name": name}]);
    HsError::validation(format!("Property values were not valid: {listed}"))
}

/// Checks write properties: known, writable, string values.
fn properties(spec: &ObjectSpec, v: &Value) -> HsResult<BTreeMap<String, String>> {
    let Some(m) = v.as_object() else {
        return Err(HsError::validation("properties must be an object"));
    };
    let mut out = BTreeMap::new();
    for (k, val) in m {
        if !spec.properties.contains(k) {
            return Err(invalid_property(
                k,
                &format!("Property \"{k}\" does not exist"),
                "PROPERTY_DOESNT_EXIST",
            ));
        }
        if ObjectSpec::is_read_only(k) {
            return Err(invalid_property(
                k,
                &format!("{k} is a read only property; its value cannot be set."),
                "READ_ONLY_VALUE",
            ));
        }
        let s = match val {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => String::new(),
            _ => {
                return Err(HsError::validation(format!(
                    "Property {k} must be a string"
                )));
            }
        };
        out.insert(k.clone(), s);
    }
    Ok(out)
}

fn conflict_error(spec: &ObjectSpec, property: &str, existing: u64) -> HsError {
    let message = if spec.name == "contacts" && property == "email" {
        format!("Contact already exists. Existing ID: {existing}")
    } else {
        format!(
            "A {} with {property} already exists. Existing ID: {existing}",
            spec.singular()
        )
    };
    HsError::new(StatusCode::CONFLICT, "CONFLICT", message)
}

pub(crate) fn with_object<R>(
    sim: &Sim,
    token: &str,
    object: &str,
    f: impl FnOnce(&mut ObjectStore, &mut u64) -> HsResult<R>,
) -> HsResult<R> {
    let mut accounts = sim.accounts();
    let account = accounts.get_mut(token).ok_or_else(|| {
        HsError::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Unknown account",
        )
    })?;
    let Account {
        objects, next_id, ..
    } = account;
    let store = objects
        .values_mut()
        .find(|o| o.spec.name == object || o.spec.type_id == object)
        .ok_or_else(|| {
            HsError::new(
                StatusCode::NOT_FOUND,
                "OBJECT_NOT_FOUND",
                format!("Unable to infer object type from: {object}"),
            )
        })?;
    let started = OffsetDateTime::now_utc();
    let Some(settings) = &sim.config.webhooks else {
        let result = f(store, next_id);
        store.reindex_touched(started);
        return result;
    };
    let before = webhooks::snapshot(store);
    let result = f(store, next_id);
    store.reindex_touched(started);
    let result = result?;
    sim.send_events(webhooks::events(settings, &before, store, &sim.next_event));
    Ok(result)
}

impl Sim {
    /// Queues events for delivery, losing each at the configured drop rate.
    pub(crate) fn send_events(&self, events: Vec<serde_json::Value>) {
        let drop_rate = self.faults().drop_rate;
        for e in events {
            // A lost delivery: HubSpot's webhook never arrives.
            if sim_support::roll(drop_rate) {
                continue;
            }
            // The receiver lives as long as the simulator's delivery task.
            let _ = self.events.send(e);
        }
    }
}

use store::new_record;

/// The live record whose `hs_merged_object_ids` names `id`.
fn merged_into(store: &ObjectStore, id: &str) -> Option<u64> {
    store
        .records
        .values()
        .find(|r| {
            !r.archived
                && r.properties
                    .get("hs_merged_object_ids")
                    .is_some_and(|ids| ids.split(';').any(|m| m == id))
        })
        .map(|r| r.id)
}

/// Finds a record by id, or by the value of a unique `idProperty`.
fn find(store: &ObjectStore, id: &str, id_property: Option<&str>, archived: bool) -> HsResult<u64> {
    let found = match id_property {
        Some(p) if p != "hs_object_id" => {
            if !store.spec.unique.iter().any(|u| u == p) {
                return Err(HsError::validation(format!(
                    "Unable to perform update/upsert by non-unique {} property",
                    store.spec.type_id
                )));
            }
            store.by_unique(p, id).map(|r| r.id)
        }
        _ => id
            .parse::<u64>()
            .ok()
            .filter(|n| store.records.get(n).is_some_and(|r| r.archived == archived)),
    };
    found.ok_or_else(|| HsError::not_found(id))
}

async fn list(
    State(sim): S,
    headers: HeaderMap,
    Path(p): Path<Vec<(String, String)>>,
    q: ListQuery,
) -> HsResult<Response> {
    let (token, rl) = sim.enter(&headers, Budget::Burst)?;
    let object = object_of(&p)?;
    let limit = q.limit.unwrap_or(10);
    if limit == 0 || limit > 100 {
        return Err(HsError::validation("limit must be between 1 and 100"));
    }
    let after: u64 = match &q.after {
        Some(a) => a
            .parse()
            .map_err(|_| HsError::validation("after must be a cursor from a previous page"))?,
        None => 0,
    };
    let page = with_object(&sim, &token, &object, |store, _| {
        let wanted = q.properties.clone();
        let history = q.properties_with_history.clone();
        let archived = q.archived.unwrap_or(false);
        let matching: Vec<&Record> = store
            .records
            .range(after..)
            .map(|(_, r)| r)
            .filter(|r| r.archived == archived)
            .take(limit + 1)
            .collect();
        let results: Vec<Value> = matching
            .iter()
            .take(limit)
            .map(|r| r.json(&store.spec, &wanted, &history))
            .collect();
        let mut body = json!({ "results": results });
        if let Some(next) = matching.get(limit) {
            body["paging"] = json!({"next": {"after": next.id.to_string(), "link": format!("?limit={limit}&after={}", next.id)}});
        }
        Ok(body)
    })?;
    Ok(reply(StatusCode::OK, Some(page), rl))
}

/// The object name from the path (`{type}`), whichever prefix was used.
fn object_of(p: &[(String, String)]) -> HsResult<String> {
    p.iter()
        .find(|(k, _)| k == "object")
        .map(|(_, v)| v.clone())
        .ok_or_else(|| HsError::validation("no object type"))
}

fn id_of(p: &[(String, String)]) -> String {
    p.iter()
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

async fn create(
    State(sim): S,
    headers: HeaderMap,
    Path(p): Path<Vec<(String, String)>>,
    body: Bytes,
) -> HsResult<Response> {
    let (token, rl) = sim.enter(&headers, Budget::Burst)?;
    let object = object_of(&p)?;
    let body = body_json(&body)?;
    let rec = with_object(&sim, &token, &object, |store, next_id| {
        let props = properties(&store.spec, &body["properties"])?;
        if let Some(missing) = store
            .spec
            .required
            .iter()
            .find(|p| props.get(**p).is_none_or(String::is_empty))
        {
            return Err(invalid_property(
                missing,
                &format!("{missing} is required"),
                "REQUIRED_PROPERTY",
            ));
        }
        if let Some((prop, existing)) = store.conflict(&props, None) {
            return Err(conflict_error(&store.spec, &prop, existing));
        }
        let now = OffsetDateTime::now_utc();
        let mut r = new_record(&store.spec, next_id, now);
        r.set(&store.spec, &props, now);
        let json = r.json(&store.spec, &store.spec.written(props.keys()), &[]);
        store.records.insert(r.id, r);
        Ok(json)
    })?;
    Ok(reply(StatusCode::CREATED, Some(rec), rl))
}

async fn read_one(
    State(sim): S,
    headers: HeaderMap,
    Path(p): Path<Vec<(String, String)>>,
    q: ListQuery,
) -> HsResult<Response> {
    let (token, rl) = sim.enter(&headers, Budget::Burst)?;
    let object = object_of(&p)?;
    let id = id_of(&p);
    let (mut rec, name, n) = with_object(&sim, &token, &object, |store, _| {
        let n = find(
            store,
            &id,
            q.id_property.as_deref(),
            q.archived.unwrap_or(false),
        )?;
        let r = store
            .records
            .get(&n)
            .ok_or_else(|| HsError::not_found(&id))?;
        let json = r.json(&store.spec, &q.properties, &q.properties_with_history);
        Ok((json, store.spec.name, n))
    })?;
    if !q.associations.is_empty()
        && let Some(account) = sim.accounts().get(&token)
    {
        rec["associations"] = assoc::inline(account, name, n, &q.associations);
    }
    Ok(reply(StatusCode::OK, Some(rec), rl))
}

async fn update_one(
    State(sim): S,
    headers: HeaderMap,
    Path(p): Path<Vec<(String, String)>>,
    q: ListQuery,
    body: Bytes,
) -> HsResult<Response> {
    let (token, rl) = sim.enter(&headers, Budget::Burst)?;
    let object = object_of(&p)?;
    let id = id_of(&p);
    let body = body_json(&body)?;
    let rec = with_object(&sim, &token, &object, |store, _| {
        let props = properties(&store.spec, &body["properties"])?;
        // An id merged into another record still updates the survivor (HubSpot's single-record
        // update; batch update does not).
        let n = find(store, &id, q.id_property.as_deref(), false)
            .or_else(|e| merged_into(store, &id).ok_or(e))?;
        if let Some((prop, existing)) = store.conflict(&props, Some(n)) {
            return Err(conflict_error(&store.spec, &prop, existing));
        }
        let spec = store.spec.clone();
        let r = store
            .records
            .get_mut(&n)
            .ok_or_else(|| HsError::not_found(&id))?;
        r.set(&spec, &props, OffsetDateTime::now_utc());
        Ok(r.json(&spec, &spec.written(props.keys()), &[]))
    })?;
    Ok(reply(StatusCode::OK, Some(rec), rl))
}

async fn archive_one(
    State(sim): S,
    headers: HeaderMap,
    Path(p): Path<Vec<(String, String)>>,
) -> HsResult<Response> {
    let (token, rl) = sim.enter(&headers, Budget::Burst)?;
    let object = object_of(&p)?;
    let id = id_of(&p);
    with_object(&sim, &token, &object, |store, _| {
        if let Some(r) = id
            .parse::<u64>()
            .ok()
            .and_then(|n| store.records.get_mut(&n))
            .filter(|r| !r.archived)
        {
            r.archived = true;
            r.archived_at = Some(OffsetDateTime::now_utc());
        }
        Ok(())
    })?;
    Ok(reply(StatusCode::NO_CONTENT, None, rl))
}

fn inputs(body: &Value) -> HsResult<Vec<Value>> {
    let inputs = body["inputs"]
        .as_array()
        .cloned()
        .ok_or_else(|| HsError::validation("inputs is required"))?;
    if inputs.len() > 100 {
        return Err(HsError::validation(format!(
            "Batch input size {} exceeds the limit of 100",
            inputs.len()
        )));
    }
    Ok(inputs)
}

fn batch(results: Vec<Value>, errors: Vec<Value>) -> (StatusCode, Value) {
    let now = store::iso(OffsetDateTime::now_utc());
    let mut body =
        json!({"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now});
    if errors.is_empty() {
        (StatusCode::OK, body)
    } else {
        body["numErrors"] = json!(errors.len());
        body["errors"] = Value::Array(errors);
        (StatusCode::MULTI_STATUS, body)
    }
}

async fn batch_read(
    State(sim): S,
    headers: HeaderMap,
    Path(p): Path<Vec<(String, String)>>,
    q: ListQuery,
    body: Bytes,
) -> HsResult<Response> {
    let (token, rl) = sim.enter(&headers, Budget::Burst)?;
    let object = object_of(&p)?;
    let body = body_json(&body)?;
    let (status, out) = with_object(&sim, &token, &object, |store, _| {
        let id_property = body["idProperty"].as_str();
        let (wanted, history) = (
            names(&body, "properties"),
            names(&body, "propertiesWithHistory"),
        );
        let mut results = Vec::new();
        let mut missing = Vec::new();
        for input in inputs(&body)? {
            let id = input["id"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| input["id"].to_string());
            match find(store, &id, id_property, q.archived.unwrap_or(false))
                .ok()
                .and_then(|n| store.records.get(&n))
            {
                Some(r) => results.push(r.json(&store.spec, &wanted, &history)),
                None => missing.push(id),
            }
        }
        let errors = if missing.is_empty() {
            vec![]
        } else {
            vec![
                json!({"status": "error", "category": "OBJECT_NOT_FOUND", "message": format!("Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.", store.spec.singular()), "context": {"ids": missing}}),
            ]
        };
        Ok(batch(results, errors))
    })?;
    Ok(reply(status, Some(out), rl))
}

/// Upserts by a unique property. A conflict on another unique property fails the whole batch with
/// 409 naming the first conflict (observed live); other invalid inputs are per-record errors (207).
async fn batch_upsert(
    State(sim): S,
    headers: HeaderMap,
    Path(p): Path<Vec<(String, String)>>,
    body: Bytes,
) -> HsResult<Response> {
    let (token, rl) = sim.enter(&headers, Budget::Burst)?;
    let object = object_of(&p)?;
    let body = body_json(&body)?;
    let (status, out) = with_object(&sim, &token, &object, |store, next_id| {
        let inputs = inputs(&body)?;
        let now = OffsetDateTime::now_utc();
        // Validate everything first: the batch is all-or-nothing for conflicts.
        let mut plan = Vec::new();
        let mut errors = Vec::new();
        for input in &inputs {
            let id = input["id"].as_str().unwrap_or_default().to_owned();
            let Some(id_property) = input["idProperty"].as_str().filter(|p| !p.is_empty()) else {
                return Err(HsError::validation("idProperty is required for upserts"));
            };
            if !store.spec.unique.iter().any(|u| u == id_property) {
                return Err(HsError::validation(format!(
                    "Unable to perform update/upsert by non-unique {} property",
                    store.spec.type_id
                )));
            }
            let mut props = match properties(&store.spec, &input["properties"]) {
                Ok(p) => p,
                Err(e) => {
                    errors.push(json!({"status": "error", "category": "VALIDATION_ERROR", "message": e.body["message"], "context": {"id": [id]}}));
                    continue;
                }
            };
            props.insert(id_property.to_owned(), id.clone());
            let existing = store.by_unique(id_property, &id).map(|r| r.id);
            if let Some((prop, other)) = store.conflict(&props, existing) {
                return Err(conflict_error(&store.spec, &prop, other));
            }
            plan.push((existing, props));
        }
        let mut results = Vec::new();
        for (existing, props) in plan {
            let spec = store.spec.clone();
            let r = match existing.and_then(|n| store.records.get_mut(&n)) {
                Some(r) => {
                    r.set(&spec, &props, now);
                    let mut j = r.json(&spec, &spec.written(props.keys()), &[]);
                    j["new"] = json!(false);
                    j
                }
                None => {
                    let mut r = new_record(&spec, next_id, now);
                    r.set(&spec, &props, now);
                    let mut j = r.json(&spec, &spec.written(props.keys()), &[]);
                    j["new"] = json!(true);
                    store.records.insert(r.id, r);
                    j
                }
            };
            results.push(r);
        }
        Ok(batch(results, errors))
    })?;
    Ok(reply(status, Some(out), rl))
}

async fn batch_archive(
    State(sim): S,
    headers: HeaderMap,
    Path(p): Path<Vec<(String, String)>>,
    body: Bytes,
) -> HsResult<Response> {
    let (token, rl) = sim.enter(&headers, Budget::Burst)?;
    let object = object_of(&p)?;
    let body = body_json(&body)?;
    with_object(&sim, &token, &object, |store, _| {
        let now = OffsetDateTime::now_utc();
        for input in inputs(&body)? {
            let id = input["id"].as_str().and_then(|s| s.parse::<u64>().ok());
            if let Some(r) = id
                .and_then(|n| store.records.get_mut(&n))
                .filter(|r| !r.archived)
            {
                r.archived = true;
                r.archived_at = Some(now);
            }
        }
        Ok(())
    })?;
    Ok(reply(StatusCode::NO_CONTENT, None, rl))
}

async fn search_route(
    State(sim): S,
    headers: HeaderMap,
    Path(p): Path<Vec<(String, String)>>,
    body: Bytes,
) -> HsResult<Response> {
    let (token, _) = sim.enter(&headers, Budget::Search)?;
    let object = object_of(&p)?;
    let body = body_json(&body)?;
    let out = with_object(&sim, &token, &object, |store, _| search::run(store, &body))?;
    Ok(reply(StatusCode::OK, Some(out), vec![]))
}

/// `POST …/merge {primaryObjectId, objectIdToMerge}`: the primary keeps its values and takes the
/// other's where it has none; the merged record is archived and its id kept in
/// `hs_merged_object_ids`.
async fn merge(
    State(sim): S,
    headers: HeaderMap,
    Path(p): Path<Vec<(String, String)>>,
    body: Bytes,
) -> HsResult<Response> {
    let (token, rl) = sim.enter(&headers, Budget::Burst)?;
    let object = object_of(&p)?;
    let body = body_json(&body)?;
    let id =
        |k: &str| text_id(&body[k]).ok_or_else(|| HsError::validation(format!("{k} is required")));
    let (primary, other) = (id("primaryObjectId")?, id("objectIdToMerge")?);
    if primary == other {
        return Err(HsError::validation("Cannot merge an object with itself"));
    }
    let merged = with_object(&sim, &token, &object, |store, _| {
        let p = find(store, &primary, None, false)?;
        let o = find(store, &other, None, false)?;
        let absorbed = store
            .records
            .get(&o)
            .map(|r| r.properties.clone())
            .unwrap_or_default();
        let absorbed_ids: Vec<String> = absorbed
            .get("hs_merged_object_ids")
            .map(|s| {
                s.split(';')
                    .filter(|i| !i.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let now = OffsetDateTime::now_utc();
        if let Some(r) = store.records.get_mut(&o) {
            r.archived = true;
            r.archived_at = Some(now);
        }
        let spec = store.spec.clone();
        let r = store
            .records
            .get_mut(&p)
            .ok_or_else(|| HsError::not_found(&primary))?;
        let mut take: BTreeMap<String, String> = absorbed
            .into_iter()
            .filter(|(k, _)| {
                !ObjectSpec::is_read_only(k)
                    && !r.properties.contains_key(k)
                    && !spec.unique.contains(k)
            })
            .collect();
        // The survivor keeps every id merged into it, those the merged record had absorbed
        // before included, so any old id still finds it.
        let earlier = absorbed_ids
            .iter()
            .map(|i| format!(";{i}"))
            .collect::<String>();
        let ids = r
            .properties
            .get("hs_merged_object_ids")
            .map(|s| format!("{s};{other}{earlier}"))
            .unwrap_or(format!("{other}{earlier}"));
        take.insert("hs_merged_object_ids".into(), ids);
        r.set(&spec, &take, now);
        Ok(r.json(&spec, &[], &[]))
    })?;
    Ok(reply(StatusCode::OK, Some(merged), rl))
}

fn text_id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

async fn unknown(uri: axum::http::Uri) -> HsError {
    HsError::new(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        format!("No route for {}", uri.path()),
    )
}

fn routes(prefix: &str) -> Router<Arc<Sim>> {
    Router::new()
        .route(&format!("{prefix}/{{object}}"), get(list).post(create))
        .route(&format!("{prefix}/{{object}}/batch/read"), post(batch_read))
        .route(
            &format!("{prefix}/{{object}}/batch/upsert"),
            post(batch_upsert),
        )
        .route(
            &format!("{prefix}/{{object}}/batch/archive"),
            post(batch_archive),
        )
        .route(&format!("{prefix}/{{object}}/search"), post(search_route))
        .route(&format!("{prefix}/{{object}}/merge"), post(merge))
        .route(
            &format!("{prefix}/{{object}}/{{id}}"),
            get(read_one).patch(update_one).delete(archive_one),
        )
}

fn association_routes(prefix: &str) -> Router<Arc<Sim>> {
    Router::new()
        .route(
            &format!("{prefix}/{{object}}/{{id}}/associations/default/{{to}}/{{toId}}"),
            axum::routing::put(assoc::associate_default),
        )
        .route(
            &format!("{prefix}/{{object}}/{{id}}/associations/{{to}}"),
            get(assoc::list),
        )
        .route(
            &format!("{prefix}/{{object}}/{{id}}/associations/{{to}}/{{toId}}"),
            axum::routing::delete(assoc::remove),
        )
}

pub fn router(sim: Arc<Sim>) -> Router {
    let app = Router::new()
        .merge(routes("/crm/v3/objects"))
        .merge(routes("/crm/objects/{version}"))
        .merge(association_routes("/crm/v4/objects"))
        .merge(association_routes("/crm/objects/{version}"))
        .route("/crm/v3/properties/{object}", get(properties::list))
        .route("/crm/v3/properties/{object}/{name}", get(properties::one))
        .route("/crm/v3/owners", get(owners::list))
        .route("/_sim/owners", axum::routing::post(owners::add))
        .route("/_sim/faults", sim_support::faults_route::<Sim>())
        .fallback(unknown)
        .layer(axum::middleware::from_fn_with_state(
            sim.clone(),
            faults::layer,
        ))
        .with_state(sim);
    sim_support::requests::RequestLog::default().wrap(app)
}

/// A simulator serving on a local port, stopped (with its webhook sender) when dropped.
pub type RunningSim = sim_support::Running<Sim>;

pub async fn start(addr: SocketAddr, config: HubSpotConfig) -> std::io::Result<RunningSim> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let webhooks = config.webhooks.clone();
    let sim = Arc::new(Sim::new(config));
    let mut tasks = Vec::new();
    if let (Some(settings), Some(rx)) = (
        webhooks,
        sim.events_rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(),
    ) {
        tasks.push(tokio::spawn(webhooks::run(settings, rx)));
    }
    let app = router(sim.clone());
    sim_support::spawn("hubspot-sim", listener, app, sim, tasks)
}
