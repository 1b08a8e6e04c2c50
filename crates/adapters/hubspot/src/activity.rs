//! Notes and tasks as HubSpot engagements (`notes`, `tasks` objects): created with their
//! properties, then attached to records through default associations v4 (note → contact 202, task
//! → deal 216, ...). HubSpot requires `hs_timestamp` on both.

use async_trait::async_trait;
use domain::ids::ExternalId;
use domain::mapping::ExternalProperty;
use ports::crm::{
    ActivityKind, ActivityPage, ActivityTarget, ExternalActivities, ExternalActivity,
    ExternalActivityRecord, ExternalCrm, ExternalRecord,
};
use ports::error::{PortError, PortResult};
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::wire::{HsObject, decode};
use crate::{HubSpotClient, rejected};

/// The engagement's properties, as HubSpot names them.
fn properties(a: &ExternalActivity) -> Value {
    let at = a.at.format(&Rfc3339).unwrap_or_default();
    match a.kind {
        // A note has no title in HubSpot: it leads the body.
        ActivityKind::Note => {
            let body = match (a.title.trim(), a.body.trim()) {
                ("", b) => b.to_owned(),
                (t, "") => t.to_owned(),
                (t, b) => format!("{t}\n\n{b}"),
            };
            json!({"hs_timestamp": at, "hs_note_body": body})
        }
        ActivityKind::Task => json!({
            "hs_timestamp": at,
            "hs_task_subject": a.title,
            "hs_task_body": a.body,
            "hs_task_status": if a.completed { "COMPLETED" } else { "NOT_STARTED" },
        }),
    }
}

/// The properties an engagement is read with.
fn read_properties(kind: ActivityKind) -> Vec<ExternalProperty> {
    let names: &[&str] = match kind {
        ActivityKind::Note => &["hs_note_body", "hs_timestamp"],
        ActivityKind::Task => &[
            "hs_task_subject",
            "hs_task_body",
            "hs_task_status",
            "hs_timestamp",
        ],
    };
    names
        .iter()
        .filter_map(|n| ExternalProperty::parse(n).ok())
        .collect()
}

/// An engagement read back as a provider-neutral activity (a note's title leads its body in
/// HubSpot, so it comes back as the body).
fn from_record(kind: ActivityKind, r: &ExternalRecord) -> ExternalActivity {
    let text = |name: &str| match ExternalProperty::parse(name)
        .ok()
        .and_then(|p| r.properties.get(&p))
    {
        Some(domain::field::FieldValue::Text(t)) => t.clone(),
        _ => String::new(),
    };
    let at = OffsetDateTime::parse(&text("hs_timestamp"), &Rfc3339)
        .ok()
        .or(r.updated_at)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    match kind {
        ActivityKind::Note => ExternalActivity {
            kind,
            title: String::new(),
            body: text("hs_note_body"),
            at,
            completed: false,
        },
        ActivityKind::Task => ExternalActivity {
            kind,
            title: text("hs_task_subject"),
            body: text("hs_task_body"),
            at,
            completed: text("hs_task_status") == "COMPLETED",
        },
    }
}

impl HubSpotClient {
    /// One page of the archived engagements of `kind`; those archived since `since` come back
    /// as deletes.
    async fn archived_since(
        &self,
        kind: ActivityKind,
        since: OffsetDateTime,
        from: &str,
    ) -> PortResult<ActivityPage> {
        let mut query = vec![("limit", "100".to_owned()), ("archived", "true".to_owned())];
        if !from.is_empty() {
            query.push(("after", from.to_owned()));
        }
        let answer = self
            .send(Method::GET, &self.objects(kind.as_str()), &query, None)
            .await?;
        if answer.status != 200 {
            return Err(rejected(answer.status, &answer.body));
        }
        let next = answer.body["paging"]["next"]["after"]
            .as_str()
            .map(|a| format!("a:{a}"));
        let found: Vec<HsObject> = decode(answer.body["results"].clone(), "archived list")?;
        let mut activities = Vec::new();
        for o in found {
            let at = o
                .archived_at
                .as_deref()
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
            let Some(at) = at.filter(|t| *t >= since) else {
                continue;
            };
            activities.push(ExternalActivityRecord {
                id: ExternalId::parse(&o.id)
                    .map_err(|e| PortError::backend("HubSpot object id", e.to_string()))?,
                activity: ExternalActivity {
                    kind,
                    title: String::new(),
                    body: String::new(),
                    at,
                    completed: false,
                },
                targets: Vec::new(),
                deleted: true,
            });
        }
        Ok(ActivityPage { activities, next })
    }
}

#[async_trait]
impl ExternalActivities for HubSpotClient {
    async fn get_activity(
        &self,
        kind: ActivityKind,
        id: &ExternalId,
    ) -> PortResult<ExternalActivity> {
        let r = self.get(kind.as_str(), id, &read_properties(kind)).await?;
        Ok(from_record(kind, &r))
    }

    /// Search on `hs_lastmodifieddate` (as records are polled), then each engagement's
    /// associations with contacts, companies and deals; then, since search leaves archived
    /// engagements out, the archived list (`?archived=true`), whose entries archived since
    /// `since` are the deletes. The cursor says which: `s:<search cursor>` or `a:<list after>`.
    /// The archived list is read whole each pass (HubSpot keeps it 90 days).
    async fn activities_changed_since(
        &self,
        kind: ActivityKind,
        since: OffsetDateTime,
        after: Option<String>,
    ) -> PortResult<ActivityPage> {
        let after = after.unwrap_or_else(|| "s:".to_owned());
        if let Some(from) = after.strip_prefix("a:") {
            return self.archived_since(kind, since, from).await;
        }
        let search = after.strip_prefix("s:").filter(|c| !c.is_empty());
        let page = self
            .changed_since(
                kind.as_str(),
                since,
                &read_properties(kind),
                search.map(str::to_owned),
            )
            .await?;
        let mut activities = Vec::new();
        for r in page.records {
            let mut targets = Vec::new();
            for to in ["contacts", "companies", "deals"] {
                for id in self.associations(kind.as_str(), &r.id, to).await? {
                    targets.push(ActivityTarget {
                        object: to.to_owned(),
                        id,
                    });
                }
            }
            activities.push(ExternalActivityRecord {
                activity: from_record(kind, &r),
                id: r.id,
                targets,
                deleted: r.archived,
            });
        }
        Ok(ActivityPage {
            activities,
            next: Some(match page.next {
                Some(n) => format!("s:{n}"),
                None => "a:".to_owned(),
            }),
        })
    }

    /// Attached to every target; if an association fails, the new engagement is archived again
    /// (so a retried job does not leave a detached copy) and the error returned.
    async fn create_activity(
        &self,
        activity: &ExternalActivity,
        targets: &[ActivityTarget],
    ) -> PortResult<ExternalId> {
        if targets.is_empty() {
            return Err(PortError::Invalid(format!(
                "a HubSpot {} needs a record to attach to",
                activity.kind.as_str()
            )));
        }
        let kind = activity.kind.as_str();
        let body = json!({"properties": properties(activity)});
        let answer = self
            .send(Method::POST, &self.objects(kind), &[], Some(&body))
            .await?;
        if answer.status != 201 {
            return Err(rejected(answer.status, &answer.body));
        }
        let created: HsObject = decode(answer.body, "created engagement")?;
        let id = ExternalId::parse(&created.id)?;
        for t in targets {
            if let Err(e) = self.associate(kind, &id, &t.object, &t.id).await {
                if let Err(undo) = self.delete_activity(activity.kind, &id).await {
                    tracing::warn!(id = %id, error = %ports::Chain(&undo), "could not archive a detached engagement");
                }
                return Err(e);
            }
        }
        Ok(id)
    }

    async fn update_activity(
        &self,
        id: &ExternalId,
        activity: &ExternalActivity,
    ) -> PortResult<()> {
        let path = format!("{}/{id}", self.objects(activity.kind.as_str()));
        let body = json!({"properties": properties(activity)});
        let answer = self.send(Method::PATCH, &path, &[], Some(&body)).await?;
        match answer.status {
            200 => Ok(()),
            s => Err(rejected(s, &answer.body)),
        }
    }

    /// HubSpot answers 204 for an id it does not hold too, so this never returns `NotFound`.
    async fn delete_activity(&self, kind: ActivityKind, id: &ExternalId) -> PortResult<()> {
        let path = format!("{}/{id}", self.objects(kind.as_str()));
        let answer = self.send(Method::DELETE, &path, &[], None).await?;
        match answer.status {
            204 | 200 => Ok(()),
            s => Err(rejected(s, &answer.body)),
        }
    }
}
