//! Webhooks out (reference §11): every change to a contact, company or deal that an active
//! subscription names becomes an event; events go out as JSON arrays of fewer than 100 to the
//! app's target URL, signed v3 (`X-HubSpot-Signature-v3`, `X-HubSpot-Request-Timestamp`) and v1
//! (`X-HubSpot-Signature`), at most `max_concurrent` requests at a time. A delivery that fails
//! (connection error, slower than `timeout`, any non-2xx) is retried up to `max_retries` times
//! with randomised delays, `attemptNumber` counting up; `eventId` stays the same.
//!
//! Changes are found by comparing an object's records before and after each request, so every
//! route emits what it changed: creations, property changes (one event per property), deletions.
//! A merge is a `.merge` event on the survivor (the merged record's deletion is not told).
//! Associations made or removed through associations v4 are `.associationChange` events, one per
//! direction (`CONTACT_TO_COMPANY` from the contact, `COMPANY_TO_CONTACT` from the company), with
//! `fromObjectId`, `toObjectId`, `associationRemoved` and `isPrimaryAssociation` (the simulator
//! has no primary associations, so it is `false`). `.restore` is not emitted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Digest;
use tokio::sync::{Semaphore, mpsc};

use crate::store::{ObjectStore, singular};

/// One subscription: `contact.creation`, `deal.deletion`, `company.propertyChange` (with the
/// property it watches), and so on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: u64,
    pub event_type: String,
    /// For `*.propertyChange` only: the property watched.
    pub property_name: Option<String>,
}

impl Subscription {
    /// Parses `contact.creation`, `deal.deletion` or `company.propertyChange:name`; `Err` says
    /// what is wrong. Only the events the simulator emits are accepted.
    pub fn parse(id: u64, spec: &str) -> Result<Self, String> {
        let (event_type, property) = match spec.split_once(':') {
            Some((t, p)) => (t, Some(p)),
            None => (spec, None),
        };
        let Some((object, action)) = event_type.split_once('.') else {
            return Err(format!("{spec:?} is not OBJECT.ACTION[:PROPERTY]"));
        };
        if !["contact", "company", "deal"].contains(&object) {
            return Err(format!(
                "{spec:?}: the object must be contact, company or deal"
            ));
        }
        match (action, property) {
            ("creation" | "deletion" | "merge" | "associationChange", None) => {}
            ("propertyChange", Some(p)) if !p.is_empty() => {}
            ("propertyChange", _) => {
                return Err(format!("{spec:?}: propertyChange needs :PROPERTY"));
            }
            ("creation" | "deletion" | "merge" | "associationChange", Some(_)) => {
                return Err(format!("{spec:?}: only propertyChange takes a property"));
            }
            _ => {
                return Err(format!(
                    "{spec:?}: the action must be creation, deletion, merge, associationChange or propertyChange"
                ));
            }
        }
        Ok(Self {
            id,
            event_type: event_type.to_owned(),
            property_name: property.map(str::to_owned),
        })
    }
}

/// The app's webhook settings.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub target_url: String,
    /// The app's client secret, which signs every request.
    pub client_secret: String,
    pub app_id: u64,
    pub portal_id: u64,
    pub subscriptions: Vec<Subscription>,
    /// Parallel deliveries (HubSpot's `maxConcurrentRequests`, e.g. 10).
    pub max_concurrent: usize,
    /// Retries after the first attempt (HubSpot: 10 over 24 hours).
    pub max_retries: u32,
    /// Mean delay before a retry (HubSpot's 24-hour schedule compressed for tests).
    pub retry_base: Duration,
    /// A receiver slower than this counts as a failure (HubSpot: 5 s).
    pub timeout: Duration,
}

impl WebhookSettings {
    /// Settings with HubSpot's defaults for delivery.
    pub fn new(target_url: &str, client_secret: &str, subscriptions: Vec<Subscription>) -> Self {
        Self {
            target_url: target_url.into(),
            client_secret: client_secret.into(),
            app_id: 54321,
            portal_id: 62515,
            subscriptions,
            max_concurrent: 10,
            max_retries: 10,
            retry_base: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
        }
    }
}

/// What a record looked like before a request: archived flag and properties.
pub(crate) type Snapshot = BTreeMap<u64, (bool, BTreeMap<String, String>)>;

pub(crate) fn snapshot(store: &ObjectStore) -> Snapshot {
    store
        .records
        .iter()
        .map(|(id, r)| (*id, (r.archived, r.properties.clone())))
        .collect()
}

/// The events the change from `before` to `store` raises under `settings`.
pub(crate) fn events(
    settings: &WebhookSettings,
    before: &Snapshot,
    store: &ObjectStore,
    next_event: &AtomicU64,
) -> Vec<Value> {
    let kind = store.spec.singular();
    let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let mut out = Vec::new();
    let emit = |sub: &Subscription, id: u64, flag: Option<&str>, prop: Option<(&str, &str)>| {
        let mut e = json!({
            "eventId": next_event.fetch_add(1, Ordering::Relaxed),
            "subscriptionId": sub.id,
            "portalId": settings.portal_id,
            "appId": settings.app_id,
            "occurredAt": now as i64,
            "subscriptionType": sub.event_type,
            "attemptNumber": 0,
            "objectId": id,
            "changeSource": "API",
        });
        if let Some(f) = flag {
            e["changeFlag"] = json!(f);
        }
        if let Some((name, value)) = prop {
            e["propertyName"] = json!(name);
            e["propertyValue"] = json!(value);
        }
        e
    };
    let subs = |what: &str| {
        let wanted = format!("{kind}.{what}");
        settings
            .subscriptions
            .iter()
            .filter(move |s| s.event_type == wanted)
    };
    // Ids merged into another record: a merge, not a deletion.
    let merged_ids = |props: &BTreeMap<String, String>| -> Vec<u64> {
        props
            .get("hs_merged_object_ids")
            .map(|s| s.split(';').filter_map(|i| i.trim().parse().ok()).collect())
            .unwrap_or_default()
    };
    let merged_away: Vec<u64> = store
        .records
        .values()
        .flat_map(|r| merged_ids(&r.properties))
        .collect();
    for (id, r) in &store.records {
        let (was_archived, old) = match before.get(id) {
            Some((a, p)) => (*a, Some(p)),
            None => (false, None),
        };
        let newly_merged: Vec<u64> = merged_ids(&r.properties)
            .into_iter()
            .filter(|m| !old.is_some_and(|o| merged_ids(o).contains(m)))
            .collect();
        if !newly_merged.is_empty() {
            for s in subs("merge") {
                let mut e = emit(s, *id, None, None);
                e["primaryObjectId"] = json!(id);
                e["mergedObjectIds"] = json!(newly_merged);
                e["newObjectId"] = json!(id);
                e["numberOfPropertiesMoved"] = json!(0);
                out.push(e);
            }
        }
        if r.archived && !was_archived && merged_away.contains(id) {
            continue;
        }
        if old.is_none() && !r.archived {
            for s in subs("creation") {
                out.push(emit(s, *id, Some("CREATED"), None));
            }
        }
        if r.archived && !was_archived {
            for s in subs("deletion") {
                out.push(emit(s, *id, Some("DELETED"), None));
            }
            continue;
        }
        for s in subs("propertyChange") {
            let Some(p) = s.property_name.as_deref() else {
                continue;
            };
            let new = r.properties.get(p);
            if new.is_some() && new != old.and_then(|o| o.get(p)) {
                out.push(emit(
                    s,
                    *id,
                    None,
                    Some((p, new.map(String::as_str).unwrap_or(""))),
                ));
            }
        }
    }
    out
}

/// The `.associationChange` events of one association made (or removed) between `from` and
/// `to` (object names such as `contacts`), one per direction that a subscription names.
pub(crate) fn association_events(
    settings: &WebhookSettings,
    (from, from_id): (&str, u64),
    (to, to_id): (&str, u64),
    removed: bool,
    next_event: &AtomicU64,
) -> Vec<Value> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let mut out = Vec::new();
    for ((a, a_id), (b, b_id)) in [
        ((from, from_id), (to, to_id)),
        ((to, to_id), (from, from_id)),
    ] {
        let (a, b) = (singular(a), singular(b));
        let wanted = format!("{a}.associationChange");
        for sub in settings
            .subscriptions
            .iter()
            .filter(|s| s.event_type == wanted)
        {
            out.push(json!({
                "eventId": next_event.fetch_add(1, Ordering::Relaxed),
                "subscriptionId": sub.id,
                "portalId": settings.portal_id,
                "appId": settings.app_id,
                "occurredAt": now as i64,
                "subscriptionType": sub.event_type,
                "attemptNumber": 0,
                "changeSource": "API",
                "associationType": format!("{}_TO_{}", a.to_uppercase(), b.to_uppercase()),
                "fromObjectId": a_id,
                "toObjectId": b_id,
                "associationRemoved": removed,
                "isPrimaryAssociation": false,
            }));
        }
    }
    out
}

fn sign_v3(secret: &str, url: &str, body: &[u8], timestamp: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"POST");
    mac.update(url.as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn sign_v1(secret: &str, body: &[u8]) -> String {
    let mut h = sha2::Sha256::new();
    h.update(secret.as_bytes());
    h.update(body);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Sends queued events until the channel closes.
pub(crate) async fn run(settings: WebhookSettings, mut rx: mpsc::UnboundedReceiver<Value>) {
    let http = reqwest::Client::builder()
        .timeout(settings.timeout)
        .build()
        .unwrap_or_default();
    let slots = Arc::new(Semaphore::new(settings.max_concurrent.max(1)));
    let settings = Arc::new(settings);
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 99 {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (http, settings) = (http.clone(), settings.clone());
        tokio::spawn(async move {
            deliver(&http, &settings, batch).await;
            drop(slot);
        });
    }
}

async fn deliver(http: &reqwest::Client, settings: &WebhookSettings, mut batch: Vec<Value>) {
    for attempt in 0..=settings.max_retries {
        for e in &mut batch {
            e["attemptNumber"] = json!(attempt);
        }
        let body = serde_json::to_vec(&batch).unwrap_or_default();
        let timestamp =
            (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).to_string();
        let sent = http
            .post(&settings.target_url)
            .header("content-type", "application/json")
            .header(
                "x-hubspot-signature-v3",
                sign_v3(
                    &settings.client_secret,
                    &settings.target_url,
                    &body,
                    &timestamp,
                ),
            )
            .header("x-hubspot-request-timestamp", &timestamp)
            .header(
                "x-hubspot-signature",
                sign_v1(&settings.client_secret, &body),
            )
            .header("x-hubspot-signature-version", "v1")
            .body(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => tracing::debug!(
                status = r.status().as_u16(),
                attempt,
                "webhook delivery refused"
            ),
            Err(e) => tracing::debug!(error = %e, attempt, "webhook delivery failed"),
        }
        if attempt < settings.max_retries {
            // Randomised: between half and one and a half times the base delay.
            tokio::time::sleep(settings.retry_base.mul_f64(0.5 + fastrand::f64())).await;
        }
    }
    tracing::warn!(
        events = batch.len(),
        "webhook delivery gave up after its retries"
    );
}
