//! Notes and tasks as Salesforce activities: a `Task` (subject, description, status, due date)
//! related to a Contact or Lead (`WhoId`) and an Account or Opportunity (`WhatId`), and a classic
//! `Note` (title, body) on one parent record (`ParentId`). Salesforce holds one parent per note and
//! one record of each side per task; further targets are left out (and logged).

use async_trait::async_trait;
use domain::ids::ExternalId;
use ports::crm::{ActivityKind, ActivityTarget, ExternalActivities, ExternalActivity};
use ports::error::{PortError, PortResult};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::{SalesforceClient, rejected};

/// Salesforce's limits: a note's title, a task's subject.
const NOTE_TITLE_MAX: usize = 80;
const SUBJECT_MAX: usize = 255;

fn sobject(kind: ActivityKind) -> &'static str {
    match kind {
        ActivityKind::Note => "Note",
        ActivityKind::Task => "Task",
    }
}

fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The fields written on create and update (not the parent, which a note cannot change).
fn fields(a: &ExternalActivity) -> Map<String, Value> {
    let mut m = Map::new();
    match a.kind {
        ActivityKind::Note => {
            // A note needs a title: its own, else the body's first line.
            let title = match a.title.trim() {
                "" => a.body.lines().next().unwrap_or("").trim(),
                t => t,
            };
            let title = if title.is_empty() { "Note" } else { title };
            m.insert("Title".into(), json!(cut(title, NOTE_TITLE_MAX)));
            m.insert("Body".into(), json!(a.body));
        }
        ActivityKind::Task => {
            m.insert("Subject".into(), json!(cut(&a.title, SUBJECT_MAX)));
            m.insert("Description".into(), json!(a.body));
            m.insert(
                "Status".into(),
                json!(if a.completed {
                    "Completed"
                } else {
                    "Not Started"
                }),
            );
            m.insert("ActivityDate".into(), json!(a.at.date().to_string()));
        }
    }
    m
}

/// The parent fields of a new activity from its targets.
fn parents(kind: ActivityKind, targets: &[ActivityTarget]) -> PortResult<Map<String, Value>> {
    let mut m = Map::new();
    let mut used = 0;
    for t in targets {
        let field = match (kind, t.object.as_str()) {
            (ActivityKind::Note, _) => "ParentId",
            (ActivityKind::Task, "Contact" | "Lead") => "WhoId",
            (ActivityKind::Task, _) => "WhatId",
        };
        if !m.contains_key(field) {
            m.insert(field.into(), json!(t.id.as_str()));
            used += 1;
        }
    }
    if m.is_empty() {
        return Err(PortError::Invalid(format!(
            "a Salesforce {} needs a record to attach to",
            sobject(kind)
        )));
    }
    if used < targets.len() {
        tracing::debug!(
            kind = sobject(kind),
            left_out = targets.len() - used,
            "Salesforce holds fewer parents than the activity has targets"
        );
    }
    Ok(m)
}

#[async_trait]
impl ExternalActivities for SalesforceClient {
    async fn create_activity(
        &self,
        activity: &ExternalActivity,
        targets: &[ActivityTarget],
    ) -> PortResult<ExternalId> {
        let mut body = fields(activity);
        body.extend(parents(activity.kind, targets)?);
        let path = format!("/sobjects/{}", sobject(activity.kind));
        let a = self
            .send(Method::POST, &path, &[], Some(&Value::Object(body)))
            .await?;
        match a.status {
            200 | 201 => {
                let id = a.body["id"].as_str().ok_or_else(|| {
                    PortError::backend("Salesforce", "a create answered without the record id")
                })?;
                Ok(ExternalId::parse(id)?)
            }
            s => Err(rejected(s, &a.body)),
        }
    }

    async fn update_activity(
        &self,
        id: &ExternalId,
        activity: &ExternalActivity,
    ) -> PortResult<()> {
        let path = format!("/sobjects/{}/{id}", sobject(activity.kind));
        let body = Value::Object(fields(activity));
        let a = self.send(Method::PATCH, &path, &[], Some(&body)).await?;
        match a.status {
            200 | 204 => Ok(()),
            s => Err(rejected(s, &a.body)),
        }
    }

    async fn delete_activity(&self, kind: ActivityKind, id: &ExternalId) -> PortResult<()> {
        let path = format!("/sobjects/{}/{id}", sobject(kind));
        let a = self.send(Method::DELETE, &path, &[], None).await?;
        match a.status {
            200 | 204 => Ok(()),
            s => Err(rejected(s, &a.body)),
        }
    }
}
