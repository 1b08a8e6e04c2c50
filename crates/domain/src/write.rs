//! Write forms: what Attio accepts for each attribute type in `{"data":{"values":{…}}}`.
//!
//! [`WriteValue::to_json`] emits the explicit object form; [`WriteValue::from_json`] accepts every
//! documented form (bare and object) for a given attribute type and applies Attio's coercions
//! (date trimming, UTC timestamps, `"Last, First"` names), refusing what Attio refuses.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value, json};
use time::macros::format_description;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::error::DomainError;
use crate::ids::{AttributeSlug, ObjectSlug, RecordId, WorkspaceMemberId};
use crate::timestamp::Timestamp;
use crate::value::{AttributeType, json_kind};

/// A syntactically valid e-mail address (`local@domain.tld`, no whitespace).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailAddress(Box<str>);

impl EmailAddress {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let bad = |reason: &str| DomainError::InvalidValue {
            target: "email address".into(),
            reason: format!("{reason}: {:?}", s.chars().take(80).collect::<String>()),
        };
        let s = s.trim();
        let (local, domain) = s.split_once('@').ok_or_else(|| bad("missing '@'"))?;
        if local.is_empty() || domain.is_empty() {
            return Err(bad("empty local part or domain"));
        }
        if domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err(bad("domain is not a host name"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) || s.len() > 320 {
            return Err(bad("contains whitespace or is too long"));
        }
        Ok(Self(s.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after `@`, lower-cased.
    pub fn domain(&self) -> String {
        self.0
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default()
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress({:?})", &*self.0)
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A rating, 0 to 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rating(u8);

impl Rating {
    pub fn new(v: u8) -> Result<Self, DomainError> {
        if v <= 5 {
            Ok(Self(v))
        } else {
            Err(DomainError::InvalidValue {
                target: "rating".into(),
                reason: format!("{v} is outside 0..=5"),
            })
        }
    }
    pub fn get(self) -> u8 {
        self.0
    }
}

/// How a record-reference names its target.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordTarget {
    /// By record id.
    Id(RecordId),
    /// By a unique attribute of the target object (`domains`, `email_addresses`, ...).
    Matching {
        attribute: AttributeSlug,
        values: Vec<Value>,
    },
}

/// An actor-reference write: only workspace members can be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberRef {
    Email(EmailAddress),
    Id(WorkspaceMemberId),
}

/// A full location; every key is sent (nulls allowed), as Attio requires for the object form.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocationWrite {
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
}

const LOCATION_KEYS: [&str; 10] = [
    "line_1",
    "line_2",
    "line_3",
    "line_4",
    "locality",
    "region",
    "postcode",
    "country_code",
    "latitude",
    "longitude",
];

impl LocationWrite {
    fn fields(&self) -> [&Option<String>; 10] {
        [
            &self.line_1,
            &self.line_2,
            &self.line_3,
            &self.line_4,
            &self.locality,
            &self.region,
            &self.postcode,
            &self.country_code,
            &self.latitude,
            &self.longitude,
        ]
    }
}

/// One value to write.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteValue {
    Text(String),
    Number(serde_json::Number),
    Checkbox(bool),
    Currency(serde_json::Number),
    Date(Date),
    Timestamp(Timestamp),
    Rating(Rating),
    /// Status by title or status id.
    Status(String),
    /// Select option by title or option id.
    Select(String),
    RecordReference {
        target_object: ObjectSlug,
        target: RecordTarget,
    },
    /// A plain string naming a single standard object's record (domain, email, ...).
    RecordReferenceByText(String),
    ActorReference(MemberRef),
    Location(LocationWrite),
    /// Free-text location, parsed by Attio.
    LocationText(String),
    Domain(String),
    EmailAddress(EmailAddress),
    PhoneNumber {
        original_phone_number: String,
        country_code: Option<String>,
    },
    PersonalName {
        first_name: String,
        last_name: String,
        full_name: String,
    },
}

fn invalid(at: &AttributeType, reason: impl Into<String>) -> DomainError {
    DomainError::InvalidValue {
        target: format!("{at} value"),
        reason: reason.into(),
    }
}

fn as_str<'a>(at: &AttributeType, v: &'a Value) -> Result<&'a str, DomainError> {
    v.as_str()
        .ok_or_else(|| invalid(at, format!("expected a string, got {}", json_kind(v))))
}

fn as_number(at: &AttributeType, v: &Value) -> Result<serde_json::Number, DomainError> {
    match v {
        Value::Number(n) => Ok(n.clone()),
        _ => Err(invalid(
            at,
            format!("expected a number, got {}", json_kind(v)),
        )),
    }
}

/// The one field of an object form, if `v` is `{key: …}`.
fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object().and_then(|m| m.get(key))
}

/// Attio's date coercion: `"2023"` → 2023-01-01, `"2023-05"` → 2023-05-01, a datetime → its UTC
/// date.
pub fn coerce_date(s: &str) -> Result<Date, DomainError> {
    let bad = |r: &str| DomainError::InvalidTimestamp {
        input: s.chars().take(64).collect(),
        reason: r.into(),
    };
    let s = s.trim();
    if s.len() > 10 {
        return coerce_timestamp(s).map(|t| t.as_datetime().date());
    }
    let mut parts = s.split('-');
    let year: i32 = parts
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| bad("expected YYYY, YYYY-MM or YYYY-MM-DD"))?;
    let month: u8 = match parts.next() {
        Some(p) => p.parse().map_err(|_| bad("bad month"))?,
        None => 1,
    };
    let day: u8 = match parts.next() {
        Some(p) => p.parse().map_err(|_| bad("bad day"))?,
        None => 1,
    };
    if parts.next().is_some() {
        return Err(bad("too many parts"));
    }
    let month = Month::try_from(month).map_err(|_| bad("month out of range"))?;
    Date::from_calendar_date(year, month, day).map_err(|e| bad(&e.to_string()))
}

/// Attio's timestamp coercion: RFC 3339, or a date/datetime without offset read as UTC.
pub fn coerce_timestamp(s: &str) -> Result<Timestamp, DomainError> {
    let s = s.trim();
    if let Ok(t) = Timestamp::parse(s) {
        return Ok(Timestamp::from_datetime(t.as_datetime()));
    }
    let naive = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    if let Ok(p) = PrimitiveDateTime::parse(s, naive) {
        return Ok(Timestamp::from_datetime(p.assume_offset(UtcOffset::UTC)));
    }
    if s.len() <= 10 {
        let d = coerce_date(s)?;
        return Ok(Timestamp::from_datetime(OffsetDateTime::new_utc(
            d,
            time::Time::MIDNIGHT,
        )));
    }
    Err(DomainError::InvalidTimestamp {
        input: s.chars().take(64).collect(),
        reason: "expected an ISO-8601 date or datetime".into(),
    })
}

impl WriteValue {
    /// The attribute type this write form belongs to.
    pub fn attribute_type(&self) -> AttributeType {
        match self {
            Self::Text(_) => AttributeType::Text,
            Self::Number(_) => AttributeType::Number,
            Self::Checkbox(_) => AttributeType::Checkbox,
            Self::Currency(_) => AttributeType::Currency,
            Self::Date(_) => AttributeType::Date,
            Self::Timestamp(_) => AttributeType::Timestamp,
            Self::Rating(_) => AttributeType::Rating,
            Self::Status(_) => AttributeType::Status,
            Self::Select(_) => AttributeType::Select,
            Self::RecordReference { .. } | Self::RecordReferenceByText(_) => {
                AttributeType::RecordReference
            }
            Self::ActorReference(_) => AttributeType::ActorReference,
            Self::Location(_) | Self::LocationText(_) => AttributeType::Location,
            Self::Domain(_) => AttributeType::Domain,
            Self::EmailAddress(_) => AttributeType::EmailAddress,
            Self::PhoneNumber { .. } => AttributeType::PhoneNumber,
            Self::PersonalName { .. } => AttributeType::PersonalName,
        }
    }

    /// A personal name from parts; `full_name` is `"First Last"`.
    pub fn personal_name(first: &str, last: &str) -> Self {
        let full = [first, last]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        Self::PersonalName {
            first_name: first.to_owned(),
            last_name: last.to_owned(),
            full_name: full,
        }
    }

    /// The explicit object form Attio documents for this type.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Text(s) => json!({ "value": s }),
            Self::Number(n) => json!({ "value": n }),
            Self::Checkbox(b) => json!({ "value": b }),
            Self::Currency(n) => json!({ "currency_value": n }),
            Self::Date(d) => {
                let f = format_description!("[year]-[month]-[day]");
                json!({ "value": d.format(f).unwrap_or_default() })
            }
            Self::Timestamp(t) => json!({ "value": t.to_attio_string() }),
            Self::Rating(r) => json!({ "value": r.get() }),
            Self::Status(s) => json!({ "status": s }),
            Self::Select(s) => json!({ "option": s }),
            Self::RecordReference {
                target_object,
                target,
            } => match target {
                RecordTarget::Id(id) => {
                    json!({ "target_object": target_object, "target_record_id": id })
                }
                RecordTarget::Matching { attribute, values } => {
                    let mut m = Map::new();
                    m.insert("target_object".into(), json!(target_object));
                    m.insert(attribute.to_string(), Value::Array(values.clone()));
                    Value::Object(m)
                }
            },
            Self::RecordReferenceByText(s) | Self::LocationText(s) => json!(s),
            Self::ActorReference(MemberRef::Email(e)) => {
                json!({ "workspace_member_email_address": e.as_str() })
            }
            Self::ActorReference(MemberRef::Id(id)) => {
                json!({ "referenced_actor_type": "workspace-member", "referenced_actor_id": id })
            }
            Self::Location(l) => Value::Object(
                LOCATION_KEYS
                    .iter()
                    .zip(l.fields())
                    .map(|(k, v)| ((*k).to_owned(), json!(v)))
                    .collect(),
            ),
            Self::Domain(d) => json!({ "domain": d }),
            Self::EmailAddress(e) => json!({ "email_address": e.as_str() }),
            Self::PhoneNumber {
                original_phone_number,
                country_code,
            } => {
                json!({ "original_phone_number": original_phone_number, "country_code": country_code })
            }
            Self::PersonalName {
                first_name,
                last_name,
                full_name,
            } => {
                json!({ "first_name": first_name, "last_name": last_name, "full_name": full_name })
            }
        }
    }

    /// Reads one value in any documented write form for `attribute_type`.
    pub fn from_json(attribute_type: &AttributeType, v: &Value) -> Result<Self, DomainError> {
        use AttributeType as T;
        let at = attribute_type;
        Ok(match at {
            T::Text => match field(v, "value").unwrap_or(v) {
                Value::String(s) => Self::Text(s.clone()),
                other => {
                    return Err(invalid(
                        at,
                        format!("expected a string, got {}", json_kind(other)),
                    ));
                }
            },
            T::Number => Self::Number(as_number(at, field(v, "value").unwrap_or(v))?),
            T::Checkbox => {
                let inner = match v {
                    Value::Array(a) if a.len() == 1 => &a[0],
                    _ => field(v, "value").unwrap_or(v),
                };
                match inner {
                    Value::Bool(b) => Self::Checkbox(*b),
                    Value::String(s) if s == "true" => Self::Checkbox(true),
                    Value::String(s) if s == "false" => Self::Checkbox(false),
                    other => {
                        return Err(invalid(
                            at,
                            format!("expected a boolean, got {}", json_kind(other)),
                        ));
                    }
                }
            }
            T::Currency => match field(v, "currency_value").unwrap_or(v) {
                Value::Number(n) => Self::Currency(n.clone()),
                Value::String(s) => Self::Currency(
                    s.trim()
                        .parse::<serde_json::Number>()
                        .map_err(|_| invalid(at, format!("{s:?} is not a number")))?,
                ),
                other => {
                    return Err(invalid(
                        at,
                        format!("expected a number, got {}", json_kind(other)),
                    ));
                }
            },
            T::Date => Self::Date(coerce_date(as_str(at, field(v, "value").unwrap_or(v))?)?),
            T::Timestamp => Self::Timestamp(coerce_timestamp(as_str(
                at,
                field(v, "value").unwrap_or(v),
            )?)?),
            T::Rating => {
                let n = as_number(at, field(v, "value").unwrap_or(v))?;
                let n = n
                    .as_u64()
                    .and_then(|n| u8::try_from(n).ok())
                    .ok_or_else(|| invalid(at, format!("{n} is not a whole number 0..=5")))?;
                Self::Rating(Rating::new(n)?)
            }
            T::Status => Self::Status(as_str(at, field(v, "status").unwrap_or(v))?.to_owned()),
            T::Select => Self::Select(as_str(at, field(v, "option").unwrap_or(v))?.to_owned()),
            T::RecordReference => match v {
                Value::String(s) => Self::RecordReferenceByText(s.clone()),
                Value::Object(m) => {
                    let target_object = ObjectSlug::parse(as_str(
                        at,
                        m.get("target_object")
                            .ok_or_else(|| invalid(at, "target_object is required"))?,
                    )?)?;
                    let target = if let Some(id) = m.get("target_record_id") {
                        RecordTarget::Id(RecordId::parse(as_str(at, id)?)?)
                    } else {
                        let mut others = m.iter().filter(|(k, _)| k.as_str() != "target_object");
                        match (others.next(), others.next()) {
                            (Some((k, Value::Array(values))), None) => RecordTarget::Matching {
                                attribute: AttributeSlug::parse(k)?,
                                values: values.clone(),
                            },
                            _ => {
                                return Err(invalid(
                                    at,
                                    "expected target_record_id or one matching attribute with an array of values",
                                ));
                            }
                        }
                    };
                    Self::RecordReference {
                        target_object,
                        target,
                    }
                }
                other => {
                    return Err(invalid(
                        at,
                        format!("expected an object or a string, got {}", json_kind(other)),
                    ));
                }
            },
            T::ActorReference => match v {
                Value::String(s) => Self::ActorReference(MemberRef::Email(EmailAddress::parse(s)?)),
                Value::Object(m) => {
                    if let Some(e) = m.get("workspace_member_email_address") {
                        Self::ActorReference(MemberRef::Email(EmailAddress::parse(as_str(at, e)?)?))
                    } else {
                        match m.get("referenced_actor_type").and_then(Value::as_str) {
                            Some("workspace-member") => {}
                            _ => {
                                return Err(invalid(
                                    at,
                                    "only workspace members can be written into actor references",
                                ));
                            }
                        }
                        let id = m
                            .get("referenced_actor_id")
                            .ok_or_else(|| invalid(at, "referenced_actor_id is required"))?;
                        Self::ActorReference(MemberRef::Id(WorkspaceMemberId::parse(as_str(
                            at, id,
                        )?)?))
                    }
                }
                other => {
                    return Err(invalid(
                        at,
                        format!("expected an object or a string, got {}", json_kind(other)),
                    ));
                }
            },
            T::Location => match v {
                Value::String(s) => Self::LocationText(s.clone()),
                Value::Object(m) => {
                    let mut vals: BTreeMap<&str, Option<String>> = BTreeMap::new();
                    for k in LOCATION_KEYS {
                        let val = m.get(k).ok_or_else(|| {
                            invalid(
                                at,
                                format!("{k} is required in the object form (null allowed)"),
                            )
                        })?;
                        let val = match val {
                            Value::Null => None,
                            Value::String(s) => Some(s.clone()),
                            other => {
                                return Err(invalid(
                                    at,
                                    format!(
                                        "{k}: expected a string or null, got {}",
                                        json_kind(other)
                                    ),
                                ));
                            }
                        };
                        vals.insert(k, val);
                    }
                    let mut take = |k: &str| vals.remove(k).flatten();
                    Self::Location(LocationWrite {
                        line_1: take("line_1"),
                        line_2: take("line_2"),
                        line_3: take("line_3"),
                        line_4: take("line_4"),
                        locality: take("locality"),
                        region: take("region"),
                        postcode: take("postcode"),
                        country_code: take("country_code"),
                        latitude: take("latitude"),
                        longitude: take("longitude"),
                    })
                }
                other => {
                    return Err(invalid(
                        at,
                        format!("expected an object or a string, got {}", json_kind(other)),
                    ));
                }
            },
            T::Domain => {
                let d = as_str(at, field(v, "domain").unwrap_or(v))?.trim();
                if d.is_empty() || d.contains(char::is_whitespace) || !d.contains('.') {
                    return Err(invalid(at, format!("{d:?} is not a domain")));
                }
                Self::Domain(d.to_owned())
            }
            T::EmailAddress => Self::EmailAddress(EmailAddress::parse(as_str(
                at,
                field(v, "email_address").unwrap_or(v),
            )?)?),
            T::PhoneNumber => match v {
                Value::String(s) => Self::PhoneNumber {
                    original_phone_number: s.clone(),
                    country_code: None,
                },
                Value::Object(m) => Self::PhoneNumber {
                    original_phone_number: as_str(
                        at,
                        m.get("original_phone_number")
                            .ok_or_else(|| invalid(at, "original_phone_number is required"))?,
                    )?
                    .to_owned(),
                    country_code: match m.get("country_code") {
                        None | Some(Value::Null) => None,
                        Some(c) => Some(as_str(at, c)?.to_owned()),
                    },
                },
                other => {
                    return Err(invalid(
                        at,
                        format!("expected an object or a string, got {}", json_kind(other)),
                    ));
                }
            },
            T::PersonalName => match v {
                Value::String(s) => match s.split_once(',') {
                    Some((last, first)) => Self::personal_name(first.trim(), last.trim()),
                    None => Self::personal_name(s.trim(), ""),
                },
                Value::Object(m) => {
                    let get = |k: &str| -> Result<String, DomainError> {
                        match m.get(k) {
                            Some(Value::String(s)) => Ok(s.clone()),
                            Some(other) => Err(invalid(
                                at,
                                format!("{k}: expected a string, got {}", json_kind(other)),
                            )),
                            None => Err(invalid(at, format!("{k} is required"))),
                        }
                    };
                    Self::PersonalName {
                        first_name: get("first_name")?,
                        last_name: get("last_name")?,
                        full_name: get("full_name")?,
                    }
                }
                other => {
                    return Err(invalid(
                        at,
                        format!("expected an object or a string, got {}", json_kind(other)),
                    ));
                }
            },
            T::Interaction | T::Other(_) => {
                return Err(DomainError::NotWritable {
                    attribute_type: at.to_string(),
                });
            }
        })
    }

    /// Reads an attribute's write input: an array of values, or a single value.
    pub fn list_from_json(
        attribute_type: &AttributeType,
        v: &Value,
    ) -> Result<Vec<Self>, DomainError> {
        match v {
            // A one-element array of a bare bool is itself a checkbox form.
            Value::Array(items)
                if *attribute_type != AttributeType::Checkbox
                    || items.iter().all(|i| !i.is_boolean()) =>
            {
                items
                    .iter()
                    .map(|i| Self::from_json(attribute_type, i))
                    .collect()
            }
            other => Ok(vec![Self::from_json(attribute_type, other)?]),
        }
    }
}

/// The `values` of a create, update or assert body: attribute slug → values.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecordWrite {
    pub values: BTreeMap<AttributeSlug, Vec<WriteValue>>,
}

impl RecordWrite {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets an attribute's values (replacing earlier ones in this write).
    pub fn set(mut self, attribute: AttributeSlug, values: Vec<WriteValue>) -> Self {
        self.values.insert(attribute, values);
        self
    }

    /// The request body: `{"data":{"values":{slug:[…]}}}`.
    pub fn to_body(&self) -> Value {
        let values: Map<String, Value> = self
            .values
            .iter()
            .map(|(k, vs)| {
                (
                    k.to_string(),
                    Value::Array(vs.iter().map(WriteValue::to_json).collect()),
                )
            })
            .collect();
        json!({ "data": { "values": values } })
    }
}
