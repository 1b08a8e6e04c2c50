//! The control plane's admin routes (behind the admin token, as the rest of `/v1/admin`):
//!
//! - `GET /v1/admin/tenants/{id}/conflicts` lists open conflicts, oldest first, filtered by
//!   `object`, `system`, `field`, `record` and `older_than_s`, at most `limit` (default 100,
//!   at most 1,000).
//! - `GET …/conflicts/{conflict}` shows one: both values with their change times, the snapshot
//!   they diverged from, why it was queued, and its resolution once there is one.
//! - `POST …/conflicts/{conflict}/resolve` `{"keep": "attio" | "external" | "value", "value": …}`
//!   records the decision and queues a job that writes the chosen value to every side that
//!   differs (through the sync's write path: ledger, audit trail, snapshot), answering 202.
//!   `POST /v1/admin/tenants/{id}/resolutions` does the same for `{"ids": [...], "keep": …}`,
//!   answering each id's outcome.
//! - `GET …/records/{object}/{record}/history` is a synced record's audit trail, newest first.
//! - `POST …/reconciliations` `{"object", "system", "dry_run"?, "mappings"?}` queues a
//!   reconciliation pass (or a dry run, with candidate mappings when given); `GET
//!   …/reconciliations` lists the passes with their drift reports.
//! - `GET …/deletes` lists the held deletes (oldest first, `limit`); `POST
//!   …/deletes/{delete}/approve` and `…/reject` decide one and queue the job that carries the
//!   decision out (202); `POST …/deletes/decide` `{"decision": "approve" | "reject", "ids":
//!   [...]}` or `{"decision": …, "all": true}` decides many, answering each one's outcome.
//!
//! Values are plain JSON (`null`, booleans, numbers, strings, arrays of strings).

// Handlers return their answer early as a `Response`; boxing it would only add noise.
#![allow(clippy::result_large_err)]

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use domain::audit::AuditEntry;
use domain::conflict::{ConflictFilter, ConflictRecord, Resolution};
use domain::deletes::{DeleteRecord, DeleteStatus};
use domain::field::FieldValue;
use domain::ids::{ConflictId, DeleteId, ObjectSlug, RecordId, SystemId, TenantId};
use domain::job::{JobKey, NewJob};
use domain::mapping::FieldKey;
use ports::error::PortError;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::admin::{error, port_error, rfc3339, tenant_id};

/// The most conflicts or history entries one answer holds.
const MAX_LIMIT: usize = 1000;

/// A conflict as the API shows it.
pub(crate) fn conflict_view(c: &ConflictRecord) -> Value {
    let side = |s: &domain::merge::SideValue| {
        json!({
            "value": s.value.to_plain_json(),
            "changed_at": s.changed_at.map(rfc3339),
        })
    };
    json!({
        "id": c.id.to_string(),
        "object": c.object.as_str(),
        "record": c.attio_record.to_string(),
        "system": c.system.as_str(),
        "external_id": c.external_id.as_str(),
        "field": c.field().as_str(),
        "attio": side(&c.conflict.attio),
        "external": side(&c.conflict.external),
        "snapshot": {
            "attio": c.conflict.snapshot.attio.to_plain_json(),
            "external": c.conflict.snapshot.external.to_plain_json(),
        },
        "reason": c.conflict.reason,
        "detected_at": rfc3339(c.detected_at),
        "last_seen": rfc3339(c.last_seen),
        "resolution": c.resolution.as_ref().map(|(r, at)| json!({
            "keep": r.name(),
            "value": match r { Resolution::Value { value } => value.to_plain_json(), _ => Value::Null },
            "at": rfc3339(*at),
        })),
    })
}

fn bad(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    object: Option<String>,
    system: Option<String>,
    field: Option<String>,
    record: Option<String>,
    older_than_s: Option<u64>,
    limit: Option<usize>,
}

impl ListQuery {
    fn filter(&self, now: time::OffsetDateTime) -> Result<ConflictFilter, Response> {
        let parse = |r: Result<_, domain::DomainError>| r.map_err(|e| bad(e.to_string()));
        Ok(ConflictFilter {
            object: self
                .object
                .as_deref()
                .map(ObjectSlug::parse)
                .transpose()
                .map_err(|e| bad(e.to_string()))?,
            system: self
                .system
                .as_deref()
                .map(SystemId::parse)
                .transpose()
                .map_err(|e| bad(e.to_string()))?,
            field: self
                .field
                .as_deref()
                .map(FieldKey::parse)
                .transpose()
                .map_err(|e| bad(e.to_string()))?,
            record: match self.record.as_deref() {
                Some(r) => Some(parse(RecordId::parse(r))?),
                None => None,
            },
            detected_before: self
                .older_than_s
                .map(|s| now - time::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 2))),
        })
    }
}

fn limit(given: Option<usize>) -> Result<usize, Response> {
    match given.unwrap_or(100) {
        n @ 1..=MAX_LIMIT => Ok(n),
        n => Err(bad(format!("limit must be 1 to {MAX_LIMIT}, not {n}"))),
    }
}

async fn list_conflicts(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let Query(query) = match query {
        Ok(q) => q,
        Err(e) => return bad(format!("bad query: {}", e.body_text())),
    };
    let (filter, limit) = match (query.filter(state.clock.now()), limit(query.limit)) {
        (Ok(f), Ok(l)) => (f, l),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    if let Err(e) = state.tenants.get(&id).await {
        return port_error(&e);
    }
    match state.stores.conflicts.open(&id, &filter, limit).await {
        Ok(found) => Json(found.iter().map(conflict_view).collect::<Vec<_>>()).into_response(),
        Err(e) => port_error(&e),
    }
}

fn conflict_id(raw: &str) -> Result<ConflictId, Response> {
    ConflictId::parse(raw).map_err(|e| bad(e.to_string()))
}

async fn show_conflict(
    State(state): State<AppState>,
    Path((raw, conflict)): Path<(String, String)>,
) -> Response {
    let (id, conflict) = match (tenant_id(&raw), conflict_id(&conflict)) {
        (Ok(t), Ok(c)) => (t, c),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    match state.stores.conflicts.get(&id, conflict).await {
        Ok(c) => Json(conflict_view(&c)).into_response(),
        Err(e) => port_error(&e),
    }
}

/// A decision as typed: `{"keep": "attio"}`, `{"keep": "external"}` or
/// `{"keep": "value", "value": …}` (`null` clears the field), with `"ids": [...]` in the bulk
/// form.
fn decision(body: &[u8], bulk: bool) -> Result<(Resolution, Vec<String>), Response> {
    let body: serde_json::Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| bad(format!("not a resolution: {e}")))?;
    if let Some(k) = body
        .keys()
        .find(|k| !["keep", "value", "ids"].contains(&k.as_str()))
    {
        return Err(bad(format!("unknown field {k:?} in a resolution")));
    }
    let keep = body.get("keep").and_then(Value::as_str).unwrap_or_default();
    let resolution = match (keep, body.get("value")) {
        ("attio", None) => Resolution::KeepAttio,
        ("external", None) => Resolution::KeepExternal,
        ("value", Some(v)) => Resolution::Value {
            value: FieldValue::from_plain_json(v).map_err(|e| bad(e.to_string()))?,
        },
        ("value", None) => return Err(bad("keep \"value\" needs a value")),
        ("attio" | "external", Some(_)) => {
            return Err(bad(format!("keep {keep:?} takes no value")));
        }
        (other, _) => {
            return Err(bad(format!(
                "keep must be \"attio\", \"external\" or \"value\", not {other:?}"
            )));
        }
    };
    let ids = match body.get("ids") {
        None => None,
        Some(v) => Some(
            v.as_array()
                .and_then(|a| {
                    a.iter()
                        .map(|i| i.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| bad("ids must be an array of conflict ids"))?,
        ),
    };
    match (bulk, ids) {
        (false, None) => Ok((resolution, Vec::new())),
        (false, Some(_)) => Err(bad("ids belong to POST /v1/admin/tenants/{id}/resolutions")),
        (true, Some(ids)) if !ids.is_empty() && ids.len() <= MAX_LIMIT => Ok((resolution, ids)),
        (true, _) => Err(bad(format!("ids must list 1 to {MAX_LIMIT} conflicts"))),
    }
}

/// Queues the job that writes the decision, then records it. The job is queued first, so a
/// recorded decision is never left unwritten; a job whose decision lost a race applies the one
/// recorded (it reads the stored resolution).
async fn resolve_one(
    state: &AppState,
    tenant: &TenantId,
    id: ConflictId,
    resolution: &Resolution,
) -> Result<ConflictRecord, PortError> {
    let conflicts = &state.stores.conflicts;
    let c = conflicts.get(tenant, id).await?;
    if c.resolution.is_some() {
        return Err(PortError::Conflict(format!(
            "conflict {id} is already resolved"
        )));
    }
    if c.conflict.reason == domain::merge::ConflictReason::AmbiguousIdentity {
        return Err(PortError::Conflict(format!(
            "conflict {id} is about identity, not a value: merge or remove the duplicate in the CRM (or in Attio); the record is adopted again on its next change"
        )));
    }
    let key = JobKey::new(tenant.clone(), "conflicts", &c.attio_record.to_string())
        .map_err(PortError::Domain)?;
    let job = NewJob::new(
        key,
        json!({"source": "resolution", "conflict": id.to_string()}),
    )
    .with_max_attempts(state.settings.max_attempts);
    state.queue.enqueue(job).await?;
    let done = conflicts
        .resolve(tenant, id, resolution.clone(), state.clock.now())
        .await?;
    metrics::counter!("conflicts_resolved_total", "keep" => resolution.name()).increment(1);
    tracing::info!(tenant = %tenant, conflict = %id, keep = resolution.name(), "conflict resolved; its value is queued for writing");
    Ok(done)
}

async fn resolve_conflict(
    State(state): State<AppState>,
    Path((raw, conflict)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let (id, conflict) = match (tenant_id(&raw), conflict_id(&conflict)) {
        (Ok(t), Ok(c)) => (t, c),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let (resolution, _) = match decision(&body, false) {
        Ok(d) => d,
        Err(r) => return r,
    };
    match resolve_one(&state, &id, conflict, &resolution).await {
        Ok(c) => (StatusCode::ACCEPTED, Json(conflict_view(&c))).into_response(),
        Err(e) => port_error(&e),
    }
}

async fn resolve_many(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let (resolution, ids) = match decision(&body, true) {
        Ok(d) => d,
        Err(r) => return r,
    };
    if let Err(e) = state.tenants.get(&id).await {
        return port_error(&e);
    }
    let mut outcomes = Vec::with_capacity(ids.len());
    let mut resolved = 0;
    for raw in &ids {
        let outcome = match ConflictId::parse(raw) {
            Err(e) => json!({"id": raw, "outcome": "invalid", "error": e.to_string()}),
            Ok(c) => match resolve_one(&state, &id, c, &resolution).await {
                Ok(_) => {
                    resolved += 1;
                    json!({"id": raw, "outcome": "queued"})
                }
                Err(PortError::NotFound(_)) => {
                    json!({"id": raw, "outcome": "not_found"})
                }
                Err(PortError::Conflict(_)) => {
                    json!({"id": raw, "outcome": "already_resolved"})
                }
                Err(e) => {
                    tracing::warn!(tenant = %id, conflict = %c, error = %ports::Chain(&e), "a conflict of a bulk resolution was not resolved");
                    json!({"id": raw, "outcome": "failed", "error": "temporarily unavailable"})
                }
            },
        };
        outcomes.push(outcome);
    }
    Json(json!({"resolved": resolved, "outcomes": outcomes})).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    limit: Option<usize>,
}

fn entry_view(e: &AuditEntry) -> Value {
    json!({
        "field": e.field.as_str(),
        "written_to": e.written_to.as_str(),
        "written_record": e.written_record,
        "source": e.source,
        "old": e.old.to_plain_json(),
        "new": e.new.to_plain_json(),
        "rule": e.rule,
        "cause": e.cause,
        "at": rfc3339(e.at),
    })
}

async fn history(
    State(state): State<AppState>,
    Path((raw, object, record)): Path<(String, String, String)>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let Query(query) = match query {
        Ok(q) => q,
        Err(e) => return bad(format!("bad query: {}", e.body_text())),
    };
    let (object, record, limit) = match (
        ObjectSlug::parse(&object),
        RecordId::parse(&record),
        limit(query.limit),
    ) {
        (Ok(o), Ok(r), Ok(l)) => (o, r, l),
        (Err(e), _, _) | (_, Err(e), _) => return bad(e.to_string()),
        (_, _, Err(r)) => return r,
    };
    if let Err(e) = state.tenants.get(&id).await {
        return port_error(&e);
    }
    match (
        state
            .stores
            .audit
            .history(&id, &object, record, limit)
            .await,
        state.stores.links.links_of(&id, &object, record).await,
    ) {
        (Ok(entries), Ok(links)) => Json(json!({
            "object": object.as_str(),
            "record": record.to_string(),
            "links": links.iter().map(link_view).collect::<Vec<_>>(),
            "entries": entries.iter().map(entry_view).collect::<Vec<_>>(),
        }))
        .into_response(),
        (Err(e), _) | (_, Err(e)) => port_error(&e),
    }
}

fn link_view(l: &domain::link::IdentityLink) -> Value {
    json!({
        "system": l.system.as_str(),
        "external_object": l.external_object,
        "external_id": l.external_id.as_str(),
        "updated_at": rfc3339(l.updated_at),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordQuery {
    q: String,
}

/// The Attio attribute a search by text looks in: e-mail for people, domain for companies, the
/// name for anything else.
fn searched_attribute(object: &ObjectSlug) -> &'static str {
    match object.as_str() {
        "people" => "email_addresses",
        "companies" => "domains",
        _ => "name",
    }
}

/// Finds an object's synced records by Attio record id, or by e-mail (people), domain
/// (companies) or name, asking Attio; each with its links in every system.
async fn search_records(
    State(state): State<AppState>,
    Path((raw, object)): Path<(String, String)>,
    query: Result<Query<RecordQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let (object, q) = match (ObjectSlug::parse(&object), query) {
        (Ok(o), Ok(Query(q))) if !q.q.trim().is_empty() => (o, q.q.trim().to_owned()),
        (Err(e), _) => return bad(e.to_string()),
        (_, Err(e)) => return bad(format!("bad query: {}", e.body_text())),
        _ => return bad("q must name a record id, an e-mail address, a domain or a name"),
    };
    if let Err(e) = state.tenants.get(&id).await {
        return port_error(&e);
    }
    let records: Vec<RecordId> = match RecordId::parse(&q) {
        Ok(r) => vec![r],
        Err(_) => {
            let Some(directory) = &state.directory else {
                return bad("this service cannot ask Attio: search by record id");
            };
            let query = ports::attio::Query {
                filter: Some(json!({ searched_attribute(&object): q })),
                limit: Some(20),
                ..Default::default()
            };
            let target = domain::ids::ObjectRef::from(object.clone());
            let found = match directory.clients(&id).await {
                Ok(c) => c.attio.query_records(&target, &query).await,
                Err(e) => Err(e),
            };
            match found {
                Ok(found) => found.iter().map(|r| r.id.record_id).collect(),
                Err(e) => return port_error(&e),
            }
        }
    };
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        match state.stores.links.links_of(&id, &object, r).await {
            Ok(links) => out.push(json!({
                "record": r.to_string(),
                "links": links.iter().map(link_view).collect::<Vec<_>>(),
            })),
            Err(e) => return port_error(&e),
        }
    }
    Json(out).into_response()
}

/// A delete as the API shows it.
fn delete_view(d: &DeleteRecord) -> Value {
    json!({
        "id": d.id.to_string(),
        "object": d.object.as_str(),
        "record": d.attio_record.to_string(),
        "system": d.system.as_str(),
        "external_object": d.external_object,
        "external_id": d.external_id.as_str(),
        "deleted_in": d.origin.as_str(),
        "status": d.status.as_str(),
        "reason": d.reason,
        "at": rfc3339(d.at),
        "decided_at": d.decided_at.map(rfc3339),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitQuery {
    limit: Option<usize>,
}

async fn held_deletes(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    query: Result<Query<LimitQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let limit = match query
        .map_err(|e| bad(format!("bad query: {}", e.body_text())))
        .and_then(|Query(q)| limit(q.limit))
    {
        Ok(l) => l,
        Err(r) => return r,
    };
    if let Err(e) = state.tenants.get(&id).await {
        return port_error(&e);
    }
    match state.stores.deletes.held(&id, limit).await {
        Ok(found) => Json(found.iter().map(delete_view).collect::<Vec<_>>()).into_response(),
        Err(e) => port_error(&e),
    }
}

/// Queues the job that carries a decision out, then records the decision (as for conflicts:
/// a recorded decision is never left undone; the job reads the stored one).
async fn decide_one(
    state: &AppState,
    tenant: &TenantId,
    id: DeleteId,
    status: DeleteStatus,
) -> Result<DeleteRecord, PortError> {
    let deletes = &state.stores.deletes;
    let d = deletes.get(tenant, id).await?;
    if d.status != DeleteStatus::Held {
        return Err(PortError::Conflict(format!(
            "delete {id} is {}, not held",
            d.status.as_str()
        )));
    }
    let key = JobKey::new(tenant.clone(), "deletes", &d.attio_record.to_string())
        .map_err(PortError::Domain)?;
    let job = NewJob::new(key, json!({"source": "delete", "delete": id.to_string()}))
        .with_max_attempts(state.settings.max_attempts);
    state.queue.enqueue(job).await?;
    let done = deletes
        .decide(tenant, id, status, state.clock.now())
        .await?;
    metrics::counter!("deletes_decided_total", "decision" => status.as_str()).increment(1);
    tracing::info!(tenant = %tenant, delete = %id, decision = status.as_str(), "a held delete was decided; carrying it out is queued");
    Ok(done)
}

fn decision_of(raw: &str) -> Result<DeleteStatus, Response> {
    match raw {
        "approve" => Ok(DeleteStatus::Approved),
        "reject" => Ok(DeleteStatus::Rejected),
        other => Err(bad(format!(
            "the decision must be \"approve\" or \"reject\", not {other:?}"
        ))),
    }
}

async fn decide_delete(state: AppState, raw: &str, delete: &str, status: DeleteStatus) -> Response {
    let (id, delete) = match (
        tenant_id(raw),
        DeleteId::parse(delete).map_err(|e| bad(e.to_string())),
    ) {
        (Ok(t), Ok(d)) => (t, d),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    match decide_one(&state, &id, delete, status).await {
        Ok(d) => (StatusCode::ACCEPTED, Json(delete_view(&d))).into_response(),
        Err(e) => port_error(&e),
    }
}

async fn approve_delete(
    State(state): State<AppState>,
    Path((raw, delete)): Path<(String, String)>,
) -> Response {
    decide_delete(state, &raw, &delete, DeleteStatus::Approved).await
}

async fn reject_delete(
    State(state): State<AppState>,
    Path((raw, delete)): Path<(String, String)>,
) -> Response {
    decide_delete(state, &raw, &delete, DeleteStatus::Rejected).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkDecision {
    decision: String,
    #[serde(default)]
    ids: Option<Vec<String>>,
    #[serde(default)]
    all: bool,
}

async fn decide_deletes(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let req: BulkDecision = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad(format!("not a decision: {e}")),
    };
    let status = match decision_of(&req.decision) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(e) = state.tenants.get(&id).await {
        return port_error(&e);
    }
    let ids: Vec<String> = match (req.ids, req.all) {
        (Some(ids), false) if !ids.is_empty() && ids.len() <= MAX_LIMIT => ids,
        (None, true) => match state.stores.deletes.held(&id, MAX_LIMIT).await {
            Ok(held) => held.iter().map(|d| d.id.to_string()).collect(),
            Err(e) => return port_error(&e),
        },
        _ => {
            return bad(format!(
                "give either ids (1 to {MAX_LIMIT}) or \"all\": true"
            ));
        }
    };
    let mut decided = 0;
    let mut outcomes = Vec::with_capacity(ids.len());
    for raw in &ids {
        let outcome = match DeleteId::parse(raw) {
            Err(e) => json!({"id": raw, "outcome": "invalid", "error": e.to_string()}),
            Ok(d) => match decide_one(&state, &id, d, status).await {
                Ok(_) => {
                    decided += 1;
                    json!({"id": raw, "outcome": "queued"})
                }
                Err(PortError::NotFound(_)) => json!({"id": raw, "outcome": "not_found"}),
                Err(PortError::Conflict(_)) => json!({"id": raw, "outcome": "not_held"}),
                Err(e) => {
                    tracing::warn!(tenant = %id, delete = %d, error = %ports::Chain(&e), "a delete of a bulk decision was not decided");
                    json!({"id": raw, "outcome": "failed", "error": "temporarily unavailable"})
                }
            },
        };
        outcomes.push(outcome);
    }
    Json(json!({"decided": decided, "outcomes": outcomes})).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReconcileRequest {
    object: String,
    system: String,
    #[serde(default)]
    dry_run: bool,
    /// Candidate mappings for a dry run (before they are put in force).
    #[serde(default)]
    mappings: Option<domain::mapping_doc::MappingDocument>,
}

/// Queues a reconciliation pass (or a dry run) of one object for one system; a worker runs it
/// and its report appears in `GET …/reconciliations`.
async fn start_reconciliation(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let req: ReconcileRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad(format!("not a reconciliation request: {e}")),
    };
    if let Err(e) = ObjectSlug::parse(&req.object).and(SystemId::parse(&req.system)) {
        return bad(e.to_string());
    }
    if let Err(e) = state.registry.get(&req.system) {
        return bad(e.to_string());
    }
    if req.mappings.is_some() && !req.dry_run {
        return bad("candidate mappings are for a dry run: put them in force with PUT …/mappings");
    }
    if let Some(doc) = &req.mappings
        && let Err(problems) = doc.check(|name| state.registry.system_of(name))
    {
        return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"error": format!("the candidate mappings have {} problem(s)", problems.len()), "problems": problems})),
            )
                .into_response();
    }
    if let Err(e) = state.tenants.get(&id).await {
        return port_error(&e);
    }
    let kind = if req.dry_run { "dryrun" } else { "reconcile" };
    let key = match JobKey::new(id.clone(), kind, &format!("{}-{}", req.object, req.system)) {
        Ok(k) => k,
        Err(e) => return bad(e.to_string()),
    };
    let job = NewJob::new(
        key,
        json!({"source": "reconcile", "object": req.object, "system": req.system, "dry_run": req.dry_run, "mappings": req.mappings}),
    )
    .with_max_attempts(state.settings.max_attempts);
    match state.queue.enqueue(job).await {
        Ok(_) => (
            StatusCode::ACCEPTED,
            Json(json!({"queued": true, "dry_run": req.dry_run})),
        )
            .into_response(),
        Err(e) => port_error(&e),
    }
}

/// The tenant's reconciliation passes and dry runs with their reports.
async fn reconciliations(State(state): State<AppState>, Path(raw): Path<String>) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    if let Err(e) = state.tenants.get(&id).await {
        return port_error(&e);
    }
    match state.sync_state.list(&id).await {
        Ok(states) => {
            let passes: Vec<Value> = states
                .iter()
                .filter(|s| s.drift.is_some())
                .map(|s| {
                    let (kind, object) = s
                        .object
                        .as_str()
                        .split_once('_')
                        .unwrap_or(("", s.object.as_str()));
                    json!({
                        "object": object,
                        "system": s.system.as_str(),
                        "dry_run": kind == "dryrun",
                        "phase": s.phase,
                        "records_seen": s.records_seen,
                        "last_error": s.last_error,
                        "updated_at": rfc3339(s.updated_at),
                        "report": s.drift,
                    })
                })
                .collect();
            Json(passes).into_response()
        }
        Err(e) => port_error(&e),
    }
}

/// A tenant's health at a glance: its unfinished jobs per partition with the oldest one's age,
/// the last write to each system per object (among its 1,000 newest writes), provider requests
/// made today (UTC), dead letters grouped by cause, open conflicts, held deletes, the mappings in
/// force, and the last reconciliation of each object. Dead letters and held deletes are counted
/// up to 1,000.
async fn tenant_status(State(state): State<AppState>, Path(raw): Path<String>) -> Response {
    let id = match tenant_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    if let Err(e) = state.tenants.get(&id).await {
        return port_error(&e);
    }
    let now = state.clock.now();
    let stores = &state.stores;
    let (conflicts, held, dead, mappings, states) = match (
        stores.conflicts.count_open(&id).await,
        stores.deletes.held(&id, MAX_LIMIT).await,
        state.dead.list_dead(&id, MAX_LIMIT).await,
        stores.mappings.current(&id).await,
        state.sync_state.list(&id).await,
    ) {
        (Ok(c), Ok(h), Ok(d), Ok(m), Ok(s)) => (c, h, d, m, s),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), ..) | (.., Err(e), _) | (.., Err(e)) => {
            return port_error(&e);
        }
    };
    let (backlog, recent, requests) = match (
        stores.queue.backlog(&id).await,
        stores.audit.recent(&id, 1000).await,
        stores.usage.on_day(&id, now.date()).await,
    ) {
        (Ok(b), Ok(r), Ok(u)) => (b, r, u),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => return port_error(&e),
    };
    let age_s = |t: time::OffsetDateTime| (now - t).whole_seconds().max(0);
    let queue: Vec<Value> = backlog
        .iter()
        .map(|p| {
            json!({
                "partition": p.partition,
                "jobs": p.jobs,
                "oldest_age_s": p.oldest_enqueued_at.map(age_s),
            })
        })
        .collect();
    let (last_writes, errors) = (last_writes(&recent, age_s), error_groups(&dead));
    let passes: Vec<Value> = states
        .iter()
        .filter(|s| s.drift.is_some() && s.object.as_str().starts_with("reconcile_"))
        .map(|s| {
            json!({
                "object": s.object.as_str().trim_start_matches("reconcile_"),
                "system": s.system.as_str(),
                "phase": s.phase,
                "updated_at": rfc3339(s.updated_at),
                "repaired": s.drift.as_ref().map(|d| d.repaired + d.created),
                "failed": s.drift.as_ref().map(|d| d.failed),
            })
        })
        .collect();
    Json(json!({
        "tenant": id.as_str(),
        "queue_jobs": backlog.iter().map(|p| p.jobs).sum::<u64>(),
        "queue_oldest_age_s": backlog.iter().filter_map(|p| p.oldest_enqueued_at).min().map(age_s),
        "conflicts_open": conflicts,
        "deletes_held": held.len(),
        "dead_letters": dead.len(),
        "mappings_version": mappings.map(|m| m.version),
        "requests_today": requests.into_iter().map(|(provider, n)| json!({"provider": provider, "requests": n})).collect::<Vec<_>>(),
        "queue": queue,
        "last_writes": last_writes,
        "errors": errors,
        "reconciliations": passes,
    }))
    .into_response()
}

/// The newest write to each system per object among `recent` (newest first).
fn last_writes(recent: &[AuditEntry], age_s: impl Fn(time::OffsetDateTime) -> i64) -> Vec<Value> {
    let mut last = std::collections::BTreeMap::new();
    for e in recent {
        last.entry((e.object.as_str(), e.written_to.as_str()))
            .or_insert(e.at);
    }
    last.into_iter()
        .map(|((object, system), at)| {
            json!({"object": object, "system": system, "at": rfc3339(at), "age_s": age_s(at)})
        })
        .collect()
}

/// Dead letters grouped by cause ([`domain::job::DeadLetter::cause`]), with one job of each.
fn error_groups(dead: &[domain::job::DeadLetter]) -> Vec<Value> {
    let mut causes = std::collections::BTreeMap::new();
    for d in dead {
        causes
            .entry(d.cause())
            .or_insert((0, d.job.id.to_string()))
            .0 += 1;
    }
    causes
        .into_iter()
        .map(|(cause, (n, example))| json!({"cause": cause, "dead_letters": n, "example_job": example}))
        .collect()
}

/// The control plane's routes (the caller adds the admin authorization).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/tenants/{id}/conflicts", get(list_conflicts))
        .route("/v1/admin/tenants/{id}/resolutions", post(resolve_many))
        .route(
            "/v1/admin/tenants/{id}/conflicts/{conflict}",
            get(show_conflict),
        )
        .route(
            "/v1/admin/tenants/{id}/conflicts/{conflict}/resolve",
            post(resolve_conflict),
        )
        .route(
            "/v1/admin/tenants/{id}/records/{object}/{record}/history",
            get(history),
        )
        .route(
            "/v1/admin/tenants/{id}/records/{object}",
            get(search_records),
        )
        .route(
            "/v1/admin/tenants/{id}/reconciliations",
            post(start_reconciliation).get(reconciliations),
        )
        .route("/v1/admin/tenants/{id}/status", get(tenant_status))
        .route("/v1/admin/tenants/{id}/deletes", get(held_deletes))
        .route(
            "/v1/admin/tenants/{id}/delete-decisions",
            post(decide_deletes),
        )
        .route(
            "/v1/admin/tenants/{id}/deletes/{delete}/approve",
            post(approve_delete),
        )
        .route(
            "/v1/admin/tenants/{id}/deletes/{delete}/reject",
            post(reject_delete),
        )
}
