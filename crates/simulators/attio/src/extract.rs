//! What every handler shares: the state extractor, the JSON body, the workspace of a token, and
//! reading records' and entries' values. Every handler authenticates (scopes and budget) before
//! touching the world.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use domain::ids::RecordId;
use serde_json::{Map, Value, json};

use crate::Sim;
use crate::error::{ApiError, ApiResult};
use crate::values::{Mode, apply, check_required, check_unique, parse_input};
use crate::world::{AttrDef, ObjectDef, StoredRecord, Workspace, now};

pub(crate) type S = State<Arc<Sim>>;

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

pub(crate) fn workspace<'a>(
    world: &'a crate::World,
    entry: &crate::auth::TokenEntry,
) -> ApiResult<&'a Workspace> {
    world
        .workspaces
        .get(&entry.workspace)
        .ok_or_else(crate::auth::not_found_key)
}

pub(crate) fn attribute<'a>(o: &'a ObjectDef, key: &str) -> ApiResult<&'a AttrDef> {
    o.attribute(key)
        .ok_or_else(|| ApiError::not_found(format!("Attribute with slug/ID \"{key}\" not found.")))
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

pub(crate) fn parse_record_id(id: &str) -> ApiResult<RecordId> {
    RecordId::parse(id).map_err(|_| record_not_found(id))
}

/// A count (`limit`, `offset`) in a JSON body, as Attio's document types it: a `number`. A whole
/// one is taken with or without a fraction part (`10` or `10.0`, which generated SDKs send);
/// anything else is refused naming what was sent.
pub(crate) fn whole_number<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<u64>, D::Error> {
    use serde::Deserialize;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(u) = n.as_u64() {
        return Ok(Some(u));
    }
    match n.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 9.0e15 => Ok(Some(f as u64)),
        _ => Err(serde::de::Error::custom(format!(
            "expected a non-negative whole number, got {n}"
        ))),
    }
}
