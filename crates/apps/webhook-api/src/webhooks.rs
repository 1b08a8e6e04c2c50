//! The webhook routes: verify, deduplicate, store and enqueue, then answer.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use domain::idempotency::IdempotencyKey;
use domain::ids::{SystemId, TenantId};
use domain::job::{JobKey, JobPayload, NewJob};
use domain::tenant::Tenant;
use domain::trace::TraceParent;
use domain::webhook::{EventSubject, WebhookDelivery};
use ports::error::PortError;
use ports::provider::{CrmProvider, SignedRequest, WebhookError, WebhookFeed};
use ports::stores::{Accepted, InboundDelivery};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::AppState;

fn answer(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// A port failure at the edge: 503 when the sender should retry, else a logged 500.
fn failed(e: &PortError) -> Response {
    if e.is_retryable() {
        tracing::warn!(error = %ports::Chain(&e), "a store is unavailable; the sender will retry");
        answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "temporarily unavailable"}),
        )
    } else {
        tracing::error!(error = %ports::Chain(&e), "webhook intake failed");
        answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "internal error"}),
        )
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The trace a delivery's job runs in: the request's `traceparent` when it has a valid one, else
/// a new trace.
fn trace(headers: &HeaderMap) -> TraceParent {
    header(headers, "traceparent")
        .and_then(|t| TraceParent::parse(t).ok())
        .unwrap_or_else(ports::trace::new_root)
}

/// The tenant named in the path, or the answer for an unknown one.
async fn tenant(state: &AppState, raw: &str) -> Result<Arc<Tenant>, Response> {
    let not_found = || answer(StatusCode::NOT_FOUND, json!({"error": "unknown tenant"}));
    let id = TenantId::parse(raw).map_err(|_| not_found())?;
    match state.tenant_cache.get(&id, &state.tenants).await {
        Ok(t) => Ok(t),
        Err(PortError::NotFound(_)) => Err(not_found()),
        Err(e) => Err(failed(&e)),
    }
}

/// The job key of a delivery: per record (or entry, note, task) so events for one entity are
/// ordered and folded; the partition is what workers can be limited to.
fn job_key(
    tenant: &TenantId,
    delivery: &WebhookDelivery,
    fallback: &IdempotencyKey,
) -> Option<JobKey> {
    let e = delivery.events.first()?;
    let (partition, entity) = match &e.subject {
        EventSubject::Record(s) => (s.object_id.to_string(), s.record_id.to_string()),
        EventSubject::RecordMerged(s) => (s.object_id.to_string(), s.record_id.to_string()),
        EventSubject::ListEntry(s) => (format!("list-{}", s.list_id), s.entry_id.to_string()),
        EventSubject::Note(s) => ("notes".to_owned(), s.note_id.to_string()),
        EventSubject::Task(s) => ("tasks".to_owned(), s.task_id.to_string()),
        _ => (
            "attio".to_owned(),
            fallback.as_str().chars().take(64).collect(),
        ),
    };
    JobKey::new(tenant.clone(), &partition, &entity).ok()
}

/// Whether any event of the delivery has a type the pipeline knows.
fn has_known_event(delivery: &WebhookDelivery) -> bool {
    delivery.events.iter().any(|e| e.event_type.is_known())
}

/// The job payload of an Attio delivery: its source, trace and the delivery's own JSON text,
/// embedded as received (it parsed as a delivery, so it is JSON), never re-serialised.
fn attio_payload(trace: &str, body: &[u8]) -> Result<JobPayload, String> {
    #[derive(serde::Serialize)]
    struct Payload<'a> {
        source: &'a str,
        trace: &'a str,
        delivery: &'a serde_json::value::RawValue,
    }
    let body = without_nul_escapes(body);
    let delivery: &serde_json::value::RawValue =
        serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    serde_json::value::to_raw_value(&Payload {
        source: "attio",
        trace,
        delivery,
    })
    .map(JobPayload::from_raw)
    .map_err(|e| e.to_string())
}

/// JSON text with every `\u0000` escape (a NUL character, which PostgreSQL's `jsonb` refuses)
/// replaced by `\ufffd`, for the job's copy of a delivery; the inbox keeps the body as received
/// (ADR 0025). Both escapes are six characters, so the text stays valid JSON whatever precedes
/// them. The worker reads ids from a delivery, never the text of its values.
fn without_nul_escapes(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    const NUL: &[u8] = b"\\u0000";
    if !body.windows(NUL.len()).any(|w| w == NUL) {
        return std::borrow::Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    while let Some(at) = rest.windows(NUL.len()).position(|w| w == NUL) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(b"\\ufffd");
        rest = &rest[at + NUL.len()..];
    }
    out.extend_from_slice(rest);
    std::borrow::Cow::Owned(out)
}

/// A job for a key and payload with the configured debounce and attempts.
fn new_job(state: &AppState, key: JobKey, payload: impl Into<JobPayload>) -> NewJob {
    NewJob::new(key, payload)
        .with_delay(state.settings.debounce)
        .with_max_attempts(state.settings.max_attempts)
}

/// Stores a verified delivery of `source` (and its job) and answers.
async fn store(
    state: &AppState,
    tenant: &TenantId,
    source: SystemId,
    key: IdempotencyKey,
    body: &Bytes,
    quarantine: Option<String>,
    job: Option<NewJob>,
) -> Response {
    let delivery = InboundDelivery {
        tenant: tenant.clone(),
        source,
        key,
        body: body.to_vec(),
        received_at: state.clock.now(),
        quarantine,
    };
    accept(state, delivery, job).await
}

async fn accept(state: &AppState, delivery: InboundDelivery, job: Option<NewJob>) -> Response {
    let quarantined = delivery.quarantine.is_some();
    match state
        .inbox
        .accept(&delivery, job, state.settings.dedupe_retention)
        .await
    {
        Ok(Accepted::Stored { id, job }) => {
            let status = if quarantined {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            let what = if quarantined {
                "quarantined"
            } else {
                "accepted"
            };
            answer(
                status,
                json!({"status": what, "id": id.to_string(), "enqueued": job.is_some()}),
            )
        }
        Ok(Accepted::Duplicate) => {
            let mut r = answer(StatusCode::OK, json!({"status": "duplicate"}));
            r.extensions_mut().insert(Outcome("duplicate"));
            r
        }
        Err(e) => failed(&e),
    }
}

pub(crate) async fn attio(
    state: State<AppState>,
    path: Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match body {
        Ok(body) => {
            let (trace, span) = traced("attio", &path, &headers);
            timed("attio", attio_inner(state, path, headers, body, trace))
                .instrument(span)
                .await
        }
        Err(rejected) => refused_body("attio", rejected),
    }
}

/// `POST /v1/webhooks/{system}/{tenant}`: a CRM plugin's signed webhooks. An unknown system, or
/// one that sends no webhooks, answers 404 naming it.
pub(crate) async fn crm(
    state: State<AppState>,
    Path((system, tenant)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let provider = match state.registry.get(&system) {
        Ok(p) => p,
        Err(e) => return unrouted(&e.to_string()),
    };
    let feed = match state.registry.webhooks(&system) {
        Ok(f) => f,
        Err(e) => return unrouted(&e.to_string()),
    };
    let source = provider.id();
    match body {
        Ok(body) => {
            let (trace, span) = traced(source, &tenant, &headers);
            timed(
                source,
                crm_inner(state, provider, feed, tenant, headers, body, trace),
            )
            .instrument(span)
            .await
        }
        Err(rejected) => refused_body(source, rejected),
    }
}

/// A webhook path naming a system that takes no webhooks here.
fn unrouted(reason: &str) -> Response {
    crate::telemetry::delivery("unknown", "unknown_system");
    answer(StatusCode::NOT_FOUND, json!({"error": reason}))
}

/// The delivery's trace and the `webhook` span its handling runs in, a child of that trace in
/// exported telemetry.
fn traced(source: &'static str, tenant: &str, headers: &HeaderMap) -> (TraceParent, tracing::Span) {
    let trace = trace(headers);
    // The tenant as the path names it (not yet checked), cut to what a tenant id can be.
    let tenant = tenant.get(..64).unwrap_or(tenant);
    let span = tracing::info_span!("webhook", source, tenant, trace_id = %trace.trace_id());
    ports::trace::adopt(&span, trace);
    (trace, span)
}

/// A body axum would not read (over the limit: 413), counted as the delivery's outcome.
fn refused_body(source: &'static str, rejected: BytesRejection) -> Response {
    let r = rejected.into_response();
    let outcome = if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        "too_large"
    } else {
        "failed"
    };
    crate::telemetry::delivery(source, outcome);
    r
}

/// Times the answer and counts its outcome (from the status and body the handler chose).
async fn timed(
    source: &'static str,
    handler: impl std::future::Future<Output = Response>,
) -> Response {
    let start = std::time::Instant::now();
    let r = handler.await;
    let outcome = match r.status().as_u16() {
        200 => r
            .extensions()
            .get::<Outcome>()
            .map(|o| o.0)
            .unwrap_or("accepted"),
        202 => "quarantined",
        401 => "unsigned",
        404 => "unknown_tenant",
        _ => "failed",
    };
    crate::telemetry::delivery(source, outcome);
    crate::telemetry::answered(source, start.elapsed().as_secs_f64());
    r
}

/// The outcome of a 200, for the metrics.
#[derive(Debug, Clone, Copy)]
struct Outcome(&'static str);

async fn attio_inner(
    State(state): State<AppState>,
    Path(raw_tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
    trace: TraceParent,
) -> Response {
    let tenant = match tenant(&state, &raw_tenant).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let secrets: Vec<&str> = tenant
        .attio
        .webhook_secrets
        .iter()
        .map(|s| s.expose())
        .collect();
    let signature =
        header(&headers, "attio-signature").or_else(|| header(&headers, "x-attio-signature"));
    if let Err(e) = adapter_attio_http::verify_attio(&secrets, &body, signature) {
        tracing::info!(tenant = %tenant.id, reason = %e, "refused an Attio delivery");
        return answer(
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid signature"}),
        );
    }
    // A signed delivery with an unusable key still gets one: the hash of its body.
    let key = IdempotencyKey::derive(header(&headers, "idempotency-key"), &body)
        .unwrap_or_else(|_| IdempotencyKey::from_body(&body));
    let (quarantine, job) = match WebhookDelivery::parse(&body) {
        Err(e) => (Some(format!("not an Attio delivery: {e}")), None),
        Ok(d) if !has_known_event(&d) => (None, None),
        Ok(d) => {
            // Every record event flushes the cached copies it makes stale (this process holds
            // the contact service's cache).
            if let Some(contacts) = &state.contacts {
                for e in &d.events {
                    match &e.subject {
                        EventSubject::Record(r) => {
                            contacts.invalidate_record(&tenant.id, r.record_id).await
                        }
                        EventSubject::RecordMerged(m) => {
                            contacts.invalidate_record(&tenant.id, m.record_id).await;
                            contacts
                                .invalidate_record(&tenant.id, m.duplicate_record_id)
                                .await;
                        }
                        _ => {}
                    }
                }
            }
            // The job continues the trace from this request's span.
            let trace = ports::trace::from_current_span(trace).to_string();
            let job = match job_key(&tenant.id, &d, &key) {
                Some(k) => match attio_payload(&trace, &body) {
                    Ok(payload) => Some(new_job(&state, k, payload)),
                    Err(e) => return failed(&PortError::Invalid(e)),
                },
                None => None,
            };
            (None, job)
        }
    };
    store(
        &state,
        &tenant.id,
        SystemId::attio(),
        key,
        &body,
        quarantine,
        job,
    )
    .await
}

async fn crm_inner(
    State(state): State<AppState>,
    provider: &'static dyn CrmProvider,
    feed: &'static dyn WebhookFeed,
    raw_tenant: String,
    headers: HeaderMap,
    body: Bytes,
    trace: TraceParent,
) -> Response {
    let tenant = match tenant(&state, &raw_tenant).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let system = provider.system();
    let Some(connection) = tenant.crms.iter().find(|c| c.system == system) else {
        tracing::warn!(tenant = %tenant.id, %system, "refused a delivery: the tenant has no connection to this system");
        return answer(
            StatusCode::NOT_FOUND,
            json!({"error": format!("the tenant has no {} connection", provider.display_name())}),
        );
    };
    let url = format!(
        "{}/v1/webhooks/{system}/{raw_tenant}",
        state.settings.public_url
    );
    let header_map = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let request = SignedRequest {
        method: "POST",
        url: &url,
        headers: &header_map,
        body: &body,
        now_ms: (state.clock.now().unix_timestamp_nanos() / 1_000_000) as i64,
    };
    match feed.verify(connection, &request) {
        Ok(()) => {}
        Err(WebhookError::NotConfigured(key)) => {
            tracing::warn!(tenant = %tenant.id, %system, secret = key, "refused a delivery: the tenant's connection has no webhook secret; add it to the connection's secrets");
            return answer(
                StatusCode::NOT_FOUND,
                json!({"error": format!("the tenant's {} connection takes no webhooks", provider.display_name())}),
            );
        }
        Err(e) => {
            tracing::info!(tenant = %tenant.id, %system, reason = %e, "refused a delivery");
            return answer(
                StatusCode::UNAUTHORIZED,
                json!({"error": "invalid signature"}),
            );
        }
    }
    let key = IdempotencyKey::from_body(&body);
    let (quarantine, job) = match feed.parse(&body) {
        Err(e) => (Some(e.to_string()), None),
        Ok(changes) => {
            let entity = changes
                .first()
                .map(|c| c.id.chars().take(64).collect())
                .unwrap_or_else(|| key.as_str().chars().take(64).collect::<String>());
            let job = (!changes.is_empty())
                .then(|| JobKey::new(tenant.id.clone(), system.as_str(), &entity).ok())
                .flatten()
                .map(|k| {
                    new_job(
                        &state,
                        k,
                        json!({"source": "crm", "system": system, "trace": ports::trace::from_current_span(trace).to_string(), "changes": changes}),
                    )
                });
            (None, job)
        }
    };
    store(&state, &tenant.id, system, key, &body, quarantine, job).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_escapes_are_replaced_and_the_json_stays_valid() {
        for (given, expected) in [
            (r#"{"a":"x"}"#, r#"{"a":"x"}"#),
            (r#"{"a":"x\u0000y"}"#, r#"{"a":"x\ufffdy"}"#),
            (r#"{"a":"\u0000\u0000"}"#, r#"{"a":"\ufffd\ufffd"}"#),
            // An escaped backslash before `u0000` is text, and stays valid JSON either way.
            (r#"{"a":"\\u0000"}"#, r#"{"a":"\\ufffd"}"#),
        ] {
            let out = without_nul_escapes(given.as_bytes());
            assert_eq!(std::str::from_utf8(&out).unwrap_or_default(), expected);
            assert!(
                serde_json::from_slice::<serde_json::Value>(&out).is_ok(),
                "{expected}"
            );
        }
    }
}
