use std::collections::BTreeSet;

use domain::webhook::{EventSubject, EventType, WebhookDelivery};
use serde_json::{Value, json};

use crate::fixture;

#[test]
fn every_event_type_decodes_typed_and_round_trips() {
    let deliveries = fixture("webhook-deliveries.json");
    let mut types = BTreeSet::new();
    for raw in deliveries.as_array().unwrap() {
        let body = serde_json::to_vec(raw).unwrap();
        let d = WebhookDelivery::parse(&body).unwrap();
        for e in &d.events {
            assert!(e.event_type.is_known(), "{:?}", e.event_type);
            assert!(
                !matches!(e.subject, EventSubject::Unknown(_)),
                "{} did not decode its id: {e:?}",
                e.event_type
            );
            assert!(e.workspace_id().is_some());
            assert!(e.id_extra.is_empty() && e.extra.is_empty(), "{e:?}");
            types.insert(e.event_type.to_string());
        }
        assert_eq!(&serde_json::to_value(&d).unwrap(), raw);
    }
    let known: BTreeSet<String> = EventType::KNOWN.iter().map(ToString::to_string).collect();
    assert_eq!(types, known, "the fixture must cover every event type");
}

#[test]
fn record_updated_carries_the_attribute_and_merged_the_duplicate() {
    let d = fixture("webhook-deliveries.json");
    let find = |t: &str| {
        d.as_array()
            .unwrap()
            .iter()
            .find(|x| x["events"][0]["event_type"] == t)
            .map(|x| WebhookDelivery::parse(&serde_json::to_vec(x).unwrap()).unwrap())
            .unwrap()
    };
    match &find("record.updated").events[0].subject {
        EventSubject::Record(r) => assert!(r.attribute_id.is_some()),
        other => panic!("{other:?}"),
    }
    match &find("record.merged").events[0].subject {
        EventSubject::RecordMerged(m) => {
            assert_eq!(
                m.duplicate_record_id.to_string(),
                "891dcbfc-9141-415d-9b2a-2238a6cc012d"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_event_types_and_odd_ids_are_kept_verbatim() {
    let cases = [
        json!({"webhook_id":"23e42eaf-323a-41da-b5bb-fd67eebda553","events":[
            {"event_type":"record.teleported","id":{"workspace_id":"x","where":"mars"},"actor":{"type":"system","id":null},"zap":1}]}),
        // A known type whose id lacks record_id.
        json!({"webhook_id":"23e42eaf-323a-41da-b5bb-fd67eebda553","events":[
            {"event_type":"record.created","id":{"workspace_id":"14beef7a-99f7-4534-a87e-70b564330a4c"},"actor":{"type":"app","id":"a"}}]}),
        // An actor we cannot read, and an extra key inside a well-formed id.
        json!({"webhook_id":"23e42eaf-323a-41da-b5bb-fd67eebda553","events":[
            {"event_type":"task.created","id":{"workspace_id":"14beef7a-99f7-4534-a87e-70b564330a4c","task_id":"649e34f4-c39a-4f4d-99ef-48a36bef8f04","shard":7},"actor":"nobody"}]}),
    ];
    for raw in cases {
        let d = WebhookDelivery::parse(&serde_json::to_vec(&raw).unwrap()).unwrap();
        assert_eq!(serde_json::to_value(&d).unwrap(), raw);
    }
    let d = WebhookDelivery::parse(br#"{"webhook_id":"23e42eaf-323a-41da-b5bb-fd67eebda553","events":[{"event_type":"record.teleported","id":{}}]}"#).unwrap();
    assert!(matches!(d.events[0].subject, EventSubject::Unknown(_)));
    assert_eq!(
        d.events[0].event_type,
        EventType::Other("record.teleported".into())
    );
}

#[test]
fn malformed_deliveries_are_errors() {
    for bad in [
        &b"not json"[..],
        br#"{"events":[]}"#,
        br#"{"webhook_id":"nope","events":[]}"#,
        br#"{"webhook_id":"23e42eaf-323a-41da-b5bb-fd67eebda553","events":[{"id":{}}]}"#,
        br#"{"webhook_id":"23e42eaf-323a-41da-b5bb-fd67eebda553","events":[7]}"#,
    ] {
        assert!(
            WebhookDelivery::parse(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    let _: Value = serde_json::from_slice(br#"{}"#).unwrap();
}
