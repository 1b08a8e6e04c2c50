//! Reconciliation: a pass over one Attio object for one CRM that compares every Attio record
//! with its linked CRM record and the stored snapshot (the sync's own three-way merge), writes
//! only what differs, in both directions (so a change whose webhook was lost on either side is
//! repaired), and leaves a drift report. A dry run makes the same comparison and writes nothing:
//! its report says what a pass would do — with a candidate mapping document, before it is put
//! in force.
//!
//! The pass pages through the object in creation order and checkpoints after each page (a
//! `SyncState` under `reconcile_<object>`, or `dryrun_<object>`), so a pass cut short resumes
//! where it stopped; writes go through the providers' budgets like every sync. A record a CRM
//! refuses is counted and named in the report and the pass goes on; a provider or store that
//! cannot be reached fails the pass (the next one resumes). A pass never deletes: a record
//! missing on one side is re-created on the other or left to the delete events and their gate.

use std::sync::Arc;

use domain::ids::{ObjectRef, ObjectSlug, SystemId, TenantId};
use domain::record::Record;
use domain::sync_state::{BackfillPhase, DriftReport, SyncState};
use ports::attio::Query;
use ports::clock::Clock;
use ports::directory::{ClientDirectory, TenantClients};
use ports::error::PortError;
use ports::stores::SyncStateStore;
use serde_json::json;

use crate::error::{ServiceError, ServiceResult};
use crate::outbound::{Action, OutboundSync, SyncTarget};

/// Describes the reconciliation metrics.
pub fn describe_metrics() {
    metrics::describe_counter!(
        "drift_found_total",
        "Pairs a reconciliation pass found out of step, by system"
    );
    metrics::describe_counter!(
        "drift_repaired_total",
        "Pairs a reconciliation pass wrote back in step, by system"
    );
}

/// What to run.
#[derive(Debug, Clone)]
pub enum Pass {
    /// Compare and repair.
    Repair,
    /// Compare only, with the tenant's mappings or, when given, candidate ones.
    DryRun(Option<Vec<SyncTarget>>),
}

/// How many failures a report names.
const NAMED_FAILURES: usize = 20;

/// The reconciliation use case.
pub struct Reconciler {
    directory: Arc<dyn ClientDirectory>,
    outbound: Arc<OutboundSync>,
    states: Arc<dyn SyncStateStore>,
    clock: Arc<dyn Clock>,
    /// Records per page (and checkpoint).
    pub page_size: u32,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl Reconciler {
    pub fn new(
        directory: Arc<dyn ClientDirectory>,
        outbound: Arc<OutboundSync>,
        states: Arc<dyn SyncStateStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            directory,
            outbound,
            states,
            clock,
            page_size: 100,
        }
    }

    /// The key a pass's progress and report are kept under.
    pub fn state_object(object: &ObjectSlug, dry_run: bool) -> ServiceResult<ObjectSlug> {
        let prefix = if dry_run { "dryrun" } else { "reconcile" };
        Ok(ObjectSlug::parse(&format!("{prefix}_{object}"))?)
    }

    /// Runs a pass to its end (resuming one cut short) and returns its state with the report.
    /// `Port(Invalid)` when the object is not mapped to the system; `Port(Unavailable)` (the
    /// pass's progress kept) when a provider or store cannot be reached.
    pub async fn run(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        system: &SystemId,
        pass: Pass,
    ) -> ServiceResult<SyncState> {
        let dry_run = matches!(pass, Pass::DryRun(_));
        let targets = match pass {
            Pass::DryRun(Some(candidate)) => candidate,
            _ => self.outbound.targets_of(tenant, object).await?,
        };
        let target = targets
            .into_iter()
            .find(|t| &t.mapping.attio_object == object && &t.mapping.system == system)
            .ok_or_else(|| PortError::Invalid(format!("no mapping of {object} to {system}")))?;
        let key = Self::state_object(object, dry_run)?;
        let now = self.clock.now();
        let mut state = match self.states.get(tenant, &key, system).await? {
            Some(s) if s.phase == BackfillPhase::Running || s.phase == BackfillPhase::Failed => s,
            Some(mut s) => {
                s.drift = None;
                s
            }
            None => SyncState::new(tenant.clone(), key.clone(), system.clone(), now),
        };
        if state.phase == BackfillPhase::Running {
            // Abandoned by a process that stopped: fail it so it can start again from its page.
            state.fail("abandoned by its process", now);
        }
        state.start(now)?;
        let mut report = state.drift.take().unwrap_or_default();
        report.dry_run = dry_run;
        state.drift = Some(report);
        state = self.states.save(&state).await?;
        let clients = self.directory.clients(tenant).await?;
        loop {
            let mut report = state.drift.clone().unwrap_or_default();
            let page = self
                .page(
                    tenant,
                    object,
                    &target,
                    &clients,
                    state.next_offset,
                    dry_run,
                    &mut report,
                )
                .await;
            let now = self.clock.now();
            match page {
                Ok((seen, written)) => {
                    state.page_done(seen, written.min(seen), now)?;
                    state.drift = Some(report);
                    if seen < u64::from(self.page_size) {
                        state.complete(now)?;
                        let state = self.states.save(&state).await?;
                        self.log(tenant, object, system, &state);
                        return Ok(state);
                    }
                    state = self.states.save(&state).await?;
                }
                Err(e) => {
                    state.fail(&e.to_string(), now);
                    self.states.save(&state).await?;
                    return Err(e);
                }
            }
        }
    }

    fn log(&self, tenant: &TenantId, object: &ObjectSlug, system: &SystemId, state: &SyncState) {
        if let Some(r) = &state.drift {
            tracing::info!(tenant = %tenant, object = %object, system = %system, dry_run = r.dry_run, records = r.records, in_step = r.in_step, created = r.created, repaired = r.repaired, conflicts = r.conflicts, failed = r.failed, "reconciliation pass finished");
        }
    }

    /// One page: every record compared (and repaired); returns (records seen, pairs written).
    #[allow(clippy::too_many_arguments)]
    async fn page(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        target: &SyncTarget,
        clients: &TenantClients,
        offset: u64,
        dry_run: bool,
        report: &mut DriftReport,
    ) -> ServiceResult<(u64, u64)> {
        let query = Query {
            sorts: vec![json!({"attribute": "created_at", "direction": "asc"})],
            limit: Some(self.page_size),
            offset,
            ..Query::default()
        };
        let records = clients
            .attio
            .query_records(&ObjectRef::from(object.clone()), &query)
            .await?;
        let mut written = 0;
        for record in &records {
            report.records += 1;
            let outcome = if dry_run {
                self.plan(tenant, object, record, target, clients).await
            } else {
                self.outbound
                    .sync_one(tenant, object, record, target, clients)
                    .await
            };
            let r = match outcome {
                Ok(r) => r,
                Err(ServiceError::RecordRejected {
                    reason,
                    retryable: false,
                    ..
                }) => {
                    report.failed += 1;
                    if report.failures.len() < NAMED_FAILURES {
                        report
                            .failures
                            .push(format!("{object} {}: {reason}", record.id.record_id));
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            written += u64::from(tally(report, &r, &target.mapping.system));
        }
        Ok((records.len() as u64, written))
    }

    /// What a sync of this pair would do, without writing.
    async fn plan(
        &self,
        tenant: &TenantId,
        object: &ObjectSlug,
        record: &Record,
        target: &SyncTarget,
        clients: &TenantClients,
    ) -> ServiceResult<crate::outbound::SystemReport> {
        self.outbound
            .plan_one(tenant, object, record, target, clients)
            .await
    }
}

/// Adds one pair's outcome to the report; whether anything was (or would be) written.
fn tally(report: &mut DriftReport, r: &crate::outbound::SystemReport, system: &SystemId) -> bool {
    if r.action == Action::DeleteHeld {
        report.held += 1;
        return false;
    }
    for k in &r.written {
        *report.fields_to_crm.entry(k.to_string()).or_default() += 1;
    }
    for k in &r.written_to_attio {
        *report.fields_to_attio.entry(k.to_string()).or_default() += 1;
    }
    report.deferred += r.deferred_inbound.len() as u64;
    report.conflicts += r.conflicts.len() as u64;
    let wrote = !r.written.is_empty() || !r.written_to_attio.is_empty();
    match r.action {
        Action::Created => report.created += 1,
        _ if wrote => report.repaired += 1,
        _ if r.conflicts.is_empty() => report.in_step += 1,
        _ => {}
    }
    if wrote && !report.dry_run {
        metrics::counter!("drift_found_total", "system" => system.to_string()).increment(1);
        metrics::counter!("drift_repaired_total", "system" => system.to_string()).increment(1);
    } else if wrote || !r.conflicts.is_empty() {
        metrics::counter!("drift_found_total", "system" => system.to_string()).increment(1);
    }
    wrote
}
