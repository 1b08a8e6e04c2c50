//! Conflicts kept for a person to decide.

use time::OffsetDateTime;

use crate::field::FieldValue;
use crate::ids::{ConflictId, ExternalId, ObjectSlug, RecordId, SystemId, TenantId};
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
    /// A value to write to both sides.
    Value { value: FieldValue },
}

/// A stored conflict.
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
    pub resolution: Option<(Resolution, OffsetDateTime)>,
}
