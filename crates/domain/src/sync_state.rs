//! SyncState: the progress of a backfill of one object to one system, checkpointed per page so an
//! interrupted backfill resumes where it stopped.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::DomainError;
use crate::ids::{ObjectSlug, SystemId, TenantId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackfillPhase {
    NotStarted,
    Running,
    Completed,
    Failed,
}

/// Progress of one backfill, reconciliation or dry run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    pub tenant: TenantId,
    pub object: ObjectSlug,
    pub system: SystemId,
    pub phase: BackfillPhase,
    /// The `offset` of the next page to read.
    pub next_offset: u64,
    pub pages_done: u64,
    pub records_seen: u64,
    pub records_written: u64,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Incremented by every store write; stores use it for optimistic concurrency.
    pub version: u64,
    /// A reconciliation's or a dry run's findings so far (`None` for a backfill).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftReport>,
}

/// What a reconciliation pass found, field by field, and what it did about it (or, for a dry
/// run, what a pass would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftReport {
    /// Nothing was written: what a pass would do.
    pub dry_run: bool,
    /// Records compared.
    pub records: u64,
    /// Pairs already in step.
    pub in_step: u64,
    /// Attio records with no CRM record: created there.
    pub created: u64,
    /// Pairs that differed and were written.
    pub repaired: u64,
    /// Fields written to the CRM, by Attio field key.
    pub fields_to_crm: std::collections::BTreeMap<String, u64>,
    /// Fields written into Attio, by Attio field key.
    pub fields_to_attio: std::collections::BTreeMap<String, u64>,
    /// Fields that differ into Attio but whose attribute type is not written back.
    pub deferred: u64,
    /// Fields changed on both sides, sent to the conflict queue.
    pub conflicts: u64,
    /// Pairs left alone while a delete of theirs waits for a person.
    pub held: u64,
    /// Records a provider refused, with the first reasons.
    pub failed: u64,
    pub failures: Vec<String>,
}

impl SyncState {
    pub fn new(
        tenant: TenantId,
        object: ObjectSlug,
        system: SystemId,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            tenant,
            object,
            system,
            phase: BackfillPhase::NotStarted,
            next_offset: 0,
            pages_done: 0,
            records_seen: 0,
            records_written: 0,
            last_error: None,
            updated_at: now,
            version: 0,
            drift: None,
        }
    }

    /// Starts or resumes: a failed or unstarted backfill resumes from its checkpoint; a completed
    /// one starts over from offset 0.
    pub fn start(&mut self, now: OffsetDateTime) -> Result<(), DomainError> {
        match self.phase {
            BackfillPhase::Running => {
                return Err(DomainError::InvalidTransition(
                    "the backfill is already running".into(),
                ));
            }
            BackfillPhase::Completed => {
                self.next_offset = 0;
                self.pages_done = 0;
                self.records_seen = 0;
                self.records_written = 0;
            }
            BackfillPhase::NotStarted | BackfillPhase::Failed => {}
        }
        self.phase = BackfillPhase::Running;
        self.last_error = None;
        self.updated_at = now;
        Ok(())
    }

    /// Checkpoints a finished page of `seen` records, `written` of which differed.
    pub fn page_done(
        &mut self,
        seen: u64,
        written: u64,
        now: OffsetDateTime,
    ) -> Result<(), DomainError> {
        if self.phase != BackfillPhase::Running {
            return Err(DomainError::InvalidTransition(format!(
                "cannot checkpoint a page of a backfill that is {:?}",
                self.phase
            )));
        }
        if written > seen {
            return Err(DomainError::InvalidTransition(format!(
                "a page cannot write {written} of {seen} records"
            )));
        }
        self.next_offset += seen;
        self.pages_done += 1;
        self.records_seen += seen;
        self.records_written += written;
        self.updated_at = now;
        Ok(())
    }

    pub fn complete(&mut self, now: OffsetDateTime) -> Result<(), DomainError> {
        if self.phase != BackfillPhase::Running {
            return Err(DomainError::InvalidTransition(format!(
                "cannot complete a backfill that is {:?}",
                self.phase
            )));
        }
        self.phase = BackfillPhase::Completed;
        self.updated_at = now;
        Ok(())
    }

    /// Records a failure; the checkpoint is kept so the next start resumes from it.
    pub fn fail(&mut self, error: &str, now: OffsetDateTime) {
        self.phase = BackfillPhase::Failed;
        self.last_error = Some(error.chars().take(2000).collect());
        self.updated_at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> SyncState {
        SyncState::new(
            TenantId::parse("acme").unwrap(),
            ObjectSlug::parse("people").unwrap(),
            SystemId::parse("hubspot").unwrap(),
            OffsetDateTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn a_failed_backfill_resumes_from_its_checkpoint() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut s = state();
        s.start(now).unwrap();
        s.page_done(500, 20, now).unwrap();
        s.page_done(500, 0, now).unwrap();
        s.fail("HubSpot 503", now);
        s.start(now).unwrap();
        assert_eq!(s.next_offset, 1000);
        assert_eq!(s.records_written, 20);
        s.page_done(120, 120, now).unwrap();
        s.complete(now).unwrap();
        assert_eq!((s.pages_done, s.records_seen), (3, 1120));
        s.start(now).unwrap();
        assert_eq!(s.next_offset, 0, "a completed backfill starts over");
    }

    #[test]
    fn invalid_transitions_are_refused() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut s = state();
        assert!(s.page_done(1, 0, now).is_err());
        assert!(s.complete(now).is_err());
        s.start(now).unwrap();
        assert!(s.start(now).is_err());
        assert!(s.page_done(1, 2, now).is_err());
    }
}
