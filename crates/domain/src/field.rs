//! Field values as the sync engine compares them: one canonical, comparable shape for a mapped
//! field on either side, independent of Attio's or a CRM's wire format.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::error::DomainError;
use crate::value::{Amount, AttributeValue, ValueData};

/// A decimal with at most four fractional digits (Attio stores numbers to 4 dp). Exact, so it can
/// be compared, hashed and ordered.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Decimal4(i64);

impl Decimal4 {
    const SCALE: i64 = 10_000;

    pub fn from_int(v: i64) -> Option<Self> {
        v.checked_mul(Self::SCALE).map(Self)
    }

    /// The value scaled by 10⁴.
    pub fn scaled(self) -> i64 {
        self.0
    }

    pub fn from_scaled(v: i64) -> Self {
        Self(v)
    }
}

impl FromStr for Decimal4 {
    type Err = DomainError;

    /// Parses `-12`, `12.5`, `0.00005` (rounded half away from zero to 4 dp). No exponents.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |r: &str| DomainError::InvalidValue {
            target: "number".into(),
            reason: format!("{r}: {:?}", s.chars().take(40).collect::<String>()),
        };
        let t = s.trim();
        let (neg, t) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        if int.is_empty() && frac.is_empty() {
            return Err(bad("empty"));
        }
        if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("not a plain decimal"));
        }
        let int: i64 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad("too large"))?
        };
        let mut digits: Vec<u8> = frac.bytes().map(|b| b - b'0').collect();
        let round_up = digits.get(4).is_some_and(|d| *d >= 5);
        digits.resize(4, 0);
        let mut f: i64 = digits[..4]
            .iter()
            .fold(0, |acc, d| acc * 10 + i64::from(*d));
        if round_up {
            f += 1;
        }
        let v = int
            .checked_mul(Self::SCALE)
            .and_then(|v| v.checked_add(f))
            .ok_or_else(|| bad("too large"))?;
        Ok(Self(if neg { -v } else { v }))
    }
}

/// Whether both texts are RFC 3339 timestamps of the same instant.
fn same_instant(x: &str, y: &str) -> bool {
    use time::format_description::well_known::Rfc3339;
    let at = |s: &str| time::OffsetDateTime::parse(s.trim(), &Rfc3339).ok();
    matches!((at(x), at(y)), (Some(a), Some(b)) if a == b)
}

impl fmt::Display for Decimal4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        let (int, frac) = (a / 10_000, a % 10_000);
        if frac == 0 {
            write!(f, "{sign}{int}")
        } else {
            let frac = format!("{frac:04}");
            write!(f, "{sign}{int}.{}", frac.trim_end_matches('0'))
        }
    }
}

impl fmt::Debug for Decimal4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Decimal4({self})")
    }
}

impl Serialize for Decimal4 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Decimal4 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The value of one mapped field on one side.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum FieldValue {
    #[default]
    Empty,
    Bool(bool),
    Number(Decimal4),
    Text(String),
    /// A multiselect's values; order is not significant.
    List(Vec<String>),
}

impl FieldValue {
    pub fn text(s: impl Into<String>) -> Self {
        Self::Text(s.into()).normalized()
    }

    /// The canonical form: empty text and empty lists are `Empty`; lists are sorted and
    /// de-duplicated. The merge compares only canonical values.
    pub fn normalized(self) -> Self {
        match self {
            Self::Text(s) if s.is_empty() => Self::Empty,
            Self::List(mut v) => {
                v.retain(|s| !s.is_empty());
                v.sort();
                v.dedup();
                if v.is_empty() {
                    Self::Empty
                } else {
                    Self::List(v)
                }
            }
            other => other,
        }
    }

    /// The value as plain JSON, as an operator reads and types it: `null`, a boolean, a number
    /// (as its exact decimal text would be parsed), a string, or an array of strings.
    pub fn to_plain_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Self::Empty => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Number(n) => n
                .to_string()
                .parse::<serde_json::Number>()
                .map(Value::Number)
                .unwrap_or_else(|_| Value::String(n.to_string())),
            Self::Text(s) => Value::String(s.clone()),
            Self::List(v) => Value::Array(v.iter().cloned().map(Value::String).collect()),
        }
    }

    /// The inverse of [`FieldValue::to_plain_json`]. `InvalidValue` for an object, an array
    /// holding anything but strings, or a number with more than four decimals.
    pub fn from_plain_json(v: &serde_json::Value) -> Result<Self, DomainError> {
        use serde_json::Value;
        let bad = |reason: &str| DomainError::InvalidValue {
            target: "a field value".to_owned(),
            reason: format!("must be {reason}"),
        };
        Ok(match v {
            Value::Null => Self::Empty,
            Value::Bool(b) => Self::Bool(*b),
            Value::Number(n) => {
                let text = n.to_string();
                let too_fine = text
                    .split_once('.')
                    .is_some_and(|(_, frac)| frac.trim_end_matches('0').len() > 4);
                if too_fine {
                    return Err(bad("a number with at most four decimals"));
                }
                Self::Number(
                    text.parse()
                        .map_err(|_| bad("a number with at most four decimals"))?,
                )
            }
            Value::String(s) => Self::Text(s.clone()),
            Value::Array(items) => Self::List(
                items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad("a list holds strings only"))?,
            ),
            Value::Object(_) => {
                return Err(bad(
                    "null, a boolean, a number, a string or an array of strings",
                ));
            }
        }
        .normalized())
    }

    pub fn is_empty(&self) -> bool {
        matches!(self.clone().normalized(), Self::Empty)
    }

    /// Whether two values mean the same: equal canonical forms, or a number or a boolean and the
    /// text a CRM that keeps every value as a string (HubSpot) gives back for it (`"5000"`,
    /// `"5000.00"`, `"true"`). The merge compares with this, so a value read back in another
    /// representation is not mistaken for a change.
    pub fn same_as(&self, other: &FieldValue) -> bool {
        let (a, b) = (self.clone().normalized(), other.clone().normalized());
        if a == b {
            return true;
        }
        match (&a, &b) {
            (Self::Number(n), Self::Text(t)) | (Self::Text(t), Self::Number(n)) => {
                t.trim().parse::<Decimal4>().is_ok_and(|m| m == *n)
            }
            (Self::Bool(x), Self::Text(t)) | (Self::Text(t), Self::Bool(x)) => t
                .trim()
                .eq_ignore_ascii_case(if *x { "true" } else { "false" }),
            (Self::List(_), Self::Text(t)) | (Self::Text(t), Self::List(_)) => {
                let split = Self::from_multiselect_text(t);
                split == a || split == b
            }
            // One instant in two spellings: Attio's nanoseconds and a CRM's `…:00Z`.
            (Self::Text(x), Self::Text(y)) => same_instant(x, y),
            _ => false,
        }
    }

    /// A CRM's multiselect as it reads: `;`-separated options (HubSpot enumerations, Salesforce
    /// multi-select picklists), as a list; order and blanks do not count.
    pub fn from_multiselect_text(text: &str) -> FieldValue {
        FieldValue::List(
            text.split(';')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        )
        .normalized()
    }

    /// A stable hash of the canonical value, for the write ledger.
    pub fn value_hash(&self) -> ValueHash {
        let canonical = serde_json::to_vec(&self.clone().normalized()).unwrap_or_default();
        ValueHash(hex::encode(Sha256::digest(&canonical)))
    }

    /// The comparable text of one Attio value, taking `sub` (e.g. `first_name`) where the type
    /// has parts. `None` for values that have no such part.
    fn scalar_of(v: &AttributeValue, sub: Option<&str>) -> Option<FieldValue> {
        let text = |s: &str| Some(FieldValue::text(s));
        match &v.data {
            ValueData::Text(t) => text(&t.value),
            ValueData::Number(n) => n.value.to_string().parse().ok().map(FieldValue::Number),
            ValueData::Checkbox(c) => Some(FieldValue::Bool(c.value)),
            ValueData::Currency(c) => match &c.currency_value {
                Amount::Number(n) => n.to_string().parse().ok().map(FieldValue::Number),
                Amount::Text(s) => s.parse().ok().map(FieldValue::Number),
            },
            ValueData::Date(d) => text(&d.value),
            ValueData::Timestamp(t) => text(&t.value.to_attio_string()),
            ValueData::Rating(r) => Decimal4::from_int(i64::from(r.value)).map(FieldValue::Number),
            ValueData::Status(s) => text(&s.status.title),
            ValueData::Select(s) => text(&s.option.title),
            ValueData::RecordReference(r) => text(&r.target_record_id.to_string()),
            ValueData::ActorReference(a) => a.referenced_actor_id.as_deref().and_then(text),
            ValueData::Location(l) => {
                let part = match sub.unwrap_or("locality") {
                    "line_1" => &l.line_1,
                    "line_2" => &l.line_2,
                    "line_3" => &l.line_3,
                    "line_4" => &l.line_4,
                    "locality" => &l.locality,
                    "region" => &l.region,
                    "postcode" => &l.postcode,
                    "country_code" => &l.country_code,
                    _ => return None,
                };
                Some(part.as_deref().map(FieldValue::text).unwrap_or_default())
            }
            ValueData::Domain(d) => text(&d.domain),
            ValueData::EmailAddress(e) => text(&e.email_address),
            ValueData::PhoneNumber(p) => text(&p.phone_number),
            ValueData::PersonalName(n) => {
                let part = match sub.unwrap_or("full_name") {
                    "first_name" => &n.first_name,
                    "last_name" => &n.last_name,
                    "full_name" => &n.full_name,
                    _ => return None,
                };
                Some(part.as_deref().map(FieldValue::text).unwrap_or_default())
            }
            ValueData::Interaction(i) => text(&i.interacted_at.to_attio_string()),
            ValueData::Unknown(_) => None,
        }
    }

    /// The texts of an attribute's active values in Attio's order (the first is the primary),
    /// taking `sub` where the type has parts.
    pub fn ordered_texts(values: &[AttributeValue], sub: Option<&str>) -> Vec<String> {
        values
            .iter()
            .filter(|v| v.is_active())
            .filter_map(|v| match Self::scalar_of(v, sub)? {
                FieldValue::Text(s) => Some(s),
                FieldValue::Number(n) => Some(n.to_string()),
                FieldValue::Bool(b) => Some(b.to_string()),
                FieldValue::Empty | FieldValue::List(_) => None,
            })
            .collect()
    }

    /// The field value of an attribute's values: active values only; `all` keeps every value
    /// (multiselects), otherwise the first active one (Attio prepends, so the newest).
    pub fn from_attio(values: &[AttributeValue], sub: Option<&str>, all: bool) -> FieldValue {
        let mut active = values.iter().filter(|v| v.is_active());
        if all {
            let items: Vec<String> = active
                .filter_map(|v| Self::scalar_of(v, sub))
                .filter_map(|f| match f {
                    FieldValue::Text(s) => Some(s),
                    FieldValue::Number(n) => Some(n.to_string()),
                    FieldValue::Bool(b) => Some(b.to_string()),
                    FieldValue::Empty | FieldValue::List(_) => None,
                })
                .collect();
            FieldValue::List(items).normalized()
        } else {
            active
                .next()
                .and_then(|v| Self::scalar_of(v, sub))
                .unwrap_or_default()
        }
    }
}

/// SHA-256 (hex) of a canonical field value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ValueHash(String);

impl ValueHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Rebuilds a hash read back from storage; it must be 64 lower-case hex digits.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(DomainError::InvalidValue {
                target: "value hash".into(),
                reason: "expected 64 lower-case hex digits".into(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crms_multiselect_text_is_the_same_as_the_list() {
        let list = FieldValue::List(vec!["SaaS".into(), "B2B".into()]);
        for (text, same) in [
            ("B2B;SaaS", true),
            ("SaaS;B2B", true),
            (" SaaS ; B2B ;", true),
            ("SaaS", false),
            ("B2B;SaaS;B2C", false),
        ] {
            assert_eq!(list.same_as(&FieldValue::text(text)), same, "{text}");
            assert_eq!(FieldValue::text(text).same_as(&list), same, "{text}");
        }
        assert_eq!(FieldValue::from_multiselect_text(""), FieldValue::Empty);
    }

    #[test]
    fn one_instant_in_two_spellings_is_the_same_value() {
        let attio = FieldValue::text("2027-04-01T09:00:00.000000000Z");
        for (text, same) in [
            ("2027-04-01T09:00:00Z", true),
            ("2027-04-01T11:00:00+02:00", true),
            ("2027-04-01T09:00:01Z", false),
            ("2027-04-01", false),
            ("not a time", false),
        ] {
            assert_eq!(attio.same_as(&FieldValue::text(text)), same, "{text}");
        }
        assert!(!FieldValue::text("a").same_as(&FieldValue::text("b")));
    }

    #[test]
    fn plain_json_round_trips_and_refuses_what_would_be_lost() {
        use serde_json::json;
        let cases = [
            (json!(null), Some(FieldValue::Empty)),
            (json!(""), Some(FieldValue::Empty)),
            (json!(true), Some(FieldValue::Bool(true))),
            (json!("CEO"), Some(FieldValue::text("CEO"))),
            (
                json!(12.5),
                Some(FieldValue::Number("12.5".parse().unwrap())),
            ),
            (
                json!(1.2345),
                Some(FieldValue::Number("1.2345".parse().unwrap())),
            ),
            (
                json!(["b", "a", "a"]),
                Some(FieldValue::List(vec!["a".into(), "b".into()])),
            ),
            (json!(1.23456), None),
            (json!([1, 2]), None),
            (json!({"kind": "text"}), None),
        ];
        for (input, want) in cases {
            let got = FieldValue::from_plain_json(&input).ok();
            assert_eq!(got, want, "{input}");
            if let Some(v) = got {
                assert_eq!(FieldValue::from_plain_json(&v.to_plain_json()).unwrap(), v);
            }
        }
    }

    #[test]
    fn decimal_parses_and_prints_canonically() {
        let cases = [
            ("42", "42"),
            ("42.0", "42"),
            ("-3.14159", "-3.1416"),
            ("0.00005", "0.0001"),
            ("+7.25", "7.25"),
            (".5", "0.5"),
        ];
        for (input, want) in cases {
            assert_eq!(
                input.parse::<Decimal4>().unwrap().to_string(),
                want,
                "{input}"
            );
        }
        for bad in ["", "1e3", "abc", "1.2.3", "99999999999999999999"] {
            assert!(bad.parse::<Decimal4>().is_err(), "{bad}");
        }
    }

    #[test]
    fn normalization_makes_blank_values_equal() {
        assert_eq!(
            FieldValue::Text(String::new()).normalized(),
            FieldValue::Empty
        );
        assert_eq!(FieldValue::List(vec![]).normalized(), FieldValue::Empty);
        assert_eq!(
            FieldValue::List(vec!["b".into(), "a".into(), "b".into()]).normalized(),
            FieldValue::List(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            FieldValue::Empty.value_hash(),
            FieldValue::text("").value_hash()
        );
        assert_ne!(
            FieldValue::text("a").value_hash(),
            FieldValue::text("b").value_hash()
        );
    }
}
