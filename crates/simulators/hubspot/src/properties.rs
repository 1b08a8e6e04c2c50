//! `GET /crm/v3/properties/{objectType}` (and `/{propertyName}`): the property definitions of an
//! object as HubSpot's Properties API documents them — `name`, `label`, `type` (`string`,
//! `number`, `date`, `datetime`, `enumeration`, `bool`), `fieldType`, `options` for
//! enumerations, `hasUniqueValue`, and `modificationMetadata.readOnlyValue`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use crate::store::ObjectSpec;
use crate::{Budget, HsError, HsResult, Sim, reply, with_object};

/// The default sales pipeline's stages, as a new portal has them.
pub const DEAL_STAGES: &[&str] = &[
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
    "closedwon",
    "closedlost",
];

fn options(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "dealstage" => DEAL_STAGES,
        "pipeline" => &["default"],
        "lifecyclestage" => &[
            "subscriber",
            "lead",
            "marketingqualifiedlead",
            "salesqualifiedlead",
            "opportunity",
            "customer",
            "evangelist",
            "other",
        ],
        "dealtype" => &["newbusiness", "existingbusiness"],
        "industry" => &[
            "ACCOUNTING",
            "BANKING",
            "COMPUTER_SOFTWARE",
            "EDUCATION",
            "OTHER",
        ],
        "hs_task_status" => &[
            "NOT_STARTED",
            "IN_PROGRESS",
            "WAITING",
            "COMPLETED",
            "DEFERRED",
        ],
        "hs_task_priority" => &["LOW", "MEDIUM", "HIGH"],
        "tags" => &["B2B", "B2C", "SaaS", "Enterprise"],
        "hs_task_type" => &["CALL", "EMAIL", "TODO"],
        _ => return None,
    })
}

/// One property's definition.
pub fn definition(spec: &ObjectSpec, name: &str) -> Value {
    let (kind, field_type) = match name {
        "tags" => ("enumeration", "checkbox"),
        _ if options(name).is_some() => ("enumeration", "select"),
        "amount" | "hs_object_id" => ("number", "number"),
        "closedate"
        | "createdate"
        | "lastmodifieddate"
        | "hs_lastmodifieddate"
        | "hs_timestamp" => ("datetime", "date"),
        "hs_merged_object_ids" | "hs_additional_emails" => ("enumeration", "checkbox"),
        n if n.ends_with("description") || n.ends_with("_body") => ("string", "textarea"),
        _ => ("string", "text"),
    };
    let opts: Vec<Value> = options(name)
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"label": v, "value": v, "displayOrder": i, "hidden": false}))
        .collect();
    let read_only = ObjectSpec::is_read_only(name) || name == "hs_merged_object_ids";
    json!({
        "name": name,
        "label": name,
        "type": kind,
        "fieldType": field_type,
        "groupName": format!("{}information", spec.singular()),
        "options": opts,
        "hasUniqueValue": spec.unique.iter().any(|u| u == name),
        "hidden": false,
        "formField": !read_only,
        "calculated": false,
        "hubspotDefined": !spec.unique.iter().any(|u| u == name) || name == "email",
        "modificationMetadata": {
            "archivable": !read_only,
            "readOnlyDefinition": true,
            "readOnlyOptions": read_only,
            "readOnlyValue": read_only,
        },
    })
}

pub async fn list(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(object): Path<String>,
) -> HsResult<Response> {
    let (token, rl) = sim.enter(&headers, Budget::Burst)?;
    let results = with_object(&sim, &token, &object, |store, _| {
        Ok(store
            .spec
            .properties
            .iter()
            .map(|p| definition(&store.spec, p))
            .collect::<Vec<_>>())
    })?;
    Ok(reply(
        StatusCode::OK,
        Some(json!({ "results": results })),
        rl,
    ))
}

pub async fn one(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path((object, name)): Path<(String, String)>,
) -> HsResult<Response> {
    let (token, rl) = sim.enter(&headers, Budget::Burst)?;
    let found = with_object(&sim, &token, &object, |store, _| {
        Ok(store
            .spec
            .properties
            .iter()
            .find(|p| **p == name)
            .map(|p| definition(&store.spec, p)))
    })?;
    match found {
        Some(d) => Ok(reply(StatusCode::OK, Some(d), rl)),
        None => Err(HsError::new(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("Unable to find property {name} on object {object}"),
        )),
    }
}
