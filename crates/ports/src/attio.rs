//! The Attio API, as the core needs it. One instance speaks for one workspace (its credentials are
//! bound at construction by the composition root).
//!
//! Every method may also return [`crate::PortError::Unauthorized`] (token unknown or lacking a scope),
//! [`crate::PortError::RateLimited`] (429 after the adapter's own retries), [`crate::PortError::Unavailable`]
//! (connection failures, timeouts, 5xx after retries, an open circuit) and
//! [`crate::PortError::Rejected`] (any other error body, with Attio's `code`); only the cases specific to
//! a method are listed on it.

use async_trait::async_trait;
use domain::ids::{
    AttributeSlug, EntryId, ListId, ListSlug, NoteId, ObjectRef, RecordId, TaskId, WebhookId,
    WorkspaceMemberId,
};
use domain::record::{ListEntry, Record};
use domain::schema::{
    Attribute, ContentFormat, List, Note, Object, Subscription, Task, TokenInfo, Webhook,
    WorkspaceMember,
};
use domain::value::{AttributeValue, SelectOption, Status};
use domain::write::{RecordWrite, WriteValue};
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::PortResult;

/// A list named either way Attio accepts: UUID or `api_slug`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListRef {
    Id(ListId),
    Slug(ListSlug),
}

/// Whose attributes: an object's or a list's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeTarget {
    Object(ObjectRef),
    List(ListRef),
}

/// `POST …/query` body: Attio's filter language and sorts are passed through as JSON.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    pub filter: Option<Value>,
    pub sorts: Vec<Value>,
    /// Page size; Attio's default is 500.
    pub limit: Option<u32>,
    pub offset: u64,
}

/// How an update treats multiselect attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateMode {
    /// `PATCH`: multiselect values are added (prepended).
    Append,
    /// `PUT`: multiselect values are replaced.
    Overwrite,
}

/// Entry write: the parent record (for create/assert) and the list's own attribute values.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryWrite {
    pub parent_object: String,
    pub parent_record_id: RecordId,
    pub entry_values: std::collections::BTreeMap<AttributeSlug, Vec<WriteValue>>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct NoteQuery {
    pub parent_object: Option<String>,
    pub parent_record_id: Option<RecordId>,
    /// Attio: default 10, max 50.
    pub limit: Option<u32>,
    pub offset: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewNote {
    pub parent_object: String,
    pub parent_record_id: RecordId,
    pub title: String,
    pub format: ContentFormat,
    pub content: String,
    pub created_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskQuery {
    pub linked_object: Option<String>,
    pub linked_record_id: Option<RecordId>,
    pub assignee: Option<String>,
    pub is_completed: Option<bool>,
    pub limit: Option<u32>,
    pub offset: u64,
}

/// A record linked to a task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskLink {
    pub target_object: String,
    pub target_record_id: RecordId,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// At most 2,000 characters.
    pub content: String,
    pub deadline_at: Option<OffsetDateTime>,
    pub is_completed: bool,
    pub linked_records: Vec<TaskLink>,
    pub assignees: Vec<WorkspaceMemberId>,
}

/// `PATCH /v2/tasks/{id}` accepts only these.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskUpdate {
    pub deadline_at: Option<Option<OffsetDateTime>>,
    pub is_completed: Option<bool>,
    pub linked_records: Option<Vec<TaskLink>>,
    pub assignees: Option<Vec<WorkspaceMemberId>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewWebhook {
    pub target_url: String,
    pub subscriptions: Vec<Subscription>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct WebhookUpdate {
    pub target_url: Option<String>,
    pub subscriptions: Option<Vec<Subscription>>,
}

/// Records of an object.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait AttioRecords: Send + Sync {
    /// One page of `records/query`. `Rejected` with code `filter_error` or
    /// `unknown_filter_attribute_slug` for a bad filter; `NotFound` for an unknown object.
    async fn query_records(&self, object: &ObjectRef, query: &Query) -> PortResult<Vec<Record>>;
    /// Creates a record. `Rejected` with `uniqueness_conflict` when a unique value exists,
    /// `value_not_found` / `validation_type` / `missing_value` for bad values.
    async fn create_record(&self, object: &ObjectRef, values: &RecordWrite) -> PortResult<Record>;
    /// Upserts by a unique attribute (`PUT ?matching_attribute=`). `Rejected` with
    /// `value_not_found` when the attribute is unknown or not unique.
    async fn assert_record(
        &self,
        object: &ObjectRef,
        matching_attribute: &AttributeSlug,
        values: &RecordWrite,
    ) -> PortResult<Record>;
    /// Updates a record. `NotFound` when it does not exist.
    async fn update_record(
        &self,
        object: &ObjectRef,
        id: RecordId,
        values: &RecordWrite,
        mode: UpdateMode,
    ) -> PortResult<Record>;
    /// Reads a record. `NotFound` when it does not exist (or, in 2026 mode, is being merged).
    async fn get_record(&self, object: &ObjectRef, id: RecordId) -> PortResult<Record>;
    /// Deletes a record. `NotFound` when it does not exist.
    async fn delete_record(&self, object: &ObjectRef, id: RecordId) -> PortResult<()>;
    /// Merges two records into a new one (Attio's merge, 2026 beta) and returns its id; Attio
    /// then tells `record.merged` for each original. `NotFound` when either record does not
    /// exist (a repeat of a merge done: merging is not idempotent); `Rejected` with
    /// `self_merge` for one record twice.
    async fn merge_records(
        &self,
        object: &ObjectRef,
        primary: RecordId,
        secondary: RecordId,
    ) -> PortResult<RecordId>;
    /// An attribute's values, oldest first with `show_historic`. `NotFound` for an unknown
    /// record or attribute.
    async fn attribute_values(
        &self,
        object: &ObjectRef,
        id: RecordId,
        attribute: &AttributeSlug,
        show_historic: bool,
    ) -> PortResult<Vec<AttributeValue>>;
}

/// Objects and attributes.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait AttioSchema: Send + Sync {
    /// Every object of the workspace.
    async fn list_objects(&self) -> PortResult<Vec<Object>>;
    /// One object. `NotFound` for an unknown slug or id.
    async fn get_object(&self, object: &ObjectRef) -> PortResult<Object>;
    /// Attributes in UI order. `NotFound` for an unknown object or list.
    async fn list_attributes(&self, target: &AttributeTarget) -> PortResult<Vec<Attribute>>;
    /// Options of a select attribute. `NotFound` for an unknown attribute.
    async fn list_options(
        &self,
        target: &AttributeTarget,
        attribute: &AttributeSlug,
    ) -> PortResult<Vec<SelectOption>>;
    /// Statuses of a status attribute. `NotFound` for an unknown attribute.
    async fn list_statuses(
        &self,
        target: &AttributeTarget,
        attribute: &AttributeSlug,
    ) -> PortResult<Vec<Status>>;
}

/// One list entry of a record (`GET /v2/objects/{object}/records/{id}/entries`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct RecordEntry {
    pub list_id: ListId,
    pub list_api_slug: String,
    pub entry_id: EntryId,
}

/// Lists and their entries.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait AttioLists: Send + Sync {
    async fn list_lists(&self) -> PortResult<Vec<List>>;
    /// `NotFound` for an unknown list.
    async fn get_list(&self, list: &ListRef) -> PortResult<List>;
    /// One entry. `NotFound` for an unknown list or entry.
    async fn get_entry(&self, list: &ListRef, id: EntryId) -> PortResult<ListEntry>;
    /// One page of `entries/query`. `NotFound` for an unknown list; `Rejected` for a bad filter.
    async fn query_entries(&self, list: &ListRef, query: &Query) -> PortResult<Vec<ListEntry>>;
    /// `Rejected` with `value_not_found` when the parent record does not exist.
    async fn create_entry(&self, list: &ListRef, entry: &EntryWrite) -> PortResult<ListEntry>;
    /// Upserts by parent record. `Rejected` with `multiple_match_results` when the parent has
    /// several entries.
    async fn assert_entry(&self, list: &ListRef, entry: &EntryWrite) -> PortResult<ListEntry>;
    /// `NotFound` for an unknown entry.
    async fn update_entry(
        &self,
        list: &ListRef,
        id: EntryId,
        values: &std::collections::BTreeMap<AttributeSlug, Vec<WriteValue>>,
        mode: UpdateMode,
    ) -> PortResult<ListEntry>;
    /// `NotFound` for an unknown entry.
    async fn delete_entry(&self, list: &ListRef, id: EntryId) -> PortResult<()>;
    /// The list entries whose parent is this record. `NotFound` for an unknown record.
    async fn entries_of(
        &self,
        object: &ObjectRef,
        record: RecordId,
    ) -> PortResult<Vec<RecordEntry>>;
}

/// Notes.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait AttioNotes: Send + Sync {
    async fn list_notes(&self, query: &NoteQuery) -> PortResult<Vec<Note>>;
    /// `Rejected` when the parent record does not exist.
    async fn create_note(&self, note: &NewNote) -> PortResult<Note>;
    /// `NotFound` for an unknown note.
    async fn get_note(&self, id: NoteId) -> PortResult<Note>;
    /// `NotFound` for an unknown note.
    async fn delete_note(&self, id: NoteId) -> PortResult<()>;
}

/// Tasks.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait AttioTasks: Send + Sync {
    async fn list_tasks(&self, query: &TaskQuery) -> PortResult<Vec<Task>>;
    /// `Invalid` for content over 2,000 characters (checked before sending).
    async fn create_task(&self, task: &NewTask) -> PortResult<Task>;
    /// `NotFound` for an unknown task.
    async fn get_task(&self, id: TaskId) -> PortResult<Task>;
    /// `NotFound` for an unknown task.
    async fn update_task(&self, id: TaskId, update: &TaskUpdate) -> PortResult<Task>;
    /// `NotFound` for an unknown task.
    async fn delete_task(&self, id: TaskId) -> PortResult<()>;
}

/// Webhook subscriptions.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait AttioWebhooks: Send + Sync {
    /// The returned webhook carries its `secret` (only here). `Rejected` with `validation_type`
    /// for a non-https target.
    async fn create_webhook(&self, webhook: &NewWebhook) -> PortResult<Webhook>;
    async fn list_webhooks(&self) -> PortResult<Vec<Webhook>>;
    /// `NotFound` for an unknown webhook.
    async fn get_webhook(&self, id: WebhookId) -> PortResult<Webhook>;
    /// `NotFound` for an unknown webhook.
    async fn update_webhook(&self, id: WebhookId, update: &WebhookUpdate) -> PortResult<Webhook>;
    /// `NotFound` for an unknown webhook.
    async fn delete_webhook(&self, id: WebhookId) -> PortResult<()>;
}

/// The workspace and the token itself.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait AttioWorkspace: Send + Sync {
    /// `/v2/self`; `active: false` for an unknown token (never `Unauthorized`).
    async fn token_info(&self) -> PortResult<TokenInfo>;
    async fn list_members(&self) -> PortResult<Vec<WorkspaceMember>>;
    /// `NotFound` for an unknown member.
    async fn get_member(&self, id: WorkspaceMemberId) -> PortResult<WorkspaceMember>;
}
