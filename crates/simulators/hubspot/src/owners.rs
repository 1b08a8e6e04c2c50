//! Owners (`GET /crm/v3/owners`): the users records can be assigned to, read-only in HubSpot's
//! API (they come from the account's users), listed page by page or filtered by `email`. A
//! record's owner is its `hubspot_owner_id` property, the owner's `id` (not its `userId`).
//! `POST /_sim/owners` (`{"email", "firstName", "lastName"}`) adds one, as adding a user in
//! HubSpot's settings does.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Budget, HsError, HsResult, Sim, reply};

/// One owner.
#[derive(Debug, Clone)]
pub struct Owner {
    pub id: u64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

impl Owner {
    fn json(&self) -> Value {
        let at = crate::store::iso(time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(18_000));
        json!({
            "id": self.id.to_string(),
            "email": self.email,
            "type": "PERSON",
            "firstName": self.first_name,
            "lastName": self.last_name,
            "userId": self.id + 1_000_000,
            "userIdIncludingInactive": self.id + 1_000_000,
            "createdAt": at,
            "updatedAt": at,
            "archived": false,
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct OwnerQuery {
    email: Option<String>,
    limit: Option<usize>,
    after: Option<String>,
}

pub(crate) async fn list(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(q): Query<OwnerQuery>,
) -> HsResult<Response> {
    let (_, rl) = sim.enter(&headers, Budget::Burst)?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 500 {
        return Err(HsError::validation("limit must be between 1 and 500"));
    }
    let after: u64 = match q.after.as_deref() {
        None => 0,
        Some(a) => a
            .parse()
            .map_err(|_| HsError::validation(format!("Invalid after: {a}")))?,
    };
    let owners = sim.owners();
    let mut matching = owners.iter().filter(|o| o.id > after).filter(|o| {
        q.email
            .as_deref()
            .is_none_or(|e| o.email.eq_ignore_ascii_case(e))
    });
    let page: Vec<&Owner> = matching.by_ref().take(limit).collect();
    let mut body = json!({"results": page.iter().map(|o| o.json()).collect::<Vec<_>>()});
    if let (Some(last), Some(_)) = (page.last(), matching.next()) {
        body["paging"] = json!({"next": {"after": last.id.to_string(), "link": null}});
    }
    Ok(reply(StatusCode::OK, Some(body), rl))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NewOwner {
    email: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
}

pub(crate) async fn add(
    State(sim): State<Arc<Sim>>,
    axum::Json(o): axum::Json<NewOwner>,
) -> Response {
    let owner = sim.add_owner(&o.email, &o.first_name, &o.last_name);
    (StatusCode::CREATED, axum::Json(owner.json())).into_response()
}
