use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use adapter_hubspot::{HubSpotClient, HubSpotConfig};
use adapter_memory::MemoryRateLimiter;
use domain::field::FieldValue;
use domain::ids::{ExternalId, TenantId};
use domain::mapping::ExternalProperty;
use domain::tenant::Secret;
use ports::crm::{ExternalCrm, ExternalUpsert, RecordOutcome};
use ports::error::PortError;

pub async fn setup(
    sim_config: hubspot_sim::HubSpotConfig,
) -> (hubspot_sim::RunningSim, HubSpotClient) {
    setup_with(sim_config, |_| {}).await
}

pub async fn setup_with(
    sim_config: hubspot_sim::HubSpotConfig,
    tweak: impl FnOnce(&mut HubSpotConfig),
) -> (hubspot_sim::RunningSim, HubSpotClient) {
    let s = hubspot_sim::start("127.0.0.1:0".parse().unwrap(), sim_config)
        .await
        .unwrap();
    let mut cfg = HubSpotConfig::new(
        &s.url(),
        Secret::new("pat-na1-secret-token").unwrap(),
        TenantId::parse("acme").unwrap(),
    )
    .unwrap();
    cfg.rolling_wait = Duration::from_millis(100);
    cfg.secondly_wait = Duration::from_millis(100);
    cfg.backoff_base = Duration::from_millis(10);
    tweak(&mut cfg);
    let c = HubSpotClient::new(cfg, Arc::new(MemoryRateLimiter::default())).unwrap();
    (s, c)
}

pub fn prop(p: &str) -> ExternalProperty {
    ExternalProperty::parse(p).unwrap()
}

pub fn contact(key: &str, email: &str, first: &str) -> ExternalUpsert {
    ExternalUpsert {
        key: key.into(),
        properties: BTreeMap::from([
            (prop("email"), FieldValue::text(email)),
            (prop("firstname"), FieldValue::text(first)),
        ]),
    }
}

pub fn id_of(o: &RecordOutcome) -> ExternalId {
    match o {
        RecordOutcome::Created(id) | RecordOutcome::Updated(id) => id.clone(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn upserts_report_each_record_and_a_conflict_is_isolated_by_bisection() {
    let (_s, c) = setup(hubspot_sim::HubSpotConfig::default()).await;
    let by = prop("attio_record_id");
    let first = c
        .upsert_batch(
            "contacts",
            &by,
            &[
                contact("r1", "a@x.com", "A"),
                contact("r2", "b@x.com", "B"),
                contact("r3", "c@x.com", "C"),
            ],
        )
        .await
        .unwrap();
    assert!(
        first.iter().all(|o| matches!(o, RecordOutcome::Created(_))),
        "{first:?}"
    );
    let again = c
        .upsert_batch("contacts", &by, &[contact("r1", "a@x.com", "Ada")])
        .await
        .unwrap();
    assert_eq!(again, vec![RecordOutcome::Updated(id_of(&first[0]))]);

    // r6 carries r1's email: HubSpot fails the whole batch with 409; the adapter bisects.
    let batch = [
        contact("r4", "d@x.com", "D"),
        contact("r5", "e@x.com", "E"),
        contact("r6", "a@x.com", "F"),
        contact("r7", "g@x.com", "G"),
    ];
    let out = c.upsert_batch("contacts", &by, &batch).await.unwrap();
    assert_eq!(out.len(), 4);
    for (i, o) in out.iter().enumerate() {
        if i == 2 {
            match o {
                RecordOutcome::Failed { reason, retryable } => {
                    assert!(reason.contains("Existing ID"), "{reason}");
                    assert!(retryable, "the other record may be on its way out");
                }
                other => panic!("the conflicting record must fail alone: {other:?}"),
            }
        } else {
            assert!(
                matches!(o, RecordOutcome::Created(_)),
                "record {i} must land: {o:?}"
            );
        }
    }
    let too_many: Vec<ExternalUpsert> = (0..101)
        .map(|i| contact(&format!("m{i}"), &format!("m{i}@x.com"), "M"))
        .collect();
    assert!(matches!(
        c.upsert_batch("contacts", &by, &too_many).await,
        Err(PortError::Invalid(_))
    ));
}

#[tokio::test]
async fn get_reports_values_and_per_property_change_times() {
    let (_s, c) = setup(hubspot_sim::HubSpotConfig::default()).await;
    let by = prop("attio_record_id");
    let out = c
        .upsert_batch("contacts", &by, &[contact("r1", "a@x.com", "Ada")])
        .await
        .unwrap();
    let id = id_of(&out[0]);
    let rec = c
        .get(
            "contacts",
            &id,
            &[prop("email"), prop("firstname"), prop("phone")],
        )
        .await
        .unwrap();
    assert_eq!(rec.properties[&prop("firstname")], FieldValue::text("Ada"));
    assert_eq!(rec.properties[&prop("phone")], FieldValue::Empty);
    assert!(
        rec.changed_at.contains_key(&prop("firstname")),
        "history gives per-field times: {rec:?}"
    );
    assert!(!rec.changed_at.contains_key(&prop("phone")));
    assert!(matches!(
        c.get("contacts", &ExternalId::parse("999999").unwrap(), &[])
            .await,
        Err(PortError::NotFound(_))
    ));
}

#[tokio::test]
async fn archive_reports_unknown_ids_and_merge_returns_the_survivor() {
    let (_s, c) = setup(hubspot_sim::HubSpotConfig::default()).await;
    let by = prop("attio_record_id");
    let out = c
        .upsert_batch(
            "contacts",
            &by,
            &[
                contact("r1", "a@x.com", "A"),
                contact("r2", "b@x.com", "B"),
                contact("r3", "c@x.com", ""),
            ],
        )
        .await
        .unwrap();
    let (a, b, d) = (id_of(&out[0]), id_of(&out[1]), id_of(&out[2]));
    let merged = c.merge("contacts", &a, &b).await.unwrap();
    assert_eq!(merged, a);
    assert!(
        matches!(
            c.get("contacts", &b, &[]).await,
            Err(PortError::NotFound(_))
        ),
        "the merged record is gone"
    );
    let unknown = ExternalId::parse("424242").unwrap();
    let archived = c
        .archive_batch("contacts", &[d.clone(), unknown])
        .await
        .unwrap();
    assert_eq!(archived[0], RecordOutcome::Updated(d.clone()));
    assert!(
        matches!(archived[1], RecordOutcome::Failed { .. }),
        "{archived:?}"
    );
    assert!(matches!(
        c.get("contacts", &d, &[]).await,
        Err(PortError::NotFound(_))
    ));
}

#[tokio::test]
async fn changes_are_polled_page_by_page_from_a_watermark() {
    let (_s, c) = setup(hubspot_sim::HubSpotConfig::default()).await;
    let by = prop("attio_record_id");
    let start = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    for chunk in 0..2 {
        let batch: Vec<ExternalUpsert> = (0..60)
            .map(|i| {
                contact(
                    &format!("r{chunk}-{i}"),
                    &format!("p{chunk}-{i}@x.com"),
                    "P",
                )
            })
            .collect();
        c.upsert_batch("contacts", &by, &batch).await.unwrap();
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = c
            .changed_since("contacts", start, &[prop("email")], after)
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.records.into_iter().map(|r| r.id));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (120, 2), "two pages of 100 and 20");
    let later = c
        .changed_since(
            "contacts",
            time::OffsetDateTime::now_utc() + time::Duration::minutes(1),
            &[],
            None,
        )
        .await
        .unwrap();
    assert!(later.records.is_empty() && later.next.is_none());
    assert!(matches!(
        c.changed_since("contacts", start, &[], Some("nonsense".into()))
            .await,
        Err(PortError::Invalid(_))
    ));
}

#[tokio::test]
async fn rolling_window_429s_are_retried_then_surface_as_rate_limited() {
    let (_s, c) = setup(hubspot_sim::HubSpotConfig {
        per_ten_seconds: 2,
        ..hubspot_sim::HubSpotConfig::default()
    })
    .await;
    let by = prop("attio_record_id");
    // The simulator allows two requests per 10 s; the adapter's own budget is 190: the third call
    // meets HubSpot's 429 and waits (here 100 ms × attempt) until its retries run out.
    c.upsert_batch("contacts", &by, &[contact("r1", "a@x.com", "A")])
        .await
        .unwrap();
    c.upsert_batch("contacts", &by, &[contact("r2", "b@x.com", "B")])
        .await
        .unwrap();
    match c
        .upsert_batch("contacts", &by, &[contact("r3", "c@x.com", "C")])
        .await
    {
        Err(PortError::RateLimited {
            retry_after: Some(_),
        }) => {}
        other => panic!(
            "a rolling-window 429 outlasting the retries must surface as RateLimited: {other:?}"
        ),
    }
    assert!(
        !format!("{c:?}").contains("pat-na1-secret-token"),
        "the token is masked"
    );
}

#[tokio::test]
async fn the_daily_allowance_is_tracked_and_its_429_is_not_retried() {
    let (_s, c) = setup(hubspot_sim::HubSpotConfig {
        daily_limit: 2,
        ..hubspot_sim::HubSpotConfig::default()
    })
    .await;
    assert_eq!(c.daily_allowance(), None, "nothing reported yet");
    let by = prop("attio_record_id");
    c.upsert_batch("contacts", &by, &[contact("r1", "a@x.com", "A")])
        .await
        .unwrap();
    assert_eq!(
        c.daily_allowance(),
        Some(adapter_hubspot::DailyAllowance {
            limit: 2,
            remaining: 1
        })
    );
    c.upsert_batch("contacts", &by, &[contact("r2", "b@x.com", "B")])
        .await
        .unwrap();
    match c
        .upsert_batch("contacts", &by, &[contact("r3", "c@x.com", "C")])
        .await
    {
        // Retrying would wait 100 ms per attempt; a DAILY 429 instead reports the reset time.
        Err(PortError::RateLimited {
            retry_after: Some(wait),
        }) => assert!(
            wait > Duration::from_millis(100) && wait <= Duration::from_secs(86_400),
            "{wait:?}"
        ),
        other => panic!("a DAILY 429 must surface as RateLimited until the reset: {other:?}"),
    }
    assert_eq!(c.daily_allowance().map(|d| d.remaining), Some(0));
}

#[tokio::test]
async fn associations_are_made_listed_past_the_first_page_and_removed() {
    let s = hubspot_sim::start(
        "127.0.0.1:0".parse().unwrap(),
        hubspot_sim::HubSpotConfig::default(),
    )
    .await
    .unwrap();
    let mut cfg = HubSpotConfig::new(
        &s.url(),
        Secret::new("pat-na1-secret-token").unwrap(),
        TenantId::parse("acme").unwrap(),
    )
    .unwrap();
    cfg.association_page = 2;
    let c = HubSpotClient::new(cfg, Arc::new(MemoryRateLimiter::default())).unwrap();
    let by = prop("attio_record_id");
    let ada = id_of(
        &c.upsert_batch("contacts", &by, &[contact("p1", "ada@x.com", "Ada")])
            .await
            .unwrap()[0],
    );
    let companies: Vec<ExternalId> = c
        .upsert_batch(
            "companies",
            &by,
            &(1..=5)
                .map(|i| ExternalUpsert {
                    key: format!("c{i}"),
                    properties: BTreeMap::from([(
                        prop("name"),
                        FieldValue::text(format!("Co {i}")),
                    )]),
                })
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    for co in &companies {
        c.associate("contacts", &ada, "companies", co)
            .await
            .unwrap();
    }
    let mut listed = c.associations("contacts", &ada, "companies").await.unwrap();
    listed.sort_by_key(|id| id.as_str().parse::<u64>().unwrap());
    assert_eq!(
        listed, companies,
        "five associations over three pages of two"
    );
    assert_eq!(
        c.associations("companies", &companies[0], "contacts")
            .await
            .unwrap(),
        vec![ada.clone()],
        "HubSpot associates both directions"
    );
    c.dissociate("contacts", &ada, "companies", &companies[0])
        .await
        .unwrap();
    assert_eq!(
        c.associations("companies", &companies[0], "contacts")
            .await
            .unwrap(),
        vec![],
    );
    let missing = ExternalId::parse("999999").unwrap();
    assert!(matches!(
        c.associate("contacts", &ada, "companies", &missing).await,
        Err(PortError::NotFound(_))
    ));
    assert!(matches!(
        c.associate("contacts", &ada, "contacts", &ada).await,
        Err(PortError::Rejected { status: 400, .. })
    ));
}

#[tokio::test]
async fn server_errors_are_retried_and_persistent_ones_surface_as_unavailable() {
    let (s, c) = setup_with(
        hubspot_sim::HubSpotConfig {
            faults: hubspot_sim::Faults {
                error_rate: 0.3,
                ..Default::default()
            },
            ..hubspot_sim::HubSpotConfig::default()
        },
        |cfg| {
            cfg.max_retries = 10;
            cfg.backoff_cap = Duration::from_millis(50);
        },
    )
    .await;
    let by = prop("attio_record_id");
    // A 500 has no effect, so retrying an upsert cannot double-write. With 10 retries a request
    // fails only if 11 attempts in a row meet the 30% error rate (p = 0.3^11, about 2e-6).
    for i in 0..20 {
        let outcomes = c
            .upsert_batch(
                "contacts",
                &by,
                &[contact(&format!("k{i}"), &format!("p{i}@x.com"), "P")],
            )
            .await
            .unwrap();
        assert!(
            matches!(outcomes[0], RecordOutcome::Created(_)),
            "each record created exactly once: {outcomes:?}"
        );
    }
    s.sim.set_faults(hubspot_sim::Faults {
        error_rate: 1.0,
        ..Default::default()
    });
    assert!(matches!(
        c.upsert_batch("contacts", &by, &[contact("z", "z@x.com", "Z")])
            .await,
        Err(PortError::Unavailable { .. })
    ));
}

#[tokio::test]
async fn injected_statuses_are_classified_as_hubspot_documents_them() {
    let (s, c) = setup_with(hubspot_sim::HubSpotConfig::default(), |cfg| {
        // No retries: each answer's classification shows directly.
        cfg.max_retries = 0;
    })
    .await;
    let id = ExternalId::parse("1").unwrap();
    for (status, unavailable) in [
        (500, true),
        (502, true),
        (503, true),
        (504, true),
        (524, true),
        (423, false),
        (477, false),
    ] {
        s.sim.set_faults(hubspot_sim::Faults {
            error_rate: 1.0,
            error_status: Some(status),
            retry_after_s: Some(1),
            ..Default::default()
        });
        match c.get("contacts", &id, &[]).await {
            Err(PortError::Unavailable { .. }) if unavailable => {}
            Err(PortError::Rejected { status: s, .. }) if !unavailable && s == status => {}
            other => panic!("{status}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn calls_carry_the_current_trace_as_traceparent() {
    let server = testkit::capture::HeaderCapture::start(
        "traceparent",
        r#"{"id":"1","properties":{},"createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:00Z","archived":false}"#,
    )
    .await;
    let c = HubSpotClient::new(
        HubSpotConfig::new(
            &server.url,
            Secret::new("pat-na1-secret-token").unwrap(),
            TenantId::parse("acme").unwrap(),
        )
        .unwrap(),
        Arc::new(MemoryRateLimiter::default()),
    )
    .unwrap();
    let trace = domain::trace::TraceParent::parse(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    .unwrap();
    let id = domain::ids::ExternalId::parse("1").unwrap();
    let _ = ports::trace::in_trace(trace, c.get("contacts", &id, &[])).await;
    let sent = server.seen();
    let sent =
        domain::trace::TraceParent::parse(sent[0].as_deref().expect("a traceparent")).unwrap();
    assert_eq!(sent.trace_id(), trace.trace_id(), "the same trace");
    assert_ne!(sent.span_id(), trace.span_id(), "from a span of its own");
}

#[tokio::test]
async fn an_engagement_that_cannot_be_attached_is_archived_again() {
    use ports::crm::{ActivityKind, ActivityTarget, ExternalActivities, ExternalActivity};
    let (_s, c) = setup(hubspot_sim::HubSpotConfig::default()).await;
    let note = ExternalActivity {
        kind: ActivityKind::Note,
        title: "Call".into(),
        body: "notes".into(),
        at: time::OffsetDateTime::now_utc(),
        completed: false,
    };
    let missing = ActivityTarget {
        object: "contacts".into(),
        id: ExternalId::parse("999999").unwrap(),
    };
    let e = c.create_activity(&note, &[missing]).await.unwrap_err();
    assert!(matches!(e, PortError::NotFound(_)), "{e:?}");
    let left = c.list("notes", &[], None).await.unwrap();
    assert!(
        left.records.is_empty(),
        "no detached note is left: {left:?}"
    );
    // Nothing to attach to is refused before anything is written.
    let e = c.create_activity(&note, &[]).await.unwrap_err();
    assert!(matches!(e, PortError::Invalid(_)), "{e:?}");
}
