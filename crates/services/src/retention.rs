//! Retention: what the stores keep only for a while is forgotten once the while is over
//! (ADR 0020).
//!
//! Every accepted delivery leaves a row in the inbox and a claim of its idempotency key, and every
//! write to a CRM leaves a ledger entry for echo suppression. Nothing else removes them, so
//! without this a service taking 1,000 deliveries a second would grow its inbox and claims by some
//! 60 GB a day. [`Retention::pass`] forgets deliveries received longer ago than the dedupe retention (plus
//! [`CLAIM_GRACE`], so that every claim of theirs has expired and goes with them) and, when given
//! a ledger, the ledger's expired entries, and, when given an audit trail, its entries older
//! than the trail's retention. `webhook-api`, which writes the inbox, runs it for the inbox;
//! `sync-worker`, which writes the ledger and the trail, for those.

use std::sync::Arc;
use std::time::Duration;

use ports::clock::Clock;
use ports::stores::{AuditLog, Inbox, WriteLedger};

use crate::error::ServiceResult;

/// How much longer than the dedupe retention a delivery is kept. A key's claim starts when the
/// store commits the delivery, a little after the delivery's `received_at` (and on the database's
/// clock, not this process's); an hour covers both, so the purge never meets a claim still
/// running for a delivery the dedupe retention has finished with.
pub const CLAIM_GRACE: Duration = Duration::from_secs(3600);

/// Describes `retention_purged_total{what}` (`deliveries`, `ledger_entries`, `audit_entries`): what the passes
/// forgot, counted batch by batch.
pub fn describe_metrics() {
    metrics::describe_counter!(
        "retention_purged_total",
        "Stored deliveries, ledger entries and audit entries forgotten after their retention"
    );
}

/// What one pass forgot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub deliveries: u64,
    pub ledger_entries: u64,
    pub audit_entries: u64,
}

/// The inbox's part of a pass: what it keeps, and how many deliveries each statement forgets.
struct InboxPurge {
    inbox: Arc<dyn Inbox>,
    keep: Duration,
    batch: usize,
}

/// Forgets deliveries past their retention and expired ledger entries.
pub struct Retention {
    inbox: Option<InboxPurge>,
    ledger: Option<Arc<dyn WriteLedger>>,
    /// The audit trail and how long it keeps an entry.
    audit: Option<(Arc<dyn AuditLog>, Duration)>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retention")
            .field("keep_deliveries", &self.inbox.as_ref().map(|p| p.keep))
            .field("batch", &self.inbox.as_ref().map(|p| p.batch))
            .field("ledger", &self.ledger.is_some())
            .field("keep_audit", &self.audit.as_ref().map(|(_, keep)| keep))
            .finish()
    }
}

impl Retention {
    /// Nothing to purge yet; add an inbox or a ledger.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            inbox: None,
            ledger: None,
            audit: None,
            clock,
        }
    }

    /// Forgets the inbox's deliveries once `dedupe_retention` and [`CLAIM_GRACE`] have passed
    /// since they were received, `batch` (at least 1) per statement.
    pub fn with_inbox(
        mut self,
        inbox: Arc<dyn Inbox>,
        dedupe_retention: Duration,
        batch: usize,
    ) -> Self {
        self.inbox = Some(InboxPurge {
            inbox,
            keep: dedupe_retention.saturating_add(CLAIM_GRACE),
            batch: batch.max(1),
        });
        self
    }

    /// Drops the ledger's expired entries too.
    pub fn with_ledger(mut self, ledger: Arc<dyn WriteLedger>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// Forgets audit entries written more than `keep` ago too.
    pub fn with_audit(mut self, audit: Arc<dyn AuditLog>, keep: Duration) -> Self {
        self.audit = Some((audit, keep));
        self
    }

    /// One pass: batch after batch until the inbox holds nothing old enough, then the ledger.
    /// A failing store ends the pass with its error; what was forgotten stays forgotten, and the
    /// next pass goes on from there.
    pub async fn pass(&self) -> ServiceResult<Purged> {
        let now = self.clock.now();
        let mut purged = Purged::default();
        if let Some(InboxPurge { inbox, keep, batch }) = &self.inbox {
            let before = now - *keep;
            loop {
                let started = std::time::Instant::now();
                let n = inbox.purge(before, *batch).await?;
                metrics::counter!("retention_purged_total", "what" => "deliveries").increment(n);
                purged.deliveries += n;
                if n < *batch as u64 {
                    break;
                }
                // Rest as long as the batch took: a backlog (the first pass after an upgrade,
                // or after purging was off) is worked off at half the database's attention at
                // most, while the intake's transactions go on between the batches.
                tokio::time::sleep(started.elapsed()).await;
            }
        }
        if let Some(ledger) = &self.ledger {
            purged.ledger_entries = ledger.purge_expired(now).await?;
            metrics::counter!("retention_purged_total", "what" => "ledger_entries")
                .increment(purged.ledger_entries);
        }
        if let Some((audit, keep)) = &self.audit {
            const BATCH: usize = 1000;
            loop {
                let n = audit.purge(now - *keep, BATCH).await?;
                metrics::counter!("retention_purged_total", "what" => "audit_entries").increment(n);
                purged.audit_entries += n;
                if n < BATCH as u64 {
                    break;
                }
            }
        }
        Ok(purged)
    }

    /// A pass every `interval`, the first one at once, until the task is dropped or aborted.
    /// A failed pass is logged and the next one tries again.
    pub async fn run(self, interval: Duration) {
        loop {
            match self.pass().await {
                Ok(p) if p != Purged::default() => tracing::info!(
                    deliveries = p.deliveries,
                    ledger_entries = p.ledger_entries,
                    audit_entries = p.audit_entries,
                    "forgot what was past its retention"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %ports::Chain(&e), "the retention pass failed; the next one retries");
                }
            }
            tokio::time::sleep(interval).await;
        }
    }
}
