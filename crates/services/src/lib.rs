//! The use cases of attio-sync, written only against ports (no adapter, framework or client type
//! appears here; `xtask` checks the dependency rule).
//!
//! - [`outbound::OutboundSync`]: one Attio record to each of the tenant's external CRMs — re-read
//!   the record, merge it field by field with the external record against the last synced
//!   snapshot, upsert what changed by the record's stable key, remember what was written (echo
//!   suppression), record conflicts, and save the link with the new snapshot.
//! - [`pipeline::EventPipeline`]: one handler per Attio event type (record created, updated,
//!   deleted, merged; the rest acknowledged as not handled yet), each convergent so duplicated
//!   and reordered deliveries change nothing.
//! - [`backfill::Backfill`]: a full sync of an object, page by page, checkpointed so an
//!   interrupted run resumes; only what differs from the snapshots is written, in batches.
//! - [`poll::ChangePoller`]: changes in a CRM without webhooks here (Salesforce), polled over an
//!   overlapping window and synced both ways for linked records.
//! - [`worker::Worker`]: the job loop — bounded concurrency, leases kept alive, retries with
//!   exponential backoff and full jitter, dead letters, graceful shutdown that releases what it
//!   cannot finish; [`worker::PipelineHandler`] runs webhook jobs through the pipeline.

pub mod adopt;
pub mod backfill;
pub mod contact;
pub mod deletes;
pub mod error;
pub mod mappings;
pub mod outbound;
pub(crate) mod owners;
pub mod pipeline;
pub mod poll;
pub mod reconcile;
pub mod references;
pub mod resolve;
pub mod retention;
pub mod worker;

pub use error::{ServiceError, ServiceResult};
