//! Objects, attributes (with their options and statuses), `/v2/self` and workspace members.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Access;
use crate::auth::{Presented, presented};
use crate::error::{ApiError, ApiResult};
use crate::extract::*;
use crate::respond::{data, json_response};
use crate::world::{ObjectDef, Workspace};

pub(crate) const READ_SCHEMA: &[&str] = &["object_configuration:read"];

pub(crate) async fn whoami(State(sim): S, headers: HeaderMap) -> Response {
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
            "workspace_slug": ws.slug, "workspace_logo_url": null, "token_level": "workspace"
        }),
    )
}

pub(crate) fn all_scopes() -> Vec<String> {
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

pub(crate) async fn list_objects(State(sim): S, headers: HeaderMap) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, READ_SCHEMA, Access::Read)?;
    let world = sim.world();
    let ws = workspace(&world, &entry)?;
    Ok(data(Value::Array(
        ws.objects.iter().map(|o| json!(o.object)).collect(),
    )))
}

pub(crate) async fn get_object(
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

pub(crate) fn target_object<'a>(
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
pub(crate) struct Page {
    limit: Option<usize>,
    offset: Option<usize>,
    show_archived: Option<bool>,
}

pub(crate) async fn list_attributes(
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

pub(crate) async fn get_attribute(
    State(sim): S,
    headers: HeaderMap,
    Path((target, identifier, attr)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, READ_SCHEMA, Access::Read)?;
    let world = sim.world();
    let o = target_object(workspace(&world, &entry)?, &target, &identifier)?;
    Ok(data(json!(attribute(o, &attr)?.attr)))
}

pub(crate) async fn list_options(
    State(sim): S,
    headers: HeaderMap,
    Path((target, identifier, attr)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, READ_SCHEMA, Access::Read)?;
    let world = sim.world();
    let o = target_object(workspace(&world, &entry)?, &target, &identifier)?;
    Ok(data(json!(attribute(o, &attr)?.options)))
}

pub(crate) async fn list_statuses(
    State(sim): S,
    headers: HeaderMap,
    Path((target, identifier, attr)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, READ_SCHEMA, Access::Read)?;
    let world = sim.world();
    let o = target_object(workspace(&world, &entry)?, &target, &identifier)?;
    Ok(data(json!(attribute(o, &attr)?.statuses)))
}

pub(crate) const READ_MEMBERS: &[&str] = &["user_management:read"];

pub(crate) async fn list_members(State(sim): S, headers: HeaderMap) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, READ_MEMBERS, Access::Read)?;
    let world = sim.world();
    Ok(data(json!(workspace(&world, &entry)?.members)))
}

pub(crate) async fn get_member(
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

pub(crate) const WRITE_SCHEMA: &[&str] = &["object_configuration:read-write"];

#[derive(Debug, Deserialize)]
struct NewAttributeBody {
    data: NewAttribute,
}

#[derive(Debug, Deserialize)]
struct NewAttribute {
    title: String,
    #[serde(default)]
    description: Option<String>,
    api_slug: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    is_required: bool,
    #[serde(default)]
    is_unique: bool,
    #[serde(default)]
    is_multiselect: bool,
}

/// The types the simulator creates: those whose `config` needs nothing (no related object, no
/// options, no statuses).
const CREATABLE: &[&str] = &[
    "text",
    "number",
    "checkbox",
    "currency",
    "date",
    "timestamp",
    "rating",
    "select",
    "location",
    "domain",
    "email-address",
    "phone-number",
];

/// `POST /v2/objects/{object}/attributes`: a new attribute on an object. A slug the object
/// already has is 409 `slug_conflict`; a type Attio does not create on objects (`status`), or one
/// the simulator cannot make (`record-reference`, `actor-reference`), is 400 `validation_type`.
/// Attributes of lists are not created here (400).
pub(crate) async fn create_attribute(
    State(sim): S,
    headers: HeaderMap,
    Path((target, identifier)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, WRITE_SCHEMA, Access::Write)?;
    let new: NewAttributeBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid(
            "validation_type",
            format!("Body payload validation error: {e}"),
        )
    })?;
    let new = new.data;
    if target != "objects" {
        return Err(ApiError::invalid(
            "validation_type",
            "The simulator creates attributes on objects only.",
        ));
    }
    if !CREATABLE.contains(&new.kind.as_str()) {
        return Err(ApiError::invalid(
            "validation_type",
            format!(
                "Attributes of type \"{}\" cannot be created on objects here.",
                new.kind
            ),
        ));
    }
    let slug_ok = !new.api_slug.is_empty()
        && new
            .api_slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !slug_ok || new.title.trim().is_empty() {
        return Err(ApiError::invalid(
            "validation_type",
            "api_slug must be snake case and title must not be empty.",
        ));
    }
    let mut world = sim.world();
    let ws = world
        .workspaces
        .get_mut(&entry.workspace)
        .ok_or_else(crate::auth::not_found_key)?;
    let o = ws
        .object_mut(&identifier)
        .ok_or_else(|| object_not_found(&identifier))?;
    if o.attribute(&new.api_slug).is_some() {
        return Err(ApiError::conflict(
            "slug_conflict",
            "An attribute with the same API slug already exists on this object. Please choose a different API slug.",
        ));
    }
    let def = o.new_attribute(
        &new.title,
        new.description,
        &new.api_slug,
        domain::value::AttributeType::from(new.kind.as_str()),
        (new.is_required, new.is_unique, new.is_multiselect),
    );
    let answer = json!(def.attr);
    o.attributes.push(def);
    Ok(data(answer))
}
