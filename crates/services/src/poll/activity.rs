//! Notes and tasks made in a CRM, found by polling it, into Attio.
//!
//! Each pass asks the CRM for the activities changed since shortly before the last complete
//! pass (a cursor per kind, `poll_notes` / `poll_tasks`) and compares each with its identity link
//! (the pseudo-object `notes` / `tasks`, as the outbound activity sync keeps them):
//!
//! - not linked, born in the CRM: written into Attio on the records its targets are linked to (a
//!   note on the first, a task linked to all), and linked; Attio's event for it then takes it to
//!   the other CRMs, and writes nothing back to this one (its content is the link's);
//! - linked, and its content is the one the link holds for the CRM: our own write's echo, or a
//!   change of what is not synced (its time) — nothing to do;
//! - linked, content changed in the CRM: Attio follows. Attio's API cannot edit a note's or a
//!   task's text, so a new one takes the old one's place (its links, in every CRM, move to it
//!   first, so the old one's delete event removes nothing); a task whose only change is being
//!   done is updated in place;
//! - deleted in the CRM (where the CRM tells deletes): the Attio activity is deleted, after its
//!   link to this CRM, so its delete event removes the copies in the other CRMs only.
//!
//! An activity none of whose records is linked in Attio is left out and counted.

use std::collections::BTreeSet;

use domain::ids::{NoteId, ObjectSlug, RecordId, TaskId, TenantId};
use domain::link::{IdentityLink, LinkLookup};
use ports::attio::{NewNote, NewTask, TaskLink, TaskUpdate};
use ports::crm::{ActivityKind, ExternalActivityRecord};
use ports::directory::TenantClients;
use ports::error::PortError;

use super::ChangePoller;
use crate::error::ServiceResult;
use crate::pipeline::activity::{
    content, content_snapshot, due, link_object, note_activity, snapshot_content, snapshot_due,
    task_activity, with_due,
};

/// What a pass did with the CRM's activities.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ActivityStats {
    pub seen: u64,
    /// Born in the CRM and written into Attio.
    pub created: u64,
    /// Changed in the CRM and followed in Attio.
    pub updated: u64,
    pub deleted: u64,
    /// Nothing changed that is synced (our own writes' echoes included).
    pub unchanged: u64,
    /// None of its records is linked in Attio.
    pub unlinked: u64,
}

impl ChangePoller {
    /// One pass over the CRM's notes and tasks of one tenant.
    pub(super) async fn poll_activities(
        &self,
        tenant: &TenantId,
        clients: &TenantClients,
    ) -> ServiceResult<ActivityStats> {
        let mut stats = ActivityStats::default();
        let Some(crm) = clients.activities.get(&self.system).cloned() else {
            return Ok(stats);
        };
        for kind in [ActivityKind::Note, ActivityKind::Task] {
            let (since, cursor) = self.cursor_of(tenant, kind.as_str()).await?;
            let pass_start = self.clock.now();
            let mut after = None;
            loop {
                let page = crm.activities_changed_since(kind, since, after).await?;
                for a in &page.activities {
                    stats.seen += 1;
                    self.activity_changed(tenant, clients, a, &mut stats)
                        .await?;
                }
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            self.save_cursor(tenant, kind.as_str(), cursor, pass_start, stats.seen)
                .await?;
        }
        Ok(stats)
    }

    async fn activity_changed(
        &self,
        tenant: &TenantId,
        clients: &TenantClients,
        a: &ExternalActivityRecord,
        stats: &mut ActivityStats,
    ) -> ServiceResult<()> {
        let kind = a.activity.kind;
        let lookup = LinkLookup::External {
            system: self.system.clone(),
            external_object: kind.as_str().to_owned(),
            external_id: a.id.clone(),
        };
        let link = self.links.find(tenant, &lookup).await?;
        let said = content(&a.activity);
        match (link, a.deleted) {
            (None, true) => stats.unchanged += 1,
            (Some(l), true) => {
                self.unlink(tenant, &l).await?;
                delete_in_attio(clients, kind, l.attio_record).await?;
                tracing::info!(tenant = %tenant, system = %self.system, kind = kind.as_str(), id = %a.id, attio = %l.attio_record, "an activity deleted in the CRM was deleted in Attio");
                stats.deleted += 1;
            }
            (Some(l), false) => match snapshot_content(&l.snapshot) {
                Some((_, crm)) if crm == said => {
                    if self.follow_due(clients, &l, a).await? {
                        stats.updated += 1;
                    } else {
                        stats.unchanged += 1;
                    }
                }
                // Linked before contents were kept: this is the baseline.
                None => {
                    let attio = attio_content(clients, kind, l.attio_record).await?;
                    self.relink(&l, l.attio_record, content_snapshot(attio, said))
                        .await?;
                    stats.unchanged += 1;
                }
                Some(_) => {
                    self.follow_edit(tenant, clients, &l, a).await?;
                    stats.updated += 1;
                }
            },
            (None, false) => {
                let records = self.linked_records(tenant, a).await?;
                if records.is_empty() {
                    stats.unlinked += 1;
                    return Ok(());
                }
                let (id, attio) = create_in_attio(clients, a, &records, None).await?;
                let link = IdentityLink {
                    tenant: tenant.clone(),
                    object: link_object(kind)?,
                    attio_record: id,
                    system: self.system.clone(),
                    external_object: kind.as_str().to_owned(),
                    external_id: a.id.clone(),
                    snapshot: with_due(
                        content_snapshot(attio, said),
                        due(&a.activity),
                        due(&a.activity),
                    ),
                    updated_at: self.clock.now(),
                    version: 0,
                };
                self.links.save(&link).await?;
                tracing::info!(tenant = %tenant, system = %self.system, kind = kind.as_str(), id = %a.id, attio = %id, "an activity made in the CRM was written into Attio");
                stats.created += 1;
            }
        }
        Ok(())
    }

    /// A task whose due day changed in the CRM (and nothing else that is synced): the Attio
    /// task's deadline moves to the CRM's; its event then takes it to the other CRMs, and back
    /// to this one nothing (the link holds both sides' new day). Whether it moved.
    async fn follow_due(
        &self,
        clients: &TenantClients,
        l: &IdentityLink,
        a: &ExternalActivityRecord,
    ) -> ServiceResult<bool> {
        let Some((_, crm_due)) = snapshot_due(&l.snapshot) else {
            return Ok(false);
        };
        if a.activity.kind != ActivityKind::Task || crm_due == due(&a.activity) {
            return Ok(false);
        }
        let update = TaskUpdate {
            deadline_at: Some(Some(a.activity.at)),
            ..TaskUpdate::default()
        };
        let moved = clients
            .tasks
            .update_task(TaskId::from_uuid(*l.attio_record.as_uuid()), &update)
            .await?;
        let snapshot = with_due(
            l.snapshot.clone(),
            due(&task_activity(&moved)),
            due(&a.activity),
        );
        self.relink(l, l.attio_record, snapshot).await?;
        tracing::info!(tenant = %l.tenant, system = %self.system, id = %a.id, attio = %l.attio_record, due = ?due(&a.activity), "a task's due day changed in the CRM moved the Attio task's deadline");
        Ok(true)
    }

    /// The CRM's edit of a linked activity, into Attio: a task only done (or undone) is updated;
    /// otherwise a new note or task with the CRM's content takes the old one's place.
    async fn follow_edit(
        &self,
        tenant: &TenantId,
        clients: &TenantClients,
        l: &IdentityLink,
        a: &ExternalActivityRecord,
    ) -> ServiceResult<()> {
        let kind = a.activity.kind;
        let said = content(&a.activity);
        // Only done (or undone) in the CRM: its content as last seen, with the state flipped.
        let mut before = a.activity.clone();
        before.completed = !before.completed;
        let only_done =
            snapshot_content(&l.snapshot).is_some_and(|(_, crm)| crm == content(&before));
        if kind == ActivityKind::Task && only_done {
            let update = TaskUpdate {
                is_completed: Some(a.activity.completed),
                deadline_at: Some(Some(a.activity.at)),
                ..TaskUpdate::default()
            };
            let done = clients
                .tasks
                .update_task(TaskId::from_uuid(*l.attio_record.as_uuid()), &update)
                .await?;
            return self
                .relink(
                    l,
                    l.attio_record,
                    with_due(
                        content_snapshot(content(&task_activity(&done)), said),
                        due(&task_activity(&done)),
                        due(&a.activity),
                    ),
                )
                .await;
        }
        let records = self.attio_records_of(clients, kind, l.attio_record).await?;
        let (id, attio) = create_in_attio(clients, a, &records, Some(l.attio_record)).await?;
        // Every CRM's link moves to the new one before the old one goes, so its delete event
        // removes no copy; the other CRMs then take the new content from its own event.
        let object = link_object(kind)?;
        for other in self.links.links_of(tenant, &object, l.attio_record).await? {
            let snapshot = if other.system == self.system {
                with_due(
                    content_snapshot(attio.clone(), said.clone()),
                    due(&a.activity),
                    due(&a.activity),
                )
            } else {
                other.snapshot.clone()
            };
            self.relink(&other, id, snapshot).await?;
        }
        delete_in_attio(clients, kind, l.attio_record).await?;
        tracing::info!(tenant = %tenant, system = %self.system, kind = kind.as_str(), id = %a.id, from = %l.attio_record, to = %id, "an activity edited in the CRM replaced its Attio copy");
        Ok(())
    }

    /// Saves `l` pointing at Attio activity `to` with `snapshot` (dropping the old row when the
    /// Attio side changes).
    async fn relink(
        &self,
        l: &IdentityLink,
        to: RecordId,
        snapshot: domain::merge::Snapshot,
    ) -> ServiceResult<()> {
        let moved = to != l.attio_record;
        if moved {
            self.unlink(&l.tenant, l).await?;
        }
        self.links
            .save(&IdentityLink {
                attio_record: to,
                snapshot,
                updated_at: self.clock.now(),
                version: if moved { 0 } else { l.version },
                ..l.clone()
            })
            .await?;
        Ok(())
    }

    async fn unlink(&self, tenant: &TenantId, l: &IdentityLink) -> ServiceResult<()> {
        let lookup = LinkLookup::Attio {
            object: l.object.clone(),
            record: l.attio_record,
            system: l.system.clone(),
        };
        match self.links.delete(tenant, &lookup).await {
            Ok(()) | Err(PortError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The Attio records the activity's targets are linked to, each once, in its order.
    async fn linked_records(
        &self,
        tenant: &TenantId,
        a: &ExternalActivityRecord,
    ) -> ServiceResult<Vec<(ObjectSlug, RecordId)>> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for t in &a.targets {
            let lookup = LinkLookup::External {
                system: self.system.clone(),
                external_object: t.object.clone(),
                external_id: t.id.clone(),
            };
            if let Some(l) = self.links.find(tenant, &lookup).await?
                && seen.insert(l.attio_record)
            {
                out.push((l.object, l.attio_record));
            }
        }
        Ok(out)
    }

    /// The records an Attio note (its parent) or task (its linked records) is on.
    async fn attio_records_of(
        &self,
        clients: &TenantClients,
        kind: ActivityKind,
        id: RecordId,
    ) -> ServiceResult<Vec<(ObjectSlug, RecordId)>> {
        Ok(match kind {
            ActivityKind::Note => {
                let n = clients
                    .notes
                    .get_note(NoteId::from_uuid(*id.as_uuid()))
                    .await?;
                vec![(ObjectSlug::parse(&n.parent_object)?, n.parent_record_id)]
            }
            ActivityKind::Task => {
                let t = clients
                    .tasks
                    .get_task(TaskId::from_uuid(*id.as_uuid()))
                    .await?;
                let mut out = Vec::new();
                for r in &t.linked_records {
                    let object = domain::ids::ObjectId::parse(&r.target_object_id)?;
                    out.push((
                        self.outbound_slug(clients, object).await?,
                        r.target_record_id,
                    ));
                }
                out
            }
        })
    }

    async fn outbound_slug(
        &self,
        clients: &TenantClients,
        object: domain::ids::ObjectId,
    ) -> ServiceResult<ObjectSlug> {
        let found = clients
            .schema
            .get_object(&domain::ids::ObjectRef::Id(object))
            .await?;
        let slug = found.api_slug.as_deref().ok_or_else(|| {
            PortError::Invalid(format!("object {object} has no api_slug to map by"))
        })?;
        Ok(ObjectSlug::parse(slug)?)
    }
}

/// The content Attio holds for one of its activities.
async fn attio_content(
    clients: &TenantClients,
    kind: ActivityKind,
    id: RecordId,
) -> ServiceResult<domain::field::FieldValue> {
    Ok(match kind {
        ActivityKind::Note => content(&note_activity(
            &clients
                .notes
                .get_note(NoteId::from_uuid(*id.as_uuid()))
                .await?,
        )),
        ActivityKind::Task => content(&task_activity(
            &clients
                .tasks
                .get_task(TaskId::from_uuid(*id.as_uuid()))
                .await?,
        )),
    })
}

/// Writes the CRM's activity into Attio on `records` (a note on the first); returns its id and
/// the content Attio holds. A task keeps the deadline of the one it replaces, if any.
async fn create_in_attio(
    clients: &TenantClients,
    a: &ExternalActivityRecord,
    records: &[(ObjectSlug, RecordId)],
    replacing: Option<RecordId>,
) -> ServiceResult<(RecordId, domain::field::FieldValue)> {
    let act = &a.activity;
    match act.kind {
        ActivityKind::Note => {
            let (parent, record) = records.first().cloned().ok_or_else(|| {
                PortError::Invalid("a note needs a record to be written on".into())
            })?;
            let title = match act.title.trim() {
                "" => act
                    .body
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
                t => t.to_owned(),
            };
            let note = clients
                .notes
                .create_note(&NewNote {
                    parent_object: parent.to_string(),
                    parent_record_id: record,
                    title,
                    format: domain::schema::ContentFormat::Plaintext,
                    content: act.body.clone(),
                    created_at: None,
                })
                .await?;
            Ok((
                RecordId::from_uuid(*note.id.note_id.as_uuid()),
                content(&note_activity(&note)),
            ))
        }
        ActivityKind::Task => {
            // A replacement keeps the old task's deadline while the CRM's due day is the same
            // (a Salesforce task is due on a day, not at a time); a new day is the CRM's.
            let deadline = match replacing {
                Some(old) => {
                    let kept = clients
                        .tasks
                        .get_task(TaskId::from_uuid(*old.as_uuid()))
                        .await?
                        .deadline_at
                        .and_then(|d| domain::timestamp::Timestamp::parse(&d).ok())
                        .map(|t| t.as_datetime());
                    let same_day = |t: &time::OffsetDateTime| {
                        t.to_offset(time::UtcOffset::UTC).date()
                            == act.at.to_offset(time::UtcOffset::UTC).date()
                    };
                    Some(kept.filter(same_day).unwrap_or(act.at))
                }
                None => Some(act.at),
            };
            // Attio's task is one text, whose first line is the CRM's subject.
            let (subject, body) = (act.title.trim(), act.body.trim());
            let text = if body.is_empty() {
                subject.to_owned()
            } else if subject.is_empty() || body.starts_with(subject) {
                body.to_owned()
            } else {
                format!("{subject}\n{body}")
            };
            let task = clients
                .tasks
                .create_task(&NewTask {
                    content: text,
                    deadline_at: deadline,
                    is_completed: act.completed,
                    linked_records: records
                        .iter()
                        .map(|(o, r)| TaskLink {
                            target_object: o.to_string(),
                            target_record_id: *r,
                        })
                        .collect(),
                    assignees: Vec::new(),
                })
                .await?;
            Ok((
                RecordId::from_uuid(*task.id.task_id.as_uuid()),
                content(&task_activity(&task)),
            ))
        }
    }
}

/// Deletes an Attio activity; one already gone is fine.
async fn delete_in_attio(
    clients: &TenantClients,
    kind: ActivityKind,
    id: RecordId,
) -> ServiceResult<()> {
    let gone = match kind {
        ActivityKind::Note => {
            clients
                .notes
                .delete_note(NoteId::from_uuid(*id.as_uuid()))
                .await
        }
        ActivityKind::Task => {
            clients
                .tasks
                .delete_task(TaskId::from_uuid(*id.as_uuid()))
                .await
        }
    };
    match gone {
        Ok(()) | Err(PortError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
