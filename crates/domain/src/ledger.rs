//! The write ledger: what we wrote where, so the change notification that our own write causes
//! (an echo) is recognised and dropped instead of syncing back.

use time::OffsetDateTime;

use crate::field::ValueHash;
use crate::ids::{SystemId, TenantId};
use crate::mapping::FieldKey;

/// Names one field of one record in one system.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LedgerKey {
    pub tenant: TenantId,
    pub system: SystemId,
    pub object: String,
    pub record: String,
    pub field: FieldKey,
}

/// A value we wrote, remembered until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub key: LedgerKey,
    pub value_hash: ValueHash,
    pub expires_at: OffsetDateTime,
}
