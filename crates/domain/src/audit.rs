//! The per-field audit trail: every value the service writes, with where it came from and why.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::field::FieldValue;
use crate::ids::{ObjectSlug, RecordId, SystemId, TenantId};
use crate::mapping::FieldKey;

/// One value written to one side of a synced record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub tenant: TenantId,
    /// The Attio record the write belongs to (the link's Attio side).
    pub object: ObjectSlug,
    pub record: RecordId,
    pub field: FieldKey,
    /// The side written: `attio` or a CRM.
    pub written_to: SystemId,
    /// The record written, in that system's ids.
    pub written_record: String,
    /// The side the value came from: `attio`, a CRM, or `operator` (a conflict resolution).
    pub source: String,
    pub old: FieldValue,
    pub new: FieldValue,
    /// The rule applied: the mapping's sync rule (`prefer_attio`, `manual`, ...) or
    /// `resolution:<how>` for a person's decision.
    pub rule: String,
    /// What caused the write: the delivery, CRM change, poll, backfill or resolution, with its
    /// job and trace (see `ports::trace::origin`).
    pub cause: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}
