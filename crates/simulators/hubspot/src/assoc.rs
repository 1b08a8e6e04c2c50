//! Associations v4: default (unlabelled) associations between contacts, companies and deals, and
//! from notes and tasks to them.
//!
//! `PUT …/{from}/{id}/associations/default/{to}/{toId}` creates the pair in both directions,
//! `GET …/{from}/{id}/associations/{to}` lists, `DELETE …/{from}/{id}/associations/{to}/{toId}`
//! removes both directions (204). Served under `/crm/v4/objects` and `/crm/objects/{version}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::store::{Account, singular};
use crate::{Budget, HsError, HsResult, Sim, find, id_of, object_of, reply};

/// HubSpot's default (`HUBSPOT_DEFINED`, unlabelled) association type id from one object to
/// another, per HubSpot's association type table.
fn default_type(from: &str, to: &str) -> Option<u32> {
    Some(match (from, to) {
        ("contacts", "companies") => 279,
        ("companies", "contacts") => 280,
        ("deals", "contacts") => 3,
        ("contacts", "deals") => 4,
        ("deals", "companies") => 341,
        ("companies", "deals") => 342,
        // Engagements.
        ("notes", "contacts") => 202,
        ("contacts", "notes") => 201,
        ("notes", "companies") => 190,
        ("companies", "notes") => 189,
        ("notes", "deals") => 214,
        ("deals", "notes") => 213,
        ("tasks", "contacts") => 204,
        ("contacts", "tasks") => 203,
        ("tasks", "companies") => 192,
        ("companies", "tasks") => 191,
        ("tasks", "deals") => 216,
        ("deals", "tasks") => 215,
        _ => return None,
    })
}

/// The object's canonical name from its plural, singular or type id (`contacts`, `contact`, `0-1`).
fn object_name(account: &Account, given: &str) -> HsResult<&'static str> {
    account
        .objects
        .values()
        .find(|o| o.spec.name == given || o.spec.type_id == given || o.spec.singular() == given)
        .map(|o| o.spec.name)
        .ok_or_else(|| {
            HsError::new(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                format!("Unable to infer object type from: {given}"),
            )
        })
}

/// Whether record `id` of `object` exists and is not archived: an archived record drops out of
/// every association listing (HubSpot lists associations between live records only; a restore
/// brings them back).
fn is_live(account: &Account, object: &str, id: u64) -> bool {
    account
        .objects
        .values()
        .find(|o| o.spec.name == object)
        .and_then(|o| o.records.get(&id))
        .is_some_and(|r| !r.archived)
}

/// The live record `id` of `object`; `NotFound` otherwise.
fn live(account: &Account, object: &str, id: &str) -> HsResult<u64> {
    let store = account
        .objects
        .values()
        .find(|o| o.spec.name == object)
        .ok_or_else(|| HsError::not_found(id))?;
    find(store, id, None, false)
}

fn param<'a>(p: &'a [(String, String)], key: &str) -> &'a str {
    p.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

struct Pair {
    from: &'static str,
    from_id: u64,
    to: &'static str,
    type_id: u32,
    back_type_id: u32,
}

fn resolve(account: &Account, p: &[(String, String)]) -> HsResult<Pair> {
    let from = object_name(account, &object_of(p)?)?;
    let to = object_name(account, param(p, "to"))?;
    let (Some(type_id), Some(back_type_id)) = (default_type(from, to), default_type(to, from))
    else {
        return Err(HsError::validation(format!(
            "There is no default association type from {from} to {to}"
        )));
    };
    Ok(Pair {
        from,
        from_id: live(account, from, &id_of(p))?,
        to,
        type_id,
        back_type_id,
    })
}

/// Tells the webhook subscribers an association was made or removed.
fn changed(sim: &Sim, pair: &Pair, to_id: u64, removed: bool) {
    if let Some(settings) = &sim.config.webhooks {
        sim.send_events(crate::webhooks::association_events(
            settings,
            (pair.from, pair.from_id),
            (pair.to, to_id),
            removed,
            &sim.next_event,
        ));
    }
}

/// The associations of one record inline in a read (`?associations=companies,deals`):
/// `{"companies": {"results": [{"id": "…", "type": "contact_to_company"}]}}`, an object type
/// with none left out, as HubSpot does.
pub(crate) fn inline(account: &Account, object: &str, id: u64, wanted: &[String]) -> Value {
    let mut out = serde_json::Map::new();
    for to in wanted.iter().flat_map(|w| w.split(',')).map(str::trim) {
        let Ok(to) = object_name(account, to) else {
            continue;
        };
        if default_type(object, to).is_none() {
            continue;
        }
        let results: Vec<Value> = account
            .associations
            .range((object, id, to, 0)..=(object, id, to, u64::MAX))
            .filter(|(_, _, to, to_id)| is_live(account, to, *to_id))
            .map(|(from, _, to, to_id)| {
                json!({"id": to_id.to_string(), "type": format!("{}_to_{}", singular(from), singular(to))})
            })
            .collect();
        if !results.is_empty() {
            out.insert(to.to_owned(), json!({ "results": results }));
        }
    }
    Value::Object(out)
}

fn kind(type_id: u32) -> Value {
    json!({"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": null})
}

pub(crate) async fn associate_default(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(p): Path<Vec<(String, String)>>,
    _body: Bytes,
) -> HsResult<Response> {
    let (token, rl) = sim.enter(&headers, Budget::Burst)?;
    let mut accounts = sim.accounts();
    let account = accounts
        .get_mut(&token)
        .ok_or_else(|| HsError::not_found(&token))?;
    let pair = resolve(account, &p)?;
    let to_id = live(account, pair.to, param(&p, "toId"))?;
    let made = account
        .associations
        .insert((pair.from, pair.from_id, pair.to, to_id));
    account
        .associations
        .insert((pair.to, to_id, pair.from, pair.from_id));
    drop(accounts);
    if made {
        changed(&sim, &pair, to_id, false);
    }
    let now = crate::store::iso(OffsetDateTime::now_utc());
    // `PublicDefaultAssociation`, one per direction.
    let made = |from: u64, to: u64, type_id: u32| {
        json!({
            "from": {"id": from.to_string()},
            "to": {"id": to.to_string()},
            "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id},
        })
    };
    let body = json!({
        "status": "COMPLETE",
        "results": [
            made(pair.from_id, to_id, pair.type_id),
            made(to_id, pair.from_id, pair.back_type_id),
        ],
        "startedAt": now,
        "completedAt": now,
    });
    Ok(reply(StatusCode::OK, Some(body), rl))
}

/// Lists one page (`limit` up to 500, default 500; `after` from the previous page's
/// `paging.next.after`).
pub(crate) async fn list(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(p): Path<Vec<(String, String)>>,
    q: crate::query::ListQuery,
) -> HsResult<Response> {
    let (token, rl) = sim.enter(&headers, Budget::Burst)?;
    let accounts = sim.accounts();
    let account = accounts
        .get(&token)
        .ok_or_else(|| HsError::not_found(&token))?;
    let pair = resolve(account, &p)?;
    let limit = q.limit.unwrap_or(500);
    if limit == 0 || limit > 500 {
        return Err(HsError::validation("limit must be between 1 and 500"));
    }
    // `after` is the last id of the previous page; ids are listed in ascending order.
    let after = match q.after.as_deref() {
        None => 0,
        Some(a) => a
            .parse::<u64>()
            .map_err(|_| HsError::validation(format!("Invalid after: {a}")))?
            .saturating_add(1),
    };
    let mut ids = account
        .associations
        .range(
            (pair.from, pair.from_id, pair.to, after)
                ..=(pair.from, pair.from_id, pair.to, u64::MAX),
        )
        .map(|(_, _, _, to_id)| *to_id)
        .filter(|to_id| is_live(account, pair.to, *to_id));
    let page: Vec<u64> = ids.by_ref().take(limit).collect();
    let results: Vec<Value> = page
        .iter()
        .map(|to_id| json!({"toObjectId": to_id, "associationTypes": [kind(pair.type_id)]}))
        .collect();
    let mut body = json!({"results": results});
    if let (Some(last), Some(_)) = (page.last(), ids.next()) {
        body["paging"] = json!({"next": {"after": last.to_string(), "link": null}});
    }
    Ok(reply(StatusCode::OK, Some(body), rl))
}

pub(crate) async fn remove(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(p): Path<Vec<(String, String)>>,
) -> HsResult<Response> {
    let (token, rl) = sim.enter(&headers, Budget::Burst)?;
    let mut accounts = sim.accounts();
    let account = accounts
        .get_mut(&token)
        .ok_or_else(|| HsError::not_found(&token))?;
    let pair = resolve(account, &p)?;
    // Removing an association that does not exist is not an error (HubSpot answers 204 too).
    if let Ok(to_id) = param(&p, "toId").parse::<u64>() {
        let removed = account
            .associations
            .remove(&(pair.from, pair.from_id, pair.to, to_id));
        account
            .associations
            .remove(&(pair.to, to_id, pair.from, pair.from_id));
        drop(accounts);
        if removed {
            changed(&sim, &pair, to_id, true);
        }
    }
    Ok(reply(StatusCode::NO_CONTENT, None, rl))
}
