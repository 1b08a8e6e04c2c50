use std::collections::BTreeMap;
use std::time::Duration;

use adapter_salesforce::SalesforceAuth;
use domain::field::FieldValue;
use domain::ids::ExternalId;
use domain::mapping::ExternalProperty;
use domain::tenant::Secret;
use ports::crm::{ExternalCrm, ExternalUpsert, RecordOutcome};
use ports::error::PortError;
use time::OffsetDateTime;

use crate::{cc, client, client_with, sim_config, start};

fn prop(p: &str) -> ExternalProperty {
    ExternalProperty::parse(p).unwrap()
}

fn contact(key: &str, last: Option<&str>) -> ExternalUpsert {
    let mut properties =
        BTreeMap::from([(prop("Email"), FieldValue::text(format!("{key}@x.com")))]);
    if let Some(l) = last {
        properties.insert(prop("LastName"), FieldValue::text(l));
    }
    ExternalUpsert {
        key: key.into(),
        properties,
    }
}

fn id_of(o: &RecordOutcome) -> ExternalId {
    match o {
        RecordOutcome::Created(id) | RecordOutcome::Updated(id) => id.clone(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn upserts_report_each_record_and_reads_convert_values() {
    let s = start(sim_config()).await;
    let c = client(&s.url());
    let by = prop("Attio_Id__c");
    let first = c
        .upsert_batch(
            "Contact",
            &by,
            &[
                contact("r1", Some("One")),
                contact("r2", None),
                contact("r3", Some("Three")),
            ],
        )
        .await
        .unwrap();
    assert!(matches!(first[0], RecordOutcome::Created(_)));
    match &first[1] {
        RecordOutcome::Failed { reason, retryable } => {
            assert!(reason.starts_with("REQUIRED_FIELD_MISSING"), "{reason}");
            assert!(!retryable);
        }
        other => panic!("{other:?}"),
    }
    let again = c
        .upsert_batch("Contact", &by, &[contact("r1", Some("Uno"))])
        .await
        .unwrap();
    assert_eq!(again, vec![RecordOutcome::Updated(id_of(&first[0]))]);

    let got = c
        .get(
            "Contact",
            &id_of(&first[0]),
            &[prop("LastName"), prop("Email")],
        )
        .await
        .unwrap();
    assert_eq!(got.properties[&prop("LastName")], FieldValue::text("Uno"));
    assert!(got.updated_at.is_some());
    assert!(!got.archived);

    let many: Vec<ExternalUpsert> = (0..201)
        .map(|i| contact(&format!("m{i}"), Some("M")))
        .collect();
    assert!(matches!(
        c.upsert_batch("Contact", &by, &many).await,
        Err(PortError::Invalid(_))
    ));
    assert!(matches!(
        c.upsert_batch("Contact; DROP", &by, &[contact("x", Some("X"))])
            .await,
        Err(PortError::Invalid(_))
    ));

    // Numbers and booleans keep their types.
    let account = ExternalUpsert {
        key: "a1".into(),
        properties: BTreeMap::from([
            (prop("Name"), FieldValue::text("Acme")),
            (
                prop("NumberOfEmployees"),
                FieldValue::Number("250".parse().unwrap()),
            ),
        ]),
    };
    let a = c.upsert_batch("Account", &by, &[account]).await.unwrap();
    let read = c
        .get("Account", &id_of(&a[0]), &[prop("NumberOfEmployees")])
        .await
        .unwrap();
    assert_eq!(
        read.properties[&prop("NumberOfEmployees")],
        FieldValue::Number("250".parse().unwrap())
    );
}

#[tokio::test]
async fn single_upserts_archive_and_unsupported_merge() {
    let s = start(sim_config()).await;
    let c = client(&s.url());
    let by = prop("Attio_Id__c");
    let created = c
        .upsert_one("Contact", &by, &contact("one/1", Some("A")))
        .await
        .unwrap();
    assert!(matches!(created, RecordOutcome::Created(_)));
    let updated = c
        .upsert_one("Contact", &by, &contact("one/1", Some("B")))
        .await
        .unwrap();
    assert_eq!(updated, RecordOutcome::Updated(id_of(&created)));
    let bad = c
        .upsert_one("Contact", &by, &contact("two", None))
        .await
        .unwrap_err();
    assert!(
        matches!(&bad, PortError::Rejected { code, status: 400, .. } if code == "REQUIRED_FIELD_MISSING"),
        "{bad}"
    );

    let id = id_of(&created);
    let archived = c
        .archive_batch("Contact", &[id.clone(), id.clone()])
        .await
        .unwrap();
    assert_eq!(archived[0], RecordOutcome::Updated(id.clone()));
    assert!(
        matches!(&archived[1], RecordOutcome::Failed { reason, .. } if reason.starts_with("ENTITY_IS_DELETED"))
    );
    assert!(matches!(
        c.get("Contact", &id, &[]).await,
        Err(PortError::NotFound(_))
    ));
    assert!(matches!(
        c.merge("Contact", &id, &id).await,
        Err(PortError::Unsupported {
            adapter: "salesforce",
            operation: "merge"
        })
    ));
}

#[tokio::test]
async fn changes_page_past_the_first_page_and_include_deletions() {
    let s = start(sim_config()).await;
    let c = client_with(&s.url(), cc(crate::CLIENT_SECRET), |cfg| {
        cfg.query_batch_size = 200
    });
    let since = OffsetDateTime::now_utc() - Duration::from_secs(60);
    let by = prop("Attio_Id__c");
    let mut ids = Vec::new();
    for chunk in 0..3 {
        let batch: Vec<ExternalUpsert> = (0..150)
            .map(|i| contact(&format!("c{chunk}-{i}"), Some("Pager")))
            .collect();
        ids.extend(
            c.upsert_batch("Contact", &by, &batch)
                .await
                .unwrap()
                .iter()
                .map(id_of),
        );
    }
    c.archive_batch("Contact", &ids[..1]).await.unwrap();
    let mut after = None;
    let mut pages = 0;
    let mut seen = Vec::new();
    loop {
        let page = c
            .changed_since("Contact", since, &[prop("LastName")], after)
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.records);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(pages, 3, "450 rows at 200 per page");
    assert_eq!(seen.len(), 450);
    assert!(
        seen.iter().any(|r| r.archived && r.id == ids[0]),
        "the deletion is visible"
    );
    let bad = c
        .query("SELECT Id FROM Contact WHERE", false, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&bad, PortError::Rejected { code, .. } if code == "MALFORMED_QUERY"),
        "{bad}"
    );
    let bad = c
        .query("SELECT Nope FROM Contact", false, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&bad, PortError::Rejected { code, .. } if code == "INVALID_FIELD"),
        "{bad}"
    );
}

#[tokio::test]
async fn get_updated_and_get_deleted_windows_and_the_resync_signal() {
    let s = start(sim_config()).await;
    let c = client(&s.url());
    let start_at = s.sim.now() - Duration::from_secs(60);
    let by = prop("Attio_Id__c");
    let made = c
        .upsert_batch(
            "Contact",
            &by,
            &[contact("w1", Some("W")), contact("w2", Some("W"))],
        )
        .await
        .unwrap();
    c.archive_batch("Contact", &[id_of(&made[1])])
        .await
        .unwrap();
    s.sim.advance_clock(Duration::from_secs(120));
    let end = s.sim.now();
    let up = c.updated("Contact", start_at, end).await.unwrap();
    assert_eq!(up.ids, vec![id_of(&made[0])]);
    assert!(up.latest_date_covered <= end);
    let del = c.deleted("Contact", start_at, end).await.unwrap();
    assert_eq!(del.deleted.len(), 1);
    assert!(!del.needs_resync(start_at));
    s.sim.purge_delete_log();
    let purged = c
        .deleted("Contact", start_at, end + Duration::from_secs(60))
        .await
        .unwrap();
    assert!(purged.needs_resync(start_at), "a purged log means a resync");
    let too_old = c
        .deleted("Contact", end - Duration::from_secs(16 * 86_400), end)
        .await
        .unwrap_err();
    assert!(
        matches!(&too_old, PortError::Rejected { code, .. } if code == "INVALID_REPLICATION_DATE"),
        "{too_old}"
    );
}

#[tokio::test]
async fn sessions_are_renewed_on_invalid_session_id_and_bad_credentials_are_unauthorized() {
    let s = start(sim_config()).await;
    let c = client(&s.url());
    let by = prop("Attio_Id__c");
    c.upsert_batch("Contact", &by, &[contact("t1", Some("T"))])
        .await
        .unwrap();
    s.sim.expire_tokens();
    let after = c
        .upsert_batch("Contact", &by, &[contact("t1", Some("T2"))])
        .await
        .unwrap();
    assert!(
        matches!(after[0], RecordOutcome::Updated(_)),
        "logged in again and repeated the call"
    );

    // Tokens that die at once: one new login, then a typed failure rather than a loop.
    let mut instant = sim_config();
    instant.token_ttl = Duration::ZERO;
    let s2 = start(instant).await;
    let err = client(&s2.url())
        .query("SELECT Id FROM Contact", false, None)
        .await
        .unwrap_err();
    assert!(matches!(err, PortError::Unauthorized(_)), "{err}");

    let wrong = client_with(&s.url(), cc("not-the-secret"), |_| {});
    let err = wrong
        .query("SELECT Id FROM Contact", false, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PortError::Unauthorized(m) if m.contains("invalid_client")),
        "{err}"
    );
}

#[tokio::test]
async fn the_jwt_bearer_flow_logs_in_and_a_foreign_key_is_refused() {
    let s = start(sim_config()).await;
    let jwt = |key: &str| SalesforceAuth::JwtBearer {
        client_id: "ck-attio-sync".into(),
        username: "integration@acme.example".into(),
        private_key_pem: Secret::new(key).unwrap(),
        audience: "https://login.salesforce.com".into(),
    };
    let c = client_with(&s.url(), jwt(testkit::jwt::TEST_PRIVATE_KEY_PEM), |_| {});
    let page = c
        .query("SELECT Id FROM Account", false, None)
        .await
        .unwrap();
    assert!(page.records.is_empty());
    let garbage = client_with(&s.url(), jwt("not a key"), |_| {});
    assert!(matches!(
        garbage.query("SELECT Id FROM Account", false, None).await,
        Err(PortError::Invalid(_))
    ));
}

#[tokio::test]
async fn the_daily_allowance_is_tracked_and_syncing_pauses_at_the_configured_share() {
    let mut cfg = sim_config();
    cfg.daily_limit = 10;
    let s = start(cfg).await;
    let c = client_with(&s.url(), cc(crate::CLIENT_SECRET), |cfg| cfg.pause_at = 0.5);
    for _ in 0..5 {
        c.query("SELECT Id FROM Contact", false, None)
            .await
            .unwrap();
    }
    assert_eq!(c.api_usage().map(|u| (u.used, u.max)), Some((5, 10)));
    let paused = c
        .query("SELECT Id FROM Contact", false, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            paused,
            PortError::RateLimited {
                retry_after: Some(_)
            }
        ),
        "{paused}"
    );
    assert_eq!(s.sim.api_usage(), 5, "nothing was sent while paused");

    // Without the pause, the org's own limit answers 403, which is never retried.
    let greedy = client_with(&s.url(), cc(crate::CLIENT_SECRET), |cfg| cfg.pause_at = 1.0);
    for _ in 0..5 {
        greedy
            .query("SELECT Id FROM Contact", false, None)
            .await
            .unwrap();
    }
    let unaware = client_with(&s.url(), cc(crate::CLIENT_SECRET), |cfg| cfg.pause_at = 1.0);
    let refused = unaware
        .query("SELECT Id FROM Contact", false, None)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, PortError::RateLimited { retry_after: None }),
        "{refused}"
    );
    assert_eq!(s.sim.api_usage(), 10);
}

#[tokio::test]
async fn transient_failures_are_retried_and_locked_rows_are_retryable_outcomes() {
    let s = start(sim_config()).await;
    let c = client(&s.url());
    let by = prop("Attio_Id__c");
    s.sim.set_faults(salesforce_sim::Faults {
        error_rate: 1.0,
        error_status: Some(503),
        ..Default::default()
    });
    let down = c
        .upsert_batch("Contact", &by, &[contact("f1", Some("F"))])
        .await
        .unwrap_err();
    assert!(matches!(down, PortError::Unavailable { .. }), "{down}");
    // With 30% of answers failing and 8 retries, a call fails only once in ~50,000.
    let c = client_with(&s.url(), cc(crate::CLIENT_SECRET), |cfg| {
        cfg.max_retries = 8
    });
    s.sim.set_faults(salesforce_sim::Faults {
        error_rate: 0.3,
        error_status: Some(502),
        ..Default::default()
    });
    for i in 0..10 {
        c.upsert_batch("Contact", &by, &[contact(&format!("f{i}"), Some("F"))])
            .await
            .unwrap();
    }
    s.sim.set_faults(salesforce_sim::Faults {
        lock_rate: 1.0,
        ..Default::default()
    });
    let locked = c
        .upsert_batch("Contact", &by, &[contact("l1", Some("L"))])
        .await
        .unwrap();
    assert!(
        matches!(&locked[0], RecordOutcome::Failed { retryable: true, reason } if reason.starts_with("UNABLE_TO_LOCK_ROW"))
    );
    let single = c
        .upsert_one("Contact", &by, &contact("l1", Some("L")))
        .await
        .unwrap_err();
    assert!(
        single.is_retryable()
            || matches!(&single, PortError::Rejected { code, .. } if code == "UNABLE_TO_LOCK_ROW"),
        "{single}"
    );
}

#[tokio::test]
async fn opportunities_and_accounts_upsert_and_poll_like_contacts() {
    let s = start(sim_config()).await;
    let c = client(&s.url());
    let by = prop("Attio_Id__c");
    let account = ExternalUpsert {
        key: "co-1".into(),
        properties: BTreeMap::from([(prop("Name"), FieldValue::text("Acme"))]),
    };
    let acct = id_of(&c.upsert_batch("Account", &by, &[account]).await.unwrap()[0]);
    let deal = |key: &str, stage: Option<&str>| {
        let mut properties = BTreeMap::from([
            (prop("Name"), FieldValue::text(format!("Deal {key}"))),
            (prop("CloseDate"), FieldValue::text("2026-12-31")),
            (
                prop("Amount"),
                FieldValue::Number("1200.5".parse().unwrap()),
            ),
            (prop("AccountId"), FieldValue::text(acct.as_str())),
        ]);
        if let Some(s) = stage {
            properties.insert(prop("StageName"), FieldValue::text(s));
        }
        ExternalUpsert {
            key: key.into(),
            properties,
        }
    };
    let out = c
        .upsert_batch(
            "Opportunity",
            &by,
            &[deal("d1", Some("Prospecting")), deal("d2", None)],
        )
        .await
        .unwrap();
    assert!(matches!(out[0], RecordOutcome::Created(_)));
    assert!(
        matches!(&out[1], RecordOutcome::Failed { reason, .. } if reason.contains("StageName"))
    );
    let since = OffsetDateTime::now_utc() - Duration::from_secs(60);
    let page = c
        .changed_since(
            "Opportunity",
            since,
            &[prop("StageName"), prop("Amount"), prop("AccountId")],
            None,
        )
        .await
        .unwrap();
    assert_eq!(page.records.len(), 1);
    let r = &page.records[0];
    assert_eq!(
        r.properties[&prop("StageName")],
        FieldValue::text("Prospecting")
    );
    assert_eq!(
        r.properties[&prop("Amount")],
        FieldValue::Number("1200.5".parse().unwrap())
    );
    assert_eq!(
        r.properties[&prop("AccountId")],
        FieldValue::text(acct.as_str())
    );
    let bad_ref = ExternalUpsert {
        key: "d3".into(),
        properties: BTreeMap::from([
            (prop("Name"), FieldValue::text("X")),
            (prop("StageName"), FieldValue::text("Closed Won")),
            (prop("CloseDate"), FieldValue::text("2026-12-31")),
            (prop("AccountId"), FieldValue::text("003000000000001AAA")),
        ]),
    };
    let out = c
        .upsert_batch("Opportunity", &by, &[bad_ref])
        .await
        .unwrap();
    assert!(
        matches!(&out[0], RecordOutcome::Failed { reason, .. } if reason.starts_with("INVALID_CROSS_REFERENCE_KEY")),
        "{out:?}"
    );
}

#[tokio::test]
async fn calls_carry_the_current_trace_as_traceparent() {
    let server = testkit::capture::HeaderCapture::start_with(
        "traceparent",
        &[(
            "/services/oauth2/token",
            r#"{"access_token":"00Dxx!token","instance_url":"{url}","token_type":"Bearer","issued_at":"1764560000000"}"#,
        )],
        r#"{"totalSize":0,"done":true,"records":[]}"#,
    )
    .await;
    let c = client(&server.url);
    let trace = domain::trace::TraceParent::parse(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    .unwrap();
    ports::trace::in_trace(trace, c.query("SELECT Id FROM Contact", false, None))
        .await
        .unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "the login, then the query: {seen:?}");
    let sent =
        domain::trace::TraceParent::parse(seen[1].as_deref().expect("a traceparent")).unwrap();
    assert_eq!(sent.trace_id(), trace.trace_id(), "the same trace");
    assert_ne!(sent.span_id(), trace.span_id(), "from a span of its own");
}

/// A deal's people are its contact roles: the pseudo-field `OpportunityContactRole.ContactId`
/// reads the contacts with a role, writes set the rows exactly, and a role added since a time
/// brings its opportunity into that time's changes though the opportunity itself is unchanged.
#[tokio::test]
async fn contact_roles_read_write_and_tell_their_opportunity_changed() {
    let s = start(sim_config()).await;
    let c = client(&s.url());
    let by = prop("Attio_Id__c");
    let roles = prop("OpportunityContactRole.ContactId");
    let contact_id = id_of(
        &c.upsert_batch("Contact", &by, &[contact("k1", Some("One"))])
            .await
            .unwrap()[0],
    );
    let opp = id_of(
        &c.upsert_batch(
            "Opportunity",
            &by,
            &[ExternalUpsert {
                key: "o1".into(),
                properties: BTreeMap::from([
                    (prop("Name"), FieldValue::text("Deal o1")),
                    (prop("CloseDate"), FieldValue::text("2026-12-31")),
                    (prop("StageName"), FieldValue::text("Prospecting")),
                ]),
            }],
        )
        .await
        .unwrap()[0],
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let since = OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A person adds a role in Salesforce: a row of its own.
    let role = ExternalUpsert {
        key: "role-1".into(),
        properties: BTreeMap::from([
            (prop("OpportunityId"), FieldValue::text(opp.as_str())),
            (prop("ContactId"), FieldValue::text(contact_id.as_str())),
        ]),
    };
    id_of(
        &c.upsert_batch("OpportunityContactRole", &by, &[role])
            .await
            .unwrap()[0],
    );
    let one = FieldValue::List(vec![contact_id.as_str().to_owned()]).normalized();
    let page = c
        .changed_since("Opportunity", since, &[prop("Name"), roles.clone()], None)
        .await
        .unwrap();
    assert_eq!(page.records.len(), 1, "{page:?}");
    assert_eq!(page.records[0].id, opp);
    assert_eq!(page.records[0].properties[&roles], one);
    let read = c
        .get("Opportunity", &opp, std::slice::from_ref(&roles))
        .await
        .unwrap();
    assert_eq!(read.properties[&roles], one);
    // Written empty: the row goes; written again: one row, however often.
    let set = |v: FieldValue| ExternalUpsert {
        key: "o1".into(),
        properties: BTreeMap::from([(roles.clone(), v)]),
    };
    c.upsert_batch("Opportunity", &by, &[set(FieldValue::Empty)])
        .await
        .unwrap();
    let read = c
        .get("Opportunity", &opp, std::slice::from_ref(&roles))
        .await
        .unwrap();
    assert_eq!(read.properties[&roles], FieldValue::Empty);
    for _ in 0..2 {
        c.upsert_batch("Opportunity", &by, &[set(one.clone())])
            .await
            .unwrap();
    }
    let rows = c
        .query(
            &format!(
                "SELECT Id FROM OpportunityContactRole WHERE OpportunityId = '{}'",
                opp.as_str()
            ),
            false,
            None,
        )
        .await
        .unwrap();
    assert_eq!(rows.records.len(), 1);
    // A contact that is not one: that record fails, with the cause.
    let out = c
        .upsert_batch(
            "Opportunity",
            &by,
            &[set(FieldValue::text("001000000000001AAA"))],
        )
        .await
        .unwrap();
    assert!(
        matches!(&out[0], RecordOutcome::Failed { reason, .. } if reason.contains("OpportunityContactRole")),
        "{out:?}"
    );
    let described = c.describe("Opportunity").await.unwrap();
    assert!(
        described
            .iter()
            .any(|f| f.name == roles.as_str() && f.writable)
    );
}
