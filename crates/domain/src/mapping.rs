//! Field mappings: which Attio attribute (or part of it) corresponds to which external property,
//! how values are transformed on the way, and which rule settles a conflict.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::field::FieldValue;
use crate::ids::{AttributeSlug, ObjectSlug, SystemId};

/// Names one mapped field: the Attio side's `attribute[.part]`, e.g. `name.first_name`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FieldKey(String);

impl FieldKey {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if s.is_empty() || s.len() > 200 {
            return Err(DomainError::InvalidId {
                kind: "field key",
                input: s.chars().take(80).collect(),
                reason: "must be 1 to 200 bytes",
            });
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            return Err(DomainError::InvalidId {
                kind: "field key",
                input: s.chars().take(80).collect(),
                reason: "use letters, digits, '_', '-' and '.'",
            });
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FieldKey {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<FieldKey> for String {
    fn from(k: FieldKey) -> Self {
        k.0
    }
}

impl fmt::Debug for FieldKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FieldKey({:?})", self.0)
    }
}

impl fmt::Display for FieldKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The Attio side of a mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttioField {
    pub attribute: AttributeSlug,
    /// A part of a composite value (`first_name` of a personal name, `locality` of a location).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
    /// Map every active value (multiselects) rather than the newest one.
    #[serde(default)]
    pub all_values: bool,
    /// For a record-reference attribute: the Attio object it refers to (`companies`). The CRM
    /// side then holds the CRM's id of the referenced record (Salesforce's `AccountId`, HubSpot's
    /// `associations.companies`), translated through that object's links; the object must be
    /// mapped to the same CRM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<ObjectSlug>,
}

impl AttioField {
    pub fn key(&self) -> FieldKey {
        let s = match &self.part {
            Some(p) => format!("{}.{p}", self.attribute),
            None => self.attribute.to_string(),
        };
        // Both halves are validated slugs, so the key is always valid.
        FieldKey(s)
    }
}

/// A property name of an external CRM (`email`, `FirstName`, `dealstage`, ...).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ExternalProperty(String);

impl ExternalProperty {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if s.is_empty()
            || s.len() > 255
            || s.contains(|c: char| c.is_whitespace() || c.is_control())
        {
            return Err(DomainError::InvalidId {
                kind: "external property",
                input: s.chars().take(80).collect(),
                reason: "must be 1 to 255 bytes without whitespace",
            });
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ExternalProperty {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ExternalProperty> for String {
    fn from(k: ExternalProperty) -> Self {
        k.0
    }
}

impl fmt::Debug for ExternalProperty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExternalProperty({:?})", self.0)
    }
}

/// How a conflict on a field (changed on both sides since the last sync) is settled, and which
/// directions changes may flow in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncRule {
    /// Two-way; the later per-field source timestamp wins (a tie goes to Attio). Missing
    /// timestamps make it a conflict for a person.
    LatestWins,
    /// Two-way; Attio wins conflicts.
    PreferAttio,
    /// Two-way; the external side wins conflicts.
    PreferExternal,
    /// Two-way; Attio wins unless its value is blank.
    PreferAttioUnlessBlank,
    /// Two-way; the external side wins unless its value is blank.
    PreferExternalUnlessBlank,
    /// One-way: Attio's changes flow out; external changes are not synced back.
    AttioToExternal,
    /// One-way: external changes flow in; Attio's changes are not synced out.
    ExternalToAttio,
    /// Two-way; conflicts go to the conflict queue for a person to decide.
    Manual,
}

impl SyncRule {
    /// The rule's name as configured (`latest_wins`, `prefer_attio`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SyncRule::LatestWins => "latest_wins",
            SyncRule::PreferAttio => "prefer_attio",
            SyncRule::PreferExternal => "prefer_external",
            SyncRule::PreferAttioUnlessBlank => "prefer_attio_unless_blank",
            SyncRule::PreferExternalUnlessBlank => "prefer_external_unless_blank",
            SyncRule::AttioToExternal => "attio_to_external",
            SyncRule::ExternalToAttio => "external_to_attio",
            SyncRule::Manual => "manual",
        }
    }

    pub fn flows_to_external(self) -> bool {
        self != SyncRule::ExternalToAttio
    }

    pub fn flows_to_attio(self) -> bool {
        self != SyncRule::AttioToExternal
    }

    pub fn is_two_way(self) -> bool {
        self.flows_to_attio() && self.flows_to_external()
    }
}

/// Attio value ↔ external value map (e.g. a deal stage title ↔ a HubSpot stage id). Injective, so
/// it can be inverted; values not in the map pass through unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<String, String>",
    into = "BTreeMap<String, String>"
)]
pub struct ValueMap {
    attio_to_external: BTreeMap<String, String>,
    external_to_attio: BTreeMap<String, String>,
}

impl ValueMap {
    pub fn new(attio_to_external: BTreeMap<String, String>) -> Result<Self, DomainError> {
        let mut external_to_attio = BTreeMap::new();
        for (a, e) in &attio_to_external {
            if let Some(prev) = external_to_attio.insert(e.clone(), a.clone()) {
                return Err(DomainError::InvalidMapping(format!(
                    "value map is not one-to-one: {prev:?} and {a:?} both map to {e:?}"
                )));
            }
        }
        Ok(Self {
            attio_to_external,
            external_to_attio,
        })
    }

    /// Each (Attio value, external value) pair.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.attio_to_external
            .iter()
            .map(|(a, e)| (a.as_str(), e.as_str()))
    }
}

impl TryFrom<BTreeMap<String, String>> for ValueMap {
    type Error = DomainError;
    fn try_from(m: BTreeMap<String, String>) -> Result<Self, Self::Error> {
        Self::new(m)
    }
}

impl From<ValueMap> for BTreeMap<String, String> {
    fn from(m: ValueMap) -> Self {
        m.attio_to_external
    }
}

/// A value transform applied on the way between the two sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Transform {
    #[default]
    Identity,
    /// Trim surrounding whitespace (both directions).
    Trim,
    /// Lower-case text (both directions), e.g. e-mail addresses.
    Lowercase,
    /// Translate values through a one-to-one table.
    MapValues { values: ValueMap },
}

impl Transform {
    fn apply_text(&self, v: FieldValue, f: impl Fn(&str) -> String) -> FieldValue {
        match v {
            FieldValue::Text(s) => FieldValue::Text(f(&s)),
            FieldValue::List(items) => FieldValue::List(items.iter().map(|s| f(s)).collect()),
            other => other,
        }
        .normalized()
    }

    fn map(&self, v: &FieldValue, to_external: bool) -> FieldValue {
        let v = v.clone();
        match self {
            Transform::Identity => v.normalized(),
            Transform::Trim => self.apply_text(v, |s| s.trim().to_owned()),
            Transform::Lowercase => self.apply_text(v, str::to_lowercase),
            Transform::MapValues { values } => {
                let table = if to_external {
                    &values.attio_to_external
                } else {
                    &values.external_to_attio
                };
                self.apply_text(v, |s| table.get(s).cloned().unwrap_or_else(|| s.to_owned()))
            }
        }
    }

    /// Attio value → external value.
    pub fn to_external(&self, v: &FieldValue) -> FieldValue {
        self.map(v, true)
    }

    /// External value → Attio value.
    pub fn to_attio(&self, v: &FieldValue) -> FieldValue {
        self.map(v, false)
    }
}

/// One mapped field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldMapping {
    pub attio: AttioField,
    pub external: ExternalProperty,
    pub rule: SyncRule,
    #[serde(default)]
    pub transform: Transform,
}

impl FieldMapping {
    pub fn key(&self) -> FieldKey {
        self.attio.key()
    }
}

/// The mapping of one Attio object to one external object of one system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectMapping {
    pub attio_object: ObjectSlug,
    pub system: SystemId,
    pub external_object: String,
    fields: Vec<FieldMapping>,
    /// Records born in the CRM create (or link) Attio records matched by this mapped field;
    /// `None` leaves them out of Attio.
    adopt_by: Option<FieldKey>,
}

impl ObjectMapping {
    /// Lets records born in the CRM create or link Attio records, matched by the mapped field
    /// `key` (an e-mail address for people, a domain for companies: a unique Attio attribute).
    /// `InvalidMapping` when `key` is not one of the mapping's fields.
    pub fn adopting(mut self, key: FieldKey) -> Result<Self, DomainError> {
        if !self.fields.iter().any(|f| f.key() == key) {
            return Err(DomainError::InvalidMapping(format!(
                "match_on {key} is not a mapped field of {} → {}",
                self.attio_object, self.system
            )));
        }
        self.adopt_by = Some(key);
        Ok(self)
    }

    /// The mapped field CRM-born records are matched by, when they are adopted.
    pub fn adopt_by(&self) -> Option<&FieldMapping> {
        let key = self.adopt_by.as_ref()?;
        self.fields.iter().find(|f| &f.key() == key)
    }

    /// Validates that no two fields share an Attio key or an external property.
    pub fn new(
        attio_object: ObjectSlug,
        system: SystemId,
        external_object: &str,
        fields: Vec<FieldMapping>,
    ) -> Result<Self, DomainError> {
        if external_object.is_empty() || external_object.contains(char::is_whitespace) {
            return Err(DomainError::InvalidMapping(format!(
                "external object {external_object:?} must be a non-empty name without whitespace"
            )));
        }
        if fields.is_empty() {
            return Err(DomainError::InvalidMapping(format!(
                "{attio_object} → {system}/{external_object} maps no fields"
            )));
        }
        let mut keys = BTreeSet::new();
        let mut props = BTreeSet::new();
        for f in &fields {
            if !keys.insert(f.key()) {
                return Err(DomainError::InvalidMapping(format!(
                    "Attio field {} is mapped twice",
                    f.key()
                )));
            }
            if !props.insert(f.external.clone()) {
                return Err(DomainError::InvalidMapping(format!(
                    "external property {} is mapped twice",
                    f.external.as_str()
                )));
            }
        }
        Ok(Self {
            attio_object,
            system,
            external_object: external_object.to_owned(),
            fields,
            adopt_by: None,
        })
    }

    pub fn fields(&self) -> &[FieldMapping] {
        &self.fields
    }
}
