//! Notes and tasks as Salesforce activities: a `Task` (subject, description, status, due date)
//! related to a Contact or Lead (`WhoId`) and an Account or Opportunity (`WhatId`), and a classic
//! `Note` (title, body) on one parent record (`ParentId`). Salesforce holds one parent per note and
//! one record of each side per task; further targets are left out (and logged).

use async_trait::async_trait;
use domain::field::FieldValue;
use domain::ids::ExternalId;
use domain::mapping::ExternalProperty;
use ports::crm::{
    ActivityKind, ActivityPage, ActivityTarget, ExternalActivities, ExternalActivity,
    ExternalActivityRecord, ExternalRecord,
};
use ports::error::{PortError, PortResult};
use reqwest::Method;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

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

/// The fields an activity is read with.
fn read_fields(kind: ActivityKind) -> &'static [&'static str] {
    match kind {
        ActivityKind::Note => &["Title", "Body", "ParentId"],
        ActivityKind::Task => &[
            "Subject",
            "Description",
            "Status",
            "ActivityDate",
            "WhoId",
            "WhatId",
        ],
    }
}

/// The object of a record id, by its key prefix.
fn object_of(id: &str) -> Option<&'static str> {
    Some(match id.get(..3)? {
        "003" => "Contact",
        "001" => "Account",
        "006" => "Opportunity",
        "00Q" => "Lead",
        _ => return None,
    })
}

/// A queried `Note` or `Task` as a provider-neutral activity with its parents.
fn from_record(kind: ActivityKind, r: ExternalRecord) -> ExternalActivityRecord {
    let text = |f: &str| match ExternalProperty::parse(f)
        .ok()
        .and_then(|p| r.properties.get(&p).cloned())
    {
        Some(FieldValue::Text(t)) => t,
        _ => String::new(),
    };
    let (title, body, completed, at) = match kind {
        ActivityKind::Note => (text("Title"), text("Body"), false, None),
        ActivityKind::Task => {
            let due = time::Date::parse(
                &text("ActivityDate"),
                &time::format_description::well_known::Iso8601::DATE,
            )
            .ok()
            .map(|d| d.midnight().assume_utc());
            (
                text("Subject"),
                text("Description"),
                text("Status") == "Completed",
                due,
            )
        }
    };
    let parents: &[&str] = match kind {
        ActivityKind::Note => &["ParentId"],
        ActivityKind::Task => &["WhoId", "WhatId"],
    };
    let targets = parents
        .iter()
        .filter_map(|f| {
            let id = text(f);
            Some(ActivityTarget {
                object: object_of(&id)?.to_owned(),
                id: ExternalId::parse(&id).ok()?,
            })
        })
        .collect();
    ExternalActivityRecord {
        id: r.id,
        activity: ExternalActivity {
            kind,
            title,
            body,
            at: at.or(r.updated_at).unwrap_or(OffsetDateTime::UNIX_EPOCH),
            completed,
        },
        targets,
        deleted: r.archived,
    }
}

#[async_trait]
impl ExternalActivities for SalesforceClient {
    async fn get_activity(
        &self,
        kind: ActivityKind,
        id: &ExternalId,
    ) -> PortResult<ExternalActivity> {
        if !id.as_str().bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(PortError::Invalid(format!(
                "{:?} is not a Salesforce id",
                id.as_str()
            )));
        }
        let soql = format!(
            "SELECT Id, SystemModstamp, {} FROM {} WHERE Id = '{}'",
            read_fields(kind).join(", "),
            sobject(kind),
            id.as_str()
        );
        let page = self.query(&soql, false, None).await?;
        page.records
            .into_iter()
            .next()
            .map(|r| from_record(kind, r).activity)
            .ok_or_else(|| {
                PortError::NotFound(format!("Salesforce {} {}", sobject(kind), id.as_str()))
            })
    }

    /// `queryAll` on `SystemModstamp`, so deleted activities come too.
    async fn activities_changed_since(
        &self,
        kind: ActivityKind,
        since: OffsetDateTime,
        after: Option<String>,
    ) -> PortResult<ActivityPage> {
        let soql = format!(
            "SELECT Id, SystemModstamp, IsDeleted, {} FROM {} WHERE SystemModstamp > {} ORDER BY SystemModstamp ASC",
            read_fields(kind).join(", "),
            sobject(kind),
            crate::wire::soql_time(since)
        );
        let page = self.query(&soql, true, after.as_deref()).await?;
        Ok(ActivityPage {
            activities: page
                .records
                .into_iter()
                .map(|r| from_record(kind, r))
                .collect(),
            next: page.next,
        })
    }

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
