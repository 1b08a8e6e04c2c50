//! The three-way merge: for every mapped field, compare the last synced snapshot with both sides
//! and decide what to write where, or that a person must decide.
//!
//! Pure and deterministic. Per field, with `s` the snapshot, `a` Attio's value and `e` the external
//! value (all canonical):
//!
//! | changed since `s` | outcome |
//! |---|---|
//! | neither | nothing |
//! | Attio only | write `to_external(a)` out, unless the rule is `ExternalToAttio` |
//! | external only | write `to_attio(e)` in, unless the rule is `AttioToExternal` |
//! | both, and they agree | record the agreement, write nothing |
//! | both, and they differ | the rule picks a winner, or it is a conflict |

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::field::FieldValue;
use crate::mapping::{ExternalProperty, FieldKey, FieldMapping, SyncRule};

/// One side's current value of a field, with when that side last changed it, if known.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SideValue {
    pub value: FieldValue,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub changed_at: Option<OffsetDateTime>,
}

impl SideValue {
    pub fn new(value: FieldValue, changed_at: Option<OffsetDateTime>) -> Self {
        Self { value, changed_at }
    }
}

/// Field key → one side's values.
pub type SideState = BTreeMap<FieldKey, SideValue>;

/// What both sides held when a field was last in step.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct FieldSnapshot {
    pub attio: FieldValue,
    pub external: FieldValue,
    /// The CRM property the external value was read from. When the mapping now names another
    /// one, the entry says nothing about it and is not used (absent in snapshots stored before
    /// it was kept: those are trusted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<ExternalProperty>,
}

/// The last synced snapshot of a linked pair of records.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Snapshot(pub BTreeMap<FieldKey, FieldSnapshot>);

impl Snapshot {
    pub fn get(&self, key: &FieldKey) -> FieldSnapshot {
        self.0.get(key).cloned().unwrap_or_default()
    }

    /// The entry of a mapped field, or an empty one when it was taken against another CRM
    /// property (the mapping changed since).
    pub fn of(&self, m: &FieldMapping) -> FieldSnapshot {
        let s = self.get(&m.key());
        if s.property.as_ref().is_some_and(|p| *p != m.external) {
            FieldSnapshot::default()
        } else {
            s
        }
    }
}

/// A value to write to one field of one side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldWrite {
    pub key: FieldKey,
    pub value: FieldValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictReason {
    /// The mapping's rule is `manual`.
    ManualRule,
    /// `latest_wins` could not compare: a side has no change timestamp.
    MissingTimestamp,
    /// A record born in the CRM matches several Attio records, or one already linked to
    /// another record of that CRM: which one it is, a person decides.
    AmbiguousIdentity,
}

/// A field changed on both sides to different values, left for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldConflict {
    pub key: FieldKey,
    pub snapshot: FieldSnapshot,
    pub attio: SideValue,
    pub external: SideValue,
    pub reason: ConflictReason,
}

/// What the merge decided.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MergeOutcome {
    /// Values to write to Attio (Attio's value space).
    pub to_attio: Vec<FieldWrite>,
    /// Values to write to the external CRM (its value space, transforms applied).
    pub to_external: Vec<FieldWrite>,
    pub conflicts: Vec<FieldConflict>,
    /// The snapshot to store once the writes have been made.
    pub snapshot: Snapshot,
}

impl MergeOutcome {
    pub fn has_writes(&self) -> bool {
        !self.to_attio.is_empty() || !self.to_external.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Winner {
    Attio,
    External,
    Conflict(ConflictReason),
}

fn resolve(rule: SyncRule, a: &SideValue, e: &SideValue) -> Winner {
    match rule {
        SyncRule::PreferAttio | SyncRule::AttioToExternal => Winner::Attio,
        SyncRule::PreferExternal | SyncRule::ExternalToAttio => Winner::External,
        SyncRule::PreferAttioUnlessBlank => {
            if a.value.is_empty() {
                Winner::External
            } else {
                Winner::Attio
            }
        }
        SyncRule::PreferExternalUnlessBlank => {
            if e.value.is_empty() {
                Winner::Attio
            } else {
                Winner::External
            }
        }
        SyncRule::Manual => Winner::Conflict(ConflictReason::ManualRule),
        SyncRule::LatestWins => match (a.changed_at, e.changed_at) {
            (Some(ta), Some(te)) if te > ta => Winner::External,
            (Some(_), Some(_)) => Winner::Attio,
            _ => Winner::Conflict(ConflictReason::MissingTimestamp),
        },
    }
}

/// The mapped fields whose external value differs from the snapshot, compared as [`merge`]
/// compares them: what a change on the external side would sync. Empty when the external record
/// holds nothing the last sync did not see (the echo of our own write, or a change to unmapped
/// properties), so a poller need not read the other sides.
pub fn external_changes(
    mappings: &[FieldMapping],
    snapshot: &Snapshot,
    external: &SideState,
) -> Vec<FieldKey> {
    mappings
        .iter()
        .filter(|m| {
            let e = external
                .get(&m.key())
                .cloned()
                .unwrap_or_default()
                .value
                .normalized();
            !e.same_as(&snapshot.of(m).external.normalized())
        })
        .map(FieldMapping::key)
        .collect()
}

/// Merges one linked pair of records field by field. See the module docs for the rules.
pub fn merge(
    mappings: &[FieldMapping],
    snapshot: &Snapshot,
    attio: &SideState,
    external: &SideState,
) -> MergeOutcome {
    let mut out = MergeOutcome {
        snapshot: snapshot.clone(),
        ..MergeOutcome::default()
    };
    for m in mappings {
        let key = m.key();
        let s = snapshot.of(m);
        let canon = |side: &SideState| {
            let v = side.get(&key).cloned().unwrap_or_default();
            SideValue::new(v.value.normalized(), v.changed_at)
        };
        let (a, e) = (canon(attio), canon(external));
        let s = FieldSnapshot {
            attio: s.attio.normalized(),
            external: s.external.normalized(),
            property: s.property,
        };
        let a_changed = !a.value.same_as(&s.attio);
        let e_changed = !e.value.same_as(&s.external);

        let take_attio = |out: &mut MergeOutcome| {
            let ext = m.transform.to_external(&a.value);
            if !ext.same_as(&e.value) {
                out.to_external.push(FieldWrite {
                    key: key.clone(),
                    value: ext.clone(),
                });
            }
            out.snapshot.0.insert(
                key.clone(),
                FieldSnapshot {
                    attio: a.value.clone(),
                    external: ext,
                    property: Some(m.external.clone()),
                },
            );
        };
        let take_external = |out: &mut MergeOutcome| {
            let att = m.transform.to_attio(&e.value);
            if !att.same_as(&a.value) {
                out.to_attio.push(FieldWrite {
                    key: key.clone(),
                    value: att.clone(),
                });
            }
            out.snapshot.0.insert(
                key.clone(),
                FieldSnapshot {
                    attio: att,
                    external: e.value.clone(),
                    property: Some(m.external.clone()),
                },
            );
        };

        match (a_changed, e_changed) {
            (false, false) => {}
            (true, false) => {
                if m.rule.flows_to_external() {
                    take_attio(&mut out);
                }
            }
            (false, true) => {
                if m.rule.flows_to_attio() {
                    take_external(&mut out);
                }
            }
            (true, true) => {
                let agree = m.transform.to_external(&a.value).same_as(&e.value)
                    || m.transform.to_attio(&e.value).same_as(&a.value);
                if agree {
                    out.snapshot.0.insert(
                        key.clone(),
                        FieldSnapshot {
                            attio: a.value.clone(),
                            external: e.value.clone(),
                            property: Some(m.external.clone()),
                        },
                    );
                    continue;
                }
                match resolve(m.rule, &a, &e) {
                    Winner::Attio => take_attio(&mut out),
                    Winner::External => take_external(&mut out),
                    Winner::Conflict(reason) => out.conflicts.push(FieldConflict {
                        key: key.clone(),
                        snapshot: s.clone(),
                        attio: a.clone(),
                        external: e.clone(),
                        reason,
                    }),
                }
            }
        }
    }
    out
}
