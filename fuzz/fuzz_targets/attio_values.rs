//! Attio's attribute values as read (any JSON into `AttributeValue`) and the write forms built
//! from plain JSON for every attribute type.
#![no_main]
use domain::value::{AttributeType, AttributeValue};
use domain::write::WriteValue;
use libfuzzer_sys::fuzz_target;

const TYPES: &[&str] = &[
    "text",
    "number",
    "checkbox",
    "currency",
    "date",
    "timestamp",
    "rating",
    "status",
    "select",
    "record-reference",
    "actor-reference",
    "location",
    "domain",
    "email-address",
    "phone-number",
    "interaction",
    "personal-name",
    "something-new",
];

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = serde_json::from_value::<AttributeValue>(json.clone());
    let _ = serde_json::from_value::<Vec<AttributeValue>>(json.clone());
    for t in TYPES {
        let Ok(kind) = serde_json::from_value::<AttributeType>(serde_json::json!(t)) else {
            continue;
        };
        if let Ok(w) = WriteValue::from_json(&kind, &json) {
            let _ = w.to_json();
        }
    }
});
