//! Objects, attributes, lists, workspace members, notes, tasks, webhook subscriptions and the
//! token introspection of `/v2/self`, as Attio returns them. Fields Attio marks nullable, or that
//! live responses omit, are `Option`; unknown fields are kept in `extra`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::actor::Actor;
use crate::ids::{
    AttributeId, ListId, MeetingId, NoteId, ObjectId, RecordId, TaskId, WebhookId, WorkspaceId,
    WorkspaceMemberId,
};
use crate::macros::open_enum;
use crate::timestamp::Timestamp;
use crate::value::{AttributeType, Extra};
use crate::webhook::EventType;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectIdentifier {
    pub workspace_id: WorkspaceId,
    pub object_id: ObjectId,
}

/// An object definition (people, companies, deals, users, custom objects).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Object {
    pub id: ObjectIdentifier,
    pub api_slug: Option<String>,
    pub singular_noun: Option<String>,
    pub plural_noun: Option<String>,
    pub created_at: Timestamp,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The ids of an attribute: object attributes carry `object_id`, list attributes `list_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AttributeIdentifier {
    pub workspace_id: WorkspaceId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<ObjectId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_id: Option<ListId>,
    pub attribute_id: AttributeId,
}

/// An attribute definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    pub id: AttributeIdentifier,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    pub api_slug: String,
    #[serde(rename = "type")]
    pub attribute_type: AttributeType,
    #[serde(default)]
    pub is_system_attribute: bool,
    #[serde(default)]
    pub is_writable: bool,
    #[serde(default)]
    pub is_required: bool,
    #[serde(default)]
    pub is_unique: bool,
    #[serde(default)]
    pub is_multiselect: bool,
    #[serde(default)]
    pub is_default_value_enabled: bool,
    #[serde(default)]
    pub is_archived: bool,
    #[serde(default)]
    pub default_value: Option<Value>,
    /// May be `null`, or carry only `{"id": …}` in live responses.
    #[serde(default)]
    pub relationship: Option<Value>,
    pub created_at: Timestamp,
    #[serde(default)]
    pub config: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ListIdentifier {
    pub workspace_id: WorkspaceId,
    pub list_id: ListId,
}

/// A list definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct List {
    pub id: ListIdentifier,
    pub api_slug: String,
    pub name: String,
    /// Attio sends an array of object slugs.
    pub parent_object: Vec<String>,
    #[serde(default)]
    pub workspace_access: Option<String>,
    #[serde(default)]
    pub workspace_member_access: Vec<Value>,
    #[serde(default)]
    pub created_by_actor: Option<Actor>,
    pub created_at: Timestamp,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WorkspaceMemberIdentifier {
    pub workspace_id: WorkspaceId,
    pub workspace_member_id: WorkspaceMemberId,
}

/// A member of the workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceMember {
    pub id: WorkspaceMemberIdentifier,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub avatar_url: Option<String>,
    pub email_address: String,
    /// `admin`, `member` or `suspended`.
    pub access_level: String,
    pub created_at: Timestamp,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NoteIdentifier {
    pub workspace_id: WorkspaceId,
    pub note_id: NoteId,
}

/// A note on a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub id: NoteIdentifier,
    pub parent_object: String,
    pub parent_record_id: RecordId,
    pub title: String,
    #[serde(default)]
    pub meeting_id: Option<MeetingId>,
    pub content_plaintext: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_markdown: Option<String>,
    #[serde(default)]
    pub tags: Vec<Value>,
    #[serde(default)]
    pub created_by_actor: Option<Actor>,
    pub created_at: Timestamp,
    #[serde(flatten)]
    pub extra: Extra,
}

open_enum! {
    /// Format of note and task content.
    pub enum ContentFormat {
        Plaintext = "plaintext",
        Markdown = "markdown",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskIdentifier {
    pub workspace_id: WorkspaceId,
    pub task_id: TaskId,
}

/// A record linked to a task. `target_object_id` holds an id or, in examples, a slug.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkedRecord {
    pub target_object_id: String,
    pub target_record_id: RecordId,
    #[serde(flatten)]
    pub extra: Extra,
}

/// An assignee of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignee {
    pub referenced_actor_type: crate::actor::ActorType,
    pub referenced_actor_id: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: TaskIdentifier,
    pub content_plaintext: String,
    #[serde(default)]
    pub deadline_at: Option<String>,
    pub is_completed: bool,
    /// Absent or null in some live responses; only in 2026 revisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Timestamp>,
    #[serde(default)]
    pub linked_records: Vec<LinkedRecord>,
    #[serde(default)]
    pub assignees: Vec<Assignee>,
    #[serde(default)]
    pub created_by_actor: Option<Actor>,
    pub created_at: Timestamp,
    #[serde(flatten)]
    pub extra: Extra,
}

open_enum! {
    /// Delivery health of a webhook subscription.
    pub enum WebhookStatus {
        Active = "active",
        Degraded = "degraded",
        Inactive = "inactive",
    }
}

/// One event type a webhook subscribes to, with an optional filter
/// (`{"$and"|"$or": [{"field","operator","value"}]}`; `null` = every event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub event_type: EventType,
    pub filter: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WebhookIdentifier {
    pub workspace_id: WorkspaceId,
    pub webhook_id: WebhookId,
}

/// A webhook subscription. `secret` is present only in the create response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: WebhookIdentifier,
    pub target_url: String,
    pub subscriptions: Vec<Subscription>,
    pub status: WebhookStatus,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `GET /v2/self`: token introspection (not wrapped in `data`). `{"active": false}` for an
/// unknown token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<WorkspaceId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_slug: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl TokenInfo {
    /// The scopes granted, split from the space-separated `scope`.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.as_deref().unwrap_or("").split_whitespace()
    }
}
