//! Identity links: which Attio record is which external record, with their last synced snapshot.

use time::OffsetDateTime;

use crate::ids::{ExternalId, ObjectSlug, RecordId, SystemId, TenantId};
use crate::merge::Snapshot;

/// One Attio record linked to one record of an external system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityLink {
    pub tenant: TenantId,
    pub object: ObjectSlug,
    pub attio_record: RecordId,
    pub system: SystemId,
    pub external_object: String,
    pub external_id: ExternalId,
    pub snapshot: Snapshot,
    pub updated_at: OffsetDateTime,
    /// Incremented by every store write; a write with a stale version is refused.
    pub version: u64,
}

/// Looks up a link from either side.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LinkLookup {
    Attio {
        object: ObjectSlug,
        record: RecordId,
        system: SystemId,
    },
    External {
        system: SystemId,
        external_object: String,
        external_id: ExternalId,
    },
}
