use domain::record::{ListEntry, Record};
use domain::schema::{Attribute, List, Note, Object, Task, Webhook, WorkspaceMember};
use domain::value::{Amount, AttributeType, ValueData};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::fixture;

/// Decodes `{"data": T}` and checks that re-encoding gives back exactly the same JSON.
fn round_trip<T: DeserializeOwned + Serialize>(name: &str) -> T {
    let original = fixture(name);
    let data = original["data"].clone();
    let typed: T = serde_json::from_value(data.clone())
        .unwrap_or_else(|e| panic!("{name} does not decode: {e}"));
    let again = serde_json::to_value(&typed).unwrap();
    assert_eq!(again, data, "{name} does not re-encode losslessly");
    typed
}

#[test]
fn all_17_attribute_types_decode_typed_and_round_trip() {
    let record: Record = round_trip("record-all-types.openapi.json");
    let mut seen = std::collections::BTreeSet::new();
    for (slug, values) in &record.values {
        for v in values {
            assert!(
                !matches!(v.data, ValueData::Unknown(_)),
                "{slug} decoded as unknown: {v:?}"
            );
            seen.insert(v.attribute_type().to_string());
        }
    }
    let all: std::collections::BTreeSet<String> = AttributeType::KNOWN
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(all.len(), 17);
    assert_eq!(seen, all, "the fixture must cover every attribute type");
}

#[test]
fn schema_and_activity_examples_round_trip() {
    let _: ListEntry = round_trip("lists_list_entries_entry_id.openapi.json");
    let _: Note = round_trip("notes_note_id.openapi.json");
    let _: Task = round_trip("tasks_task_id.openapi.json");
    let w: Webhook = round_trip("webhooks-create.openapi.json");
    assert!(w.secret.is_some(), "the create response carries the secret");
    let _: List = round_trip("lists_list.openapi.json");
    let _: Object = round_trip("objects_object.openapi.json");
    let a: Attribute = round_trip("target_identifier_attributes_attribute.openapi.json");
    assert_eq!(a.attribute_type, AttributeType::RecordReference);
    let _: WorkspaceMember = round_trip("workspace_members_workspace_member_id.openapi.json");
}

#[test]
fn live_quirks_are_tolerated_and_kept() {
    let record: Record = round_trip("record-live-quirks.json");
    let get = |slug: &str| {
        record
            .values
            .iter()
            .find(|(k, _)| k.as_str() == slug)
            .map(|(_, v)| &v[0])
            .unwrap_or_else(|| panic!("{slug} missing"))
    };
    match &get("deal_value").data {
        ValueData::Currency(c) => assert_eq!(c.currency_value, Amount::Text("499.00".into())),
        other => panic!("currency as a string must decode: {other:?}"),
    }
    match &get("phone_numbers").data {
        ValueData::PhoneNumber(p) => assert!(p.extra.contains_key("normalized_phone_number")),
        other => panic!("{other:?}"),
    }
    match &get("signed_at").data {
        ValueData::Date(d) => {
            assert_eq!(d.date().map(|d| d.to_string()), Some("2023-01-01".into()))
        }
        other => panic!("a datetime in a date value must decode: {other:?}"),
    }
    match &get("mood").data {
        ValueData::Unknown(u) => assert_eq!(u.attribute_type.as_deref(), Some("emoji")),
        other => panic!("an unknown type must be kept: {other:?}"),
    }
    assert!(matches!(get("rating_bad").data, ValueData::Unknown(_)));
    assert!(matches!(get("weird").data, ValueData::Unknown(_)));
    match &get("future").data {
        ValueData::Text(t) => assert!(t.extra.contains_key("new_field")),
        other => panic!("{other:?}"),
    }
    let actor = get("future").created_by_actor.clone().unwrap();
    assert_eq!(actor.actor_type.unwrap().as_str(), "robot");
    assert!(record.extra.contains_key("new_top_level_field"));
}

#[test]
fn null_values_read_as_empty() {
    let raw = fixture("record-null-values.json");
    let record: Record = serde_json::from_value(raw["data"].clone()).unwrap();
    assert!(record.values.is_empty());
    // The one documented normalisation: `null` values come back as `{}`.
    let again = serde_json::to_value(&record).unwrap();
    assert_eq!(again["values"], Value::Object(Default::default()));
}

#[test]
fn non_object_values_are_clear_errors() {
    let err = serde_json::from_value::<domain::value::AttributeValue>(Value::from(3)).unwrap_err();
    assert!(err.to_string().contains("must be a JSON object"), "{err}");
}
