//! Safe deletes: a record deleted on one side is deleted (or archived) on the other per the
//! mapping's policy, and a burst of deletes trips a breaker that holds further deletes for a
//! person's approval.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{DeleteId, ExternalId, ObjectSlug, RecordId, SystemId, TenantId};

/// What happens on the other side when a linked record is deleted on one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletePolicy {
    /// Archive the CRM's record (HubSpot archives, Salesforce deletes into its recycle bin);
    /// for a CRM-side delete, delete the Attio record.
    #[default]
    Archive,
    /// Leave the other side's record; only the link goes.
    Keep,
    /// Hold every such delete for a person's approval.
    Hold,
}

impl DeletePolicy {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "archive" => Some(Self::Archive),
            "keep" => Some(Self::Keep),
            "hold" => Some(Self::Hold),
            _ => None,
        }
    }
}

/// Where a delete stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteStatus {
    /// Propagated without a person (counted by the breaker).
    Done,
    /// Waiting for a person: the policy holds deletes, or the breaker tripped.
    Held,
    /// A person approved it; it is (being) propagated.
    Approved,
    /// A person refused it; the other side keeps its record.
    Rejected,
}

impl DeleteStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Held => "held",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "done" => Some(Self::Done),
            "held" => Some(Self::Held),
            "approved" => Some(Self::Approved),
            "rejected" => Some(Self::Rejected),
            _ => None,
        }
    }
}

/// One linked pair whose one side was deleted. At most one is kept per record, system and
/// origin (a replayed delete finds the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRecord {
    pub id: DeleteId,
    pub tenant: TenantId,
    pub object: ObjectSlug,
    pub attio_record: RecordId,
    pub system: SystemId,
    pub external_object: String,
    pub external_id: ExternalId,
    /// The side the record was deleted on: `attio` or the CRM (`system`).
    pub origin: SystemId,
    pub status: DeleteStatus,
    /// Why it is held (the policy, or the breaker with its count), or what was done.
    pub reason: String,
    pub at: OffsetDateTime,
    pub decided_at: Option<OffsetDateTime>,
}

impl DeleteRecord {
    /// Whether the delete happened in Attio (so the CRM's record is the one to remove).
    pub fn from_attio(&self) -> bool {
        self.origin.as_str() == "attio"
    }
}

/// The delete breaker: once `max` deletes, or `max_share` of the tenant's linked pairs, were
/// propagated within `window`, further deletes are held.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeleteBreaker {
    pub max: u64,
    /// A share from 0 to 1 of the tenant's linked pairs; `None` counts only `max`.
    pub max_share: Option<f64>,
    pub window: std::time::Duration,
}

impl DeleteBreaker {
    /// The deletes the window lets through for a tenant with `linked` pairs: `max`, or the
    /// share of `linked` when that is lower (at least one).
    pub fn limit(&self, linked: u64) -> u64 {
        match self.max_share {
            Some(share) => {
                let by_share = (share * linked as f64).floor().max(1.0) as u64;
                self.max.min(by_share)
            }
            None => self.max,
        }
    }
}

impl Default for DeleteBreaker {
    fn default() -> Self {
        Self {
            max: 50,
            max_share: None,
            window: std::time::Duration::from_secs(600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_the_count_or_the_share_whichever_is_lower() {
        let b = |max, share| DeleteBreaker {
            max,
            max_share: share,
            window: std::time::Duration::from_secs(60),
        };
        for (breaker, linked, want) in [
            (b(50, None), 10, 50),
            (b(50, Some(0.1)), 10_000, 50),
            (b(50, Some(0.1)), 200, 20),
            (b(50, Some(0.1)), 5, 1),
            (b(50, Some(0.1)), 0, 1),
            (b(3, Some(1.0)), 100, 3),
        ] {
            assert_eq!(
                breaker.limit(linked),
                want,
                "{breaker:?} with {linked} pairs"
            );
        }
    }
}
