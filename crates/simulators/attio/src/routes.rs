//! The HTTP surface. Every handler authenticates (scopes and budget) before touching the world.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use domain::ids::{AttributeSlug, RecordId};
use domain::record::{Record, RecordIdentifier};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::auth::{Presented, presented};
use crate::deliveries::{changed, record_events};
use crate::error::{ApiError, ApiResult};
use crate::filter::{Filter, Sort};
use crate::respond::{data, empty, json_response};
use crate::values::{
    Mode, apply, check_required, check_unique, identity, parse_input, system_values,
};
use crate::world::{AttrDef, ObjectDef, StoredRecord, Workspace, now, token_actor};
use crate::{Access, Sim};
use domain::webhook::EventType;

pub(crate) type S = State<Arc<Sim>>;

const READ_SCHEMA: &[&str] = &["object_configuration:read"];
const READ_RECORDS: &[&str] = &["record_permission:read", "object_configuration:read"];
const WRITE_RECORDS: &[&str] = &["record_permission:read-write", "object_configuration:read"];

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/v2/self", get(whoami))
        .route("/v2/objects", get(list_objects))
        .route("/v2/objects/{object}", get(get_object))
        .route("/v2/{target}/{identifier}/attributes", get(list_attributes))
        .route(
            "/v2/{target}/{identifier}/attributes/{attribute}",
            get(get_attribute),
        )
        .route(
            "/v2/{target}/{identifier}/attributes/{attribute}/options",
            get(list_options),
        )
        .route(
            "/v2/{target}/{identifier}/attributes/{attribute}/statuses",
            get(list_statuses),
        )
        .route("/v2/objects/{object}/records/query", post(query_records))
        .route(
            "/v2/objects/{object}/records",
            post(create_record).put(assert_record),
        )
        .route(
            "/v2/objects/{object}/records/{record_id}",
            get(get_record)
                .patch(patch_record)
                .put(put_record)
                .delete(delete_record),
        )
        .route(
            "/v2/objects/{object}/records/{record_id}/attributes/{attribute}/values",
            get(attribute_values),
        )
        .route("/v2/lists", get(crate::lists::list_lists))
        .route("/v2/lists/{list}", get(crate::lists::get_list))
        .route(
            "/v2/lists/{list}/entries/query",
            post(crate::lists::query_entries),
        )
        .route(
            "/v2/lists/{list}/entries",
            post(crate::lists::create_entry).put(crate::lists::assert_entry),
        )
        .route(
            "/v2/lists/{list}/entries/{entry_id}",
            get(crate::lists::get_entry)
                .patch(crate::lists::patch_entry)
                .put(crate::lists::put_entry)
                .delete(crate::lists::delete_entry),
        )
        .route(
            "/v2/lists/{list}/entries/{entry_id}/attributes/{attribute}/values",
            get(crate::lists::entry_values),
        )
        .route(
            "/v2/webhooks",
            get(crate::webhooks::list).post(crate::webhooks::create),
        )
        .route(
            "/v2/webhooks/{webhook}",
            get(crate::webhooks::get)
                .patch(crate::webhooks::update)
                .delete(crate::webhooks::delete),
        )
        .route("/v2/workspace_members", get(list_members))
        .route("/v2/workspace_members/{member}", get(get_member))
        .route(
            "/v2/notes",
            get(crate::activities::list_notes).post(crate::activities::create_note),
        )
        .route(
            "/v2/notes/{note}",
            get(crate::activities::get_note).delete(crate::activities::delete_note),
        )
        .route(
            "/v2/tasks",
            get(crate::activities::list_tasks).post(crate::activities::create_task),
        )
        .route(
            "/v2/tasks/{task}",
            get(crate::activities::get_task)
                .patch(crate::activities::update_task)
                .delete(crate::activities::delete_task),
        )
        .route("/_sim/faults", sim_support::faults_route::<crate::Sim>())
        .route(
            "/_sim/objects/{object}/records/{survivor}/merge",
            post(merge_records),
        )
        .fallback(unknown_route)
        // Attio answers an unsupported method on a known path as an unknown endpoint.
        .method_not_allowed_fallback(unknown_route)
        .layer(axum::middleware::from_fn_with_state(
            sim.clone(),
            crate::faults::layer,
        ))
        .with_state(sim)
}

async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "Could not find endpoint \"{method} {}\".",
        uri.path()
    ))
}

pub(crate) fn body_json(body: &Bytes) -> ApiResult<Value> {
    if body.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid("validation_type", "Body payload validation error.").with(
            "validation_errors",
            json!([{ "code": "invalid_json", "path": [], "message": e.to_string() }]),
        )
    })
}

pub(crate) fn object_not_found(key: &str) -> ApiError {
    ApiError::not_found(format!("Object with slug/ID \"{key}\" not found."))
}

pub(crate) fn record_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Record with ID \"{id}\" not found."))
}

async fn whoami(State(sim): S, headers: HeaderMap) -> Response {
    let token = match presented(&headers) {
        Presented::Token(t) => t,
        _ => {
            return ApiError::invalid(
                "missing_value",
                "Token was not recognised, please check that you have provided a valid Bearer token.",
            )
            .into_response();
        }
    };
    // `/v2/self` takes no budget and needs no scope; in open mode it creates the workspace too.
    let Some(entry) = sim.entry_public(&token) else {
        return json_response(StatusCode::OK, &json!({ "active": false }));
    };
    let world = sim.world();
    let Some(ws) = world.workspaces.get(&entry.workspace) else {
        return json_response(StatusCode::OK, &json!({ "active": false }));
    };
    let scope = entry.scopes.clone().unwrap_or_else(all_scopes).join(" ");
    let member = ws
        .members
        .first()
        .map(|m| m.id.workspace_member_id.to_string());
    json_response(
        StatusCode::OK,
        &json!({
            "active": true, "scope": scope, "client_id": entry.token_id, "token_type": "Bearer",
            "exp": null, "iat": 1_700_000_000, "sub": ws.id, "aud": entry.token_id, "iss": "attio.com",
            "authorized_by_workspace_member_id": member, "workspace_id": ws.id, "workspace_name": ws.name,
            "workspace_slug": ws.slug, "workspace_logo_url": null
        }),
    )
}

fn all_scopes() -> Vec<String> {
    [
        "user_management",
        "record_permission",
        "object_configuration",
        "list_entry",
        "list_configuration",
        "public_collection",
        "private_collection",
        "comment",
        "task",
        "note",
        "meeting",
        "call_recording",
        "webhook",
        "file",
    ]
    .iter()
    .map(|s| format!("{s}:read-write"))
    .collect()
}

async fn list_objects(State(sim): S, headers: HeaderMap) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, READ_SCHEMA, Access::Read)?;
    let world = sim.world();
    let ws = workspace(&world, &entry)?;
    Ok(data(Value::Array(
        ws.objects.iter().map(|o| json!(o.object)).collect(),
    )))
}

pub(crate) fn workspace<'a>(
    world: &'a crate::World,
    entry: &crate::auth::TokenEntry,
) -> ApiResult<&'a Workspace> {
    world
        .workspaces
        .get(&entry.workspace)
        .ok_or_else(crate::auth::not_found_key)
}

async fn get_object(
    State(sim): S,
    headers: HeaderMap,
    Path(object): Path<String>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, READ_SCHEMA, Access::Read)?;
    let world = sim.world();
    let o = workspace(&world, &entry)?
        .object(&object)
        .ok_or_else(|| object_not_found(&object))?;
    Ok(data(json!(o.object)))
}

fn target_object<'a>(
    ws: &'a Workspace,
    target: &str,
    identifier: &str,
) -> ApiResult<&'a ObjectDef> {
    match target {
        "objects" => ws
            .object(identifier)
            .ok_or_else(|| object_not_found(identifier)),
        "lists" => ws
            .list(identifier)
            .map(|l| &l.def)
            .ok_or_else(|| crate::lists::list_not_found(identifier)),
        other => Err(ApiError::not_found(format!(
            "Could not find endpoint \"GET /v2/{other}/{identifier}/attributes\"."
        ))),
    }
}

#[derive(Debug, Deserialize)]
struct Page {
    limit: Option<usize>,
    offset: Option<usize>,
    show_archived: Option<bool>,
}

async fn list_attributes(
    State(sim): S,
    headers: HeaderMap,
    Path((target, identifier)): Path<(String, String)>,
    Query(page): Query<Page>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, READ_SCHEMA, Access::Read)?;
    let world = sim.world();
    let o = target_object(workspace(&world, &entry)?, &target, &identifier)?;
    let attrs: Vec<Value> = o
        .attributes
        .iter()
        .filter(|a| page.show_archived.unwrap_or(false) || !a.attr.is_archived)
        .skip(page.offset.unwrap_or(0))
        .take(page.limit.unwrap_or(usize::MAX))
        .map(|a| json!(a.attr))
        .collect();
    Ok(data(Value::Array(attrs)))
}

pub(crate) fn attribute<'a>(o: &'a ObjectDef, key: &str) -> ApiResult<&'a AttrDef> {
    o.attribute(key)
        .ok_or_else(|| ApiError::not_found(format!("Attribute with slug/ID \"{key}\" not found.")))
}

async fn get_attribute(
    State(sim): S,
    headers: HeaderMap,
    Path((target, identifier, attr)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, READ_SCHEMA, Access::Read)?;
    let world = sim.world();
    let o = target_object(workspace(&world, &entry)?, &target, &identifier)?;
    Ok(data(json!(attribute(o, &attr)?.attr)))
}

async fn list_options(
    State(sim): S,
    headers: HeaderMap,
    Path((target, identifier, attr)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, READ_SCHEMA, Access::Read)?;
    let world = sim.world();
    let o = target_object(workspace(&world, &entry)?, &target, &identifier)?;
    Ok(data(json!(attribute(o, &attr)?.options)))
}

async fn list_statuses(
    State(sim): S,
    headers: HeaderMap,
    Path((target, identifier, attr)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, READ_SCHEMA, Access::Read)?;
    let world = sim.world();
    let o = target_object(workspace(&world, &entry)?, &target, &identifier)?;
    Ok(data(json!(attribute(o, &attr)?.statuses)))
}

/// A record as Attio returns it: every attribute of the object, `[]` when empty.
fn record_json(ws: &Workspace, o: &ObjectDef, r: &StoredRecord) -> Value {
    let values: BTreeMap<AttributeSlug, Vec<domain::value::AttributeValue>> = o
        .attributes
        .iter()
        .filter_map(|a| {
            Some((
                AttributeSlug::parse(a.slug()).ok()?,
                r.active(a.slug()).cloned().collect(),
            ))
        })
        .collect();
    let noun = o
        .object
        .singular_noun
        .clone()
        .unwrap_or_default()
        .to_lowercase();
    json!(Record {
        id: RecordIdentifier {
            workspace_id: ws.id,
            object_id: o.object.id.object_id,
            record_id: r.id
        },
        created_at: r.created_at.clone(),
        web_url: Some(format!("https://app.attio.com/{}/{noun}/{}", ws.slug, r.id)),
        values,
        extra: Map::new(),
    })
}

#[derive(Debug, Deserialize)]
struct QueryBody {
    filter: Option<Value>,
    #[serde(default)]
    sorts: Vec<Value>,
    limit: Option<u64>,
    offset: Option<u64>,
}

async fn query_records(
    State(sim): S,
    headers: HeaderMap,
    Path(object): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, READ_RECORDS, Access::Read)?;
    let q: QueryBody = serde_json::from_value(body_json(&body)?).map_err(|e| {
        ApiError::invalid("validation_type", "Body payload validation error.").with(
            "validation_errors",
            json!([{ "code": "invalid_type", "path": [], "message": e.to_string() }]),
        )
    })?;
    if q.limit == Some(0) {
        return Err(ApiError::body_validation(
            &["limit"],
            "Number must be greater than 0",
            "number",
            "0",
        ));
    }
    let world = sim.world();
    let ws = workspace(&world, &entry)?;
    let o = ws
        .object(&object)
        .ok_or_else(|| object_not_found(&object))?;
    let filter = q
        .filter
        .as_ref()
        .filter(|f| !f.is_null())
        .map(|f| Filter::compile(ws, o, f))
        .transpose()?;
    let sorts = q
        .sorts
        .iter()
        .map(|s| Sort::compile(o, s))
        .collect::<ApiResult<Vec<_>>>()?;
    let mut hits: Vec<&StoredRecord> = o
        .records
        .iter()
        .filter(|r| filter.as_ref().is_none_or(|f| f.matches(ws, o, r)))
        .collect();
    hits.sort_by(|a, b| Sort::order(&sorts, a, b));
    let offset = usize::try_from(q.offset.unwrap_or(0)).unwrap_or(usize::MAX);
    let limit = usize::try_from(q.limit.unwrap_or(500)).unwrap_or(usize::MAX);
    let page: Vec<Value> = hits
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|r| record_json(ws, o, r))
        .collect();
    Ok(data(Value::Array(page)))
}

/// `data.values` of a write body.
pub(crate) fn values_of(body: &Value) -> ApiResult<Map<String, Value>> {
    match body.get("data") {
        Some(Value::Object(d)) => match d.get("values") {
            Some(Value::Object(v)) => Ok(v.clone()),
            None => Err(ApiError::body_validation(
                &["data", "values"],
                "Required",
                "object",
                "undefined",
            )),
            Some(other) => Err(ApiError::body_validation(
                &["data", "values"],
                "Expected object",
                "object",
                kind(other),
            )),
        },
        None => Err(ApiError::body_validation(
            &["data"],
            "Required",
            "object",
            "undefined",
        )),
        Some(other) => Err(ApiError::body_validation(
            &["data"],
            "Expected object",
            "object",
            kind(other),
        )),
    }
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Applies `values` to a copy of a record and checks the object's rules; the caller stores it.
pub(crate) fn written(
    ws: &Workspace,
    o: &ObjectDef,
    mut rec: StoredRecord,
    values: &Map<String, Value>,
    mode: Mode,
    matching: Option<&str>,
    actor: &domain::actor::Actor,
) -> ApiResult<StoredRecord> {
    let at = now();
    for (key, raw) in values {
        let attr = o.attribute(key).ok_or_else(|| {
            ApiError::not_found(format!("Cannot find attribute with slug/ID \"{key}\"."))
        })?;
        let new = parse_input(ws, attr, raw)?;
        let m = if matching == Some(attr.slug()) {
            Mode::Append
        } else {
            mode
        };
        apply(&mut rec, attr, new, m, &at, actor);
    }
    check_unique(o, &rec)?;
    check_required(o, &rec)?;
    Ok(rec)
}

fn new_record(actor: &domain::actor::Actor) -> StoredRecord {
    let mut rec = StoredRecord {
        id: RecordId::from_uuid(uuid::Uuid::new_v4()),
        created_at: now(),
        values: BTreeMap::new(),
        parent: None,
    };
    system_values(&mut rec, actor);
    rec
}

/// Stores a record (replacing the one with its id) and returns its JSON.
/// Stores a record (replacing the one with its id); returns its JSON and the events its change
/// causes (`before` is the previous version, `None` for a new record).
fn store(
    world: &mut crate::World,
    entry: &crate::auth::TokenEntry,
    object: &str,
    before: Option<StoredRecord>,
    rec: StoredRecord,
    actor: &domain::actor::Actor,
) -> ApiResult<(Value, Vec<domain::webhook::WebhookEvent>)> {
    let ws = world
        .workspaces
        .get_mut(&entry.workspace)
        .ok_or_else(crate::auth::not_found_key)?;
    let o = ws
        .object_mut(object)
        .ok_or_else(|| object_not_found(object))?;
    match o.records.iter_mut().find(|r| r.id == rec.id) {
        Some(slot) => *slot = rec.clone(),
        None => o.records.push(rec.clone()),
    }
    let ws = world
        .workspaces
        .get(&entry.workspace)
        .ok_or_else(crate::auth::not_found_key)?;
    let o = ws.object(object).ok_or_else(|| object_not_found(object))?;
    let events = match &before {
        None => record_events(
            EventType::RecordCreated,
            ws.id,
            o.object.id.object_id,
            rec.id,
            &[],
            actor,
        ),
        Some(b) => record_events(
            EventType::RecordUpdated,
            ws.id,
            o.object.id.object_id,
            rec.id,
            &changed(o, b, &rec),
            actor,
        ),
    };
    Ok((record_json(ws, o, &rec), events))
}

async fn create_record(
    State(sim): S,
    headers: HeaderMap,
    Path(object): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, WRITE_RECORDS, Access::Write)?;
    let values = values_of(&body_json(&body)?)?;
    let actor = token_actor(&entry.token_id);
    let mut world = sim.world();
    let rec = {
        let ws = workspace(&world, &entry)?;
        let o = ws
            .object(&object)
            .ok_or_else(|| object_not_found(&object))?;
        written(
            ws,
            o,
            new_record(&actor),
            &values,
            Mode::Append,
            None,
            &actor,
        )?
    };
    let (json, events) = store(&mut world, &entry, &object, None, rec, &actor)?;
    drop(world);
    sim.emit(entry.workspace, events);
    Ok(data(json))
}

#[derive(Debug, Deserialize)]
struct AssertQuery {
    matching_attribute: Option<String>,
}

async fn assert_record(
    State(sim): S,
    headers: HeaderMap,
    Path(object): Path<String>,
    Query(q): Query<AssertQuery>,
    body: Bytes,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, WRITE_RECORDS, Access::Write)?;
    let values = values_of(&body_json(&body)?)?;
    let Some(matching) = q.matching_attribute else {
        return Err(ApiError::invalid(
            "validation_type",
            "The matching_attribute query parameter is required.",
        ));
    };
    let actor = token_actor(&entry.token_id);
    let mut world = sim.world();
    let before: Option<StoredRecord>;
    let rec = {
        let ws = workspace(&world, &entry)?;
        let o = ws
            .object(&object)
            .ok_or_else(|| object_not_found(&object))?;
        let attr = o
            .attribute(&matching)
            .filter(|a| a.attr.is_unique)
            .ok_or_else(|| {
                ApiError::invalid(
                    "value_not_found",
                    format!(
                        "No attribute was found for matching_attribute slug/ID \"{matching}\"."
                    ),
                )
            })?;
        let raw = values
            .get(attr.slug())
            .or_else(|| values.get(&attr.attr.id.attribute_id.to_string()))
            .ok_or_else(|| {
                ApiError::invalid(
                    "missing_value",
                    format!("A value for the matching attribute \"{matching}\" must be provided."),
                )
            })?;
        let keys: Vec<String> = parse_input(ws, attr, raw)?.iter().map(identity).collect();
        let found = o
            .records
            .iter()
            .find(|r| {
                r.active(attr.slug())
                    .any(|v| keys.contains(&identity(&v.data)))
            })
            .cloned();
        before = found.clone();
        match found {
            Some(existing) => written(
                ws,
                o,
                existing,
                &values,
                Mode::Overwrite,
                Some(attr.slug()),
                &actor,
            )?,
            None => written(
                ws,
                o,
                new_record(&actor),
                &values,
                Mode::Append,
                None,
                &actor,
            )?,
        }
    };
    let (json, events) = store(&mut world, &entry, &object, before, rec, &actor)?;
    drop(world);
    sim.emit(entry.workspace, events);
    Ok(data(json))
}

pub(crate) fn parse_record_id(id: &str) -> ApiResult<RecordId> {
    RecordId::parse(id).map_err(|_| record_not_found(id))
}

async fn get_record(
    State(sim): S,
    headers: HeaderMap,
    Path((object, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, READ_RECORDS, Access::Read)?;
    let world = sim.world();
    let ws = workspace(&world, &entry)?;
    let o = ws
        .object(&object)
        .ok_or_else(|| object_not_found(&object))?;
    let r = o
        .record(parse_record_id(&id)?)
        .ok_or_else(|| record_not_found(&id))?;
    Ok(data(record_json(ws, o, r)))
}

async fn update(
    sim: Arc<Sim>,
    headers: HeaderMap,
    object: String,
    id: String,
    body: Bytes,
    mode: Mode,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, WRITE_RECORDS, Access::Write)?;
    let values = values_of(&body_json(&body)?)?;
    let actor = token_actor(&entry.token_id);
    let mut world = sim.world();
    let before: StoredRecord;
    let rec = {
        let ws = workspace(&world, &entry)?;
        let o = ws
            .object(&object)
            .ok_or_else(|| object_not_found(&object))?;
        let existing = o
            .record(parse_record_id(&id)?)
            .ok_or_else(|| record_not_found(&id))?
            .clone();
        before = existing.clone();
        written(ws, o, existing, &values, mode, None, &actor)?
    };
    let (json, events) = store(&mut world, &entry, &object, Some(before), rec, &actor)?;
    drop(world);
    sim.emit(entry.workspace, events);
    Ok(data(json))
}

async fn patch_record(
    State(sim): S,
    headers: HeaderMap,
    Path((object, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    update(sim, headers, object, id, body, Mode::Append).await
}

async fn put_record(
    State(sim): S,
    headers: HeaderMap,
    Path((object, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    update(sim, headers, object, id, body, Mode::Overwrite).await
}

async fn delete_record(
    State(sim): S,
    headers: HeaderMap,
    Path((object, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, WRITE_RECORDS, Access::Write)?;
    let rid = parse_record_id(&id)?;
    let mut world = sim.world();
    let ws = world
        .workspaces
        .get_mut(&entry.workspace)
        .ok_or_else(crate::auth::not_found_key)?;
    let o = ws
        .object_mut(&object)
        .ok_or_else(|| object_not_found(&object))?;
    let before = o.records.len();
    o.records.retain(|r| r.id != rid);
    if o.records.len() == before {
        return Err(record_not_found(&id));
    }
    let object_id = o.object.id.object_id;
    let events = record_events(
        EventType::RecordDeleted,
        entry.workspace,
        object_id,
        rid,
        &[],
        &token_actor(&entry.token_id),
    );
    drop(world);
    sim.emit(entry.workspace, events);
    Ok(empty())
}

#[derive(Debug, Deserialize)]
struct MergeBody {
    duplicate: String,
}

/// `POST /_sim/objects/{object}/records/{survivor}/merge {"duplicate": id}`: what a person does in
/// Attio's web app (the API has no merge): the duplicate's multiselect values that the survivor
/// lacks are added to it, the duplicate is removed, and `record.merged` is sent naming both. Needs
/// the workspace's token like any write; not part of Attio's API.
async fn merge_records(
    State(sim): S,
    headers: HeaderMap,
    Path((object, survivor)): Path<(String, String)>,
    axum::Json(body): axum::Json<MergeBody>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, WRITE_RECORDS, Access::Write)?;
    let (keep, drop_id) = (
        parse_record_id(&survivor)?,
        parse_record_id(&body.duplicate)?,
    );
    if keep == drop_id {
        return Err(ApiError::invalid(
            "validation_type",
            "a record cannot be merged into itself",
        ));
    }
    let mut world = sim.world();
    let ws = world
        .workspaces
        .get_mut(&entry.workspace)
        .ok_or_else(crate::auth::not_found_key)?;
    let o = ws
        .object_mut(&object)
        .ok_or_else(|| object_not_found(&object))?;
    let dup = o
        .records
        .iter()
        .find(|r| r.id == drop_id)
        .cloned()
        .ok_or_else(|| record_not_found(&body.duplicate))?;
    let multiselect: Vec<String> = o
        .attributes
        .iter()
        .filter(|a| a.attr.is_multiselect)
        .map(|a| a.slug().to_owned())
        .collect();
    let target = o
        .records
        .iter_mut()
        .find(|r| r.id == keep)
        .ok_or_else(|| record_not_found(&survivor))?;
    for slug in &multiselect {
        let have: Vec<String> = target
            .active(slug)
            .map(|v| crate::values::identity(&v.data))
            .collect();
        let add: Vec<domain::value::AttributeValue> = dup
            .active(slug)
            .filter(|v| !have.contains(&crate::values::identity(&v.data)))
            .cloned()
            .collect();
        if let Some(values) = target
            .values
            .iter_mut()
            .find(|(s, _)| s.as_str() == slug)
            .map(|(_, v)| v)
        {
            values.extend(add);
        }
    }
    o.records.retain(|r| r.id != drop_id);
    let subject =
        domain::webhook::EventSubject::RecordMerged(domain::webhook::RecordMergedSubject {
            workspace_id: entry.workspace,
            object_id: o.object.id.object_id,
            record_id: keep,
            duplicate_object_id: o.object.id.object_id,
            duplicate_record_id: drop_id,
        });
    let event = domain::webhook::WebhookEvent {
        event_type: EventType::RecordMerged,
        subject,
        actor: Some(token_actor(&entry.token_id)),
        id_extra: Map::new(),
        extra: Map::new(),
    };
    drop(world);
    sim.emit(entry.workspace, vec![event]);
    Ok(empty())
}

#[derive(Debug, Deserialize)]
struct ValuesQuery {
    show_historic: Option<bool>,
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn attribute_values(
    State(sim): S,
    headers: HeaderMap,
    Path((object, id, attr)): Path<(String, String, String)>,
    Query(q): Query<ValuesQuery>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, READ_RECORDS, Access::Read)?;
    let world = sim.world();
    let ws = workspace(&world, &entry)?;
    let o = ws
        .object(&object)
        .ok_or_else(|| object_not_found(&object))?;
    let r = o
        .record(parse_record_id(&id)?)
        .ok_or_else(|| record_not_found(&id))?;
    let a = attribute(o, &attr)?;
    let mut values: Vec<&domain::value::AttributeValue> = r
        .values
        .get(a.slug())
        .into_iter()
        .flatten()
        .filter(|v| q.show_historic.unwrap_or(false) || v.is_active())
        .collect();
    if q.show_historic.unwrap_or(false) {
        values.sort_by(|x, y| x.active_from.cmp(&y.active_from));
    }
    let page: Vec<Value> = values
        .into_iter()
        .skip(q.offset.unwrap_or(0))
        .take(q.limit.unwrap_or(usize::MAX))
        .map(|v| json!(v))
        .collect();
    Ok(data(Value::Array(page)))
}

const READ_MEMBERS: &[&str] = &["user_management:read"];

async fn list_members(State(sim): S, headers: HeaderMap) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, READ_MEMBERS, Access::Read)?;
    let world = sim.world();
    Ok(data(json!(workspace(&world, &entry)?.members)))
}

async fn get_member(
    State(sim): S,
    headers: HeaderMap,
    Path(member): Path<String>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, READ_MEMBERS, Access::Read)?;
    let world = sim.world();
    let m = workspace(&world, &entry)?
        .members
        .iter()
        .find(|m| m.id.workspace_member_id.to_string() == member)
        .ok_or_else(|| {
            ApiError::not_found(format!("Workspace member with ID \"{member}\" not found."))
        })?;
    Ok(data(json!(m)))
}
