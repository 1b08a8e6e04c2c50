//! Webhook subscriptions (reference §3.7, §8.3): create (the only answer with the secret), list,
//! get, update, delete. Targets must be `https://`; `http://` is accepted for loopback addresses
//! so local receivers can be used.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use domain::ids::WebhookId;
use domain::schema::{Subscription, Webhook, WebhookIdentifier, WebhookStatus};
use domain::webhook::EventType;
use serde_json::{Map, Value, json};

use crate::Access;
use crate::error::{ApiError, ApiResult};
use crate::extract::{S, body_json, workspace};
use crate::respond::{data, empty};
use crate::world::now;

const READ: &[&str] = &["webhook:read"];
const WRITE: &[&str] = &["webhook:read-write"];

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Webhook with ID \"{id}\" was not found."))
}

fn invalid(path: &[&str], message: &str) -> ApiError {
    ApiError::invalid("validation_type", "Body payload validation error.").with(
        "validation_errors",
        json!([{ "code": "custom", "path": path, "message": message }]),
    )
}

fn check_url(url: &str) -> ApiResult<()> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let loopback = ["http://127.", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| url.starts_with(p));
    if loopback {
        Ok(())
    } else {
        Err(invalid(
            &["data", "target_url"],
            "Invalid url: must start with https://",
        ))
    }
}

/// `null`, or `{"$and"|"$or": [{"field", "operator": "equals"|"not_equals", "value"}]}`.
fn check_filter(f: &Value, at: usize) -> ApiResult<()> {
    let path = ["data", "subscriptions"];
    let bad = |m: &str| invalid(&path, &format!("subscriptions[{at}].filter: {m}"));
    match f {
        Value::Null => Ok(()),
        Value::Object(m) if m.len() == 1 => {
            let (op, items) = m.iter().next().ok_or_else(|| bad("empty"))?;
            if op != "$and" && op != "$or" {
                return Err(bad("expected $and or $or"));
            }
            for c in items
                .as_array()
                .ok_or_else(|| bad("expected an array of conditions"))?
            {
                let ok = c["field"].is_string()
                    && matches!(c["operator"].as_str(), Some("equals" | "not_equals"))
                    && c["value"].is_string();
                if !ok {
                    return Err(bad(
                        "a condition is {field, operator: equals|not_equals, value}",
                    ));
                }
            }
            Ok(())
        }
        _ => Err(bad("expected null or one of $and / $or")),
    }
}

fn subscriptions(v: &Value) -> ApiResult<Vec<Subscription>> {
    let items = v
        .as_array()
        .ok_or_else(|| invalid(&["data", "subscriptions"], "Expected array"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let event_type = EventType::from(s["event_type"].as_str().unwrap_or_default());
            if !event_type.is_known() {
                return Err(invalid(
                    &["data", "subscriptions"],
                    &format!("subscriptions[{i}].event_type: unknown event type {event_type}"),
                ));
            }
            let Some(filter) = s.get("filter") else {
                return Err(invalid(
                    &["data", "subscriptions"],
                    &format!("subscriptions[{i}].filter: Required"),
                ));
            };
            check_filter(filter, i)?;
            Ok(Subscription {
                event_type,
                filter: (!filter.is_null()).then(|| filter.clone()),
            })
        })
        .collect()
}

fn secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

pub(crate) async fn create(State(sim): S, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, WRITE, Access::Write)?;
    let body = body_json(&body)?;
    let d = body
        .get("data")
        .filter(|d| d.is_object())
        .ok_or_else(|| invalid(&["data"], "Required"))?;
    let url = d["target_url"]
        .as_str()
        .ok_or_else(|| invalid(&["data", "target_url"], "Required"))?;
    check_url(url)?;
    let subs = subscriptions(d.get("subscriptions").unwrap_or(&Value::Null))?;
    let mut world = sim.world();
    let ws = world
        .workspaces
        .get_mut(&entry.workspace)
        .ok_or_else(crate::auth::not_found_key)?;
    let hook = Webhook {
        id: WebhookIdentifier {
            workspace_id: ws.id,
            webhook_id: WebhookId::from_uuid(uuid::Uuid::new_v4()),
        },
        target_url: url.to_owned(),
        subscriptions: subs,
        status: WebhookStatus::Active,
        created_at: now(),
        secret: None,
        extra: Map::new(),
    };
    let secret = secret();
    ws.webhooks.push((hook.clone(), secret.clone()));
    Ok(data(json!(Webhook {
        secret: Some(secret),
        ..hook
    })))
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct Page {
    limit: Option<usize>,
    offset: Option<usize>,
}

pub(crate) async fn list(
    State(sim): S,
    headers: HeaderMap,
    Query(p): Query<Page>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, READ, Access::Read)?;
    let limit = p.limit.unwrap_or(10);
    if !(10..=100).contains(&limit) {
        return Err(ApiError::invalid(
            "validation_type",
            "limit must be between 10 and 100.",
        ));
    }
    let world = sim.world();
    let hooks: Vec<&Webhook> = workspace(&world, &entry)?
        .webhooks
        .iter()
        .map(|(h, _)| h)
        .skip(p.offset.unwrap_or(0))
        .take(limit)
        .collect();
    Ok(data(json!(hooks)))
}

pub(crate) async fn get(
    State(sim): S,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, READ, Access::Read)?;
    let world = sim.world();
    let hook = workspace(&world, &entry)?
        .webhooks
        .iter()
        .find(|(h, _)| h.id.webhook_id.to_string() == id)
        .ok_or_else(|| not_found(&id))?;
    Ok(data(json!(hook.0)))
}

pub(crate) async fn update(
    State(sim): S,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, WRITE, Access::Write)?;
    let body = body_json(&body)?;
    let d = body
        .get("data")
        .filter(|d| d.is_object())
        .ok_or_else(|| invalid(&["data"], "Required"))?;
    let url = d
        .get("target_url")
        .map(|u| {
            u.as_str()
                .ok_or_else(|| invalid(&["data", "target_url"], "Expected string"))
        })
        .transpose()?;
    if let Some(u) = url {
        check_url(u)?;
    }
    let subs = d.get("subscriptions").map(subscriptions).transpose()?;
    let mut world = sim.world();
    let ws = world
        .workspaces
        .get_mut(&entry.workspace)
        .ok_or_else(crate::auth::not_found_key)?;
    let (hook, _) = ws
        .webhooks
        .iter_mut()
        .find(|(h, _)| h.id.webhook_id.to_string() == id)
        .ok_or_else(|| not_found(&id))?;
    if let Some(u) = url {
        hook.target_url = u.to_owned();
    }
    if let Some(s) = subs {
        hook.subscriptions = s;
    }
    Ok(data(json!(hook)))
}

pub(crate) async fn delete(
    State(sim): S,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, WRITE, Access::Write)?;
    let mut world = sim.world();
    let ws = world
        .workspaces
        .get_mut(&entry.workspace)
        .ok_or_else(crate::auth::not_found_key)?;
    let before = ws.webhooks.len();
    ws.webhooks
        .retain(|(h, _)| h.id.webhook_id.to_string() != id);
    if ws.webhooks.len() == before {
        return Err(not_found(&id));
    }
    Ok(empty())
}
