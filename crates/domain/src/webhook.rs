//! Attio webhook deliveries (v2 format): `{"webhook_id", "events": [{"event_type", "id", "actor",
//! …}]}`. Deliveries carry ids, never values; the receiver re-reads the resource.
//!
//! Each known event type decodes to a typed [`EventSubject`]; an unknown event type, or a known one
//! whose `id` does not have the documented keys, decodes to [`EventSubject::Unknown`] with the
//! payload kept verbatim, so it can be stored and acknowledged.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::actor::Actor;
use crate::ids::{
    ActivityId, AttributeId, CallRecordingId, CommentId, EntryId, ListId, MeetingId, NoteId,
    ObjectId, RecordId, TaskId, ThreadId, WebhookId, WorkspaceId, WorkspaceMemberId,
};
use crate::macros::open_enum;
use crate::value::{Extra, json_kind};

open_enum! {
    /// Every event type Attio's create-webhook accepts, plus the 2026 additions.
    pub enum EventType {
        CallRecordingCreated = "call-recording.created",
        CommentCreated = "comment.created",
        CommentResolved = "comment.resolved",
        CommentUnresolved = "comment.unresolved",
        CommentDeleted = "comment.deleted",
        ListCreated = "list.created",
        ListUpdated = "list.updated",
        ListDeleted = "list.deleted",
        ListAttributeCreated = "list-attribute.created",
        ListAttributeUpdated = "list-attribute.updated",
        ListEntryCreated = "list-entry.created",
        ListEntryUpdated = "list-entry.updated",
        ListEntryDeleted = "list-entry.deleted",
        ObjectAttributeCreated = "object-attribute.created",
        ObjectAttributeUpdated = "object-attribute.updated",
        NoteCreated = "note.created",
        NoteUpdated = "note.updated",
        NoteDeleted = "note.deleted",
        NoteContentUpdated = "note-content.updated",
        RecordCreated = "record.created",
        RecordUpdated = "record.updated",
        RecordDeleted = "record.deleted",
        RecordMerged = "record.merged",
        TaskCreated = "task.created",
        TaskUpdated = "task.updated",
        TaskDeleted = "task.deleted",
        WorkspaceMemberCreated = "workspace-member.created",
        ActivityCreated = "activity.created",
        ActivityUpdated = "activity.updated",
        ActivityDeleted = "activity.deleted",
        ActivityAttributeCreated = "activity-attribute.created",
        ActivityAttributeUpdated = "activity-attribute.updated",
        ActivityRecordCreated = "activity-record.created",
        ActivityRecordDeleted = "activity-record.deleted",
    }
}

/// Which subject shape an event type carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    Record,
    RecordMerged,
    ListEntry,
    Note,
    Task,
    Comment,
    List,
    ObjectAttribute,
    ListAttribute,
    WorkspaceMember,
    CallRecording,
    Activity,
    Unknown,
}

impl EventType {
    pub fn subject_kind(&self) -> SubjectKind {
        use EventType::*;
        match self {
            RecordCreated | RecordUpdated | RecordDeleted => SubjectKind::Record,
            RecordMerged => SubjectKind::RecordMerged,
            ListEntryCreated | ListEntryUpdated | ListEntryDeleted => SubjectKind::ListEntry,
            NoteCreated | NoteUpdated | NoteDeleted | NoteContentUpdated => SubjectKind::Note,
            TaskCreated | TaskUpdated | TaskDeleted => SubjectKind::Task,
            CommentCreated | CommentResolved | CommentUnresolved | CommentDeleted => {
                SubjectKind::Comment
            }
            ListCreated | ListUpdated | ListDeleted => SubjectKind::List,
            ObjectAttributeCreated | ObjectAttributeUpdated => SubjectKind::ObjectAttribute,
            ListAttributeCreated | ListAttributeUpdated => SubjectKind::ListAttribute,
            WorkspaceMemberCreated => SubjectKind::WorkspaceMember,
            CallRecordingCreated => SubjectKind::CallRecording,
            ActivityCreated
            | ActivityUpdated
            | ActivityDeleted
            | ActivityAttributeCreated
            | ActivityAttributeUpdated
            | ActivityRecordCreated
            | ActivityRecordDeleted => SubjectKind::Activity,
            Other(_) => SubjectKind::Unknown,
        }
    }
}

fn take_req<T: serde::de::DeserializeOwned>(m: &Extra, k: &str) -> Option<T> {
    m.get(k)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

fn take_opt<T: serde::de::DeserializeOwned>(m: &Extra, k: &str) -> Option<Option<T>> {
    match m.get(k) {
        None | Some(Value::Null) => Some(None),
        Some(v) => serde_json::from_value(v.clone()).ok().map(Some),
    }
}

fn put<T: Serialize>(m: &mut Extra, k: &str, v: &T) {
    if let Ok(v) = serde_json::to_value(v) {
        m.insert(k.to_owned(), v);
    }
}

/// Declares the subject structs: `req` fields must be present, `opt` fields are omitted when
/// absent, `null` fields are sent as `null` when absent. `id` fields live in the event's `id`
/// object, `top` fields beside it.
macro_rules! subjects {
    ($(
        $(#[$meta:meta])*
        $kind:ident => $name:ident {
            id: [$($idf:ident: $idt:ty),*],
            id_opt: [$($idof:ident: $idot:ty),*],
            top: [$($tf:ident: $tt:ty),*],
            top_null: [$($tnf:ident: $tnt:ty),*] $(,)?
        }
    )+) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, PartialEq, Eq, Hash)]
            pub struct $name {
                $(pub $idf: $idt,)*
                $(pub $idof: Option<$idot>,)*
                $(pub $tf: $tt,)*
                $(pub $tnf: Option<$tnt>,)*
            }

            impl $name {
                const ID_KEYS: &'static [&'static str] = &[$(stringify!($idf),)* $(stringify!($idof),)*];
                const TOP_KEYS: &'static [&'static str] = &[$(stringify!($tf),)* $(stringify!($tnf),)*];

                fn decode(id: &Extra, top: &Extra) -> Option<Self> {
                    let _ = (id, top);
                    Some(Self {
                        $($idf: take_req(id, stringify!($idf))?,)*
                        $($idof: take_opt(id, stringify!($idof))?,)*
                        $($tf: take_req(top, stringify!($tf))?,)*
                        $($tnf: take_opt(top, stringify!($tnf))?,)*
                    })
                }

                fn encode(&self, id: &mut Extra, top: &mut Extra) {
                    $(put(id, stringify!($idf), &self.$idf);)*
                    $(if let Some(v) = &self.$idof { put(id, stringify!($idof), v); })*
                    $(put(top, stringify!($tf), &self.$tf);)*
                    $(put(top, stringify!($tnf), &self.$tnf);)*
                    let _ = (&id, &top);
                }
            }
        )+

        /// What an event is about, by shape of its `id`.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum EventSubject {
            $($kind($name),)+
            /// Unknown event type or unexpected `id`: the `id` is kept verbatim.
            Unknown(Value),
        }

        impl EventSubject {
            fn decode(kind: SubjectKind, id: &mut Extra, top: &mut Extra) -> Option<Self> {
                match kind {
                    $(SubjectKind::$kind => {
                        let s = $name::decode(id, top)?;
                        for k in $name::ID_KEYS { id.remove(*k); }
                        for k in $name::TOP_KEYS { top.remove(*k); }
                        Some(Self::$kind(s))
                    })+
                    SubjectKind::Unknown => None,
                }
            }

            fn encode(&self, id: &mut Extra, top: &mut Extra) -> Option<Value> {
                match self {
                    $(Self::$kind(s) => { s.encode(id, top); None })+
                    Self::Unknown(raw) => Some(raw.clone()),
                }
            }
        }
    };
}

subjects! {
    /// `record.created|updated|deleted`; `attribute_id` on `record.updated`.
    Record => RecordSubject {
        id: [workspace_id: WorkspaceId, object_id: ObjectId, record_id: RecordId],
        id_opt: [attribute_id: AttributeId],
        top: [],
        top_null: [],
    }
    /// `record.merged`: `record_id` survives (or is new, in 2026 mode); the duplicate is named
    /// beside the `id`.
    RecordMerged => RecordMergedSubject {
        id: [workspace_id: WorkspaceId, object_id: ObjectId, record_id: RecordId],
        id_opt: [],
        top: [duplicate_object_id: ObjectId, duplicate_record_id: RecordId],
        top_null: [],
    }
    /// `list-entry.*`; `attribute_id` on `list-entry.updated`.
    ListEntry => ListEntrySubject {
        id: [workspace_id: WorkspaceId, list_id: ListId, entry_id: EntryId],
        id_opt: [attribute_id: AttributeId],
        top: [parent_object_id: ObjectId, parent_record_id: RecordId],
        top_null: [],
    }
    /// `note.*` and `note-content.updated`.
    Note => NoteSubject {
        id: [workspace_id: WorkspaceId, note_id: NoteId],
        id_opt: [],
        top: [parent_object_id: ObjectId, parent_record_id: RecordId],
        top_null: [],
    }
    /// `task.*`.
    Task => TaskSubject {
        id: [workspace_id: WorkspaceId, task_id: TaskId],
        id_opt: [],
        top: [],
        top_null: [],
    }
    /// `comment.*`.
    Comment => CommentSubject {
        id: [workspace_id: WorkspaceId, comment_id: CommentId],
        id_opt: [],
        top: [],
        top_null: [thread_id: ThreadId, object_id: ObjectId, record_id: RecordId, list_id: ListId, entry_id: EntryId],
    }
    /// `list.*`.
    List => ListSubject {
        id: [workspace_id: WorkspaceId, list_id: ListId],
        id_opt: [],
        top: [],
        top_null: [],
    }
    /// `object-attribute.*`.
    ObjectAttribute => ObjectAttributeSubject {
        id: [workspace_id: WorkspaceId, object_id: ObjectId, attribute_id: AttributeId],
        id_opt: [],
        top: [],
        top_null: [],
    }
    /// `list-attribute.*`.
    ListAttribute => ListAttributeSubject {
        id: [workspace_id: WorkspaceId, list_id: ListId, attribute_id: AttributeId],
        id_opt: [],
        top: [],
        top_null: [],
    }
    /// `workspace-member.created`.
    WorkspaceMember => WorkspaceMemberSubject {
        id: [workspace_id: WorkspaceId, workspace_member_id: WorkspaceMemberId],
        id_opt: [],
        top: [],
        top_null: [],
    }
    /// `call-recording.created`.
    CallRecording => CallRecordingSubject {
        id: [workspace_id: WorkspaceId, meeting_id: MeetingId, call_recording_id: CallRecordingId],
        id_opt: [],
        top: [],
        top_null: [],
    }
    /// `activity.*`, `activity-attribute.*`, `activity-record.*` (2026).
    Activity => ActivitySubject {
        id: [workspace_id: WorkspaceId, activity_id: ActivityId],
        id_opt: [attribute_id: AttributeId],
        top: [],
        top_null: [],
    }
}

/// One event of a delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    pub event_type: EventType,
    pub subject: EventSubject,
    /// `None` when absent or unreadable (then kept in `extra`).
    pub actor: Option<Actor>,
    /// Keys inside `id` this version does not know.
    pub id_extra: Extra,
    /// Keys beside `id` this version does not know.
    pub extra: Extra,
}

impl WebhookEvent {
    /// The workspace the event belongs to, when the subject is known.
    pub fn workspace_id(&self) -> Option<WorkspaceId> {
        Some(match &self.subject {
            EventSubject::Record(s) => s.workspace_id,
            EventSubject::RecordMerged(s) => s.workspace_id,
            EventSubject::ListEntry(s) => s.workspace_id,
            EventSubject::Note(s) => s.workspace_id,
            EventSubject::Task(s) => s.workspace_id,
            EventSubject::Comment(s) => s.workspace_id,
            EventSubject::List(s) => s.workspace_id,
            EventSubject::ObjectAttribute(s) => s.workspace_id,
            EventSubject::ListAttribute(s) => s.workspace_id,
            EventSubject::WorkspaceMember(s) => s.workspace_id,
            EventSubject::CallRecording(s) => s.workspace_id,
            EventSubject::Activity(s) => s.workspace_id,
            EventSubject::Unknown(_) => return None,
        })
    }

    fn from_map(mut top: Extra) -> Result<Self, String> {
        let event_type = match top.remove("event_type") {
            Some(Value::String(s)) => EventType::from(s.as_str()),
            Some(other) => {
                return Err(format!(
                    "event_type must be a string, got {}",
                    json_kind(&other)
                ));
            }
            None => return Err("event has no event_type".into()),
        };
        let actor = match top.remove("actor") {
            None | Some(Value::Null) => None,
            Some(v) => match serde_json::from_value::<Actor>(v.clone()) {
                Ok(a) => Some(a),
                Err(_) => {
                    top.insert("actor".into(), v);
                    None
                }
            },
        };
        let raw_id = top.remove("id").unwrap_or(Value::Null);
        let (subject, id_extra) = match raw_id {
            Value::Object(mut id) => {
                match EventSubject::decode(event_type.subject_kind(), &mut id, &mut top) {
                    Some(s) => (s, id),
                    None => (EventSubject::Unknown(Value::Object(id)), Extra::new()),
                }
            }
            other => (EventSubject::Unknown(other), Extra::new()),
        };
        Ok(Self {
            event_type,
            subject,
            actor,
            id_extra,
            extra: top,
        })
    }
}

impl Serialize for WebhookEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut top = Extra::new();
        top.insert(
            "event_type".into(),
            Value::String(self.event_type.as_str().to_owned()),
        );
        let mut id = self.id_extra.clone();
        let mut rest = Extra::new();
        let raw = self.subject.encode(&mut id, &mut rest);
        top.insert("id".into(), raw.unwrap_or(Value::Object(id)));
        top.extend(rest);
        if let Some(actor) = &self.actor {
            put(&mut top, "actor", actor);
        }
        top.extend(self.extra.clone());
        top.serialize(s)
    }
}

impl<'de> Deserialize<'de> for WebhookEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Object(m) => Self::from_map(m).map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "a webhook event must be a JSON object, got {}",
                json_kind(&other)
            ))),
        }
    }
}

/// One POST from Attio. Currently always one event; handled as an array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    pub webhook_id: WebhookId,
    pub events: Vec<WebhookEvent>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl WebhookDelivery {
    /// Parses a raw delivery body.
    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }
}
