//! Attio attribute values as Attio returns them: the envelope (`active_from`, `active_until`,
//! `created_by_actor`) around one of the 17 typed shapes.
//!
//! Decoding is tolerant: an unknown `attribute_type`, or a known one whose fields do not fit,
//! becomes [`ValueData::Unknown`] holding the fields verbatim; unknown fields of a known type are
//! kept in its `extra` map. Re-encoding is lossless for anything Attio sends.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::actor::{Actor, ActorType};
use crate::ids::{AttributeId, ListId, ObjectId, OptionId, RecordId, StatusId, WorkspaceId};
use crate::macros::open_enum;
use crate::timestamp::Timestamp;

/// Fields this version does not know, kept verbatim.
pub type Extra = Map<String, Value>;

open_enum! {
    /// The 17 attribute types of Attio's API.
    pub enum AttributeType {
        Text = "text",
        Number = "number",
        Checkbox = "checkbox",
        Currency = "currency",
        Date = "date",
        Timestamp = "timestamp",
        Rating = "rating",
        Status = "status",
        Select = "select",
        RecordReference = "record-reference",
        ActorReference = "actor-reference",
        Location = "location",
        Domain = "domain",
        EmailAddress = "email-address",
        PhoneNumber = "phone-number",
        Interaction = "interaction",
        PersonalName = "personal-name",
    }
}

impl AttributeType {
    /// Whether values of this type can be written through the API.
    pub fn is_writable(&self) -> bool {
        !matches!(self, AttributeType::Interaction | AttributeType::Other(_))
    }
}

/// One attribute value with its envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeValue {
    /// When the value became active. Absent only in payloads without an envelope.
    pub active_from: Option<Timestamp>,
    /// When the value stopped being active; `None` for the current value.
    pub active_until: Option<Timestamp>,
    /// Who wrote the value.
    pub created_by_actor: Option<Actor>,
    /// The typed content.
    pub data: ValueData,
}

impl AttributeValue {
    /// A current value with an envelope, as the simulator or tests build them.
    pub fn new(data: ValueData, active_from: Timestamp, actor: Actor) -> Self {
        Self {
            active_from: Some(active_from),
            active_until: None,
            created_by_actor: Some(actor),
            data,
        }
    }

    pub fn attribute_type(&self) -> AttributeType {
        self.data.attribute_type()
    }

    /// A value without `active_until` is the current one.
    pub fn is_active(&self) -> bool {
        self.active_until.is_none()
    }

    fn from_map(mut map: Extra) -> Self {
        let original = map.clone();
        let envelope = take_envelope(&mut map);
        let Ok((active_from, active_until, created_by_actor)) = envelope else {
            // An envelope we cannot read: keep everything verbatim.
            let mut fields = original;
            let attribute_type = take_type(&mut fields);
            return Self {
                active_from: None,
                active_until: None,
                created_by_actor: None,
                data: ValueData::Unknown(UnknownValue {
                    attribute_type,
                    fields,
                }),
            };
        };
        let attribute_type = take_type(&mut map);
        let data = match &attribute_type {
            Some(t) => {
                ValueData::decode(t, map.clone()).unwrap_or(ValueData::Unknown(UnknownValue {
                    attribute_type: attribute_type.clone(),
                    fields: map,
                }))
            }
            None => ValueData::Unknown(UnknownValue {
                attribute_type: None,
                fields: map,
            }),
        };
        Self {
            active_from,
            active_until,
            created_by_actor,
            data,
        }
    }
}

type Envelope = (Option<Timestamp>, Option<Timestamp>, Option<Actor>);

fn take_envelope(map: &mut Extra) -> Result<Envelope, serde_json::Error> {
    fn take<T: serde::de::DeserializeOwned>(
        map: &mut Extra,
        key: &str,
    ) -> Result<Option<T>, serde_json::Error> {
        match map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v).map(Some),
        }
    }
    Ok((
        take(map, "active_from")?,
        take(map, "active_until")?,
        take(map, "created_by_actor")?,
    ))
}

fn take_type(map: &mut Extra) -> Option<String> {
    match map.remove("attribute_type") {
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            // Not a string: keep it where it was so nothing is lost.
            map.insert("attribute_type".into(), other);
            None
        }
        None => None,
    }
}

impl Serialize for AttributeValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = Extra::new();
        if self.active_from.is_some() || self.created_by_actor.is_some() {
            out.insert(
                "active_from".into(),
                serde_json::to_value(&self.active_from).map_err(serde::ser::Error::custom)?,
            );
            out.insert(
                "active_until".into(),
                serde_json::to_value(&self.active_until).map_err(serde::ser::Error::custom)?,
            );
            out.insert(
                "created_by_actor".into(),
                serde_json::to_value(&self.created_by_actor).map_err(serde::ser::Error::custom)?,
            );
        }
        match self.data.encode().map_err(serde::ser::Error::custom)? {
            Value::Object(fields) => out.extend(fields),
            _ => {
                return Err(serde::ser::Error::custom(
                    "value data must encode to an object",
                ));
            }
        }
        if let Some(t) = self.data.attribute_type_str() {
            out.insert("attribute_type".into(), Value::String(t.to_owned()));
        }
        out.serialize(s)
    }
}

impl<'de> Deserialize<'de> for AttributeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Object(map) => Ok(Self::from_map(map)),
            other => Err(D::Error::custom(format!(
                "an attribute value must be a JSON object, got {}",
                json_kind(&other)
            ))),
        }
    }
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The typed content of a value, one variant per attribute type.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueData {
    Text(TextValue),
    Number(NumberValue),
    Checkbox(CheckboxValue),
    Currency(CurrencyValue),
    Date(DateValue),
    Timestamp(TimestampValue),
    Rating(RatingValue),
    Status(StatusValue),
    Select(SelectValue),
    RecordReference(RecordReferenceValue),
    ActorReference(ActorReferenceValue),
    Location(LocationValue),
    Domain(DomainValue),
    EmailAddress(EmailAddressValue),
    PhoneNumber(PhoneNumberValue),
    PersonalName(PersonalNameValue),
    Interaction(InteractionValue),
    /// An attribute type this version does not know, or a known one whose fields did not fit.
    Unknown(UnknownValue),
}

/// Fields of a value that could not be decoded as a known type.
#[derive(Debug, Clone, PartialEq)]
pub struct UnknownValue {
    pub attribute_type: Option<String>,
    pub fields: Extra,
}

macro_rules! value_dispatch {
    ($( $variant:ident($ty:ident) = $wire:literal ),+ $(,)?) => {
        impl ValueData {
            fn decode(attribute_type: &str, fields: Extra) -> Option<Self> {
                let v = Value::Object(fields);
                match AttributeType::from(attribute_type) {
                    $( AttributeType::$variant => serde_json::from_value::<$ty>(v).ok().map(Self::$variant), )+
                    AttributeType::Other(_) => None,
                }
            }

            fn encode(&self) -> Result<Value, serde_json::Error> {
                match self {
                    $( Self::$variant(x) => serde_json::to_value(x), )+
                    Self::Unknown(u) => Ok(Value::Object(u.fields.clone())),
                }
            }

            /// The attribute type of this value (`Other` for unknown ones).
            pub fn attribute_type(&self) -> AttributeType {
                match self {
                    $( Self::$variant(_) => AttributeType::$variant, )+
                    Self::Unknown(u) => AttributeType::from(u.attribute_type.as_deref().unwrap_or("")),
                }
            }

            fn attribute_type_str(&self) -> Option<&str> {
                match self {
                    Self::Unknown(u) => u.attribute_type.as_deref(),
                    _ => Some(self.known_type_str()),
                }
            }

            fn known_type_str(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => $wire, )+
                    Self::Unknown(_) => "",
                }
            }
        }
    };
}

value_dispatch!(
    Text(TextValue) = "text",
    Number(NumberValue) = "number",
    Checkbox(CheckboxValue) = "checkbox",
    Currency(CurrencyValue) = "currency",
    Date(DateValue) = "date",
    Timestamp(TimestampValue) = "timestamp",
    Rating(RatingValue) = "rating",
    Status(StatusValue) = "status",
    Select(SelectValue) = "select",
    RecordReference(RecordReferenceValue) = "record-reference",
    ActorReference(ActorReferenceValue) = "actor-reference",
    Location(LocationValue) = "location",
    Domain(DomainValue) = "domain",
    EmailAddress(EmailAddressValue) = "email-address",
    PhoneNumber(PhoneNumberValue) = "phone-number",
    PersonalName(PersonalNameValue) = "personal-name",
    Interaction(InteractionValue) = "interaction",
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextValue {
    pub value: String,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumberValue {
    pub value: serde_json::Number,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckboxValue {
    pub value: bool,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A currency amount: a JSON number, or a string in some documented examples.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Amount {
    Number(serde_json::Number),
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurrencyValue {
    pub currency_value: Amount,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency_code: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A date value. Kept as text because live responses sometimes hold a full datetime here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DateValue {
    pub value: String,
    #[serde(flatten)]
    pub extra: Extra,
}

impl DateValue {
    /// The calendar date, if the text is `YYYY-MM-DD` or starts with it.
    pub fn date(&self) -> Option<time::Date> {
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        self.value
            .get(..10)
            .and_then(|s| time::Date::parse(s, fmt).ok())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimestampValue {
    pub value: Timestamp,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatingValue {
    pub value: u8,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusValue {
    pub status: Status,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectValue {
    pub option: SelectOption,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordReferenceValue {
    /// The target object's `api_slug`.
    pub target_object: String,
    pub target_record_id: RecordId,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActorReferenceValue {
    pub referenced_actor_type: ActorType,
    pub referenced_actor_id: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LocationValue {
    pub line_1: Option<String>,
    pub line_2: Option<String>,
    pub line_3: Option<String>,
    pub line_4: Option<String>,
    pub locality: Option<String>,
    pub region: Option<String>,
    pub postcode: Option<String>,
    pub country_code: Option<String>,
    pub latitude: Option<String>,
    pub longitude: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainValue {
    pub domain: String,
    pub root_domain: String,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailAddressValue {
    pub original_email_address: String,
    pub email_address: String,
    pub email_domain: String,
    pub email_root_domain: String,
    pub email_local_specifier: String,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhoneNumberValue {
    pub original_phone_number: String,
    pub country_code: Option<String>,
    /// E.164. (Docs prose calls it `normalized_phone_number`; the API sends `phone_number`.)
    pub phone_number: String,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonalNameValue {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub full_name: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InteractionValue {
    /// `calendar-event`, `call`, `chat-thread`, `email`, `in-person-meeting`, `meeting`, ...
    pub interaction_type: String,
    pub interacted_at: Timestamp,
    pub owner_actor: Actor,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The ids of a status: object statuses carry `object_id`, list statuses `list_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusIdentifier {
    pub workspace_id: WorkspaceId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<ObjectId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_id: Option<ListId>,
    pub attribute_id: AttributeId,
    pub status_id: StatusId,
}

/// A status of a status attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub id: StatusIdentifier,
    pub title: String,
    pub is_archived: bool,
    #[serde(default)]
    pub celebration_enabled: bool,
    #[serde(default)]
    pub target_time_in_status: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The ids of a select option.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptionIdentifier {
    pub workspace_id: WorkspaceId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<ObjectId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_id: Option<ListId>,
    pub attribute_id: AttributeId,
    pub option_id: OptionId,
}

/// An option of a select attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectOption {
    pub id: OptionIdentifier,
    pub title: String,
    pub is_archived: bool,
    #[serde(flatten)]
    pub extra: Extra,
}
