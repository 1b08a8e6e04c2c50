use domain::DomainError;
use domain::value::AttributeType as T;
use domain::write::{RecordWrite, WriteValue};
use serde_json::{Value, json};

const M: &str = "50cf242c-7fa3-4cad-87d0-75b1af71c57b";
const R: &str = "891dcbfc-9141-415d-9b2a-2238a6cc012d";

/// (type, accepted input, canonical object form). Every documented form of §4 of the reference.
fn table() -> Vec<(T, Value, Value)> {
    vec![
        (T::Text, json!("hello"), json!({"value": "hello"})),
        (
            T::Text,
            json!({"value": "hello"}),
            json!({"value": "hello"}),
        ),
        (T::Number, json!(2.5), json!({"value": 2.5})),
        (T::Number, json!({"value": 42}), json!({"value": 42})),
        (T::Checkbox, json!(true), json!({"value": true})),
        (T::Checkbox, json!("false"), json!({"value": false})),
        (T::Checkbox, json!([true]), json!({"value": true})),
        (T::Checkbox, json!({"value": true}), json!({"value": true})),
        (T::Currency, json!(4.99), json!({"currency_value": 4.99})),
        (T::Currency, json!("4.99"), json!({"currency_value": 4.99})),
        (
            T::Currency,
            json!({"currency_value": 99}),
            json!({"currency_value": 99}),
        ),
        (T::Date, json!("2023"), json!({"value": "2023-01-01"})),
        (T::Date, json!("2023-05"), json!({"value": "2023-05-01"})),
        (
            T::Date,
            json!({"value": "2023-05-17"}),
            json!({"value": "2023-05-17"}),
        ),
        (
            T::Date,
            json!("2023-05-17T23:30:00-02:00"),
            json!({"value": "2023-05-18"}),
        ),
        (
            T::Timestamp,
            json!("2023-01-02T13:00:00Z"),
            json!({"value": "2023-01-02T13:00:00.000000000Z"}),
        ),
        (
            T::Timestamp,
            json!("2023-01-02T13:00:00"),
            json!({"value": "2023-01-02T13:00:00.000000000Z"}),
        ),
        (
            T::Timestamp,
            json!({"value": "2023-01-02T14:00:00.5+01:00"}),
            json!({"value": "2023-01-02T13:00:00.500000000Z"}),
        ),
        (
            T::Timestamp,
            json!("2023-01-02"),
            json!({"value": "2023-01-02T00:00:00.000000000Z"}),
        ),
        (T::Rating, json!(4), json!({"value": 4})),
        (T::Rating, json!({"value": 0}), json!({"value": 0})),
        (
            T::Status,
            json!("In Progress"),
            json!({"status": "In Progress"}),
        ),
        (
            T::Status,
            json!({"status": "11f07f01-c10f-4e05-a522-33e050bc52ee"}),
            json!({"status": "11f07f01-c10f-4e05-a522-33e050bc52ee"}),
        ),
        (T::Select, json!("Medium"), json!({"option": "Medium"})),
        (
            T::Select,
            json!({"option": "Medium"}),
            json!({"option": "Medium"}),
        ),
        (
            T::RecordReference,
            json!({"target_object": "companies", "target_record_id": R}),
            json!({"target_object": "companies", "target_record_id": R}),
        ),
        (
            T::RecordReference,
            json!({"target_object": "companies", "domains": [{"domain": "x.com"}]}),
            json!({"target_object": "companies", "domains": [{"domain": "x.com"}]}),
        ),
        (T::RecordReference, json!("attio.com"), json!("attio.com")),
        (
            T::ActorReference,
            json!("alice@attio.com"),
            json!({"workspace_member_email_address": "alice@attio.com"}),
        ),
        (
            T::ActorReference,
            json!({"workspace_member_email_address": "alice@attio.com"}),
            json!({"workspace_member_email_address": "alice@attio.com"}),
        ),
        (
            T::ActorReference,
            json!({"referenced_actor_type": "workspace-member", "referenced_actor_id": M}),
            json!({"referenced_actor_type": "workspace-member", "referenced_actor_id": M}),
        ),
        (
            T::Location,
            json!("1 Infinite Loop, Cupertino"),
            json!("1 Infinite Loop, Cupertino"),
        ),
        (
            T::Location,
            json!({"line_1": "1 Infinite Loop", "line_2": null, "line_3": null, "line_4": null, "locality": "Cupertino", "region": "CA", "postcode": "95014", "country_code": "US", "latitude": null, "longitude": null}),
            json!({"line_1": "1 Infinite Loop", "line_2": null, "line_3": null, "line_4": null, "locality": "Cupertino", "region": "CA", "postcode": "95014", "country_code": "US", "latitude": null, "longitude": null}),
        ),
        (
            T::Domain,
            json!("app.attio.com"),
            json!({"domain": "app.attio.com"}),
        ),
        (
            T::Domain,
            json!({"domain": "attio.com"}),
            json!({"domain": "attio.com"}),
        ),
        (
            T::EmailAddress,
            json!("alice@attio.com"),
            json!({"email_address": "alice@attio.com"}),
        ),
        (
            T::EmailAddress,
            json!({"email_address": "alice@attio.com"}),
            json!({"email_address": "alice@attio.com"}),
        ),
        (
            T::PhoneNumber,
            json!("+15558675309"),
            json!({"original_phone_number": "+15558675309", "country_code": null}),
        ),
        (
            T::PhoneNumber,
            json!({"original_phone_number": "5558675309", "country_code": "US"}),
            json!({"original_phone_number": "5558675309", "country_code": "US"}),
        ),
        (
            T::PersonalName,
            json!("Lovelace, Ada"),
            json!({"first_name": "Ada", "last_name": "Lovelace", "full_name": "Ada Lovelace"}),
        ),
        (
            T::PersonalName,
            json!("Ada"),
            json!({"first_name": "Ada", "last_name": "", "full_name": "Ada"}),
        ),
        (
            T::PersonalName,
            json!({"first_name": "Ada", "last_name": "Lovelace", "full_name": "Ada Lovelace"}),
            json!({"first_name": "Ada", "last_name": "Lovelace", "full_name": "Ada Lovelace"}),
        ),
    ]
}

#[test]
fn every_documented_write_form_is_accepted_and_canonicalised() {
    let mut types = std::collections::BTreeSet::new();
    for (t, input, canonical) in table() {
        let v = WriteValue::from_json(&t, &input).unwrap_or_else(|e| panic!("{t} {input}: {e}"));
        assert_eq!(v.attribute_type(), t);
        assert_eq!(v.to_json(), canonical, "{t} {input}");
        // The canonical form reads back to the same value.
        assert_eq!(
            WriteValue::from_json(&t, &canonical).unwrap(),
            v,
            "{t} {canonical}"
        );
        types.insert(t.to_string());
    }
    // 16 writable types; interaction is read-only.
    assert_eq!(types.len(), 16);
}

#[test]
fn refused_inputs_are_typed_errors() {
    let cases = [
        (T::Text, json!(3)),
        (T::Number, json!("3")),
        (T::Checkbox, json!("yes")),
        (T::Currency, json!("a lot")),
        (T::Date, json!("2023-13-01")),
        (T::Date, json!("yesterday")),
        (T::Timestamp, json!("13:00")),
        (T::Rating, json!(6)),
        (T::Rating, json!(2.5)),
        (T::Status, json!(1)),
        (T::RecordReference, json!({"target_record_id": R})),
        (T::RecordReference, json!({"target_object": "companies"})),
        (
            T::ActorReference,
            json!({"referenced_actor_type": "api-token", "referenced_actor_id": M}),
        ),
        (T::ActorReference, json!("not-an-email")),
        (T::Location, json!({"line_1": "x"})),
        (T::Domain, json!("not a domain")),
        (T::EmailAddress, json!("alice@")),
        (T::EmailAddress, json!("alice at attio.com")),
        (T::PhoneNumber, json!({"country_code": "US"})),
        (T::PersonalName, json!({"first_name": "Ada"})),
    ];
    for (t, input) in cases {
        let err = WriteValue::from_json(&t, &input).expect_err(&format!("{t} {input} must fail"));
        assert!(
            matches!(
                err,
                DomainError::InvalidValue { .. }
                    | DomainError::InvalidTimestamp { .. }
                    | DomainError::InvalidId { .. }
            ),
            "{t} {input}: {err:?}"
        );
    }
    assert!(matches!(
        WriteValue::from_json(&T::Interaction, &json!({})),
        Err(DomainError::NotWritable { .. })
    ));
    assert!(matches!(
        WriteValue::from_json(&T::Other("emoji".into()), &json!("x")),
        Err(DomainError::NotWritable { .. })
    ));
}

#[test]
fn multiselect_inputs_and_the_body_envelope() {
    let emails = WriteValue::list_from_json(
        &T::EmailAddress,
        &json!(["a@x.com", {"email_address": "b@x.com"}]),
    )
    .unwrap();
    assert_eq!(emails.len(), 2);
    let one = WriteValue::list_from_json(&T::Checkbox, &json!([true])).unwrap();
    assert_eq!(one, vec![WriteValue::Checkbox(true)]);
    let body = RecordWrite::new()
        .set("email_addresses".parse().unwrap(), emails)
        .set(
            "name".parse().unwrap(),
            vec![WriteValue::personal_name("Ada", "Lovelace")],
        )
        .to_body();
    assert_eq!(
        body,
        json!({"data": {"values": {
            "email_addresses": [{"email_address": "a@x.com"}, {"email_address": "b@x.com"}],
            "name": [{"first_name": "Ada", "last_name": "Lovelace", "full_name": "Ada Lovelace"}]
        }}})
    );
}
