//! HubSpot webhook payloads: a JSON array of events (fewer than 100 per POST), parsed tolerantly —
//! unknown subscription types and fields are kept, never fatal.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a subscription reports, split from `contact.propertyChange` and friends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionType {
    /// `contact`, `company`, `deal`, `object`, ...
    pub object: String,
    /// `creation`, `deletion`, `propertyChange`, `merge`, `restore`, `associationChange`, ...
    pub action: String,
}

impl SubscriptionType {
    pub fn parse(s: &str) -> Self {
        match s.split_once('.') {
            Some((o, a)) => Self {
                object: o.to_owned(),
                action: a.to_owned(),
            },
            None => Self {
                object: s.to_owned(),
                action: String::new(),
            },
        }
    }

    /// The CRM object collection the event is about (`contacts`), when it is a standard one.
    pub fn collection(&self) -> Option<&'static str> {
        match self.object.as_str() {
            "contact" => Some("contacts"),
            "company" => Some("companies"),
            "deal" => Some("deals"),
            _ => None,
        }
    }
}

/// One event. `eventId` is not guaranteed unique; deliveries can repeat and arrive out of order
/// (order by `occurredAt`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HubSpotEvent {
    #[serde(default)]
    pub event_id: Option<u64>,
    #[serde(default)]
    pub subscription_id: Option<u64>,
    #[serde(default)]
    pub portal_id: Option<u64>,
    #[serde(default)]
    pub app_id: Option<u64>,
    /// Unix milliseconds.
    pub occurred_at: i64,
    pub subscription_type: String,
    #[serde(default)]
    pub attempt_number: u32,
    #[serde(default)]
    pub object_id: Option<u64>,
    #[serde(default)]
    pub property_name: Option<String>,
    #[serde(default)]
    pub property_value: Option<String>,
    #[serde(default)]
    pub change_source: Option<String>,
    #[serde(default)]
    pub change_flag: Option<String>,
    // Merges.
    #[serde(default)]
    pub primary_object_id: Option<u64>,
    #[serde(default)]
    pub merged_object_ids: Vec<u64>,
    #[serde(default)]
    pub new_object_id: Option<u64>,
    // Association changes.
    #[serde(default)]
    pub association_type: Option<String>,
    #[serde(default)]
    pub from_object_id: Option<u64>,
    #[serde(default)]
    pub to_object_id: Option<u64>,
    #[serde(default)]
    pub association_removed: Option<bool>,
    /// Anything this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl HubSpotEvent {
    pub fn kind(&self) -> SubscriptionType {
        SubscriptionType::parse(&self.subscription_type)
    }
}

/// Why a body is not a HubSpot event array.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("HubSpot sends an array of events; got {0}")]
    NotAnArray(&'static str),
    #[error("event {index} is malformed: {reason}")]
    BadEvent { index: usize, reason: String },
}

/// Parses a delivery body into events, oldest first.
pub fn parse_events(body: &[u8]) -> Result<Vec<HubSpotEvent>, PayloadError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    let Value::Array(items) = v else {
        return Err(PayloadError::NotAnArray(match v {
            Value::Object(_) => "an object",
            Value::Null => "null",
            _ => "a scalar",
        }));
    };
    let mut events = items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            serde_json::from_value::<HubSpotEvent>(item).map_err(|e| PayloadError::BadEvent {
                index,
                reason: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    events.sort_by_key(|e| e.occurred_at);
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_payloads_parse() {
        let body = br#"[
          {"eventId":2,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600500,"subscriptionType":"contact.propertyChange",
           "attemptNumber":1,"objectId":123,"propertyName":"email","propertyValue":"a@b.com","changeSource":"CRM","appId":54321},
          {"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation",
           "attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321},
          {"occurredAt":1564113601000,"subscriptionType":"contact.merge","primaryObjectId":123,"mergedObjectIds":[456],"newObjectId":123,"numberOfPropertiesMoved":3},
          {"occurredAt":1564113602000,"subscriptionType":"object.creation","objectTypeId":"0-3","objectId":9}
        ]"#;
        let events = parse_events(body).unwrap();
        assert_eq!(
            events
                .iter()
                .map(|e| e.subscription_type.as_str())
                .collect::<Vec<_>>(),
            [
                "contact.creation",
                "contact.propertyChange",
                "contact.merge",
                "object.creation"
            ],
            "ordered by occurredAt"
        );
        assert_eq!(events[1].property_value.as_deref(), Some("a@b.com"));
        assert_eq!(events[0].kind().collection(), Some("contacts"));
        assert_eq!(events[2].merged_object_ids, vec![456]);
        assert_eq!(
            events[2].extra["numberOfPropertiesMoved"], 3,
            "unknown fields are kept"
        );
        assert_eq!(
            events[3].kind(),
            SubscriptionType {
                object: "object".into(),
                action: "creation".into()
            }
        );
        assert_eq!(events[3].kind().collection(), None);
    }

    #[test]
    fn malformed_bodies_are_typed_errors() {
        assert!(matches!(
            parse_events(b"not json"),
            Err(PayloadError::NotJson(_))
        ));
        assert!(matches!(
            parse_events(br#"{"objectId":1}"#),
            Err(PayloadError::NotAnArray("an object"))
        ));
        assert!(matches!(
            parse_events(br#"[{"objectId":1}]"#),
            Err(PayloadError::BadEvent { index: 0, .. })
        ));
        assert!(parse_events(b"[]").unwrap().is_empty());
    }
}
