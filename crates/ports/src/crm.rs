//! An external CRM (HubSpot, Salesforce, or a plugin): the operations the sync engine needs,
//! over provider-neutral values. Adapters convert their wire types explicitly.
//!
//! Every method may also return [`crate::PortError::RateLimited`], [`crate::PortError::Unavailable`],
//! [`crate::PortError::Unauthorized`] and [`crate::PortError::Rejected`]; an operation the CRM cannot do
//! returns [`crate::PortError::Unsupported`], never an empty success.

use std::collections::BTreeMap;

use async_trait::async_trait;
use domain::field::FieldValue;
use domain::ids::{ExternalId, SystemId};
use domain::mapping::ExternalProperty;
use time::OffsetDateTime;

use crate::error::PortResult;

/// A record of the external CRM.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalRecord {
    pub id: ExternalId,
    pub properties: BTreeMap<ExternalProperty, FieldValue>,
    /// Per-property change times where the CRM reports them (HubSpot property history);
    /// otherwise empty and `updated_at` applies to every property.
    pub changed_at: BTreeMap<ExternalProperty, OffsetDateTime>,
    pub updated_at: Option<OffsetDateTime>,
    pub archived: bool,
    /// A deleted record merged into another: the survivor (Salesforce's `MasterRecordId`).
    pub merged_into: Option<ExternalId>,
}

/// One record of a batch upsert, keyed by the value of the id property.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalUpsert {
    pub key: String,
    pub properties: BTreeMap<ExternalProperty, FieldValue>,
}

/// What happened to one record of a batch; same order as the input.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordOutcome {
    Created(ExternalId),
    Updated(ExternalId),
    Failed { reason: String, retryable: bool },
}

/// What kind of value a CRM field holds, in provider-neutral terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Number,
    Bool,
    Date,
    DateTime,
    /// One of `ExternalField::options` (a HubSpot enumeration, a Salesforce picklist).
    Choice,
    /// Several of `ExternalField::options` (`;`-separated in HubSpot, a multi-select picklist).
    MultiChoice,
    /// The id of another record.
    Reference,
    /// Anything else, by the CRM's own name for it.
    Other(String),
}

/// One field (property) of a CRM object, as the CRM describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalField {
    pub name: String,
    pub kind: FieldKind,
    /// The values a choice may take (empty for other kinds).
    pub options: Vec<String>,
    /// A create must set it (and the CRM sets no default).
    pub required: bool,
    /// The API may write it.
    pub writable: bool,
}

/// A user records can be owned by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmOwner {
    pub id: ExternalId,
    pub email: String,
}

/// A page of changed records.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangePage {
    pub records: Vec<ExternalRecord>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<String>,
}

#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ExternalCrm: Send + Sync {
    /// Which system this is.
    fn system(&self) -> SystemId;
    /// Largest batch `upsert_batch` and `archive_batch` take.
    fn max_batch(&self) -> usize;
    /// Reads one record with the given properties. `NotFound` when it does not exist.
    async fn get(
        &self,
        object: &str,
        id: &ExternalId,
        properties: &[ExternalProperty],
    ) -> PortResult<ExternalRecord>;
    /// Upserts records by a unique property (`idProperty` / external id field). `Invalid` when
    /// the batch is larger than [`ExternalCrm::max_batch`]. Per-record failures are outcomes, not
    /// errors.
    async fn upsert_batch(
        &self,
        object: &str,
        id_property: &ExternalProperty,
        records: &[ExternalUpsert],
    ) -> PortResult<Vec<RecordOutcome>>;
    /// Archives (deletes) records. Unknown ids are per-record failures.
    async fn archive_batch(
        &self,
        object: &str,
        ids: &[ExternalId],
    ) -> PortResult<Vec<RecordOutcome>>;
    /// Records changed since `since`, page by page (`after` from the previous page).
    async fn changed_since(
        &self,
        object: &str,
        since: OffsetDateTime,
        properties: &[ExternalProperty],
        after: Option<String>,
    ) -> PortResult<ChangePage>;
    /// The fields of `object` as the CRM describes them (HubSpot's properties, Salesforce's
    /// describe). `NotFound` when the CRM has no such object.
    async fn describe(&self, object: &str) -> PortResult<Vec<ExternalField>>;
    /// Sets properties of one record by the CRM's own id (the Attio id property on a record that
    /// survived a merge, say). `NotFound` for an unknown id; `Invalid` for a value the CRM
    /// refuses.
    async fn update(
        &self,
        object: &str,
        id: &ExternalId,
        properties: &BTreeMap<ExternalProperty, FieldValue>,
    ) -> PortResult<()>;
    /// The users records can be owned by, each with its e-mail address (HubSpot's owners,
    /// Salesforce's active users): how an owner is matched with an Attio workspace member.
    async fn owners(&self) -> PortResult<Vec<CrmOwner>>;
    /// The record `id` was merged into, when the CRM merged it away (HubSpot's
    /// `hs_merged_object_ids` on the survivor, Salesforce's `MasterRecordId` on the deleted
    /// record); `None` when it was deleted, never existed, or the CRM does not merge `object`.
    async fn successor(&self, object: &str, id: &ExternalId) -> PortResult<Option<ExternalId>>;
    /// Merges `secondary` into `primary`; returns the surviving id. `Unsupported` where the CRM
    /// has no merge API.
    async fn merge(
        &self,
        object: &str,
        primary: &ExternalId,
        secondary: &ExternalId,
    ) -> PortResult<ExternalId>;
}

/// What kind of activity: Attio's notes and tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActivityKind {
    Note,
    Task,
}

impl ActivityKind {
    /// The name used in identity links and logs: `notes`, `tasks`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Note => "notes",
            Self::Task => "tasks",
        }
    }
}

/// A note or task as the CRMs receive it, in provider-neutral terms.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalActivity {
    pub kind: ActivityKind,
    /// A note's title, or a task's subject (its first line).
    pub title: String,
    /// The text: a note's content, a task's full content.
    pub body: String,
    /// When it happened (a note's creation) or is due (a task's deadline, else its creation).
    pub at: OffsetDateTime,
    /// Tasks only: whether it is done.
    pub completed: bool,
}

/// A record of the CRM an activity is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityTarget {
    /// The CRM's object of the record (`contacts`, `Account`, ...).
    pub object: String,
    pub id: ExternalId,
}

/// One activity as the CRM holds it, with the records it is attached to.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalActivityRecord {
    pub id: ExternalId,
    pub activity: ExternalActivity,
    pub targets: Vec<ActivityTarget>,
    /// Deleted in the CRM (its other fields may be empty).
    pub deleted: bool,
}

/// A page of changed activities.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityPage {
    pub activities: Vec<ExternalActivityRecord>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<String>,
}

/// Notes and tasks in an external CRM, attached to its records (HubSpot engagements, Salesforce
/// `Note` and `Task`). Errors as for [`ExternalCrm`].
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ExternalActivities: Send + Sync {
    /// Creates the activity attached to `targets` and returns its id. `NotFound` when a target
    /// record does not exist; `Invalid` when the CRM cannot attach it to these targets (none, or
    /// objects it cannot hold activities of).
    async fn create_activity(
        &self,
        activity: &ExternalActivity,
        targets: &[ActivityTarget],
    ) -> PortResult<ExternalId>;
    /// Rewrites the activity's title, body, time and state. `NotFound` when it no longer exists.
    async fn update_activity(&self, id: &ExternalId, activity: &ExternalActivity)
    -> PortResult<()>;
    /// Deletes it. `NotFound` when it does not exist.
    async fn delete_activity(&self, kind: ActivityKind, id: &ExternalId) -> PortResult<()>;
    /// Reads one back as the CRM holds it. `NotFound` when it does not exist.
    async fn get_activity(
        &self,
        kind: ActivityKind,
        id: &ExternalId,
    ) -> PortResult<ExternalActivity>;
    /// Activities of `kind` created, changed or deleted since `since`, page by page (`after`
    /// from the previous page), with their targets. A CRM that cannot tell deletes leaves them
    /// out (its docs say so).
    async fn activities_changed_since(
        &self,
        kind: ActivityKind,
        since: OffsetDateTime,
        after: Option<String>,
    ) -> PortResult<ActivityPage>;
}
