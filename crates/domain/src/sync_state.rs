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

/// Progress of one backfill.
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
