//! Notes and tasks (reference §3.5, §3.6), with their webhook events.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use domain::actor::ActorType;
use domain::ids::{NoteId, ObjectId, RecordId, TaskId, WorkspaceMemberId};
use domain::schema::{Assignee, LinkedRecord, Note, NoteIdentifier, Task, TaskIdentifier};
use domain::webhook::{EventSubject, EventType, NoteSubject, TaskSubject, WebhookEvent};
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::extract::{S, body_json, workspace};
use crate::respond::{data, empty};
use crate::world::{Workspace, now, token_actor};
use crate::{Access, Sim};

const NOTES_READ: &[&str] = &[
    "note:read",
    "object_configuration:read",
    "record_permission:read",
];
const NOTES_WRITE: &[&str] = &[
    "note:read-write",
    "object_configuration:read",
    "record_permission:read",
];
const NOTES_DELETE: &[&str] = &["note:read-write"];
const TASKS_READ: &[&str] = &[
    "task:read",
    "object_configuration:read",
    "record_permission:read",
    "user_management:read",
];
const TASKS_WRITE: &[&str] = &[
    "task:read-write",
    "object_configuration:read",
    "record_permission:read",
    "user_management:read",
];
const TASKS_DELETE: &[&str] = &["task:read-write"];

fn required(path: &str) -> ApiError {
    ApiError::body_validation(&["data", path], "Required", "value", "undefined")
}

fn data_of(body: &Bytes) -> ApiResult<Map<String, Value>> {
    match body_json(body)?.get("data") {
        Some(Value::Object(d)) => Ok(d.clone()),
        _ => Err(ApiError::body_validation(
            &["data"],
            "Required",
            "object",
            "undefined",
        )),
    }
}

/// The object id of an existing parent record, or `value_not_found`.
fn parent(ws: &Workspace, object: &str, record: &str) -> ApiResult<(ObjectId, RecordId)> {
    let o = ws.object(object).ok_or_else(|| {
        ApiError::invalid(
            "value_not_found",
            format!("Object with slug/ID \"{object}\" not found."),
        )
    })?;
    let id = RecordId::parse(record)
        .ok()
        .filter(|id| o.record(*id).is_some());
    let id = id.ok_or_else(|| {
        ApiError::invalid(
            "value_not_found",
            format!("Parent record with slug/ID \"{record}\" not found."),
        )
    })?;
    Ok((o.object.id.object_id, id))
}

fn emit_one(
    sim: &Sim,
    ws: domain::ids::WorkspaceId,
    event_type: EventType,
    subject: EventSubject,
    token_id: &str,
) {
    let e = WebhookEvent {
        event_type,
        subject,
        actor: Some(token_actor(token_id)),
        id_extra: Map::new(),
        extra: Map::new(),
    };
    sim.emit(ws, vec![e]);
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct NotesQuery {
    limit: Option<usize>,
    offset: Option<usize>,
    parent_object: Option<String>,
    parent_record_id: Option<String>,
}

pub(crate) async fn list_notes(
    State(sim): S,
    headers: HeaderMap,
    Query(q): Query<NotesQuery>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, NOTES_READ, Access::Read)?;
    let limit = q.limit.unwrap_or(10);
    if limit == 0 || limit > 50 {
        return Err(ApiError::invalid(
            "validation_type",
            "limit must be between 1 and 50.",
        ));
    }
    let world = sim.world();
    let ws = workspace(&world, &entry)?;
    let object_slug = |n: &Note| n.parent_object.clone();
    let notes: Vec<&Note> = ws
        .notes
        .iter()
        .filter(|n| {
            q.parent_object
                .as_ref()
                .is_none_or(|p| &object_slug(n) == p)
        })
        .filter(|n| {
            q.parent_record_id
                .as_ref()
                .is_none_or(|r| &n.parent_record_id.to_string() == r)
        })
        .skip(q.offset.unwrap_or(0))
        .take(limit)
        .collect();
    Ok(data(json!(notes)))
}

pub(crate) async fn create_note(
    State(sim): S,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, NOTES_WRITE, Access::Write)?;
    let d = data_of(&body)?;
    let text = |k: &str| {
        d.get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| required(k))
    };
    let (object, record, title, format, content) = (
        text("parent_object")?,
        text("parent_record_id")?,
        text("title")?,
        text("format")?,
        text("content")?,
    );
    if format != "plaintext" && format != "markdown" {
        return Err(ApiError::body_validation(
            &["data", "format"],
            "Invalid enum value. Expected 'plaintext' | 'markdown'",
            "plaintext | markdown",
            &format,
        ));
    }
    let created_at = match d.get("created_at") {
        None | Some(Value::Null) => now(),
        Some(v) => {
            domain::write::coerce_timestamp(v.as_str().unwrap_or_default()).map_err(|e| {
                ApiError::body_validation(
                    &["data", "created_at"],
                    &e.to_string(),
                    "datetime",
                    "string",
                )
            })?
        }
    };
    let mut world = sim.world();
    let ws = world
        .workspaces
        .get_mut(&entry.workspace)
        .ok_or_else(crate::auth::not_found_key)?;
    let (object_id, record_id) = parent(ws, &object, &record)?;
    let note = Note {
        id: NoteIdentifier {
            workspace_id: ws.id,
            note_id: NoteId::from_uuid(uuid::Uuid::new_v4()),
        },
        parent_object: ws
            .object(&object)
            .and_then(|o| o.object.api_slug.clone())
            .unwrap_or(object),
        parent_record_id: record_id,
        title,
        meeting_id: None,
        content_plaintext: content.clone(),
        content_markdown: Some(content),
        tags: vec![],
        created_by_actor: Some(token_actor(&entry.token_id)),
        created_at,
        extra: Map::new(),
    };
    ws.notes.push(note.clone());
    let subject = EventSubject::Note(NoteSubject {
        workspace_id: ws.id,
        note_id: note.id.note_id,
        parent_object_id: object_id,
        parent_record_id: record_id,
    });
    drop(world);
    emit_one(
        &sim,
        entry.workspace,
        EventType::NoteCreated,
        subject,
        &entry.token_id,
    );
    Ok(data(json!(note)))
}

fn note_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Note with ID \"{id}\" not found."))
}

pub(crate) async fn get_note(
    State(sim): S,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, NOTES_READ, Access::Read)?;
    let world = sim.world();
    let note = workspace(&world, &entry)?
        .notes
        .iter()
        .find(|n| n.id.note_id.to_string() == id)
        .ok_or_else(|| note_not_found(&id))?;
    Ok(data(json!(note)))
}

pub(crate) async fn delete_note(
    State(sim): S,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, NOTES_DELETE, Access::Write)?;
    let mut world = sim.world();
    let ws = world
        .workspaces
        .get_mut(&entry.workspace)
        .ok_or_else(crate::auth::not_found_key)?;
    let i = ws
        .notes
        .iter()
        .position(|n| n.id.note_id.to_string() == id)
        .ok_or_else(|| note_not_found(&id))?;
    let gone = ws.notes.remove(i);
    let parent_object_id = ws
        .object(&gone.parent_object)
        .map(|o| o.object.id.object_id);
    let ws_id = ws.id;
    drop(world);
    if let Some(parent_object_id) = parent_object_id {
        let subject = EventSubject::Note(NoteSubject {
            workspace_id: ws_id,
            note_id: gone.id.note_id,
            parent_object_id,
            parent_record_id: gone.parent_record_id,
        });
        emit_one(
            &sim,
            entry.workspace,
            EventType::NoteDeleted,
            subject,
            &entry.token_id,
        );
    }
    Ok(empty())
}

fn task_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Task with ID \"{id}\" not found."))
}

fn linked(ws: &Workspace, v: &Value) -> ApiResult<Vec<LinkedRecord>> {
    let items = v.as_array().ok_or_else(|| {
        ApiError::body_validation(
            &["data", "linked_records"],
            "Expected array",
            "array",
            "other",
        )
    })?;
    items
        .iter()
        .map(|l| {
            let object = l["target_object"]
                .as_str()
                .ok_or_else(|| required("linked_records"))?;
            let record = l["target_record_id"]
                .as_str()
                .ok_or_else(|| required("linked_records"))?;
            let (object_id, record_id) = parent(ws, object, record)?;
            Ok(LinkedRecord {
                target_object_id: object_id.to_string(),
                target_record_id: record_id,
                extra: Map::new(),
            })
        })
        .collect()
}

fn assignees(ws: &Workspace, v: &Value) -> ApiResult<Vec<Assignee>> {
    let items = v.as_array().ok_or_else(|| {
        ApiError::body_validation(&["data", "assignees"], "Expected array", "array", "other")
    })?;
    items
        .iter()
        .map(|a| {
            let member = if let Some(email) = a["workspace_member_email_address"].as_str() {
                ws.member_by_email(email)
            } else {
                let id = a["referenced_actor_id"]
                    .as_str()
                    .and_then(|s| WorkspaceMemberId::parse(s).ok());
                ws.members
                    .iter()
                    .find(|m| Some(m.id.workspace_member_id) == id)
            };
            let member = member.ok_or_else(|| {
                ApiError::invalid("value_not_found", "Workspace member was not found.")
            })?;
            Ok(Assignee {
                referenced_actor_type: ActorType::WorkspaceMember,
                referenced_actor_id: Some(member.id.workspace_member_id.to_string()),
                extra: Map::new(),
            })
        })
        .collect()
}

fn deadline(v: &Value) -> ApiResult<Option<String>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => domain::write::coerce_timestamp(s)
            .map(|t| Some(t.to_attio_string()))
            .map_err(|e| {
                ApiError::body_validation(
                    &["data", "deadline_at"],
                    &e.to_string(),
                    "datetime",
                    "string",
                )
            }),
        _ => Err(ApiError::body_validation(
            &["data", "deadline_at"],
            "Expected string or null",
            "string",
            "other",
        )),
    }
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct TasksQuery {
    limit: Option<usize>,
    offset: Option<usize>,
    sort: Option<String>,
    linked_object: Option<String>,
    linked_record_id: Option<String>,
    is_completed: Option<bool>,
}

pub(crate) async fn list_tasks(
    State(sim): S,
    headers: HeaderMap,
    Query(q): Query<TasksQuery>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, TASKS_READ, Access::Read)?;
    let world = sim.world();
    let ws = workspace(&world, &entry)?;
    let linked_object = q.linked_object.as_ref().map(|o| {
        ws.object(o)
            .map(|d| d.object.id.object_id.to_string())
            .unwrap_or_default()
    });
    let mut tasks: Vec<&Task> = ws
        .tasks
        .iter()
        .filter(|t| q.is_completed.is_none_or(|c| t.is_completed == c))
        .filter(|t| {
            linked_object
                .as_ref()
                .is_none_or(|o| t.linked_records.iter().any(|l| &l.target_object_id == o))
        })
        .filter(|t| {
            q.linked_record_id.as_ref().is_none_or(|r| {
                t.linked_records
                    .iter()
                    .any(|l| &l.target_record_id.to_string() == r)
            })
        })
        .collect();
    if q.sort.as_deref() == Some("created_at:desc") {
        tasks.reverse();
    }
    let tasks: Vec<&Task> = tasks
        .into_iter()
        .skip(q.offset.unwrap_or(0))
        .take(q.limit.unwrap_or(500))
        .collect();
    Ok(data(Value::Array(
        tasks.iter().map(|t| task_json(t)).collect(),
    )))
}

pub(crate) async fn create_task(
    State(sim): S,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, TASKS_WRITE, Access::Write)?;
    let d = data_of(&body)?;
    for k in [
        "content",
        "format",
        "deadline_at",
        "is_completed",
        "linked_records",
        "assignees",
    ] {
        if !d.contains_key(k) {
            return Err(required(k));
        }
    }
    let content = d["content"]
        .as_str()
        .ok_or_else(|| required("content"))?
        .to_owned();
    if content.chars().count() > 2000 {
        return Err(ApiError::body_validation(
            &["data", "content"],
            "String must contain at most 2000 character(s)",
            "string",
            "string",
        ));
    }
    let is_completed = d["is_completed"].as_bool().ok_or_else(|| {
        ApiError::body_validation(
            &["data", "is_completed"],
            "Expected boolean",
            "boolean",
            "other",
        )
    })?;
    let mut world = sim.world();
    let ws = world
        .workspaces
        .get_mut(&entry.workspace)
        .ok_or_else(crate::auth::not_found_key)?;
    let task = Task {
        id: TaskIdentifier {
            workspace_id: ws.id,
            task_id: TaskId::from_uuid(uuid::Uuid::new_v4()),
        },
        content_plaintext: content,
        deadline_at: deadline(&d["deadline_at"])?,
        is_completed,
        completed_at: is_completed.then(now),
        linked_records: linked(ws, &d["linked_records"])?,
        assignees: assignees(ws, &d["assignees"])?,
        created_by_actor: Some(token_actor(&entry.token_id)),
        created_at: now(),
        extra: Map::new(),
    };
    ws.tasks.push(task.clone());
    let subject = EventSubject::Task(TaskSubject {
        workspace_id: ws.id,
        task_id: task.id.task_id,
    });
    drop(world);
    emit_one(
        &sim,
        entry.workspace,
        EventType::TaskCreated,
        subject,
        &entry.token_id,
    );
    Ok(data(task_json(&task)))
}

pub(crate) async fn update_task(
    State(sim): S,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, TASKS_WRITE, Access::Write)?;
    let d = data_of(&body)?;
    if let Some(k) = d.keys().find(|k| {
        !["deadline_at", "is_completed", "linked_records", "assignees"].contains(&k.as_str())
    }) {
        return Err(ApiError::body_validation(
            &["data", k],
            "Only deadline_at, is_completed, linked_records and assignees can be updated",
            "absent",
            "present",
        ));
    }
    let mut world = sim.world();
    let ws = world
        .workspaces
        .get_mut(&entry.workspace)
        .ok_or_else(crate::auth::not_found_key)?;
    let i = ws
        .tasks
        .iter()
        .position(|t| t.id.task_id.to_string() == id)
        .ok_or_else(|| task_not_found(&id))?;
    let mut task = ws.tasks[i].clone();
    if let Some(v) = d.get("deadline_at") {
        task.deadline_at = deadline(v)?;
    }
    if let Some(v) = d.get("is_completed") {
        let done = v.as_bool().ok_or_else(|| {
            ApiError::body_validation(
                &["data", "is_completed"],
                "Expected boolean",
                "boolean",
                "other",
            )
        })?;
        // When it was completed: set as it becomes done, cleared as it is reopened.
        if done != task.is_completed {
            task.completed_at = done.then(now);
        }
        task.is_completed = done;
    }
    if let Some(v) = d.get("linked_records") {
        task.linked_records = linked(ws, v)?;
    }
    if let Some(v) = d.get("assignees") {
        task.assignees = assignees(ws, v)?;
    }
    ws.tasks[i] = task.clone();
    let subject = EventSubject::Task(TaskSubject {
        workspace_id: ws.id,
        task_id: task.id.task_id,
    });
    drop(world);
    emit_one(
        &sim,
        entry.workspace,
        EventType::TaskUpdated,
        subject,
        &entry.token_id,
    );
    Ok(data(task_json(&task)))
}

pub(crate) async fn get_task(
    State(sim): S,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, TASKS_READ, Access::Read)?;
    let world = sim.world();
    let task = workspace(&world, &entry)?
        .tasks
        .iter()
        .find(|t| t.id.task_id.to_string() == id)
        .ok_or_else(|| task_not_found(&id))?;
    Ok(data(task_json(task)))
}

pub(crate) async fn delete_task(
    State(sim): S,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let entry = sim.authenticate(&headers, TASKS_DELETE, Access::Write)?;
    let mut world = sim.world();
    let ws = world
        .workspaces
        .get_mut(&entry.workspace)
        .ok_or_else(crate::auth::not_found_key)?;
    let i = ws
        .tasks
        .iter()
        .position(|t| t.id.task_id.to_string() == id)
        .ok_or_else(|| task_not_found(&id))?;
    let gone = ws.tasks.remove(i);
    let subject = EventSubject::Task(TaskSubject {
        workspace_id: ws.id,
        task_id: gone.id.task_id,
    });
    drop(world);
    emit_one(
        &sim,
        entry.workspace,
        EventType::TaskDeleted,
        subject,
        &entry.token_id,
    );
    Ok(empty())
}

/// A task as Attio answers it: `completed_at` always present, null until it is completed.
fn task_json(task: &Task) -> Value {
    let mut v = json!(task);
    if let Some(o) = v.as_object_mut() {
        o.entry("completed_at").or_insert(Value::Null);
    }
    v
}
