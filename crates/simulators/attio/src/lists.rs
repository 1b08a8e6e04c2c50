//! Lists and their entries (reference §3.4). Entries use the record machinery of `routes.rs`:
//! the same value rules, filters and sorts, over the list's own attributes.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use domain::ids::{AttributeSlug, EntryId, RecordId};
use domain::record::{EntryIdentifier, ListEntry};
use serde_json::{Map, Value, json};

use crate::deliveries::{changed, entry_events};
use crate::error::{ApiError, ApiResult};
use crate::extract::{
    S, attribute, body_json, kind, parse_record_id, whole_number, workspace, written,
};
use crate::filter::{Filter, Sort};
use crate::respond::{data, empty};
use crate::values::Mode;
use crate::world::{ListDef, StoredRecord, Workspace, now, token_actor};
use crate::{Access, Sim};
use domain::webhook::EventType;

const READ_LISTS: &[&str] = &["list_configuration:read"];
const READ_ENTRIES: &[&str] = &["list_entry:read", "list_configuration:read"];
const WRITE_ENTRIES: &[&str] = &["list_entry:read-write", "list_configuration:read"];

pub(crate) fn list_not_found(key: &str) -> ApiError {
    ApiError::not_found(format!("List with slug/ID \"{key}\" not found."))
}

fn entry_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Entry with ID \"{id}\" not found."))
}

fn the_list<'a>(ws: &'a Workspace, key: &str) -> ApiResult<&'a ListDef> {
    ws.list(key).ok_or_else(|| list_not_found(key))
}

fn entry_json(ws: &Workspace, l: &ListDef, e: &StoredRecord) -> Value {
    let entry_values: BTreeMap<AttributeSlug, Vec<domain::value::AttributeValue>> = l
        .def
        .attributes
        .iter()
        .filter_map(|a| {
            Some((
                AttributeSlug::parse(a.slug()).ok()?,
                e.active(a.slug()).cloned().collect(),
            ))
        })
        .collect();
    let (parent_object, parent_record_id) =
        e.parent.clone().unwrap_or_else(|| (String::new(), e.id));
    json!(ListEntry {
        id: EntryIdentifier {
            workspace_id: ws.id,
            list_id: l.list.id.list_id,
            entry_id: EntryId::from_uuid(*e.id.as_uuid())
        },
        parent_record_id,
        parent_object,
        created_at: e.created_at.clone(),
        entry_values,
        extra: Map::new(),
    })
}

pub(crate) async fn list_lists(State(sim): S, headers: HeaderMap) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, READ_LISTS, Access::Read)?;
    let world = sim.world();
    Ok(data(json!(
        workspace(&world, &entry)?
            .lists
            .iter()
            .map(|l| &l.list)
            .collect::<Vec<_>>()
    )))
}

pub(crate) async fn get_list(
    State(sim): S,
    headers: HeaderMap,
    Path(list): Path<String>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, READ_LISTS, Access::Read)?;
    let world = sim.world();
    Ok(data(json!(
        the_list(workspace(&world, &entry)?, &list)?.list
    )))
}

#[derive(Debug, serde::Deserialize)]
struct QueryBody {
    filter: Option<Value>,
    #[serde(default)]
    sorts: Vec<Value>,
    #[serde(default, deserialize_with = "whole_number")]
    limit: Option<u64>,
    #[serde(default, deserialize_with = "whole_number")]
    offset: Option<u64>,
}

pub(crate) async fn query_entries(
    State(sim): S,
    headers: HeaderMap,
    Path(list): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, READ_ENTRIES, Access::Read)?;
    let q: QueryBody = serde_json::from_value(body_json(&body)?).map_err(|e| {
        ApiError::invalid("validation_type", "Body payload validation error.").with(
            "validation_errors",
            json!([{ "code": "invalid_type", "path": [], "message": e.to_string() }]),
        )
    })?;
    let world = sim.world();
    let ws = workspace(&world, &entry)?;
    let l = the_list(ws, &list)?;
    let filter = q
        .filter
        .as_ref()
        .filter(|f| !f.is_null())
        .map(|f| Filter::compile(ws, &l.def, f))
        .transpose()?;
    let sorts = q
        .sorts
        .iter()
        .map(|s| Sort::compile(&l.def, s))
        .collect::<ApiResult<Vec<_>>>()?;
    let mut hits: Vec<&StoredRecord> = l
        .def
        .records
        .iter()
        .filter(|r| filter.as_ref().is_none_or(|f| f.matches(ws, &l.def, r)))
        .collect();
    hits.sort_by(|a, b| Sort::order(&sorts, a, b));
    let offset = usize::try_from(q.offset.unwrap_or(0)).unwrap_or(usize::MAX);
    let limit = usize::try_from(q.limit.unwrap_or(500)).unwrap_or(usize::MAX);
    Ok(data(Value::Array(
        hits.into_iter()
            .skip(offset)
            .take(limit)
            .map(|e| entry_json(ws, l, e))
            .collect(),
    )))
}

/// An entry's parent: object slug and record id.
type Parent = (String, RecordId);

/// `data.parent_record_id`, `data.parent_object` and `data.entry_values` of a write body.
fn entry_body(body: &Value, need_parent: bool) -> ApiResult<(Option<Parent>, Map<String, Value>)> {
    let d = match body.get("data") {
        Some(Value::Object(d)) => d,
        None => {
            return Err(ApiError::body_validation(
                &["data"],
                "Required",
                "object",
                "undefined",
            ));
        }
        Some(other) => {
            return Err(ApiError::body_validation(
                &["data"],
                "Expected object",
                "object",
                kind(other),
            ));
        }
    };
    let values = match d.get("entry_values") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(v)) => v.clone(),
        Some(other) => {
            return Err(ApiError::body_validation(
                &["data", "entry_values"],
                "Expected object",
                "object",
                kind(other),
            ));
        }
    };
    let parent = match (d.get("parent_record_id"), d.get("parent_object")) {
        (Some(Value::String(id)), Some(Value::String(object))) => {
            let id = RecordId::parse(id).map_err(|_| {
                ApiError::invalid(
                    "value_not_found",
                    format!("Parent record with slug/ID \"{id}\" not found."),
                )
            })?;
            Some((object.clone(), id))
        }
        (None, _) if need_parent => {
            return Err(ApiError::body_validation(
                &["data", "parent_record_id"],
                "Required",
                "string",
                "undefined",
            ));
        }
        (_, None) if need_parent => {
            return Err(ApiError::body_validation(
                &["data", "parent_object"],
                "Required",
                "string",
                "undefined",
            ));
        }
        (None, None) => None,
        _ => {
            return Err(ApiError::body_validation(
                &["data", "parent_record_id"],
                "Expected string",
                "string",
                "other",
            ));
        }
    };
    Ok((parent, values))
}

fn check_parent(ws: &Workspace, l: &ListDef, parent: &(String, RecordId)) -> ApiResult<()> {
    let (object, id) = parent;
    let known = ws
        .object(object)
        .filter(|o| l.list.parent_object.iter().any(|p| p == o.slug()));
    match known.and_then(|o| o.record(*id)) {
        Some(_) => Ok(()),
        None => Err(ApiError::invalid(
            "value_not_found",
            format!("Parent record with slug/ID \"{id}\" not found."),
        )),
    }
}

/// The events of an entry's change (`before`: the previous version, `None` when new).
fn entry_change_events(
    ws: &Workspace,
    l: &ListDef,
    before: Option<&StoredRecord>,
    rec: &StoredRecord,
    kind: EventType,
    actor: &domain::actor::Actor,
) -> Vec<domain::webhook::WebhookEvent> {
    let Some((parent_object, parent_record)) = &rec.parent else {
        return Vec::new();
    };
    let Some(parent_object_id) = ws.object(parent_object).map(|o| o.object.id.object_id) else {
        return Vec::new();
    };
    let attrs = before.map(|b| changed(&l.def, b, rec)).unwrap_or_default();
    entry_events(
        kind,
        ws.id,
        l.list.id.list_id,
        EntryId::from_uuid(*rec.id.as_uuid()),
        parent_object_id,
        *parent_record,
        &attrs,
        actor,
    )
}

/// Stores an entry, then queues the deliveries of its change.
fn store_entry(
    sim: &Sim,
    tenant: &crate::auth::TokenEntry,
    list: &str,
    before: Option<StoredRecord>,
    rec: StoredRecord,
    actor: &domain::actor::Actor,
) -> ApiResult<Value> {
    let mut world = sim.world();
    let ws = world
        .workspaces
        .get_mut(&tenant.workspace)
        .ok_or_else(crate::auth::not_found_key)?;
    let l = ws.list_mut(list).ok_or_else(|| list_not_found(list))?;
    match l.def.records.iter_mut().find(|r| r.id == rec.id) {
        Some(slot) => *slot = rec.clone(),
        None => l.def.records.push(rec.clone()),
    }
    let ws = world
        .workspaces
        .get(&tenant.workspace)
        .ok_or_else(crate::auth::not_found_key)?;
    let l = the_list(ws, list)?;
    let kind = if before.is_some() {
        EventType::ListEntryUpdated
    } else {
        EventType::ListEntryCreated
    };
    let events = entry_change_events(ws, l, before.as_ref(), &rec, kind, actor);
    let json = entry_json(ws, l, &rec);
    drop(world);
    sim.emit(tenant.workspace, events);
    Ok(json)
}

fn new_entry(parent: (String, RecordId)) -> StoredRecord {
    StoredRecord {
        id: RecordId::from_uuid(uuid::Uuid::new_v4()),
        created_at: now(),
        values: BTreeMap::new(),
        parent: Some(parent),
    }
}

pub(crate) async fn create_entry(
    State(sim): S,
    headers: HeaderMap,
    Path(list): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, WRITE_ENTRIES, Access::Write)?;
    let (parent, values) = entry_body(&body_json(&body)?, true)?;
    let parent = parent.ok_or_else(|| {
        ApiError::body_validation(
            &["data", "parent_record_id"],
            "Required",
            "string",
            "undefined",
        )
    })?;
    let actor = token_actor(&entry.token_id);
    let rec = {
        let world = sim.world();
        let ws = workspace(&world, &entry)?;
        let l = the_list(ws, &list)?;
        check_parent(ws, l, &parent)?;
        written(
            ws,
            &l.def,
            new_entry(parent),
            &values,
            Mode::Append,
            None,
            &actor,
        )?
    };
    Ok(data(store_entry(&sim, &entry, &list, None, rec, &actor)?))
}

/// Upserts by parent record: several entries of that parent → 400 `multiple_match_results`.
pub(crate) async fn assert_entry(
    State(sim): S,
    headers: HeaderMap,
    Path(list): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, WRITE_ENTRIES, Access::Write)?;
    let (parent, values) = entry_body(&body_json(&body)?, true)?;
    let parent = parent.ok_or_else(|| {
        ApiError::body_validation(
            &["data", "parent_record_id"],
            "Required",
            "string",
            "undefined",
        )
    })?;
    let actor = token_actor(&entry.token_id);
    let before: Option<StoredRecord>;
    let rec = {
        let world = sim.world();
        let ws = workspace(&world, &entry)?;
        let l = the_list(ws, &list)?;
        check_parent(ws, l, &parent)?;
        let matches: Vec<&StoredRecord> = l
            .def
            .records
            .iter()
            .filter(|e| e.parent.as_ref().map(|p| p.1) == Some(parent.1))
            .collect();
        before = match matches.as_slice() {
            [one] => Some((*one).clone()),
            _ => None,
        };
        match matches.as_slice() {
            [] => written(
                ws,
                &l.def,
                new_entry(parent),
                &values,
                Mode::Append,
                None,
                &actor,
            )?,
            [one] => written(
                ws,
                &l.def,
                (*one).clone(),
                &values,
                Mode::Overwrite,
                None,
                &actor,
            )?,
            _ => {
                return Err(ApiError::invalid(
                    "multiple_match_results",
                    "Multiple entries match the parent record; assert needs exactly one.",
                ));
            }
        }
    };
    Ok(data(store_entry(&sim, &entry, &list, before, rec, &actor)?))
}

fn parse_entry(id: &str) -> ApiResult<RecordId> {
    parse_record_id(id).map_err(|_| entry_not_found(id))
}

pub(crate) async fn get_entry(
    State(sim): S,
    headers: HeaderMap,
    Path((list, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, READ_ENTRIES, Access::Read)?;
    let world = sim.world();
    let ws = workspace(&world, &entry)?;
    let l = the_list(ws, &list)?;
    let e = l
        .def
        .record(parse_entry(&id)?)
        .ok_or_else(|| entry_not_found(&id))?;
    Ok(data(entry_json(ws, l, e)))
}

async fn update(
    sim: std::sync::Arc<Sim>,
    headers: HeaderMap,
    list: String,
    id: String,
    body: Bytes,
    mode: Mode,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, WRITE_ENTRIES, Access::Write)?;
    let (parent, values) = entry_body(&body_json(&body)?, false)?;
    let actor = token_actor(&entry.token_id);
    let before: StoredRecord;
    let rec = {
        let world = sim.world();
        let ws = workspace(&world, &entry)?;
        let l = the_list(ws, &list)?;
        let existing = l
            .def
            .record(parse_entry(&id)?)
            .ok_or_else(|| entry_not_found(&id))?
            .clone();
        if parent
            .as_ref()
            .is_some_and(|p| Some(p.1) != existing.parent.as_ref().map(|e| e.1))
        {
            return Err(ApiError::invalid(
                "immutable_value",
                "The parent record of an entry cannot be changed.",
            ));
        }
        before = existing.clone();
        written(ws, &l.def, existing, &values, mode, None, &actor)?
    };
    Ok(data(store_entry(
        &sim,
        &entry,
        &list,
        Some(before),
        rec,
        &actor,
    )?))
}

pub(crate) async fn patch_entry(
    State(sim): S,
    headers: HeaderMap,
    Path((list, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    update(sim, headers, list, id, body, Mode::Append).await
}

pub(crate) async fn put_entry(
    State(sim): S,
    headers: HeaderMap,
    Path((list, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    update(sim, headers, list, id, body, Mode::Overwrite).await
}

pub(crate) async fn delete_entry(
    State(sim): S,
    headers: HeaderMap,
    Path((list, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, WRITE_ENTRIES, Access::Write)?;
    let eid = parse_entry(&id)?;
    let mut world = sim.world();
    let ws = world
        .workspaces
        .get_mut(&entry.workspace)
        .ok_or_else(crate::auth::not_found_key)?;
    let l = ws.list_mut(&list).ok_or_else(|| list_not_found(&list))?;
    let Some(gone) = l.def.records.iter().find(|r| r.id == eid).cloned() else {
        return Err(entry_not_found(&id));
    };
    l.def.records.retain(|r| r.id != eid);
    let ws = world
        .workspaces
        .get(&entry.workspace)
        .ok_or_else(crate::auth::not_found_key)?;
    let events = entry_change_events(
        ws,
        the_list(ws, &list)?,
        None,
        &gone,
        EventType::ListEntryDeleted,
        &token_actor(&entry.token_id),
    );
    drop(world);
    sim.emit(entry.workspace, events);
    Ok(empty())
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct ValuesQuery {
    show_historic: Option<bool>,
}

pub(crate) async fn entry_values(
    State(sim): S,
    headers: HeaderMap,
    Path((list, id, attr)): Path<(String, String, String)>,
    Query(q): Query<ValuesQuery>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, READ_ENTRIES, Access::Read)?;
    let world = sim.world();
    let ws = workspace(&world, &entry)?;
    let l = the_list(ws, &list)?;
    let e = l
        .def
        .record(parse_entry(&id)?)
        .ok_or_else(|| entry_not_found(&id))?;
    let a = attribute(&l.def, &attr)?;
    let historic = q.show_historic.unwrap_or(false);
    let mut values: Vec<&domain::value::AttributeValue> = e
        .values
        .get(a.slug())
        .into_iter()
        .flatten()
        .filter(|v| historic || v.is_active())
        .collect();
    if historic {
        values.sort_by(|x, y| x.active_from.cmp(&y.active_from));
    }
    Ok(data(json!(values)))
}
