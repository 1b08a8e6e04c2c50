//! The port implementations: paths, bodies and envelopes of each endpoint.

use async_trait::async_trait;
use domain::ids::{
    AttributeSlug, EntryId, NoteId, ObjectRef, RecordId, TaskId, WebhookId, WorkspaceMemberId,
};
use domain::limits::Access;
use domain::record::{ListEntry, Record};
use domain::schema::{Attribute, List, Note, Object, Task, TokenInfo, Webhook, WorkspaceMember};
use domain::value::{AttributeValue, SelectOption, Status};
use domain::write::RecordWrite;
use futures::Stream;
use ports::attio::{
    AttioLists, AttioNotes, AttioRecords, AttioSchema, AttioTasks, AttioWebhooks, AttioWorkspace,
    AttributeTarget, EntryWrite, ListRef, NewNote, NewTask, NewWebhook, NoteQuery, Query, TaskLink,
    TaskQuery, TaskUpdate, UpdateMode, WebhookUpdate,
};
use ports::error::{PortError, PortResult};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::{AttioClient, Call};

fn call<'a>(method: Method, path: String, access: Access, circuit: &str) -> Call<'a> {
    Call {
        method,
        path,
        query: Vec::new(),
        body: None,
        access,
        circuit: circuit.to_owned(),
    }
}

/// `{"data": T}`.
fn data<T: DeserializeOwned>(v: Value) -> PortResult<T> {
    let inner = match v {
        Value::Object(mut m) => m.remove("data").unwrap_or(Value::Null),
        other => other,
    };
    serde_json::from_value(inner)
        .map_err(|e| PortError::backend("Attio response (unexpected shape)", e))
}

fn target_path(t: &AttributeTarget) -> String {
    match t {
        AttributeTarget::Object(o) => format!("objects/{o}"),
        AttributeTarget::List(ListRef::Id(id)) => format!("lists/{id}"),
        AttributeTarget::List(ListRef::Slug(s)) => format!("lists/{s}"),
    }
}

fn query_body(q: &Query) -> Value {
    let mut m = Map::new();
    if let Some(f) = &q.filter {
        m.insert("filter".into(), f.clone());
    }
    if !q.sorts.is_empty() {
        m.insert("sorts".into(), Value::Array(q.sorts.clone()));
    }
    if let Some(l) = q.limit {
        m.insert("limit".into(), json!(l));
    }
    if q.offset > 0 {
        m.insert("offset".into(), json!(q.offset));
    }
    Value::Object(m)
}

impl AttioClient {
    /// Every record matching `query`, page after page (`page_size` per request, Attio's default
    /// 500), until a page comes back short.
    pub fn stream_records<'a>(
        &'a self,
        object: &'a ObjectRef,
        query: Query,
        page_size: u32,
    ) -> impl Stream<Item = PortResult<Record>> + 'a {
        let page_size = page_size.max(1);
        let pages = futures::stream::unfold(Some(query.offset), move |offset| {
            let filter = query.filter.clone();
            let sorts = query.sorts.clone();
            async move {
                let offset = offset?;
                let q = Query {
                    filter,
                    sorts,
                    limit: Some(page_size),
                    offset,
                };
                match self.query_records(object, &q).await {
                    Ok(page) => {
                        let next = (page.len() as u64 >= u64::from(page_size))
                            .then_some(offset + page.len() as u64);
                        Some((Ok(page), next))
                    }
                    Err(e) => Some((Err(e), None)),
                }
            }
        });
        futures::StreamExt::flat_map(pages, |page: PortResult<Vec<Record>>| {
            let items: Vec<PortResult<Record>> = match page {
                Ok(records) => records.into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(items)
        })
    }
}

#[async_trait]
impl AttioRecords for AttioClient {
    async fn query_records(&self, object: &ObjectRef, query: &Query) -> PortResult<Vec<Record>> {
        let mut c = call(
            Method::POST,
            format!("/v2/objects/{object}/records/query"),
            Access::Read,
            &object.to_string(),
        );
        c.body = Some(query_body(query));
        data(self.send(c).await?)
    }

    async fn create_record(&self, object: &ObjectRef, values: &RecordWrite) -> PortResult<Record> {
        let mut c = call(
            Method::POST,
            format!("/v2/objects/{object}/records"),
            Access::Write,
            &object.to_string(),
        );
        c.body = Some(values.to_body());
        data(self.send(c).await?)
    }

    async fn assert_record(
        &self,
        object: &ObjectRef,
        matching_attribute: &AttributeSlug,
        values: &RecordWrite,
    ) -> PortResult<Record> {
        let mut c = call(
            Method::PUT,
            format!("/v2/objects/{object}/records"),
            Access::Write,
            &object.to_string(),
        );
        c.query
            .push(("matching_attribute", matching_attribute.to_string()));
        c.body = Some(values.to_body());
        data(self.send(c).await?)
    }

    async fn update_record(
        &self,
        object: &ObjectRef,
        id: RecordId,
        values: &RecordWrite,
        mode: UpdateMode,
    ) -> PortResult<Record> {
        let method = if mode == UpdateMode::Append {
            Method::PATCH
        } else {
            Method::PUT
        };
        let mut c = call(
            method,
            format!("/v2/objects/{object}/records/{id}"),
            Access::Write,
            &object.to_string(),
        );
        c.body = Some(values.to_body());
        data(self.send(c).await?)
    }

    async fn get_record(&self, object: &ObjectRef, id: RecordId) -> PortResult<Record> {
        data(
            self.send(call(
                Method::GET,
                format!("/v2/objects/{object}/records/{id}"),
                Access::Read,
                &object.to_string(),
            ))
            .await?,
        )
    }

    async fn delete_record(&self, object: &ObjectRef, id: RecordId) -> PortResult<()> {
        self.send(call(
            Method::DELETE,
            format!("/v2/objects/{object}/records/{id}"),
            Access::Write,
            &object.to_string(),
        ))
        .await?;
        Ok(())
    }

    async fn merge_records(
        &self,
        object: &ObjectRef,
        primary: RecordId,
        secondary: RecordId,
    ) -> PortResult<RecordId> {
        let mut c = call(
            Method::POST,
            format!("/v2/objects/{object}/records/merge"),
            Access::Write,
            &object.to_string(),
        );
        c.body = Some(serde_json::json!({"data": {
            "primary_record_id": primary.to_string(),
            "secondary_record_id": secondary.to_string(),
        }}));
        let made: serde_json::Value = data(self.send(c).await?)?;
        made["new_record_id"]
            .as_str()
            .and_then(|id| RecordId::parse(id).ok())
            .ok_or_else(|| {
                PortError::Invalid(format!("Attio's merge answered no new_record_id: {made}"))
            })
    }

    async fn attribute_values(
        &self,
        object: &ObjectRef,
        id: RecordId,
        attribute: &AttributeSlug,
        show_historic: bool,
    ) -> PortResult<Vec<AttributeValue>> {
        let mut c = call(
            Method::GET,
            format!("/v2/objects/{object}/records/{id}/attributes/{attribute}/values"),
            Access::Read,
            &object.to_string(),
        );
        c.query.push(("show_historic", show_historic.to_string()));
        data(self.send(c).await?)
    }
}

#[async_trait]
impl AttioSchema for AttioClient {
    async fn list_objects(&self) -> PortResult<Vec<Object>> {
        data(
            self.send(call(
                Method::GET,
                "/v2/objects".into(),
                Access::Read,
                "schema",
            ))
            .await?,
        )
    }

    async fn get_object(&self, object: &ObjectRef) -> PortResult<Object> {
        data(
            self.send(call(
                Method::GET,
                format!("/v2/objects/{object}"),
                Access::Read,
                "schema",
            ))
            .await?,
        )
    }

    async fn list_attributes(&self, target: &AttributeTarget) -> PortResult<Vec<Attribute>> {
        data(
            self.send(call(
                Method::GET,
                format!("/v2/{}/attributes", target_path(target)),
                Access::Read,
                "schema",
            ))
            .await?,
        )
    }

    async fn list_options(
        &self,
        target: &AttributeTarget,
        attribute: &AttributeSlug,
    ) -> PortResult<Vec<SelectOption>> {
        data(
            self.send(call(
                Method::GET,
                format!("/v2/{}/attributes/{attribute}/options", target_path(target)),
                Access::Read,
                "schema",
            ))
            .await?,
        )
    }

    async fn list_statuses(
        &self,
        target: &AttributeTarget,
        attribute: &AttributeSlug,
    ) -> PortResult<Vec<Status>> {
        data(
            self.send(call(
                Method::GET,
                format!(
                    "/v2/{}/attributes/{attribute}/statuses",
                    target_path(target)
                ),
                Access::Read,
                "schema",
            ))
            .await?,
        )
    }
}

#[async_trait]
impl AttioWorkspace for AttioClient {
    async fn token_info(&self) -> PortResult<TokenInfo> {
        // Not wrapped in `data`.
        let v = self
            .send(call(
                Method::GET,
                "/v2/self".into(),
                Access::Read,
                "workspace",
            ))
            .await?;
        serde_json::from_value(v).map_err(|e| PortError::backend("Attio /v2/self response", e))
    }

    async fn list_members(&self) -> PortResult<Vec<WorkspaceMember>> {
        data(
            self.send(call(
                Method::GET,
                "/v2/workspace_members".into(),
                Access::Read,
                "workspace",
            ))
            .await?,
        )
    }

    async fn get_member(&self, id: WorkspaceMemberId) -> PortResult<WorkspaceMember> {
        data(
            self.send(call(
                Method::GET,
                format!("/v2/workspace_members/{id}"),
                Access::Read,
                "workspace",
            ))
            .await?,
        )
    }
}

fn list_path(list: &ListRef) -> String {
    match list {
        ListRef::Id(id) => id.to_string(),
        ListRef::Slug(s) => s.to_string(),
    }
}

fn entry_values(
    values: &std::collections::BTreeMap<AttributeSlug, Vec<domain::write::WriteValue>>,
) -> Value {
    Value::Object(
        values
            .iter()
            .map(|(k, vs)| {
                (
                    k.to_string(),
                    Value::Array(vs.iter().map(|v| v.to_json()).collect()),
                )
            })
            .collect(),
    )
}

fn entry_body(entry: &EntryWrite) -> Value {
    json!({"data": {
        "parent_record_id": entry.parent_record_id,
        "parent_object": entry.parent_object,
        "entry_values": entry_values(&entry.entry_values),
    }})
}

#[async_trait]
impl AttioLists for AttioClient {
    async fn list_lists(&self) -> PortResult<Vec<List>> {
        data(
            self.send(call(Method::GET, "/v2/lists".into(), Access::Read, "lists"))
                .await?,
        )
    }

    async fn get_list(&self, list: &ListRef) -> PortResult<List> {
        data(
            self.send(call(
                Method::GET,
                format!("/v2/lists/{}", list_path(list)),
                Access::Read,
                "lists",
            ))
            .await?,
        )
    }

    async fn get_entry(&self, list: &ListRef, id: EntryId) -> PortResult<ListEntry> {
        let l = list_path(list);
        data(
            self.send(call(
                Method::GET,
                format!("/v2/lists/{l}/entries/{id}"),
                Access::Read,
                &format!("list:{l}"),
            ))
            .await?,
        )
    }

    async fn query_entries(&self, list: &ListRef, query: &Query) -> PortResult<Vec<ListEntry>> {
        let l = list_path(list);
        let mut c = call(
            Method::POST,
            format!("/v2/lists/{l}/entries/query"),
            Access::Read,
            &format!("list:{l}"),
        );
        c.body = Some(query_body(query));
        data(self.send(c).await?)
    }

    async fn create_entry(&self, list: &ListRef, entry: &EntryWrite) -> PortResult<ListEntry> {
        let l = list_path(list);
        let mut c = call(
            Method::POST,
            format!("/v2/lists/{l}/entries"),
            Access::Write,
            &format!("list:{l}"),
        );
        c.body = Some(entry_body(entry));
        data(self.send(c).await?)
    }

    async fn assert_entry(&self, list: &ListRef, entry: &EntryWrite) -> PortResult<ListEntry> {
        let l = list_path(list);
        let mut c = call(
            Method::PUT,
            format!("/v2/lists/{l}/entries"),
            Access::Write,
            &format!("list:{l}"),
        );
        c.body = Some(entry_body(entry));
        data(self.send(c).await?)
    }

    async fn update_entry(
        &self,
        list: &ListRef,
        id: EntryId,
        values: &std::collections::BTreeMap<AttributeSlug, Vec<domain::write::WriteValue>>,
        mode: UpdateMode,
    ) -> PortResult<ListEntry> {
        let l = list_path(list);
        let method = if mode == UpdateMode::Append {
            Method::PATCH
        } else {
            Method::PUT
        };
        let mut c = call(
            method,
            format!("/v2/lists/{l}/entries/{id}"),
            Access::Write,
            &format!("list:{l}"),
        );
        c.body = Some(json!({"data": {"entry_values": entry_values(values)}}));
        data(self.send(c).await?)
    }

    async fn delete_entry(&self, list: &ListRef, id: EntryId) -> PortResult<()> {
        let l = list_path(list);
        self.send(call(
            Method::DELETE,
            format!("/v2/lists/{l}/entries/{id}"),
            Access::Write,
            &format!("list:{l}"),
        ))
        .await?;
        Ok(())
    }

    async fn entries_of(
        &self,
        object: &ObjectRef,
        record: RecordId,
    ) -> PortResult<Vec<ports::attio::RecordEntry>> {
        data(
            self.send(call(
                Method::GET,
                format!("/v2/objects/{object}/records/{record}/entries"),
                Access::Read,
                &object.to_string(),
            ))
            .await?,
        )
    }
}

#[async_trait]
impl AttioWebhooks for AttioClient {
    async fn create_webhook(&self, webhook: &NewWebhook) -> PortResult<Webhook> {
        let mut c = call(
            Method::POST,
            "/v2/webhooks".into(),
            Access::Write,
            "webhooks",
        );
        c.body = Some(
            json!({"data": {"target_url": webhook.target_url, "subscriptions": webhook.subscriptions}}),
        );
        data(self.send(c).await?)
    }

    /// Every subscription, 100 per page (Attio's maximum).
    async fn list_webhooks(&self) -> PortResult<Vec<Webhook>> {
        let mut all = Vec::new();
        loop {
            let mut c = call(Method::GET, "/v2/webhooks".into(), Access::Read, "webhooks");
            c.query.push(("limit", "100".into()));
            c.query.push(("offset", all.len().to_string()));
            let page: Vec<Webhook> = data(self.send(c).await?)?;
            let done = page.len() < 100;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    async fn get_webhook(&self, id: WebhookId) -> PortResult<Webhook> {
        data(
            self.send(call(
                Method::GET,
                format!("/v2/webhooks/{id}"),
                Access::Read,
                "webhooks",
            ))
            .await?,
        )
    }

    async fn update_webhook(&self, id: WebhookId, update: &WebhookUpdate) -> PortResult<Webhook> {
        let mut d = Map::new();
        if let Some(u) = &update.target_url {
            d.insert("target_url".into(), json!(u));
        }
        if let Some(s) = &update.subscriptions {
            d.insert("subscriptions".into(), json!(s));
        }
        let mut c = call(
            Method::PATCH,
            format!("/v2/webhooks/{id}"),
            Access::Write,
            "webhooks",
        );
        c.body = Some(json!({ "data": d }));
        data(self.send(c).await?)
    }

    async fn delete_webhook(&self, id: WebhookId) -> PortResult<()> {
        self.send(call(
            Method::DELETE,
            format!("/v2/webhooks/{id}"),
            Access::Write,
            "webhooks",
        ))
        .await?;
        Ok(())
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    domain::timestamp::Timestamp::from_datetime(t).to_attio_string()
}

fn task_links(links: &[TaskLink]) -> Value {
    Value::Array(links.iter().map(|l| json!({"target_object": l.target_object, "target_record_id": l.target_record_id})).collect())
}

fn task_assignees(members: &[WorkspaceMemberId]) -> Value {
    Value::Array(
        members
            .iter()
            .map(|m| json!({"referenced_actor_type": "workspace-member", "referenced_actor_id": m}))
            .collect(),
    )
}

#[async_trait]
impl AttioNotes for AttioClient {
    async fn list_notes(&self, query: &NoteQuery) -> PortResult<Vec<Note>> {
        let mut c = call(Method::GET, "/v2/notes".into(), Access::Read, "notes");
        if let Some(l) = query.limit {
            c.query.push(("limit", l.to_string()));
        }
        if query.offset > 0 {
            c.query.push(("offset", query.offset.to_string()));
        }
        if let Some(o) = &query.parent_object {
            c.query.push(("parent_object", o.clone()));
        }
        if let Some(r) = query.parent_record_id {
            c.query.push(("parent_record_id", r.to_string()));
        }
        data(self.send(c).await?)
    }

    async fn create_note(&self, note: &NewNote) -> PortResult<Note> {
        let mut d = json!({
            "parent_object": note.parent_object,
            "parent_record_id": note.parent_record_id,
            "title": note.title,
            "format": note.format.as_str(),
            "content": note.content,
        });
        if let Some(at) = note.created_at {
            d["created_at"] = json!(rfc3339(at));
        }
        let mut c = call(Method::POST, "/v2/notes".into(), Access::Write, "notes");
        c.body = Some(json!({ "data": d }));
        data(self.send(c).await?)
    }

    async fn get_note(&self, id: NoteId) -> PortResult<Note> {
        data(
            self.send(call(
                Method::GET,
                format!("/v2/notes/{id}"),
                Access::Read,
                "notes",
            ))
            .await?,
        )
    }

    async fn delete_note(&self, id: NoteId) -> PortResult<()> {
        self.send(call(
            Method::DELETE,
            format!("/v2/notes/{id}"),
            Access::Write,
            "notes",
        ))
        .await?;
        Ok(())
    }
}

#[async_trait]
impl AttioTasks for AttioClient {
    async fn list_tasks(&self, query: &TaskQuery) -> PortResult<Vec<Task>> {
        let mut c = call(Method::GET, "/v2/tasks".into(), Access::Read, "tasks");
        if let Some(l) = query.limit {
            c.query.push(("limit", l.to_string()));
        }
        if query.offset > 0 {
            c.query.push(("offset", query.offset.to_string()));
        }
        if let Some(o) = &query.linked_object {
            c.query.push(("linked_object", o.clone()));
        }
        if let Some(r) = query.linked_record_id {
            c.query.push(("linked_record_id", r.to_string()));
        }
        if let Some(a) = &query.assignee {
            c.query.push(("assignee", a.clone()));
        }
        if let Some(done) = query.is_completed {
            c.query.push(("is_completed", done.to_string()));
        }
        data(self.send(c).await?)
    }

    /// Attio caps task content at 2,000 characters; longer content is refused before sending.
    async fn create_task(&self, task: &NewTask) -> PortResult<Task> {
        if task.content.chars().count() > 2000 {
            return Err(PortError::Invalid(format!(
                "task content is {} characters; Attio allows 2,000",
                task.content.chars().count()
            )));
        }
        let mut c = call(Method::POST, "/v2/tasks".into(), Access::Write, "tasks");
        c.body = Some(json!({"data": {
            "content": task.content,
            "format": "plaintext",
            "deadline_at": task.deadline_at.map(rfc3339),
            "is_completed": task.is_completed,
            "linked_records": task_links(&task.linked_records),
            "assignees": task_assignees(&task.assignees),
        }}));
        data(self.send(c).await?)
    }

    async fn get_task(&self, id: TaskId) -> PortResult<Task> {
        data(
            self.send(call(
                Method::GET,
                format!("/v2/tasks/{id}"),
                Access::Read,
                "tasks",
            ))
            .await?,
        )
    }

    async fn update_task(&self, id: TaskId, update: &TaskUpdate) -> PortResult<Task> {
        let mut d = Map::new();
        if let Some(deadline) = update.deadline_at {
            d.insert("deadline_at".into(), json!(deadline.map(rfc3339)));
        }
        if let Some(done) = update.is_completed {
            d.insert("is_completed".into(), json!(done));
        }
        if let Some(links) = &update.linked_records {
            d.insert("linked_records".into(), task_links(links));
        }
        if let Some(members) = &update.assignees {
            d.insert("assignees".into(), task_assignees(members));
        }
        let mut c = call(
            Method::PATCH,
            format!("/v2/tasks/{id}"),
            Access::Write,
            "tasks",
        );
        c.body = Some(json!({ "data": d }));
        data(self.send(c).await?)
    }

    async fn delete_task(&self, id: TaskId) -> PortResult<()> {
        self.send(call(
            Method::DELETE,
            format!("/v2/tasks/{id}"),
            Access::Write,
            "tasks",
        ))
        .await?;
        Ok(())
    }
}
