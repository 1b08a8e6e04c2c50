//! Conflicts kept for a person to decide.

use time::OffsetDateTime;

use crate::field::FieldValue;
use crate::ids::{ConflictId, ExternalId, ObjectSlug, RecordId, SystemId, TenantId};
use crate::mapping::{FieldKey, FieldMapping};
use crate::merge::FieldConflict;

/// How a person settled a conflict. Stored as `{"keep":"attio"}`, `{"keep":"external"}` or
/// `{"keep":"value","value":…}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "keep", rename_all = "snake_case")]
pub enum Resolution {
    #[serde(rename = "attio")]
    KeepAttio,
    #[serde(rename = "external")]
    KeepExternal,
    /// A value to write to both sides, in Attio's value space (the mapping's transform gives
    /// the CRM's).
    Value { value: FieldValue },
    /// Closed without a person: a later sync found the field in step again (the sides came to
    /// agree, one side went back to the last synced value, or a resolution of the same field
    /// settled it). Nothing is written for it.
    Superseded,
}

impl Resolution {
    /// The value each side should hold once `conflict` is settled this way: `(attio, external)`;
    /// `None` for [`Resolution::Superseded`], which writes nothing.
    pub fn chosen(
        &self,
        conflict: &FieldConflict,
        mapping: &FieldMapping,
    ) -> Option<(FieldValue, FieldValue)> {
        Some(match self {
            Self::KeepAttio => {
                let a = conflict.attio.value.clone();
                let e = mapping.transform.to_external(&a);
                (a, e)
            }
            Self::KeepExternal => {
                let e = conflict.external.value.clone();
                (mapping.transform.to_attio(&e), e)
            }
            Self::Value { value } => (value.clone(), mapping.transform.to_external(value)),
            Self::Superseded => return None,
        })
    }

    /// A short name for logs and the audit trail (`attio`, `external`, `value`, `superseded`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::KeepAttio => "attio",
            Self::KeepExternal => "external",
            Self::Value { .. } => "value",
            Self::Superseded => "superseded",
        }
    }
}

/// A stored conflict. At most one is open per record, system and field: when the field
/// changes again while it is open, the stored one is updated (`conflict`, `last_seen`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictRecord {
    pub id: ConflictId,
    pub tenant: TenantId,
    pub object: ObjectSlug,
    pub attio_record: RecordId,
    pub system: SystemId,
    pub external_id: ExternalId,
    pub conflict: FieldConflict,
    pub detected_at: OffsetDateTime,
    /// When the conflict was last found (its values are as of then).
    pub last_seen: OffsetDateTime,
    pub resolution: Option<(Resolution, OffsetDateTime)>,
}

impl ConflictRecord {
    pub fn field(&self) -> &FieldKey {
        &self.conflict.key
    }
}

/// Which open conflicts to list. Every part is optional; all given parts must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConflictFilter {
    pub object: Option<ObjectSlug>,
    pub system: Option<SystemId>,
    pub field: Option<FieldKey>,
    pub record: Option<RecordId>,
    /// Only conflicts first detected before this time (older than an age).
    pub detected_before: Option<OffsetDateTime>,
}

impl ConflictFilter {
    /// Whether `c` passes (for stores that filter in memory).
    pub fn matches(&self, c: &ConflictRecord) -> bool {
        self.object.as_ref().is_none_or(|o| *o == c.object)
            && self.system.as_ref().is_none_or(|s| *s == c.system)
            && self.field.as_ref().is_none_or(|f| f == c.field())
            && self.record.is_none_or(|r| r == c.attio_record)
            && self.detected_before.is_none_or(|t| c.detected_at < t)
    }
}
