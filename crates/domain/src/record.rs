//! Records and list entries as Attio returns them.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::ids::{AttributeSlug, EntryId, ListId, ObjectId, RecordId, WorkspaceId};
use crate::timestamp::Timestamp;
use crate::value::{AttributeValue, Extra};

/// Attribute slug → values. Attio sends every attribute of the object, `[]` when empty.
pub type Values = BTreeMap<AttributeSlug, Vec<AttributeValue>>;

/// `values` / `entry_values` may be missing or `null` in live responses: both read as empty.
fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Values, D::Error> {
    Ok(Option::<Values>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecordIdentifier {
    pub workspace_id: WorkspaceId,
    pub object_id: ObjectId,
    pub record_id: RecordId,
}

/// An Attio record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: RecordIdentifier,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_url: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub values: Values,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Record {
    /// The current (active) values of an attribute.
    pub fn current(&self, attribute: &str) -> impl Iterator<Item = &AttributeValue> {
        self.values
            .iter()
            .find(|(slug, _)| slug.as_str() == attribute)
            .map(|(_, v)| v.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|v| v.is_active())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EntryIdentifier {
    pub workspace_id: WorkspaceId,
    pub list_id: ListId,
    pub entry_id: EntryId,
}

/// An entry of a list: a parent record plus the list's own attribute values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListEntry {
    pub id: EntryIdentifier,
    pub parent_record_id: RecordId,
    /// The parent object's `api_slug`.
    pub parent_object: String,
    pub created_at: Timestamp,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub entry_values: Values,
    #[serde(flatten)]
    pub extra: Extra,
}
