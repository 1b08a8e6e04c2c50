//! Records: query, create, assert, get, patch, put, delete, merge (a simulator route) and attribute
//! values.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use domain::ids::{AttributeSlug, RecordId};
use domain::record::{Record, RecordIdentifier};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::deliveries::{changed, record_events};
use crate::error::{ApiError, ApiResult};
use crate::extract::*;
use crate::filter::{Filter, Sort};
use crate::respond::{data, empty};
use crate::values::{Mode, identity, parse_input, system_values};
use crate::world::{ObjectDef, StoredRecord, Workspace, now, token_actor};
use crate::{Access, Sim};
use domain::webhook::EventType;

pub(crate) const READ_RECORDS: &[&str] = &["record_permission:read", "object_configuration:read"];

pub(crate) const WRITE_RECORDS: &[&str] =
    &["record_permission:read-write", "object_configuration:read"];

/// A record as Attio returns it: every attribute of the object, `[]` when empty.
pub(crate) fn record_json(ws: &Workspace, o: &ObjectDef, r: &StoredRecord) -> Value {
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
pub(crate) struct QueryBody {
    filter: Option<Value>,
    #[serde(default)]
    sorts: Vec<Value>,
    #[serde(default, deserialize_with = "whole_number")]
    limit: Option<u64>,
    #[serde(default, deserialize_with = "whole_number")]
    offset: Option<u64>,
}

pub(crate) async fn query_records(
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

pub(crate) fn new_record(actor: &domain::actor::Actor) -> StoredRecord {
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
pub(crate) fn store(
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

pub(crate) async fn create_record(
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
pub(crate) struct AssertQuery {
    matching_attribute: Option<String>,
}

pub(crate) async fn assert_record(
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

pub(crate) async fn get_record(
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

pub(crate) async fn update(
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

pub(crate) async fn patch_record(
    State(sim): S,
    headers: HeaderMap,
    Path((object, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    update(sim, headers, object, id, body, Mode::Append).await
}

pub(crate) async fn put_record(
    State(sim): S,
    headers: HeaderMap,
    Path((object, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    update(sim, headers, object, id, body, Mode::Overwrite).await
}

pub(crate) async fn delete_record(
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
pub(crate) struct MergeBody {
    duplicate: String,
}

/// `POST /_sim/objects/{object}/records/{survivor}/merge {"duplicate": id}`: what a person does in
/// Attio's web app (the API has no merge): the duplicate's multiselect values that the survivor
/// lacks are added to it, the duplicate is removed, and `record.merged` is sent naming both. Needs
/// the workspace's token like any write; not part of Attio's API.
pub(crate) async fn merge_records(
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

/// `POST /v2/objects/{object}/records/merge`
/// `{"data": {"primary_record_id": …, "secondary_record_id": …}}` (2026, beta): a new record is
/// made from the two (the primary's values, the secondary's where the primary has none, and the
/// secondary's multiselect values the primary lacks), both originals are removed, and two
/// `record.merged` events carry the new record's id, each naming one original as the duplicate.
/// `200 {"data": {"new_record_id": …}}`; 400 `self_merge` for one record twice; 404 when either
/// is unknown (so a repeat of a merge done is a 404: merging is not idempotent).
pub(crate) async fn merge_api(
    State(sim): S,
    headers: HeaderMap,
    Path(object): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, WRITE_RECORDS, Access::Write)?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid("validation_type", format!("Body is not JSON: {e}")))?;
    let id_of = |key: &str| -> ApiResult<RecordId> {
        let given = body["data"][key].as_str().ok_or_else(|| {
            ApiError::invalid("validation_type", format!("data.{key} is required"))
        })?;
        parse_record_id(given)
    };
    let (primary, secondary) = (id_of("primary_record_id")?, id_of("secondary_record_id")?);
    if primary == secondary {
        return Err(ApiError::invalid(
            "self_merge",
            "A record cannot be merged with itself.",
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
    let find = |id: RecordId| {
        o.records
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .ok_or_else(|| record_not_found(&id.to_string()))
    };
    let (a, b) = (find(primary)?, find(secondary)?);
    let mut made = StoredRecord {
        id: RecordId::from_uuid(uuid::Uuid::new_v4()),
        ..a.clone()
    };
    for attr in &o.attributes {
        let slug = attr.slug();
        let have: Vec<String> = a.active(slug).map(|v| identity(&v.data)).collect();
        let add: Vec<domain::value::AttributeValue> = if attr.attr.is_multiselect || have.is_empty()
        {
            b.active(slug)
                .filter(|v| !have.contains(&identity(&v.data)))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        if !add.is_empty() {
            made.values.entry(slug.to_owned()).or_default().extend(add);
        }
    }
    let made_id = made.id;
    o.records.retain(|r| r.id != primary && r.id != secondary);
    o.records.push(made);
    let object_id = o.object.id.object_id;
    let events = [primary, secondary]
        .into_iter()
        .map(|original| domain::webhook::WebhookEvent {
            event_type: EventType::RecordMerged,
            subject: domain::webhook::EventSubject::RecordMerged(
                domain::webhook::RecordMergedSubject {
                    workspace_id: entry.workspace,
                    object_id,
                    record_id: made_id,
                    duplicate_object_id: object_id,
                    duplicate_record_id: original,
                },
            ),
            actor: Some(token_actor(&entry.token_id)),
            id_extra: Map::new(),
            extra: Map::new(),
        })
        .collect();
    drop(world);
    sim.emit(entry.workspace, events);
    Ok(data(json!({ "new_record_id": made_id.to_string() })))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ValuesQuery {
    show_historic: Option<bool>,
    limit: Option<usize>,
    offset: Option<usize>,
}

pub(crate) async fn attribute_values(
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

#[derive(Debug, Deserialize)]
pub(crate) struct EntriesQuery {
    limit: Option<usize>,
    offset: Option<usize>,
}

const READ_ENTRIES: &[&str] = &[
    "record_permission:read",
    "object_configuration:read",
    "list_entry:read",
];

/// `GET /v2/objects/{object}/records/{record_id}/entries`: every list entry whose parent is the
/// record, across lists (metadata only, no values), oldest first.
pub(crate) async fn record_entries(
    State(sim): S,
    headers: HeaderMap,
    Path((object, id)): Path<(String, String)>,
    Query(q): Query<EntriesQuery>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, READ_ENTRIES, Access::Read)?;
    let world = sim.world();
    let ws = workspace(&world, &entry)?;
    let o = ws
        .object(&object)
        .ok_or_else(|| object_not_found(&object))?;
    let record = parse_record_id(&id)?;
    o.record(record).ok_or_else(|| record_not_found(&id))?;
    let mut entries: Vec<(&crate::world::ListDef, &StoredRecord)> = ws
        .lists
        .iter()
        .flat_map(|l| l.def.records.iter().map(move |e| (l, e)))
        .filter(|(_, e)| {
            e.parent
                .as_ref()
                .is_some_and(|(slug, r)| slug == o.slug() && *r == record)
        })
        .collect();
    entries.sort_by(|a, b| a.1.created_at.cmp(&b.1.created_at));
    let page: Vec<Value> = entries
        .into_iter()
        .skip(q.offset.unwrap_or(0))
        .take(q.limit.unwrap_or(usize::MAX))
        .map(|(l, e)| {
            json!({
                "list_id": l.list.id.list_id,
                "list_api_slug": l.slug(),
                "entry_id": e.id,
                "created_at": e.created_at,
            })
        })
        .collect();
    Ok(data(Value::Array(page)))
}
