//! Webhook deliveries (reference §8): every change emits events in the v2 delivery format, one
//! event per POST, to each active subscription whose event type and filter match. Each delivery
//! is signed (`Attio-Signature` and `X-Attio-Signature`: hex HMAC-SHA256 of the raw body with the
//! webhook's secret), carries an `Idempotency-Key` that stays the same across retries, is retried
//! with exponential backoff on any non-2xx or timeout, and leaves at most the configured number
//! of requests per second per target URL. A webhook whose retries run out is marked `degraded`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use domain::actor::Actor;
use domain::ids::{AttributeId, EntryId, ListId, ObjectId, RecordId, WebhookId, WorkspaceId};
use domain::schema::WebhookStatus;
use domain::webhook::{EventSubject, EventType, ListEntrySubject, RecordSubject, WebhookEvent};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hmac::{KeyInit, Mac};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::Sim;
use crate::faults::roll;
use crate::world::{ObjectDef, StoredRecord};

/// How deliveries behave.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Retries after the first attempt (Attio: 10, over about three days).
    pub max_retries: u32,
    /// The first retry's delay; each later one doubles (Attio's schedule compressed for tests).
    pub retry_base: Duration,
    /// A receiver slower than this counts as a failure (Attio: 5 s).
    pub timeout: Duration,
    /// Requests per second per target URL (Attio: 25).
    pub per_target_per_second: u32,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_retries: 10,
            retry_base: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
            per_target_per_second: 25,
        }
    }
}

/// One POST to make.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub workspace: WorkspaceId,
    pub webhook: WebhookId,
    pub url: String,
    pub secret: String,
    pub idempotency_key: String,
    pub body: Vec<u8>,
}

/// Hex HMAC-SHA256 of `body` keyed with the secret's bytes.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let Ok(mut mac) = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
    else {
        unreachable!("HMAC takes keys of any length")
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A value at a dot path of an event (`id.list_id`, `actor.type`).
fn at_path<'a>(event: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(event, |v, key| v.get(key))
}

/// `null` matches everything; `$and`/`$or` of `equals`/`not_equals` conditions.
fn matches(filter: Option<&Value>, event: &Value) -> bool {
    let Some(Value::Object(f)) = filter else {
        return true;
    };
    let test = |c: &Value| {
        let actual =
            at_path(event, c["field"].as_str().unwrap_or_default()).and_then(Value::as_str);
        let equal = actual == c["value"].as_str();
        if c["operator"] == "not_equals" {
            !equal
        } else {
            equal
        }
    };
    match (f.get("$and"), f.get("$or")) {
        (Some(Value::Array(cs)), _) => cs.iter().all(test),
        (_, Some(Value::Array(cs))) => cs.iter().any(test),
        _ => false,
    }
}

fn event(event_type: EventType, subject: EventSubject, actor: &Actor) -> WebhookEvent {
    WebhookEvent {
        event_type,
        subject,
        actor: Some(actor.clone()),
        id_extra: Map::new(),
        extra: Map::new(),
    }
}

/// Attributes whose active values differ between two versions of a record.
pub(crate) fn changed(
    o: &ObjectDef,
    before: &StoredRecord,
    after: &StoredRecord,
) -> Vec<AttributeId> {
    let ids = |r: &StoredRecord, slug: &str| {
        r.active(slug)
            .map(|v| crate::values::identity(&v.data))
            .collect::<Vec<_>>()
    };
    o.attributes
        .iter()
        .filter(|a| a.attr.is_writable && ids(before, a.slug()) != ids(after, a.slug()))
        .map(|a| a.attr.id.attribute_id)
        .collect()
}

pub(crate) fn record_events(
    kind: EventType,
    ws: WorkspaceId,
    object: ObjectId,
    record: RecordId,
    attrs: &[AttributeId],
    actor: &Actor,
) -> Vec<WebhookEvent> {
    let subject = |attribute_id| {
        EventSubject::Record(RecordSubject {
            workspace_id: ws,
            object_id: object,
            record_id: record,
            attribute_id,
        })
    };
    if kind == EventType::RecordUpdated {
        attrs
            .iter()
            .map(|a| event(kind.clone(), subject(Some(*a)), actor))
            .collect()
    } else {
        vec![event(kind, subject(None), actor)]
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn entry_events(
    kind: EventType,
    ws: WorkspaceId,
    list: ListId,
    entry: EntryId,
    parent_object: ObjectId,
    parent_record: RecordId,
    attrs: &[AttributeId],
    actor: &Actor,
) -> Vec<WebhookEvent> {
    let subject = |attribute_id| {
        EventSubject::ListEntry(ListEntrySubject {
            workspace_id: ws,
            list_id: list,
            entry_id: entry,
            attribute_id,
            parent_object_id: parent_object,
            parent_record_id: parent_record,
        })
    };
    if kind == EventType::ListEntryUpdated {
        attrs
            .iter()
            .map(|a| event(kind.clone(), subject(Some(*a)), actor))
            .collect()
    } else {
        vec![event(kind, subject(None), actor)]
    }
}

impl Sim {
    /// Queues a delivery of each event to every active or degraded subscription that wants it.
    pub(crate) fn emit(&self, workspace: WorkspaceId, events: Vec<WebhookEvent>) {
        let world = self.world();
        let Some(ws) = world.workspaces.get(&workspace) else {
            return;
        };
        for e in events {
            let Ok(event_json) = serde_json::to_value(&e) else {
                continue;
            };
            for (hook, secret) in &ws.webhooks {
                if hook.status == WebhookStatus::Inactive {
                    continue;
                }
                let wanted = hook.subscriptions.iter().any(|s| {
                    s.event_type == e.event_type && matches(s.filter.as_ref(), &event_json)
                });
                if !wanted {
                    continue;
                }
                let body = json!({ "webhook_id": hook.id.webhook_id, "events": [event_json] });
                let delivery = Delivery {
                    workspace,
                    webhook: hook.id.webhook_id,
                    url: hook.target_url.clone(),
                    secret: secret.clone(),
                    idempotency_key: uuid::Uuid::new_v4().to_string(),
                    body: body.to_string().into_bytes(),
                };
                let _ = self.outbox.send(delivery);
            }
        }
    }

    fn mark_degraded(&self, workspace: WorkspaceId, webhook: WebhookId) {
        let mut world = self.world();
        if let Some(ws) = world.workspaces.get_mut(&workspace)
            && let Some((hook, _)) = ws
                .webhooks
                .iter_mut()
                .find(|(h, _)| h.id.webhook_id == webhook)
        {
            hook.status = WebhookStatus::Degraded;
        }
    }
}

/// One delivery with its retries; `stagger` delays the first attempt (reordering).
async fn send(
    sim: Arc<Sim>,
    http: reqwest::Client,
    pace: Arc<DefaultKeyedRateLimiter<String>>,
    config: DeliveryConfig,
    d: Delivery,
    stagger: Duration,
) {
    tokio::time::sleep(stagger).await;
    for attempt in 0..=config.max_retries {
        pace.until_key_ready(&d.url).await;
        let signature = sign(&d.secret, &d.body);
        let sent = http
            .post(&d.url)
            .header("content-type", "application/json")
            .header("Attio-Signature", &signature)
            .header("X-Attio-Signature", &signature)
            .header("Idempotency-Key", &d.idempotency_key)
            .body(d.body.clone())
            .send()
            .await;
        if sent.as_ref().is_ok_and(|r| r.status().is_success()) {
            return;
        }
        if attempt < config.max_retries {
            tokio::time::sleep(config.retry_base.saturating_mul(1 << attempt.min(16))).await;
        }
    }
    sim.mark_degraded(d.workspace, d.webhook);
}

/// Sends deliveries as they are queued, each with its own retries, applying the delivery faults:
/// drops, duplicates (same `Idempotency-Key`) and reordering within a window.
pub(crate) async fn run(
    sim: Arc<Sim>,
    mut outbox: mpsc::UnboundedReceiver<Delivery>,
    config: DeliveryConfig,
) {
    let http = match reqwest::Client::builder().timeout(config.timeout).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "attio-sim cannot build its delivery client");
            return;
        }
    };
    let pace: Arc<DefaultKeyedRateLimiter<String>> = Arc::new(RateLimiter::keyed(
        Quota::per_second(NonZeroU32::new(config.per_target_per_second).unwrap_or(NonZeroU32::MIN)),
    ));
    while let Some(first) = outbox.recv().await {
        let faults = sim.faults();
        let mut batch = vec![first];
        if faults.reorder_window_ms > 0 {
            let until =
                tokio::time::Instant::now() + Duration::from_millis(faults.reorder_window_ms);
            while let Ok(Some(d)) = tokio::time::timeout_at(until, outbox.recv()).await {
                batch.push(d);
            }
            batch.reverse();
        }
        for (i, d) in batch.into_iter().enumerate() {
            if roll(faults.drop_rate) {
                continue;
            }
            let copies = if roll(faults.duplicate_rate) { 2 } else { 1 };
            let stagger =
                Duration::from_millis(20).saturating_mul(u32::try_from(i).unwrap_or(u32::MAX));
            for _ in 0..copies {
                tokio::spawn(send(
                    sim.clone(),
                    http.clone(),
                    pace.clone(),
                    config.clone(),
                    d.clone(),
                    stagger,
                ));
            }
        }
    }
}
