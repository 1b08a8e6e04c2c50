//! The data API under `/services/data/vNN.N`: records, upsert by external id, sObject
//! Collections, SOQL, getUpdated/getDeleted and limits.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::store::{SfFault, SfResult, Table, check_id, parse_time, sf_time};
use crate::{ApiVersion, Cursor, Org, Sim, faults, soql};

type S = State<Arc<Sim>>;
type Params = Query<HashMap<String, String>>;

pub(crate) fn routes() -> Router<Arc<Sim>> {
    let p = "/services/data/{v}";
    let r = |s: &str| format!("{p}{s}");
    Router::new()
        .route(&r(""), get(resources))
        .route(&r("/"), get(resources))
        .route(&r("/limits"), get(limits))
        .route(&r("/limits/"), get(limits))
        .route(&r("/sobjects"), get(describe_global))
        .route(&r("/sobjects/"), get(describe_global))
        .route(&r("/sobjects/{o}"), get(basic).post(create))
        .route(&r("/sobjects/{o}/"), get(basic).post(create))
        .route(&r("/sobjects/{o}/describe"), get(describe))
        .route(&r("/sobjects/{o}/describe/"), get(describe))
        .route(&r("/sobjects/{o}/updated"), get(updated))
        .route(&r("/sobjects/{o}/updated/"), get(updated))
        .route(&r("/sobjects/{o}/deleted"), get(deleted))
        .route(&r("/sobjects/{o}/deleted/"), get(deleted))
        .route(
            &r("/sobjects/{o}/{id}"),
            get(read).patch(update).delete(remove).post(post_override),
        )
        .route(
            &r("/sobjects/{o}/{field}/{value}"),
            get(ext_read).patch(ext_upsert).delete(ext_delete),
        )
        .route(&r("/query"), get(query))
        .route(&r("/query/"), get(query))
        .route(&r("/query/{locator}"), get(query_more))
        .route(&r("/queryAll"), get(query_all))
        .route(&r("/queryAll/"), get(query_all))
        .route(
            &r("/composite/sobjects"),
            axum::routing::post(coll_create)
                .patch(coll_update)
                .delete(coll_delete),
        )
        .route(&r("/composite/sobjects/{o}"), get(coll_retrieve))
        .route(&r("/composite/sobjects/{o}/{field}"), patch(coll_upsert))
}

fn json_body(body: &Bytes) -> SfResult<Value> {
    serde_json::from_slice(body).map_err(|e| {
        SfFault::new(
            400,
            "JSON_PARSER_ERROR",
            format!("The request body is not valid JSON: {e}"),
        )
    })
}

fn object_body(body: &Bytes) -> SfResult<Map<String, Value>> {
    match json_body(body)? {
        Value::Object(m) => Ok(m),
        _ => Err(SfFault::new(
            400,
            "JSON_PARSER_ERROR",
            "Expected a JSON object as the request body",
        )),
    }
}

fn reply(r: SfResult<Response>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

fn success(id: &str) -> Value {
    json!({"id": id, "success": true, "errors": []})
}

async fn resources(Extension(ApiVersion(v, _)): Extension<ApiVersion>) -> Response {
    let base = format!("/services/data/v{v}");
    Json(json!({
        "sobjects": format!("{base}/sobjects"),
        "query": format!("{base}/query"),
        "queryAll": format!("{base}/queryAll"),
        "limits": format!("{base}/limits"),
        "composite": format!("{base}/composite"),
    }))
    .into_response()
}

async fn limits(State(sim): S) -> Response {
    let used = sim.api_usage();
    let max = sim.config.daily_limit;
    Json(json!({"DailyApiRequests": {"Max": max, "Remaining": max.saturating_sub(used)}}))
        .into_response()
}

/// Describe Global: every sObject of the org with its key prefix and what it allows.
async fn describe_global(
    State(sim): S,
    Extension(ApiVersion(v, _)): Extension<ApiVersion>,
) -> Response {
    let org = sim.org();
    let mut sobjects: Vec<Value> = org
        .specs()
        .map(|spec| {
            let base = format!("/services/data/v{v}/sobjects/{}", spec.name);
            json!({
                "name": spec.name, "label": spec.name, "labelPlural": format!("{}s", spec.name),
                "keyPrefix": spec.prefix, "custom": false, "queryable": true, "retrieveable": true,
                "searchable": true, "createable": true, "updateable": true, "deletable": true,
                "urls": {"sobject": base, "describe": format!("{base}/describe"), "rowTemplate": format!("{base}/{{ID}}")},
            })
        })
        .collect();
    sobjects.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Json(json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects})).into_response()
}

async fn basic(
    State(sim): S,
    Extension(ApiVersion(v, _)): Extension<ApiVersion>,
    Path((_, o)): Path<(String, String)>,
) -> Response {
    let mut org = sim.org();
    reply(org.table(&o).map(|t| {
        let recent: Vec<Value> = t
            .records
            .values()
            .rev()
            .filter(|r| r.deleted.is_none())
            .take(10)
            .map(|r| t.render(r, Some(&["Id".to_owned()]), &v, &sim.config.user_id))
            .collect();
        Json(json!({"objectDescribe": {"name": t.spec.name, "keyPrefix": t.spec.prefix}, "recentItems": recent}))
            .into_response()
    }))
}

/// `GET /sobjects/{o}/describe`: the object's fields as Salesforce describes them (`name`,
/// `type` — `id`, `string`, `email`, `phone`, `picklist`, `boolean`, `date`, `double`,
/// `reference` —, `picklistValues`, `nillable`, `createable`, `updateable`,
/// `defaultedOnCreate`, `externalId`, `unique`, `referenceTo`).
async fn describe(State(sim): S, Path((_, o)): Path<(String, String)>) -> Response {
    let mut org = sim.org();
    reply(org.table(&o).map(|t| {
        let fields: Vec<Value> = t
            .spec
            .fields
            .iter()
            .map(|(name, kind)| describe_field(&t.spec, name, *kind))
            .collect();
        Json(json!({
            "name": t.spec.name,
            "keyPrefix": t.spec.prefix,
            "createable": true,
            "updateable": true,
            "fields": fields,
        }))
        .into_response()
    }))
}

fn describe_field(spec: &crate::store::ObjectSpec, name: &str, kind: crate::store::Kind) -> Value {
    use crate::store::Kind;
    let system = kind == Kind::System;
    let by_name = |n: &str| match n {
        n if n.contains("Email") => "email",
        n if n.contains("Phone") => "phone",
        "Website" => "url",
        "Description" | "Body" => "textarea",
        _ => "string",
    };
    let (kind_name, picklist, reference_to): (&str, Vec<Value>, Vec<&str>) = match kind {
        Kind::Text => (by_name(name), Vec::new(), Vec::new()),
        Kind::Picklist(values) => (
            "picklist",
            values
                .iter()
                .map(|v| json!({"active": true, "defaultValue": false, "label": v, "value": v}))
                .collect(),
            Vec::new(),
        ),
        Kind::MultiPicklist(values) => (
            "multipicklist",
            values
                .iter()
                .map(|v| json!({"active": true, "defaultValue": false, "label": v, "value": v}))
                .collect(),
            Vec::new(),
        ),
        Kind::Number => ("double", Vec::new(), Vec::new()),
        Kind::Bool => ("boolean", Vec::new(), Vec::new()),
        Kind::Date => ("date", Vec::new(), Vec::new()),
        Kind::DateTime => ("datetime", Vec::new(), Vec::new()),
        Kind::Reference(prefix) => ("reference", Vec::new(), vec![object_of(prefix)]),
        Kind::AnyOf(prefixes) => (
            "reference",
            Vec::new(),
            prefixes.iter().map(|p| object_of(p)).collect(),
        ),
        Kind::System if name == "Id" => ("id", Vec::new(), Vec::new()),
        Kind::System if name.ends_with("Date") || name == "SystemModstamp" => {
            ("datetime", Vec::new(), Vec::new())
        }
        Kind::System if name.ends_with("ById") || name == "OwnerId" || name == "MasterRecordId" => {
            ("reference", Vec::new(), Vec::new())
        }
        Kind::System if name == "IsDeleted" => ("boolean", Vec::new(), Vec::new()),
        Kind::System => ("string", Vec::new(), Vec::new()),
    };
    json!({
        "name": name,
        "type": kind_name,
        "picklistValues": picklist,
        "referenceTo": reference_to,
        "externalId": spec.external_ids.contains_key(name),
        "unique": spec.external_ids.get(name).copied().unwrap_or(false),
        "nillable": !spec.required.contains(&name) && !system,
        "defaultedOnCreate": system,
        "createable": !system,
        "updateable": !system,
    })
}

/// The object a key prefix names (for `referenceTo`).
fn object_of(prefix: &str) -> &'static str {
    match prefix {
        "001" => "Account",
        "003" => "Contact",
        "006" => "Opportunity",
        "00Q" => "Lead",
        "00T" => "Task",
        "002" => "Note",
        "00K" => "OpportunityContactRole",
        _ => "Unknown",
    }
}

/// `?fields=A,B` resolved to canonical names; `INVALID_FIELD` for unknown ones.
fn field_list(t: &Table, raw: Option<&String>) -> SfResult<Option<Vec<String>>> {
    let Some(raw) = raw else { return Ok(None) };
    raw.split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(|f| {
            t.spec.field(f).map(|(c, _)| c.to_owned()).ok_or_else(|| {
                SfFault::new(
                    400,
                    "INVALID_FIELD",
                    format!("No such column '{f}' on entity '{}'", t.spec.name),
                )
            })
        })
        .collect::<SfResult<Vec<_>>>()
        .map(|mut v| {
            if !v.iter().any(|f| f == "Id") {
                v.insert(0, "Id".into());
            }
            Some(v)
        })
}

async fn create(State(sim): S, Path((_, o)): Path<(String, String)>, body: Bytes) -> Response {
    let now = sim.now();
    let lock = faults::lock(&sim.faults());
    let mut org = sim.org();
    reply((|| {
        let t = org.table(&o)?;
        let fields = t.validate(&object_body(&body)?)?;
        if let Some(f) = lock {
            return Err(f);
        }
        let id = t.create(fields, now)?;
        Ok((StatusCode::CREATED, Json(success(&id))).into_response())
    })())
}

async fn read(
    State(sim): S,
    Extension(ApiVersion(v, _)): Extension<ApiVersion>,
    Path((_, o, id)): Path<(String, String, String)>,
    Query(q): Params,
) -> Response {
    let mut org = sim.org();
    reply((|| {
        let t = org.table(&o)?;
        let id = check_id(&t.spec, &id)?;
        let fields = field_list(t, q.get("fields"))?;
        let r = t.live(&id)?;
        Ok(Json(t.render(r, fields.as_deref(), &v, &sim.config.user_id)).into_response())
    })())
}

fn do_update(sim: &Sim, o: &str, id: &str, body: &Bytes) -> SfResult<Response> {
    let now = sim.now();
    let lock = faults::lock(&sim.faults());
    let mut org = sim.org();
    let t = org.table(o)?;
    let id = check_id(&t.spec, id)?;
    let fields = t.validate(&object_body(body)?)?;
    t.live(&id)?;
    if let Some(f) = lock {
        return Err(f);
    }
    t.update(&id, fields, now)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn update(
    State(sim): S,
    Path((_, o, id)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    reply(do_update(&sim, &o, &id, &body))
}

/// `POST …/{id}?_HttpMethod=PATCH`, for clients that cannot send PATCH.
async fn post_override(
    State(sim): S,
    Path((_, o, id)): Path<(String, String, String)>,
    Query(q): Params,
    body: Bytes,
) -> Response {
    if q.get("_HttpMethod")
        .is_some_and(|m| m.eq_ignore_ascii_case("PATCH"))
    {
        return reply(do_update(&sim, &o, &id, &body));
    }
    SfFault::new(
        405,
        "METHOD_NOT_ALLOWED",
        "HTTP Method 'POST' not allowed. Allowed are HEAD,GET,PATCH,DELETE",
    )
    .into_response()
}

async fn remove(State(sim): S, Path((_, o, id)): Path<(String, String, String)>) -> Response {
    let now = sim.now();
    let mut org = sim.org();
    reply((|| {
        let t = org.table(&o)?;
        let id = check_id(&t.spec, &id)?;
        t.delete(&id, now)?;
        org.cascade(&id, now);
        Ok(StatusCode::NO_CONTENT.into_response())
    })())
}

/// The canonical external-id field of the object; `NOT_FOUND` when the field is not one.
fn external_field(t: &Table, field: &str) -> SfResult<String> {
    t.spec
        .external_ids
        .keys()
        .find(|f| f.eq_ignore_ascii_case(field))
        .cloned()
        .ok_or_else(|| SfFault::new(404, "NOT_FOUND", "The requested resource does not exist"))
}

/// Records matched by an external id: one, or the answer (`NOT_FOUND` or 300) as a boxed
/// response.
fn one_match(t: &Table, field: &str, value: &str, v: &str) -> Result<String, Box<Response>> {
    let ids = t.matches(field, value);
    match ids.as_slice() {
        [] => Err(Box::new(
            SfFault::new(404, "NOT_FOUND", "The requested resource does not exist").into_response(),
        )),
        [one] => Ok(one.clone()),
        many => Err(Box::new(multiple(t, many, v))),
    }
}

fn multiple(t: &Table, ids: &[String], v: &str) -> Response {
    let urls: Vec<String> = ids
        .iter()
        .map(|id| format!("/services/data/v{v}/sobjects/{}/{id}", t.spec.name))
        .collect();
    (StatusCode::MULTIPLE_CHOICES, Json(urls)).into_response()
}

async fn ext_read(
    State(sim): S,
    Extension(ApiVersion(v, _)): Extension<ApiVersion>,
    Path((_, o, field, value)): Path<(String, String, String, String)>,
    Query(q): Params,
) -> Response {
    let mut org = sim.org();
    let t = match org.table(&o) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let field = match external_field(t, &field) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let fields = match field_list(t, q.get("fields")) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    match one_match(t, &field, &value, &v) {
        Ok(id) => match t.live(&id) {
            Ok(r) => Json(t.render(r, fields.as_deref(), &v, &sim.config.user_id)).into_response(),
            Err(e) => e.into_response(),
        },
        Err(r) => *r,
    }
}

async fn ext_delete(
    State(sim): S,
    Extension(ApiVersion(v, _)): Extension<ApiVersion>,
    Path((_, o, field, value)): Path<(String, String, String, String)>,
) -> Response {
    let now = sim.now();
    let mut org = sim.org();
    let t = match org.table(&o) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let field = match external_field(t, &field) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    match one_match(t, &field, &value, &v) {
        Ok(id) => reply(t.delete(&id, now).map(|()| {
            org.cascade(&id, now);
            StatusCode::NO_CONTENT.into_response()
        })),
        Err(r) => *r,
    }
}

/// The outcome of one upsert.
enum Upserted {
    Done { id: String, created: bool },
    Multiple(Vec<String>),
}

fn upsert_into(
    t: &mut Table,
    field: &str,
    value: &str,
    mut fields: Map<String, Value>,
    update_only: bool,
    now: OffsetDateTime,
) -> SfResult<Upserted> {
    fields.insert(field.to_owned(), json!(value));
    let ids = t.matches(field, value);
    match ids.as_slice() {
        [] if update_only => Err(SfFault::new(
            404,
            "NOT_FOUND",
            "The requested resource does not exist",
        )),
        [] => t
            .create(fields, now)
            .map(|id| Upserted::Done { id, created: true }),
        [one] => {
            let id = one.clone();
            t.update(&id, fields, now)?;
            Ok(Upserted::Done { id, created: false })
        }
        many => Ok(Upserted::Multiple(many.to_vec())),
    }
}

async fn ext_upsert(
    State(sim): S,
    Extension(ApiVersion(v, n)): Extension<ApiVersion>,
    Path((_, o, field, value)): Path<(String, String, String, String)>,
    Query(q): Params,
    body: Bytes,
) -> Response {
    let now = sim.now();
    let lock = faults::lock(&sim.faults());
    let update_only = q.get("updateOnly").is_some_and(|x| x == "true");
    let mut org = sim.org();
    let t = match org.table(&o) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let result = (|| {
        let field = external_field(t, &field)?;
        let fields = t.validate(&object_body(&body)?)?;
        if let Some(f) = lock {
            return Err(f);
        }
        upsert_into(t, &field, &value, fields, update_only, now)
    })();
    match result {
        Err(e) => e.into_response(),
        Ok(Upserted::Multiple(ids)) => multiple(t, &ids, &v),
        Ok(Upserted::Done { id, created: true }) => {
            let mut body = success(&id);
            if n >= 46.0 {
                body["created"] = json!(true);
            }
            (StatusCode::CREATED, Json(body)).into_response()
        }
        Ok(Upserted::Done { id, created: false }) if n >= 46.0 => {
            let mut body = success(&id);
            body["created"] = json!(false);
            Json(body).into_response()
        }
        Ok(Upserted::Done { .. }) => StatusCode::NO_CONTENT.into_response(),
    }
}

// ---------------------------------------------------------------- sObject Collections

const COLLECTION_MAX: usize = 200;

fn too_many(n: usize) -> SfFault {
    SfFault::new(
        400,
        "EXCEEDED_ID_LIMIT",
        format!(
            "record limit reached. cannot submit more than {COLLECTION_MAX} records into this call (got {n})"
        ),
    )
}

/// `{allOrNone, records}` from a collection body.
fn collection_body(body: &Bytes) -> SfResult<(bool, Vec<Map<String, Value>>)> {
    let b = object_body(body)?;
    let all_or_none = b.get("allOrNone").and_then(Value::as_bool).unwrap_or(false);
    let records = b
        .get("records")
        .and_then(Value::as_array)
        .ok_or_else(|| SfFault::new(400, "INVALID_FIELD", "records is required"))?;
    if records.len() > COLLECTION_MAX {
        return Err(too_many(records.len()));
    }
    let records = records
        .iter()
        .map(|r| {
            r.as_object().cloned().ok_or_else(|| {
                SfFault::new(400, "JSON_PARSER_ERROR", "each record must be an object")
            })
        })
        .collect::<SfResult<Vec<_>>>()?;
    Ok((all_or_none, records))
}

fn type_of(r: &Map<String, Value>) -> Option<&str> {
    r.get("attributes")?.get("type")?.as_str()
}

/// Runs per-item work with `allOrNone` semantics: on any failure with `allOrNone`, the org's
/// tables are restored and healthy items report `ALL_OR_NONE_OPERATION_ROLLED_BACK`.
fn run_items(
    org: &mut Org,
    all_or_none: bool,
    n: usize,
    mut item: impl FnMut(&mut Org, usize) -> Result<Value, (Option<String>, SfFault)>,
) -> Vec<Value> {
    let snapshot = all_or_none.then(|| org.tables.clone());
    let results: Vec<Result<Value, (Option<String>, SfFault)>> =
        (0..n).map(|i| item(org, i)).collect();
    let failed = results.iter().any(Result::is_err);
    let rollback = match snapshot {
        Some(s) if failed => {
            org.tables = s;
            true
        }
        _ => false,
    };
    results
        .into_iter()
        .map(|r| match r {
            Ok(_) if rollback => json!({"success": false, "errors": [SfFault::new(400, "ALL_OR_NONE_OPERATION_ROLLED_BACK", "Record rolled back because not all records were valid and the request was using AllOrNone header").item()]}),
            Ok(v) => v,
            Err((id, e)) => {
                let mut out = json!({"success": false, "errors": [e.item()]});
                if let Some(id) = id {
                    out["id"] = json!(id);
                }
                out
            }
        })
        .collect()
}

async fn coll_upsert(
    State(sim): S,
    Extension(ApiVersion(_, n)): Extension<ApiVersion>,
    Path((_, o, field)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    if n < 46.0 {
        return SfFault::new(404, "NOT_FOUND", "The requested resource does not exist")
            .into_response();
    }
    let now = sim.now();
    let f = sim.faults();
    let (all_or_none, records) = match collection_body(&body) {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let mut org = sim.org();
    let (object, field) = match org
        .table(&o)
        .and_then(|t| Ok((t.spec.name, external_field(t, &field)?)))
    {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    // A key twice in one request fails every copy.
    let key = |r: &Map<String, Value>| match r.get(&field) {
        Some(Value::String(s)) => Some(s.to_lowercase()),
        Some(Value::Number(x)) => Some(x.to_string()),
        _ => None,
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    for k in records.iter().filter_map(key) {
        *seen.entry(k).or_default() += 1;
    }
    let results = run_items(&mut org, all_or_none, records.len(), |org, i| {
        let r = &records[i];
        let fail = |e| Err((None, e));
        if type_of(r).is_none_or(|t| !t.eq_ignore_ascii_case(object)) {
            return fail(SfFault::new(
                400,
                "INVALID_TYPE",
                format!("The sObject type must be {object} for this upsert"),
            ));
        }
        let Some(k) = key(r) else {
            return fail(
                SfFault::new(400, "MISSING_ARGUMENT", format!("{field} not specified"))
                    .on(&[&field]),
            );
        };
        if seen.get(&k).copied().unwrap_or(0) > 1 {
            return fail(
                SfFault::new(
                    400,
                    "DUPLICATE_EXTERNAL_ID",
                    format!("Duplicate external id specified: {k}"),
                )
                .on(&[&field]),
            );
        }
        let t = org.table(object).map_err(|e| (None, e))?;
        let fields = t.validate(r).map_err(|e| (None, e))?;
        if let Some(e) = faults::lock(&f) {
            return fail(e);
        }
        let value = match r.get(&field) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => k,
        };
        match upsert_into(t, &field, &value, fields, false, now).map_err(|e| (None, e))? {
            Upserted::Done { id, created } => {
                Ok(json!({"id": id, "success": true, "errors": [], "created": created}))
            }
            Upserted::Multiple(ids) => fail(
                SfFault::new(
                    300,
                    "DUPLICATE_EXTERNAL_ID",
                    format!("The external id value matches {} records", ids.len()),
                )
                .on(&[&field]),
            ),
        }
    });
    Json(results).into_response()
}

async fn coll_create(State(sim): S, body: Bytes) -> Response {
    let now = sim.now();
    let f = sim.faults();
    let (all_or_none, records) = match collection_body(&body) {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let mut org = sim.org();
    let results = run_items(&mut org, all_or_none, records.len(), |org, i| {
        let r = &records[i];
        let ty = type_of(r).ok_or_else(|| {
            (
                None,
                SfFault::new(400, "INVALID_TYPE", "attributes.type is required"),
            )
        })?;
        let t = org.table(ty).map_err(|_| {
            (
                None,
                SfFault::new(
                    400,
                    "INVALID_TYPE",
                    format!("sObject type '{ty}' is not supported."),
                ),
            )
        })?;
        let fields = t.validate(r).map_err(|e| (None, e))?;
        if let Some(e) = faults::lock(&f) {
            return Err((None, e));
        }
        t.create(fields, now)
            .map(|id| success(&id))
            .map_err(|e| (None, e))
    });
    Json(results).into_response()
}

async fn coll_update(State(sim): S, body: Bytes) -> Response {
    let now = sim.now();
    let f = sim.faults();
    let (all_or_none, records) = match collection_body(&body) {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let mut org = sim.org();
    let results = run_items(&mut org, all_or_none, records.len(), |org, i| {
        let mut r = records[i].clone();
        let raw_id = r
            .remove("id")
            .or_else(|| r.remove("Id"))
            .and_then(|v| v.as_str().map(str::to_owned));
        let ty = type_of(&r)
            .ok_or_else(|| {
                (
                    raw_id.clone(),
                    SfFault::new(400, "INVALID_TYPE", "attributes.type is required"),
                )
            })?
            .to_owned();
        let Some(raw_id) = raw_id else {
            return Err((
                None,
                SfFault::new(
                    400,
                    "MISSING_ARGUMENT",
                    "Id not specified in an update call",
                )
                .on(&["Id"]),
            ));
        };
        let t = org.table(&ty).map_err(|_| {
            (
                Some(raw_id.clone()),
                SfFault::new(
                    400,
                    "INVALID_TYPE",
                    format!("sObject type '{ty}' is not supported."),
                ),
            )
        })?;
        let id = check_id(&t.spec, &raw_id).map_err(|e| (Some(raw_id.clone()), e))?;
        let fields = t.validate(&r).map_err(|e| (Some(id.clone()), e))?;
        if let Some(e) = faults::lock(&f) {
            return Err((Some(id), e));
        }
        t.update(&id, fields, now)
            .map(|()| success(&id))
            .map_err(|e| (Some(id.clone()), e))
    });
    Json(results).into_response()
}

fn ids_param(q: &HashMap<String, String>) -> SfResult<Vec<String>> {
    let ids: Vec<String> = q
        .get("ids")
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() {
        return Err(SfFault::new(400, "MISSING_ARGUMENT", "ids is required"));
    }
    if ids.len() > COLLECTION_MAX {
        return Err(too_many(ids.len()));
    }
    Ok(ids)
}

/// The table an id belongs to, by key prefix.
fn table_of_id<'a>(org: &'a mut Org, id: &str) -> Option<&'a mut Table> {
    org.tables
        .values_mut()
        .find(|t| id.starts_with(t.spec.prefix))
}

async fn coll_delete(State(sim): S, Query(q): Params) -> Response {
    let now = sim.now();
    let ids = match ids_param(&q) {
        Ok(ids) => ids,
        Err(e) => return e.into_response(),
    };
    let all_or_none = q.get("allOrNone").is_some_and(|x| x == "true");
    let mut org = sim.org();
    let results = run_items(&mut org, all_or_none, ids.len(), |org, i| {
        let raw = &ids[i];
        let fail = |e| Err((Some(raw.clone()), e));
        let Some(t) = table_of_id(org, raw) else {
            return fail(
                SfFault::new(400, "MALFORMED_ID", format!("malformed id {raw}")).on(&["Id"]),
            );
        };
        let id = check_id(&t.spec, raw).map_err(|e| (Some(raw.clone()), e))?;
        match t.delete(&id, now) {
            Ok(()) => {
                org.cascade(&id, now);
                Ok(success(&id))
            }
            Err(e) => fail(e),
        }
    });
    Json(results).into_response()
}

async fn coll_retrieve(
    State(sim): S,
    Extension(ApiVersion(v, _)): Extension<ApiVersion>,
    Path((_, o)): Path<(String, String)>,
    Query(q): Params,
) -> Response {
    let mut org = sim.org();
    reply((|| {
        let ids = ids_param(&q)?;
        let t = org.table(&o)?;
        let fields = field_list(t, q.get("fields"))?
            .ok_or_else(|| SfFault::new(400, "MISSING_ARGUMENT", "fields is required"))?;
        let out: Vec<Value> = ids
            .iter()
            .map(|raw| {
                check_id(&t.spec, raw)
                    .ok()
                    .and_then(|id| t.live(&id).ok())
                    .map(|r| t.render(r, Some(&fields), &v, &sim.config.user_id))
                    .unwrap_or(Value::Null)
            })
            .collect();
        Ok(Json(out).into_response())
    })())
}

// ---------------------------------------------------------------- SOQL

fn batch_size(headers: &HeaderMap) -> usize {
    headers
        .get("sforce-query-options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .filter_map(|kv| kv.trim().strip_prefix("batchSize="))
                .find_map(|n| n.trim().parse::<usize>().ok())
        })
        .unwrap_or(2000)
        .clamp(200, 2000)
}

fn page(org: &mut Org, version: &str, locator: String, mut cursor: Cursor, total: usize) -> Value {
    let take = cursor.batch.min(cursor.rows.len());
    let rest = cursor.rows.split_off(take);
    let records = std::mem::replace(&mut cursor.rows, rest);
    let done = cursor.rows.is_empty();
    let mut out = json!({"totalSize": total, "done": done, "records": records});
    if !done {
        let served = total - cursor.rows.len();
        out["nextRecordsUrl"] = json!(format!(
            "/services/data/v{version}/query/{locator}-{served}"
        ));
        org.cursors.insert(locator, cursor);
    }
    out
}

/// Adds each row's parent fields (`Account.Name`) as Salesforce nests them: `"Account":
/// {"attributes": {...}, "Name": ...}`, or `null` without a parent. `ids` are each row's parent
/// ids, one per path of `parents`. `INVALID_FIELD` for a parent field its object lacks.
fn with_parents(
    org: &mut Org,
    rows: Vec<(Value, Vec<Value>)>,
    parents: &[String],
    version: &str,
    user: &str,
) -> SfResult<Vec<Value>> {
    let mut out = Vec::with_capacity(rows.len());
    for (mut row, ids) in rows {
        for (path, id) in parents.iter().zip(ids) {
            let Some((rel, field)) = path.split_once('.') else {
                continue;
            };
            let parent = match id.as_str() {
                Some(id) => org.record_by_id(id),
                None => None,
            };
            let Value::Object(o) = &mut row else { continue };
            match parent {
                None => {
                    o.entry(rel.to_owned()).or_insert(Value::Null);
                }
                Some((table, record)) => {
                    let (name, _) = table.spec.field(field).ok_or_else(|| {
                        SfFault::new(
                            400,
                            "INVALID_FIELD",
                            format!("No such column '{field}' on entity '{}'.", table.spec.name),
                        )
                    })?;
                    let mut nested = table.render(&record, Some(&[name.to_owned()]), version, user);
                    match (o.get_mut(rel), &mut nested) {
                        (Some(Value::Object(have)), Value::Object(add)) => have.append(add),
                        _ => {
                            o.insert(rel.to_owned(), nested);
                        }
                    }
                }
            }
        }
        out.push(row);
    }
    Ok(out)
}

fn run_query(
    sim: &Sim,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    version: &str,
    all: bool,
) -> SfResult<Value> {
    let text = q
        .get("q")
        .ok_or_else(|| SfFault::new(400, "MALFORMED_QUERY", "A query string (q) is required"))?;
    let mut parsed = soql::parse(text)?;
    if faults::roll(sim.faults().query_timeout_rate) {
        return Err(SfFault::new(
            400,
            "QUERY_TIMEOUT",
            "Your query request was running for too long.",
        ));
    }
    let mut org = sim.org();
    let object = parsed.object.clone();
    let t = org.table(&object).map_err(|_| {
        SfFault::new(400, "INVALID_TYPE", format!("sObject type '{object}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name."))
    })?;
    parsed.resolve(&t.spec)?;
    let (own, parents): (Vec<String>, Vec<String>) = parsed
        .fields
        .iter()
        .cloned()
        .partition(|f| !f.contains('.'));
    let mut rows: Vec<&crate::store::Record> = t
        .records
        .values()
        .filter(|r| all || r.deleted.is_none())
        .filter(|r| parsed.matches(r))
        .collect();
    parsed.sort(&mut rows);
    let rows: Vec<(Value, Vec<Value>)> = rows
        .into_iter()
        .skip(parsed.offset)
        .take(parsed.limit.unwrap_or(usize::MAX))
        .map(|r| {
            let ids = parents
                .iter()
                .map(|p| {
                    r.get(
                        &format!("{}Id", p.split('.').next().unwrap_or_default()),
                        "",
                    )
                })
                .collect();
            (t.render(r, Some(&own), version, &sim.config.user_id), ids)
        })
        .collect();
    let rows = with_parents(&mut org, rows, &parents, version, &sim.config.user_id)?;
    let total = rows.len();
    org.next_cursor += 1;
    let locator = format!("01gSIM{:09}", org.next_cursor);
    let cursor = Cursor {
        rows,
        batch: batch_size(headers),
    };
    Ok(page(&mut org, version, locator, cursor, total))
}

async fn query(
    State(sim): S,
    Extension(ApiVersion(v, _)): Extension<ApiVersion>,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    reply(run_query(&sim, &q, &headers, &v, false).map(|b| Json(b).into_response()))
}

async fn query_all(
    State(sim): S,
    Extension(ApiVersion(v, _)): Extension<ApiVersion>,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    reply(run_query(&sim, &q, &headers, &v, true).map(|b| Json(b).into_response()))
}

async fn query_more(
    State(sim): S,
    Extension(ApiVersion(v, _)): Extension<ApiVersion>,
    Path((_, locator)): Path<(String, String)>,
) -> Response {
    let invalid =
        || SfFault::new(400, "INVALID_QUERY_LOCATOR", "invalid query locator").into_response();
    let Some((id, served)) = locator.rsplit_once('-') else {
        return invalid();
    };
    let mut org = sim.org();
    let Some(cursor) = org.cursors.remove(id) else {
        return invalid();
    };
    let total = served.parse::<usize>().unwrap_or(0) + cursor.rows.len();
    Json(page(&mut org, &v, id.to_owned(), cursor, total)).into_response()
}

// ---------------------------------------------------------------- getUpdated / getDeleted

fn minute(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_second(0)
        .and_then(|t| t.replace_nanosecond(0))
        .unwrap_or(t)
}

/// The `[start, latestDateCovered)` window of a replication call, to the minute.
fn window(
    q: &HashMap<String, String>,
    now: OffsetDateTime,
    max_days: i64,
) -> SfResult<(OffsetDateTime, OffsetDateTime)> {
    let bad = |m: String| SfFault::new(400, "INVALID_REPLICATION_DATE", m);
    let get = |k: &str| {
        q.get(k)
            .ok_or_else(|| SfFault::new(400, "MISSING_ARGUMENT", format!("{k} is required")))
            .and_then(|s| {
                parse_time(s).ok_or_else(|| bad(format!("{k} is not an ISO 8601 datetime: {s}")))
            })
    };
    let (start, end) = (minute(get("start")?), minute(get("end")?));
    if start >= end {
        return Err(bad("start date must be before end date".into()));
    }
    if start < now - time::Duration::days(max_days) {
        return Err(bad(format!(
            "start date cannot be more than {max_days} days ago"
        )));
    }
    Ok((start, end.min(minute(now))))
}

async fn updated(
    State(sim): S,
    Path((_, o)): Path<(String, String)>,
    Query(q): Params,
) -> Response {
    let now = sim.now();
    let max = sim.config.max_replication_ids;
    let mut org = sim.org();
    reply((|| {
        let t = org.table(&o)?;
        let (start, latest) = window(&q, now, 30)?;
        let ids: Vec<&str> = t
            .records
            .values()
            .filter(|r| r.deleted.is_none() && r.modstamp >= start && r.modstamp < latest)
            .map(|r| r.id.as_str())
            .collect();
        if ids.len() > max {
            return Err(SfFault::new(
                400,
                "EXCEEDED_ID_LIMIT",
                "too many ids; narrow the window",
            ));
        }
        Ok(Json(json!({"ids": ids, "latestDateCovered": sf_time(latest)})).into_response())
    })())
}

async fn deleted(
    State(sim): S,
    Path((_, o)): Path<(String, String)>,
    Query(q): Params,
) -> Response {
    let now = sim.now();
    let max = sim.config.max_replication_ids;
    let mut org = sim.org();
    let earliest = org.delete_log_start.max(now - time::Duration::days(15));
    reply((|| {
        let t = org.table(&o)?;
        let (start, latest) = window(&q, now, 15)?;
        let rows: Vec<Value> = t
            .delete_log
            .iter()
            .filter(|(_, at)| *at >= start && *at < latest)
            .map(|(id, at)| json!({"id": id, "deletedDate": sf_time(*at)}))
            .collect();
        if rows.len() > max {
            return Err(SfFault::new(
                400,
                "EXCEEDED_ID_LIMIT",
                "too many ids; narrow the window",
            ));
        }
        Ok(Json(json!({"deletedRecords": rows, "earliestDateAvailable": sf_time(minute(earliest)), "latestDateCovered": sf_time(latest)})).into_response())
    })())
}
