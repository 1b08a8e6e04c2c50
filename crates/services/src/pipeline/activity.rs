//! Activity sync: Attio notes and tasks become notes and tasks in every CRM where a record they
//! belong to is linked (HubSpot engagements, Salesforce `Note` / `Task`).
//!
//! The CRM's copy is remembered as an identity link of the pseudo-object `notes` or `tasks`
//! (the Attio note or task id on the Attio side), so a later change updates it and a delete
//! removes it. A note or task whose records are mapped to a CRM but not linked there yet waits
//! (`NotReady`, retried), as when its event overtakes the record's; one whose records are not
//! mapped to a CRM is not written there.

use domain::ids::{ObjectId, ObjectSlug, RecordId, SystemId, TenantId};
use domain::link::{IdentityLink, LinkLookup};
use std::collections::BTreeMap;

use domain::field::FieldValue;
use domain::mapping::FieldKey;
use domain::merge::{FieldSnapshot, Snapshot};
use domain::schema::{Note, Task};
use domain::timestamp::Timestamp;
use ports::crm::{ActivityKind, ActivityTarget, ExternalActivity};
use ports::directory::TenantClients;
use ports::error::PortError;
use uuid::Uuid;

use super::{EventPipeline, Handled};
use crate::error::{ServiceError, ServiceResult};

/// Attio's note as the CRMs receive it.
pub(crate) fn note_activity(n: &Note) -> ExternalActivity {
    ExternalActivity {
        kind: ActivityKind::Note,
        title: n.title.clone(),
        body: n.content_plaintext.clone(),
        at: n.created_at.as_datetime(),
        completed: false,
    }
}

/// Attio's task as the CRMs receive it: its first line is the subject; it is due at its
/// deadline, else when it was made.
pub(crate) fn task_activity(t: &Task) -> ExternalActivity {
    let at = t
        .deadline_at
        .as_deref()
        .and_then(|d| Timestamp::parse(d).ok())
        .unwrap_or_else(|| t.created_at.clone())
        .as_datetime();
    ExternalActivity {
        kind: ActivityKind::Task,
        title: t
            .content_plaintext
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned(),
        body: t.content_plaintext.clone(),
        at,
        completed: t.is_completed,
    }
}

/// The pseudo-object an activity's identity links are kept under.
pub(crate) fn link_object(kind: ActivityKind) -> ServiceResult<ObjectSlug> {
    Ok(ObjectSlug::parse(kind.as_str())?)
}

/// What an activity says, as one value (a digest): its title, text and state (not its time, which the
/// sides keep in different forms). Each side's form is compared only with that side's earlier
/// form, as a record's fields are.
pub(crate) fn content(a: &ExternalActivity) -> FieldValue {
    let said = FieldValue::text(format!(
        "{}\u{1f}{}\u{1f}{}",
        a.title.trim(),
        a.body.trim(),
        a.completed
    ));
    // Kept as a digest: a link's snapshot need not hold the text.
    FieldValue::text(said.value_hash().as_str())
}

/// An activity link's snapshot: each side's content when they were last in step.
pub(crate) fn content_snapshot(attio: FieldValue, crm: FieldValue) -> Snapshot {
    let key = FieldKey::parse("content").unwrap_or_else(|_| unreachable!("a valid key"));
    Snapshot(BTreeMap::from([(
        key,
        FieldSnapshot {
            attio,
            external: crm,
            property: None,
        },
    )]))
}

/// A task's due day (UTC) as one value; empty for a note. Compared, like the content, only
/// with the same side's earlier due day (a Salesforce task is due on a date, HubSpot's and
/// Attio's at an instant).
pub(crate) fn due(a: &ExternalActivity) -> FieldValue {
    if a.kind != ActivityKind::Task {
        return FieldValue::Empty;
    }
    FieldValue::text(a.at.to_offset(time::UtcOffset::UTC).date().to_string())
}

fn due_key() -> FieldKey {
    FieldKey::parse("due").unwrap_or_else(|_| unreachable!("a valid key"))
}

/// `s` with each side's due day.
pub(crate) fn with_due(mut s: Snapshot, attio: FieldValue, crm: FieldValue) -> Snapshot {
    s.0.insert(
        due_key(),
        FieldSnapshot {
            attio,
            external: crm,
            property: None,
        },
    );
    s
}

/// Each side's due day in a task link's snapshot (`None` for links written before it was
/// kept, whose due days are then left as they are).
pub(crate) fn snapshot_due(s: &Snapshot) -> Option<(FieldValue, FieldValue)> {
    s.0.get(&due_key())
        .map(|f| (f.attio.clone(), f.external.clone()))
}

/// Each side's content in an activity link's snapshot (`None` for links written before it
/// was kept).
pub(crate) fn snapshot_content(s: &Snapshot) -> Option<(FieldValue, FieldValue)> {
    let key = FieldKey::parse("content").ok()?;
    s.0.get(&key).map(|f| (f.attio.clone(), f.external.clone()))
}

/// What Attio answered for a note or task: `Ok(Err(ignored))` once it no longer exists (its
/// delete event does the rest).
fn still_there<T>(
    read: Result<T, PortError>,
    what: &str,
    id: impl std::fmt::Display,
) -> ServiceResult<Result<T, Handled>> {
    match read {
        Ok(v) => Ok(Ok(v)),
        Err(PortError::NotFound(_)) => Ok(Err(Handled::Ignored {
            reason: format!("{what} {id} no longer exists"),
        })),
        Err(e) => Err(e.into()),
    }
}

impl EventPipeline {
    /// A note was created or changed: re-read and written to the CRMs.
    pub(super) async fn note_changed(
        &self,
        tenant: &TenantId,
        note: domain::ids::NoteId,
    ) -> ServiceResult<Handled> {
        let clients = self.directory.clients(tenant).await?;
        let n = match still_there(clients.notes.get_note(note).await, "note", note)? {
            Ok(n) => n,
            Err(gone) => return Ok(gone),
        };
        let parent = ObjectSlug::parse(&n.parent_object)?;
        let activity = note_activity(&n);
        self.write_activity(
            tenant,
            &clients,
            *note.as_uuid(),
            &activity,
            &[(parent, n.parent_record_id)],
        )
        .await
    }

    /// A task was created or changed: re-read and written to the CRMs.
    pub(super) async fn task_changed(
        &self,
        tenant: &TenantId,
        task: domain::ids::TaskId,
    ) -> ServiceResult<Handled> {
        let clients = self.directory.clients(tenant).await?;
        let t = match still_there(clients.tasks.get_task(task).await, "task", task)? {
            Ok(t) => t,
            Err(gone) => return Ok(gone),
        };
        let mut records = Vec::new();
        for l in &t.linked_records {
            let object = ObjectId::parse(&l.target_object_id)?;
            records.push((
                self.slug(tenant, &clients, object).await?,
                l.target_record_id,
            ));
        }
        let activity = task_activity(&t);
        self.write_activity(tenant, &clients, *task.as_uuid(), &activity, &records)
            .await
    }

    /// A note or task was deleted in Attio: its copies in the CRMs go, with their links.
    pub(super) async fn activity_deleted(
        &self,
        tenant: &TenantId,
        kind: ActivityKind,
        id: Uuid,
    ) -> ServiceResult<Handled> {
        let clients = self.directory.clients(tenant).await?;
        let object = link_object(kind)?;
        let mut archived = Vec::new();
        let mut unlinked = 0;
        for (system, crm) in &clients.activities {
            let lookup = LinkLookup::Attio {
                object: object.clone(),
                record: RecordId::from_uuid(id),
                system: system.clone(),
            };
            let Some(link) = self.links.find(tenant, &lookup).await? else {
                continue;
            };
            match crm.delete_activity(kind, &link.external_id).await {
                Ok(()) | Err(PortError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
            archived.push((system.clone(), link.external_id.clone()));
            match self.links.delete(tenant, &lookup).await {
                Ok(()) | Err(PortError::NotFound(_)) => unlinked += 1,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Handled::Deleted {
            archived,
            unlinked,
            held: Vec::new(),
        })
    }

    /// Writes one activity to every CRM that holds activities: updated where it was written
    /// before, else created on the linked records of `records`.
    async fn write_activity(
        &self,
        tenant: &TenantId,
        clients: &TenantClients,
        id: Uuid,
        activity: &ExternalActivity,
        records: &[(ObjectSlug, RecordId)],
    ) -> ServiceResult<Handled> {
        let object = link_object(activity.kind)?;
        let mut written = Vec::new();
        for (system, crm) in &clients.activities {
            let lookup = LinkLookup::Attio {
                object: object.clone(),
                record: RecordId::from_uuid(id),
                system: system.clone(),
            };
            let existing = self.links.find(tenant, &lookup).await?;
            let said = content(activity);
            if let Some(link) = &existing {
                // Unchanged in Attio since the sides were last in step (the event of our own
                // write of a CRM's activity, or a change that is neither the content's nor the
                // due day's).
                let due_same = snapshot_due(&link.snapshot).is_none_or(|(a, _)| a == due(activity));
                if due_same && snapshot_content(&link.snapshot).is_some_and(|(a, _)| a == said) {
                    continue;
                }
                match crm.update_activity(&link.external_id, activity).await {
                    Ok(()) => {
                        let crm_form = crm.get_activity(activity.kind, &link.external_id).await?;
                        let kept = IdentityLink {
                            snapshot: with_due(
                                content_snapshot(said, content(&crm_form)),
                                due(activity),
                                due(&crm_form),
                            ),
                            updated_at: self.outbound.now(),
                            ..link.clone()
                        };
                        self.links.save(&kept).await?;
                        written.push((system.clone(), link.external_id.clone()));
                        continue;
                    }
                    // Deleted in the CRM: written again below.
                    Err(PortError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let targets = self.targets(tenant, system, records).await?;
            if targets.is_empty() {
                let mut waiting = None;
                for (o, r) in records {
                    let mapped = self.outbound.targets_of(tenant, o).await?;
                    if mapped.iter().any(|t| &t.mapping.system == system) {
                        waiting = Some((o, r));
                        break;
                    }
                }
                if let Some((o, r)) = waiting {
                    return Err(ServiceError::NotReady(format!(
                        "{} {id}: {o} record {r} is not linked in {system} yet",
                        activity.kind.as_str()
                    )));
                }
                continue;
            }
            let external_id = crm.create_activity(activity, &targets).await?;
            let crm_form = crm.get_activity(activity.kind, &external_id).await?;
            let link = IdentityLink {
                tenant: tenant.clone(),
                object: object.clone(),
                attio_record: RecordId::from_uuid(id),
                system: system.clone(),
                external_object: activity.kind.as_str().to_owned(),
                external_id: external_id.clone(),
                snapshot: with_due(
                    content_snapshot(said.clone(), content(&crm_form)),
                    due(activity),
                    due(&crm_form),
                ),
                updated_at: self.outbound.now(),
                version: existing.map_or(0, |l| l.version),
            };
            match self.links.save(&link).await {
                Ok(_) => written.push((system.clone(), external_id)),
                // Another worker wrote and linked this activity meanwhile: ours would be a
                // duplicate in the CRM. Remove it; the retry updates the linked one.
                Err(e @ PortError::Stale(_)) => {
                    if let Err(cleanup) = crm.delete_activity(activity.kind, &external_id).await {
                        tracing::warn!(system = %system, external_id = %external_id, error = %ports::Chain(&cleanup),
                            "a duplicate activity from a lost race could not be deleted");
                    }
                    return Err(e.into());
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Handled::Activity {
            kind: activity.kind,
            written,
        })
    }

    /// The CRM records of `system` linked to `records`.
    async fn targets(
        &self,
        tenant: &TenantId,
        system: &SystemId,
        records: &[(ObjectSlug, RecordId)],
    ) -> ServiceResult<Vec<ActivityTarget>> {
        let mut targets = Vec::new();
        for (object, record) in records {
            for l in self.links.links_of(tenant, object, *record).await? {
                if &l.system == system {
                    targets.push(ActivityTarget {
                        object: l.external_object,
                        id: l.external_id,
                    });
                }
            }
        }
        Ok(targets)
    }
}
