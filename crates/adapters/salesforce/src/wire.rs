//! Salesforce's JSON and its conversions: field values, records, and the two error shapes
//! (single resources: an array of `{message, errorCode, fields}`; collection items:
//! `{statusCode, message, fields}` inside `errors`).

use std::collections::BTreeMap;

use domain::field::FieldValue;
use domain::ids::ExternalId;
use domain::mapping::ExternalProperty;
use ports::crm::ExternalRecord;
use ports::error::{PortError, PortResult};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A value as Salesforce takes it: numbers as numbers, booleans as booleans, multiselects joined
/// with `;`, empty as `null` (which clears the field).
pub fn to_salesforce(v: &FieldValue) -> Value {
    match v.clone().normalized() {
        FieldValue::Empty => Value::Null,
        FieldValue::Bool(b) => Value::Bool(b),
        FieldValue::Number(n) => n
            .to_string()
            .parse::<serde_json::Number>()
            .map(Value::Number)
            .unwrap_or_else(|_| Value::String(n.to_string())),
        FieldValue::Text(s) => Value::String(s),
        FieldValue::List(items) => Value::String(items.join(";")),
    }
}

/// A value as Salesforce returns it.
pub fn from_salesforce(v: &Value) -> FieldValue {
    match v {
        Value::Null => FieldValue::Empty,
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Number(n) => n
            .to_string()
            .parse()
            .map(FieldValue::Number)
            .unwrap_or_else(|_| FieldValue::text(n.to_string())),
        Value::String(s) => FieldValue::text(rfc3339_if_datetime(s).unwrap_or_else(|| s.clone())),
        other => FieldValue::text(other.to_string()),
    }
}

/// A datetime as the REST API writes it (`2027-04-01T09:00:00.000+0000`, exactly that shape) in
/// RFC 3339 (`2027-04-01T09:00:00Z`), the form the other sides write and compare; `None` for
/// any other text.
fn rfc3339_if_datetime(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let shaped = b.len() == 28
        && b[10] == b'T'
        && b[19] == b'.'
        && matches!(b[23], b'+' | b'-')
        && b[24..].iter().all(u8::is_ascii_digit);
    if !shaped {
        return None;
    }
    parse_time(s)?
        .to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .ok()
}

/// Parses `2026-01-01T00:00:00.000+0000` and RFC 3339.
pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let n = s.len();
    if n > 5 && matches!(&s[n - 5..n - 4], "+" | "-") {
        return OffsetDateTime::parse(&format!("{}:{}", &s[..n - 2], &s[n - 2..]), &Rfc3339).ok();
    }
    None
}

/// An RFC 3339 UTC datetime, the form SOQL literals and getUpdated windows take.
pub fn soql_time(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

const SYSTEM: &[&str] = &[
    "attributes",
    "Id",
    "IsDeleted",
    "SystemModstamp",
    "LastModifiedDate",
    "CreatedDate",
    "CreatedById",
    "LastModifiedById",
    "MasterRecordId",
];

/// A record of a read or a query.
pub fn record(v: &Value) -> PortResult<ExternalRecord> {
    let obj = v.as_object().ok_or_else(|| {
        PortError::backend("Salesforce", format!("a record is not an object: {v}"))
    })?;
    let id = obj
        .get("Id")
        .and_then(Value::as_str)
        .ok_or_else(|| PortError::backend("Salesforce", "a record has no Id"))?;
    let mut properties = BTreeMap::new();
    for (k, v) in obj {
        if SYSTEM.contains(&k.as_str()) {
            continue;
        }
        properties.insert(ExternalProperty::parse(k)?, from_salesforce(v));
    }
    let updated_at = obj
        .get("SystemModstamp")
        .or_else(|| obj.get("LastModifiedDate"))
        .and_then(Value::as_str)
        .and_then(parse_time);
    Ok(ExternalRecord {
        id: ExternalId::parse(id)?,
        properties,
        changed_at: BTreeMap::new(),
        updated_at,
        archived: obj
            .get("IsDeleted")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        merged_into: match obj.get("MasterRecordId").and_then(Value::as_str) {
            Some(m) if !m.is_empty() => Some(ExternalId::parse(m)?),
            _ => None,
        },
    })
}

/// One Salesforce error, from either shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfError {
    pub code: String,
    pub message: String,
    pub fields: Vec<String>,
}

impl SfError {
    /// The first error of a single-resource body (`[{errorCode, message}]`) or of a collection
    /// item (`{errors: [{statusCode, message}]}`), or of an OAuth body (`{error,
    /// error_description}`).
    pub fn decode(body: &Value) -> Option<SfError> {
        let one = match body {
            Value::Array(items) => items.first()?,
            Value::Object(o) if o.contains_key("errors") => o.get("errors")?.as_array()?.first()?,
            Value::Object(o) if o.contains_key("error") => {
                return Some(SfError {
                    code: o.get("error")?.as_str()?.to_owned(),
                    message: o
                        .get("error_description")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    fields: Vec::new(),
                });
            }
            _ => return None,
        };
        let code = one
            .get("errorCode")
            .or_else(|| one.get("statusCode"))?
            .as_str()?
            .to_owned();
        Some(SfError {
            code,
            message: one["message"].as_str().unwrap_or_default().to_owned(),
            fields: one["fields"]
                .as_array()
                .map(|f| {
                    f.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// Whether the same write may succeed later (row locks, and the server's own failures).
    pub fn retryable(&self) -> bool {
        matches!(
            self.code.as_str(),
            "UNABLE_TO_LOCK_ROW" | "QUERY_TIMEOUT" | "SERVER_UNAVAILABLE" | "UNKNOWN_EXCEPTION"
        )
    }
}

impl std::fmt::Display for SfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if !self.fields.is_empty() {
            write!(f, " ({})", self.fields.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn both_error_shapes_decode_to_the_same_type() {
        let single = json!([{"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED", "fields": []}]);
        let item = json!({"success": false, "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access", "fields": ["Id"]}]});
        let oauth =
            json!({"error": "invalid_grant", "error_description": "expired authorization code"});
        assert_eq!(SfError::decode(&single).unwrap().code, "ENTITY_IS_DELETED");
        let locked = SfError::decode(&item).unwrap();
        assert_eq!(
            (locked.code.as_str(), locked.fields.as_slice()),
            ("UNABLE_TO_LOCK_ROW", &["Id".to_owned()][..])
        );
        assert!(locked.retryable());
        assert_eq!(SfError::decode(&oauth).unwrap().code, "invalid_grant");
        assert_eq!(SfError::decode(&json!("Bad Gateway")), None);
        assert_eq!(SfError::decode(&json!([])), None);
    }

    #[test]
    fn values_convert_both_ways() {
        let table = [
            (FieldValue::Empty, Value::Null),
            (FieldValue::Bool(true), json!(true)),
            (FieldValue::Number("12.5".parse().unwrap()), json!(12.5)),
            (FieldValue::text("Ada"), json!("Ada")),
        ];
        for (field, wire) in table {
            assert_eq!(to_salesforce(&field), wire);
            assert_eq!(from_salesforce(&wire), field);
        }
        assert_eq!(
            to_salesforce(&FieldValue::List(vec!["b".into(), "a".into()])),
            json!("a;b")
        );
    }

    #[test]
    fn a_datetime_reads_as_rfc3339_and_other_text_as_it_is() {
        for (read, want) in [
            ("2027-04-01T09:00:00.000+0000", "2027-04-01T09:00:00Z"),
            ("2027-04-01T11:00:00.500+0200", "2027-04-01T09:00:00.5Z"),
            ("2027-04-01", "2027-04-01"),
            ("2027-04-01T09:00:00Z", "2027-04-01T09:00:00Z"),
            (
                "Meet at 2027-04-01T09:00:00.000+0000",
                "Meet at 2027-04-01T09:00:00.000+0000",
            ),
        ] {
            assert_eq!(
                from_salesforce(&json!(read)),
                FieldValue::text(want),
                "{read}"
            );
        }
    }

    #[test]
    fn both_datetime_forms_parse() {
        let a = parse_time("2026-01-02T03:04:05.000+0000").unwrap();
        let b = parse_time("2026-01-02T03:04:05Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(soql_time(a), "2026-01-02T03:04:05Z");
    }
}
