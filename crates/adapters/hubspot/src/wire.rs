//! HubSpot's JSON and its conversions. Every property value is a string; an empty string clears.

use std::collections::BTreeMap;

use domain::field::FieldValue;
use domain::ids::ExternalId;
use domain::mapping::ExternalProperty;
use ports::crm::ExternalRecord;
use ports::error::{PortError, PortResult};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A neutral value as HubSpot's string form: lists are `;`-joined, `Empty` is `""`.
pub fn to_hubspot(v: &FieldValue) -> String {
    match v.clone().normalized() {
        FieldValue::Empty => String::new(),
        FieldValue::Bool(b) => b.to_string(),
        FieldValue::Number(n) => n.to_string(),
        FieldValue::Text(s) => s,
        FieldValue::List(items) => items.join(";"),
    }
}

/// A HubSpot string as a neutral value. Types are the mapping's business; here, text.
pub fn from_hubspot(v: Option<&str>) -> FieldValue {
    v.map(FieldValue::text).unwrap_or_default()
}

#[derive(Debug, Deserialize)]
pub struct HistoryEntry {
    pub timestamp: String,
}

/// `SimplePublicObject` (with history when asked).
#[derive(Debug, Deserialize)]
pub struct HsObject {
    pub id: String,
    #[serde(default)]
    pub properties: BTreeMap<String, Option<String>>,
    #[serde(default, rename = "propertiesWithHistory")]
    pub history: BTreeMap<String, Vec<HistoryEntry>>,
    #[serde(rename = "updatedAt")]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub archived: bool,
    /// When it was archived (reads of the archived list).
    #[serde(default, rename = "archivedAt")]
    pub archived_at: Option<String>,
    /// Batch upserts: created (true) or updated.
    #[serde(default)]
    pub new: Option<bool>,
    /// Reads with `?associations=…`: the associated records by object.
    #[serde(default)]
    pub associations: crate::references::Inline,
}

fn time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

impl HsObject {
    pub fn into_record(self, wanted: &[ExternalProperty]) -> PortResult<ExternalRecord> {
        let id = ExternalId::parse(&self.id)
            .map_err(|e| PortError::backend("HubSpot object id", e.to_string()))?;
        let properties = wanted
            .iter()
            .map(|p| {
                (
                    p.clone(),
                    from_hubspot(self.properties.get(p.as_str()).and_then(|v| v.as_deref())),
                )
            })
            .collect();
        let changed_at = wanted
            .iter()
            .filter_map(|p| {
                let newest = self
                    .history
                    .get(p.as_str())?
                    .iter()
                    .filter_map(|h| time(&h.timestamp))
                    .max()?;
                Some((p.clone(), newest))
            })
            .collect();
        Ok(ExternalRecord {
            id,
            properties,
            changed_at,
            updated_at: self.updated_at.as_deref().and_then(time),
            archived: self.archived,
            merged_into: None,
        })
    }
}

/// A batch response (200 or 207).
#[derive(Debug, Deserialize)]
pub struct Batch {
    #[serde(default)]
    pub results: Vec<HsObject>,
    #[serde(default)]
    pub errors: Vec<Value>,
}

pub fn decode<T: for<'de> Deserialize<'de>>(v: Value, what: &str) -> PortResult<T> {
    serde_json::from_value(v)
        .map_err(|e| PortError::backend(format!("HubSpot {what} (unexpected shape)"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_travel_as_strings() {
        let cases = [
            (FieldValue::Empty, ""),
            (FieldValue::Bool(true), "true"),
            (FieldValue::Number("17.50".parse().unwrap()), "17.5"),
            (FieldValue::text("Ada"), "Ada"),
            (FieldValue::List(vec!["b".into(), "a".into()]), "a;b"),
        ];
        for (v, s) in cases {
            assert_eq!(to_hubspot(&v), s, "{v:?}");
        }
        assert_eq!(from_hubspot(Some("")), FieldValue::Empty);
        assert_eq!(from_hubspot(None), FieldValue::Empty);
        assert_eq!(from_hubspot(Some("x")), FieldValue::text("x"));
    }
}
