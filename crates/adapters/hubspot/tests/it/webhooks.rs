//! hubspot-sim's webhook deliveries, received over real HTTP, pass the adapter's v3 signature
//! check and parse into typed events; a refused delivery is retried with `attemptNumber` + 1.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use adapter_hubspot::{HubSpotClient, HubSpotConfig, HubSpotEvent, parse_events, verify_v3};
use adapter_memory::MemoryRateLimiter;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use domain::field::FieldValue;
use domain::ids::TenantId;
use domain::mapping::ExternalProperty;
use domain::tenant::Secret;
use hubspot_sim::{Subscription, WebhookSettings};
use ports::crm::{ExternalCrm, ExternalUpsert, RecordOutcome};
use tokio::sync::mpsc;

const SECRET: &str = "app-client-secret";

/// A receiver that refuses its first request with 500 and hands on every request it accepts.
async fn receiver() -> (String, mpsc::UnboundedReceiver<(HeaderMap, Bytes)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let calls = Arc::new(AtomicU32::new(0));
    let app = axum::Router::new().route(
        "/hooks/hubspot",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (tx, calls) = (tx.clone(), calls.clone());
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                let _ = tx.send((headers, body));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/hubspot", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

/// Receives, checks the signature of and parses deliveries until `n` events have arrived.
async fn events(
    url: &str,
    rx: &mut mpsc::UnboundedReceiver<(HeaderMap, Bytes)>,
    n: usize,
) -> Vec<HubSpotEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        let (headers, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("deliveries arrive")
            .unwrap();
        let h = |k: &str| headers[k].to_str().unwrap().to_owned();
        let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        verify_v3(
            SECRET,
            "POST",
            url,
            &body,
            &h("x-hubspot-request-timestamp"),
            &h("x-hubspot-signature-v3"),
            now,
        )
        .expect("a valid v3 signature");
        assert!(
            verify_v3(
                "other-secret",
                "POST",
                url,
                &body,
                &h("x-hubspot-request-timestamp"),
                &h("x-hubspot-signature-v3"),
                now
            )
            .is_err()
        );
        out.extend(parse_events(&body).expect("a HubSpot event array"));
    }
    out
}

#[tokio::test]
async fn changes_are_delivered_signed_retried_and_parse_as_typed_events() {
    let (url, mut rx) = receiver().await;
    let sub = |id, t: &str, p: Option<&str>| Subscription {
        id,
        event_type: t.into(),
        property_name: p.map(Into::into),
    };
    let mut settings = WebhookSettings::new(
        &url,
        SECRET,
        vec![
            sub(1, "contact.creation", None),
            sub(2, "contact.propertyChange", Some("firstname")),
            sub(3, "contact.deletion", None),
        ],
    );
    settings.retry_base = Duration::from_millis(20);
    let s = hubspot_sim::start(
        "127.0.0.1:0".parse().unwrap(),
        hubspot_sim::HubSpotConfig {
            webhooks: Some(settings),
            ..hubspot_sim::HubSpotConfig::default()
        },
    )
    .await
    .unwrap();
    let c = HubSpotClient::new(
        HubSpotConfig::new(
            &s.url(),
            Secret::new("pat-na1-x").unwrap(),
            TenantId::parse("acme").unwrap(),
        )
        .unwrap(),
        Arc::new(MemoryRateLimiter::default()),
    )
    .unwrap();
    let prop = |p: &str| ExternalProperty::parse(p).unwrap();
    let upsert = |first: &str| ExternalUpsert {
        key: "r1".into(),
        properties: BTreeMap::from([
            (prop("email"), FieldValue::text("ada@x.com")),
            (prop("firstname"), FieldValue::text(first)),
        ]),
    };
    let by = prop("attio_record_id");
    let id = match &c
        .upsert_batch("contacts", &by, &[upsert("Ada")])
        .await
        .unwrap()[0]
    {
        RecordOutcome::Created(id) => id.clone(),
        other => panic!("{other:?}"),
    };
    let first = events(&url, &mut rx, 2).await;
    assert!(
        first.iter().all(|e| e.attempt_number == 1),
        "the first attempt was refused: {first:?}"
    );
    let mut kinds: Vec<_> = first.iter().map(|e| e.subscription_type.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["contact.creation", "contact.propertyChange"]);
    let change = first.iter().find(|e| e.property_name.is_some()).unwrap();
    assert_eq!(
        (
            change.property_name.as_deref(),
            change.property_value.as_deref(),
            change.object_id
        ),
        (
            Some("firstname"),
            Some("Ada"),
            Some(id.as_str().parse().unwrap())
        )
    );

    // The same value again changes nothing; a new one is one event; archiving is a deletion.
    c.upsert_batch("contacts", &by, &[upsert("Ada")])
        .await
        .unwrap();
    c.upsert_batch("contacts", &by, &[upsert("Augusta")])
        .await
        .unwrap();
    c.archive_batch("contacts", std::slice::from_ref(&id))
        .await
        .unwrap();
    // Deliveries run in parallel, so their order is not guaranteed (as with HubSpot).
    let mut rest: Vec<_> = events(&url, &mut rx, 2)
        .await
        .into_iter()
        .map(|e| (e.subscription_type, e.property_value, e.attempt_number))
        .collect();
    rest.sort();
    assert_eq!(
        rest,
        [
            ("contact.deletion".to_owned(), None, 0),
            (
                "contact.propertyChange".to_owned(),
                Some("Augusta".to_owned()),
                0
            )
        ]
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), rx.recv())
            .await
            .is_err(),
        "no further deliveries"
    );
}
