//! A property test of the sync as a whole: random interleavings of people created and deleted in
//! Attio, of edits made in Attio, HubSpot and Salesforce, and of HubSpot merges (a person's contact merged
//! into a duplicate made by hand), with their deliveries reordered and duplicated, against the
//! three simulators. Once every delivery has been handled and a
//! reconciliation round has run, for every person: the three sides hold the same value in every
//! field, that value is one some side wrote, each CRM holds exactly one record of the person,
//! one more round writes nothing (no loop), and the number of values written is bounded by the
//! edits made.

use std::collections::{BTreeMap, BTreeSet};

use domain::field::FieldValue;
use domain::ids::{ExternalId, ObjectRef, RecordId, SystemId};
use domain::link::LinkLookup;
use domain::mapping::SyncRule;
use domain::write::{RecordWrite, WriteValue};
use ports::attio::{AttioRecords, UpdateMode};
use ports::crm::ExternalCrm;
use ports::stores::LinkStore;
use proptest::prelude::*;
use services::outbound::SystemReport;

use crate::outbound::{World, create_person, people, prop, slug, world};

/// The sides a change is made on.
#[derive(Debug, Clone, Copy)]
enum Side {
    Attio,
    HubSpot,
    Salesforce,
}

#[derive(Debug, Clone)]
enum Op {
    /// A new person in Attio.
    Create,
    /// An edit of one field of one person (by index among those created), if it exists there.
    Edit {
        side: Side,
        person: usize,
        title: bool,
        value: u8,
    },
    /// In HubSpot, the person's contact merged into a duplicate made by hand.
    Merge(usize),
    /// In Attio, the person deleted (the mapping's policy archives the CRM records).
    Delete(usize),
    /// One pending delivery handled, chosen by index (so deliveries are reordered).
    Deliver(usize),
    /// A delivery handled again.
    Duplicate(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let side = prop_oneof![
        Just(Side::Attio),
        Just(Side::HubSpot),
        Just(Side::Salesforce)
    ];
    prop_oneof![
        1 => Just(Op::Create),
        1 => (0..4usize).prop_map(Op::Merge),
        1 => (0..4usize).prop_map(Op::Delete),
        4 => (side, 0..4usize, any::<bool>(), 0..3u8).prop_map(|(side, person, title, value)| Op::Edit { side, person, title, value }),
        3 => (0..16usize).prop_map(Op::Deliver),
        1 => (0..16usize).prop_map(Op::Duplicate),
    ]
}

/// The test's side of the world: who exists, what is pending, what was written.
/// What a delivery tells: a record changed, or HubSpot merged contacts (`contact.merge`).
#[derive(Debug, Clone)]
enum Told {
    Changed(RecordId),
    Merged {
        person: RecordId,
        survivor: ExternalId,
        merged: ExternalId,
    },
    /// Attio's `record.deleted`.
    Deleted(RecordId),
}

#[derive(Default)]
struct Run {
    people: Vec<RecordId>,
    /// Deleted in Attio.
    gone: BTreeSet<RecordId>,
    pending: Vec<Told>,
    delivered: Vec<Told>,
    merges: usize,
    /// Every value each field of each person has held (initial or edited), on any side.
    values: BTreeMap<(RecordId, bool), BTreeSet<String>>,
    edits: usize,
    /// Values written by the sync (to a CRM or into Attio).
    written: usize,
}

fn count(reports: &[SystemReport]) -> usize {
    reports
        .iter()
        .map(|r| r.written.len() + r.written_to_attio.len())
        .sum()
}

async fn linked(w: &World, person: RecordId, system: &str) -> Option<ExternalId> {
    let lookup = LinkLookup::Attio {
        object: people(),
        record: person,
        system: SystemId::parse(system).unwrap(),
    };
    w.links
        .find(&w.tenant, &lookup)
        .await
        .unwrap()
        .map(|l| l.external_id)
}

async fn edit(w: &World, run: &mut Run, side: Side, person: RecordId, title: bool, value: u8) {
    if run.gone.contains(&person) {
        return;
    }
    let text = format!("{}{value}", if title { "T" } else { "L" });
    let field = |hs: &str, sf: &str, attio: bool| match side {
        Side::HubSpot => hs.to_owned(),
        Side::Salesforce => sf.to_owned(),
        Side::Attio => attio.to_string(),
    };
    match side {
        Side::Attio => {
            let write = if title {
                RecordWrite::new().set(slug("job_title"), vec![WriteValue::Text(text.clone())])
            } else {
                RecordWrite::new().set(slug("name"), vec![WriteValue::personal_name("Ada", &text)])
            };
            w.attio
                .update_record(
                    &ObjectRef::from(people()),
                    person,
                    &write,
                    UpdateMode::Overwrite,
                )
                .await
                .unwrap();
        }
        Side::HubSpot | Side::Salesforce => {
            let (system, object) = match side {
                Side::HubSpot => ("hubspot", "contacts"),
                _ => ("salesforce", "Contact"),
            };
            // A CRM record exists only once the person reached that CRM.
            let Some(id) = linked(w, person, system).await else {
                return;
            };
            let name = if title {
                field("jobtitle", "Title", true)
            } else {
                field("lastname", "LastName", false)
            };
            let props = BTreeMap::from([(prop(&name), FieldValue::text(text.clone()))]);
            match side {
                Side::HubSpot => w.hubspot.update(object, &id, &props).await.unwrap(),
                _ => w.salesforce.update(object, &id, &props).await.unwrap(),
            }
        }
    }
    run.edits += 1;
    run.values.entry((person, title)).or_default().insert(text);
    // The change is told (by Attio's or HubSpot's webhook, or a Salesforce poll), later.
    run.pending.push(Told::Changed(person));
}

/// A person in HubSpot merges the person's contact into a duplicate they made (no e-mail).
async fn merge(w: &World, run: &mut Run, person: RecordId) {
    if run.gone.contains(&person) {
        return;
    }
    let Some(mut merged) = linked(w, person, "hubspot").await else {
        return;
    };
    // The link may still name a contact merged away earlier (its merge not delivered yet): a
    // person in HubSpot sees the survivor.
    while w.hubspot.get("contacts", &merged, &[]).await.is_err() {
        merged = w
            .hubspot
            .successor("contacts", &merged)
            .await
            .unwrap()
            .expect("a contact that is gone was merged");
    }
    let n = run.merges;
    let made = w
        .hubspot
        .upsert_batch(
            "contacts",
            &prop("attio_record_id"),
            &[ports::crm::ExternalUpsert {
                key: format!("made-by-hand-{n}"),
                properties: BTreeMap::from([(prop("lastname"), FieldValue::text(format!("D{n}")))]),
            }],
        )
        .await
        .unwrap();
    let ports::crm::RecordOutcome::Created(survivor) = made[0].clone() else {
        panic!("{made:?}");
    };
    w.hubspot
        .merge("contacts", &survivor, &merged)
        .await
        .unwrap();
    run.merges += 1;
    run.values
        .entry((person, false))
        .or_default()
        .insert(format!("D{n}"));
    run.pending.push(Told::Merged {
        person,
        survivor,
        merged,
    });
}

async fn deliver(w: &World, run: &mut Run, told: &Told) {
    if let Told::Deleted(p) = told {
        let pipeline = services::pipeline::EventPipeline::new(
            w.directory.clone(),
            w.links.clone(),
            std::sync::Arc::new(w.outbound()),
            services::pipeline::DeletePolicy::Archive,
        );
        let event = crate::pipeline::event(w, "record.deleted", *p, None).await;
        pipeline.handle(&w.tenant, &event).await.unwrap();
        return;
    }
    let person = match told {
        Told::Changed(p) => *p,
        Told::Merged {
            person,
            survivor,
            merged,
        } => {
            let hubspot = SystemId::parse("hubspot").unwrap();
            w.sync
                .follow_merge(
                    &w.tenant,
                    &hubspot,
                    "contacts",
                    survivor,
                    std::slice::from_ref(merged),
                )
                .await
                .unwrap();
            *person
        }
        Told::Deleted(_) => unreachable!("handled above"),
    };
    match w.sync.sync_record(&w.tenant, &people(), person).await {
        Ok(reports) => run.written += count(&reports),
        // Deleted in Attio since: its own event does the rest.
        Err(services::ServiceError::Port(ports::error::PortError::NotFound(_)))
            if run.gone.contains(&person) => {}
        Err(e) => panic!("{person}: {e}"),
    }
}

/// (last name, title) as each side holds them.
async fn sides(w: &World, person: RecordId) -> [(FieldValue, FieldValue); 3] {
    let record = w
        .attio
        .get_record(&ObjectRef::from(people()), person)
        .await
        .unwrap();
    let attio_last = record
        .current("name")
        .find_map(|v| match &v.data {
            domain::value::ValueData::PersonalName(n) => n.last_name.clone(),
            _ => None,
        })
        .map(FieldValue::text)
        .unwrap_or_default();
    let attio_title = record
        .current("job_title")
        .find_map(|v| match &v.data {
            domain::value::ValueData::Text(t) => Some(FieldValue::text(t.value.clone())),
            _ => None,
        })
        .unwrap_or_default();
    let hs = crate::outbound::hubspot_contact(w, person).await;
    let sf = crate::outbound::salesforce_contact(w, person).await;
    [
        (attio_last, attio_title),
        (hs[&prop("lastname")].clone(), hs[&prop("jobtitle")].clone()),
        (sf[&prop("LastName")].clone(), sf[&prop("Title")].clone()),
    ]
}

async fn scenario(ops: Vec<Op>) {
    let w = world(true, SyncRule::LatestWins).await;
    let mut run = Run::default();
    // One person to start with, so edits have someone to act on.
    let mut ops = ops;
    ops.insert(0, Op::Create);
    for op in ops {
        match op {
            Op::Create => {
                let n = run.people.len();
                let id = create_person(&w, &format!("p{n}@example.com"), "Ada", "L0", "T0").await;
                run.values
                    .entry((id, false))
                    .or_default()
                    .insert("L0".into());
                run.values
                    .entry((id, true))
                    .or_default()
                    .insert("T0".into());
                run.people.push(id);
                run.pending.push(Told::Changed(id));
            }
            Op::Edit {
                side,
                person,
                title,
                value,
            } => {
                let p = run.people[person % run.people.len()];
                edit(&w, &mut run, side, p, title, value).await;
            }
            Op::Delete(person) => {
                let p = run.people[person % run.people.len()];
                if run.gone.insert(p) {
                    w.attio
                        .delete_record(&ObjectRef::from(people()), p)
                        .await
                        .unwrap();
                    run.pending.push(Told::Deleted(p));
                }
            }
            Op::Merge(person) => {
                let p = run.people[person % run.people.len()];
                merge(&w, &mut run, p).await;
            }
            Op::Deliver(k) if !run.pending.is_empty() => {
                let told = run.pending.remove(k % run.pending.len());
                deliver(&w, &mut run, &told).await;
                run.delivered.push(told);
            }
            Op::Duplicate(k) if !run.delivered.is_empty() => {
                let told = run.delivered[k % run.delivered.len()].clone();
                deliver(&w, &mut run, &told).await;
            }
            Op::Deliver(_) | Op::Duplicate(_) => {}
        }
    }
    // Every delivery arrives at last, then a reconciliation round over everyone.
    while let Some(told) = run.pending.pop() {
        deliver(&w, &mut run, &told).await;
    }
    let live: Vec<RecordId> = run
        .people
        .iter()
        .copied()
        .filter(|p| !run.gone.contains(p))
        .collect();
    for &p in &live {
        deliver(&w, &mut run, &Told::Changed(p)).await;
    }

    for &p in &live {
        let [attio, hs, sf] = sides(&w, p).await;
        assert_eq!(attio, hs, "Attio and HubSpot agree on {p}");
        assert_eq!(attio, sf, "Attio and Salesforce agree on {p}");
        for (title, v) in [(false, &attio.0), (true, &attio.1)] {
            let FieldValue::Text(t) = v else {
                panic!("{p}: an empty field nobody cleared: {v:?}");
            };
            assert!(
                run.values[&(p, title)].contains(t),
                "{p}: {t:?} was never written; written: {:?}",
                run.values[&(p, title)]
            );
        }
    }
    // Quiet: one more round writes nothing anywhere.
    for &p in &live {
        let reports = w.sync.sync_record(&w.tenant, &people(), p).await.unwrap();
        assert_eq!(
            count(&reports),
            0,
            "{p} is still being written: {reports:?}"
        );
    }
    // Bounded: creating a person writes its four fields to each CRM; an edit, at most its
    // value to the two other sides, and once more after a lost race; a merge fills the
    // survivor's four fields and brings its name to the other two sides.
    let bound = 8 * run.people.len() + 4 * run.edits + 6 * run.merges;
    assert!(
        run.written <= bound,
        "{} values written for {} people, {} edits and {} merges (bound {bound})",
        run.written,
        run.people.len(),
        run.edits,
        run.merges
    );
    // No duplicates: each CRM holds one live record per person (the merged-away are archived,
    // and each person's survivor holds the person's id).
    let all = w
        .hubspot
        .list("contacts", &[prop("email")], None)
        .await
        .unwrap();
    assert_eq!(
        all.records.len(),
        live.len(),
        "HubSpot contacts (the deleted archived)"
    );
    let rows = w
        .salesforce
        .query("SELECT Id FROM Contact", false, None)
        .await
        .unwrap();
    assert_eq!(
        rows.records.len(),
        live.len(),
        "Salesforce contacts (the deleted deleted)"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, max_shrink_iters: 32, ..ProptestConfig::default() })]

    #[test]
    fn every_side_converges_once_quiet_without_duplicates_or_loops(ops in prop::collection::vec(op(), 5..40)) {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(scenario(ops));
    }
}
