//! The conflict rules as a table: one row per situation, read left to right.

use std::collections::BTreeMap;

use domain::field::FieldValue;
use domain::mapping::{
    AttioField, ExternalProperty, FieldKey, FieldMapping, SyncRule, Transform, ValueMap,
};
use domain::merge::{ConflictReason, FieldSnapshot, SideState, SideValue, Snapshot, merge};
use time::OffsetDateTime;

use SyncRule::*;

fn v(s: &str) -> FieldValue {
    FieldValue::text(s)
}

fn at(t: Option<i64>) -> Option<OffsetDateTime> {
    t.map(|t| OffsetDateTime::from_unix_timestamp(t).unwrap())
}

fn mapping(rule: SyncRule, transform: Transform) -> FieldMapping {
    FieldMapping {
        attio: AttioField {
            attribute: "job_title".parse().unwrap(),
            part: None,
            all_values: false,
            references: None,
        },
        external: ExternalProperty::parse("jobtitle").unwrap(),
        rule,
        transform,
    }
}

fn key() -> FieldKey {
    FieldKey::parse("job_title").unwrap()
}

#[derive(Debug, PartialEq)]
enum Want {
    Nothing,
    ToExternal(&'static str),
    ToAttio(&'static str),
    Conflict(ConflictReason),
}

use Want::*;

/// (rule, snapshot attio/external, attio value @ time, external value @ time, want, snapshot after)
type Row = (
    SyncRule,
    (&'static str, &'static str),
    (&'static str, Option<i64>),
    (&'static str, Option<i64>),
    Want,
    (&'static str, &'static str),
);

#[rustfmt::skip]
fn rows() -> Vec<Row> {
    vec![
        // nothing changed
        (LatestWins,  ("a", "a"), ("a", Some(1)), ("a", Some(1)), Nothing,           ("a", "a")),
        // one side changed: flows under every two-way rule
        (LatestWins,  ("a", "a"), ("b", Some(5)), ("a", Some(9)), ToExternal("b"),   ("b", "b")),
        (PreferExternal, ("a", "a"), ("b", None), ("a", None),    ToExternal("b"),   ("b", "b")),
        (Manual,      ("a", "a"), ("a", None),    ("c", None),    ToAttio("c"),      ("c", "c")),
        (PreferAttio, ("a", "a"), ("a", None),    ("c", None),    ToAttio("c"),      ("c", "c")),
        // clearing a field is a change too
        (PreferAttio, ("a", "a"), ("", None),     ("a", None),    ToExternal(""),    ("", "")),
        // one-way rules ignore the other direction
        (AttioToExternal, ("a", "a"), ("a", None), ("c", None),   Nothing,           ("a", "a")),
        (ExternalToAttio, ("a", "a"), ("b", None), ("a", None),   Nothing,           ("a", "a")),
        (AttioToExternal, ("a", "a"), ("b", None), ("a", None),   ToExternal("b"),   ("b", "b")),
        (ExternalToAttio, ("a", "a"), ("a", None), ("c", None),   ToAttio("c"),      ("c", "c")),
        // both changed to the same value: agreement, no writes
        (Manual,      ("a", "a"), ("z", None),    ("z", None),    Nothing,           ("z", "z")),
        // both changed differently: the rule decides
        (LatestWins,  ("a", "a"), ("b", Some(5)), ("c", Some(9)), ToAttio("c"),      ("c", "c")),
        (LatestWins,  ("a", "a"), ("b", Some(9)), ("c", Some(5)), ToExternal("b"),   ("b", "b")),
        (LatestWins,  ("a", "a"), ("b", Some(5)), ("c", Some(5)), ToExternal("b"),   ("b", "b")),
        (LatestWins,  ("a", "a"), ("b", None),    ("c", Some(5)), Conflict(ConflictReason::MissingTimestamp), ("a", "a")),
        (PreferAttio, ("a", "a"), ("b", None),    ("c", None),    ToExternal("b"),   ("b", "b")),
        (PreferExternal, ("a", "a"), ("b", None), ("c", None),    ToAttio("c"),      ("c", "c")),
        (PreferAttioUnlessBlank, ("a", "a"), ("", None),  ("c", None), ToAttio("c"),  ("c", "c")),
        (PreferAttioUnlessBlank, ("a", "a"), ("b", None), ("c", None), ToExternal("b"), ("b", "b")),
        (PreferExternalUnlessBlank, ("a", "a"), ("b", None), ("", None),  ToExternal("b"), ("b", "b")),
        (PreferExternalUnlessBlank, ("a", "a"), ("b", None), ("c", None), ToAttio("c"),  ("c", "c")),
        (AttioToExternal, ("a", "a"), ("b", None), ("c", None),   ToExternal("b"),   ("b", "b")),
        (ExternalToAttio, ("a", "a"), ("b", None), ("c", None),   ToAttio("c"),      ("c", "c")),
        (Manual,      ("a", "a"), ("b", None),    ("c", None),    Conflict(ConflictReason::ManualRule), ("a", "a")),
        // first sync (no snapshot): a value on one side fills the other
        (Manual,      ("", ""),   ("b", None),    ("", None),     ToExternal("b"),   ("b", "b")),
        (LatestWins,  ("", ""),   ("b", Some(1)), ("c", Some(2)), ToAttio("c"),      ("c", "c")),
    ]
}

fn run(
    rule: SyncRule,
    transform: Transform,
    snap: (&str, &str),
    a: (&str, Option<i64>),
    e: (&str, Option<i64>),
) -> (Want, (FieldValue, FieldValue)) {
    let m = mapping(rule, transform);
    let snapshot = Snapshot(BTreeMap::from([(
        key(),
        FieldSnapshot {
            attio: v(snap.0),
            external: v(snap.1),
            property: None,
        },
    )]));
    let attio: SideState = BTreeMap::from([(key(), SideValue::new(v(a.0), at(a.1)))]);
    let external: SideState = BTreeMap::from([(key(), SideValue::new(v(e.0), at(e.1)))]);
    let out = merge(&[m], &snapshot, &attio, &external);
    let total = out.to_attio.len() + out.to_external.len() + out.conflicts.len();
    assert!(total <= 1, "one field gives at most one outcome: {out:?}");
    let want = if let Some(w) = out.to_external.first() {
        ToExternal(leak(&w.value))
    } else if let Some(w) = out.to_attio.first() {
        ToAttio(leak(&w.value))
    } else if let Some(c) = out.conflicts.first() {
        Conflict(c.reason)
    } else {
        Nothing
    };
    let s = out.snapshot.get(&key());
    (want, (s.attio, s.external))
}

fn leak(v: &FieldValue) -> &'static str {
    match v {
        FieldValue::Empty => "",
        FieldValue::Text(s) => Box::leak(s.clone().into_boxed_str()),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn conflict_rules_table() {
    for (i, (rule, snap, a, e, want, snap_after)) in rows().into_iter().enumerate() {
        let (got, got_snap) = run(rule, Transform::Identity, snap, a, e);
        assert_eq!(
            got, want,
            "row {i}: {rule:?} snap={snap:?} attio={a:?} external={e:?}"
        );
        assert_eq!(
            got_snap,
            (v(snap_after.0), v(snap_after.1)),
            "row {i}: snapshot after"
        );
    }
}

#[test]
fn transforms_apply_on_the_way_and_keep_both_sides_in_the_snapshot() {
    let stages = Transform::MapValues {
        values: ValueMap::new(BTreeMap::from([("Won".to_owned(), "closedwon".to_owned())]))
            .unwrap(),
    };
    // Attio's stage moves to Won: HubSpot gets its own id for it.
    let (got, snap) = run(
        PreferAttio,
        stages.clone(),
        ("Lead", "Lead"),
        ("Won", None),
        ("Lead", None),
    );
    assert_eq!(got, ToExternal("closedwon"));
    assert_eq!(snap, (v("Won"), v("closedwon")));
    // ... and back.
    let (got, _) = run(
        PreferAttio,
        stages,
        ("Lead", "Lead"),
        ("Lead", None),
        ("closedwon", None),
    );
    assert_eq!(got, ToAttio("Won"));
    // Lower-casing: sides that agree up to the transform are not a conflict.
    let (got, _) = run(
        Manual,
        Transform::Lowercase,
        ("", ""),
        ("Ada@X.com", None),
        ("ada@x.com", None),
    );
    assert_eq!(got, Nothing);
}

#[test]
fn value_maps_must_be_one_to_one() {
    let m = BTreeMap::from([
        ("Won".to_owned(), "closed".to_owned()),
        ("Lost".to_owned(), "closed".to_owned()),
    ]);
    assert!(ValueMap::new(m).is_err());
}

#[test]
fn a_number_read_back_as_text_is_not_a_change() {
    // HubSpot keeps every value as a string: 5000 written comes back as "5000" (or "5000.00").
    let m = mapping(LatestWins, Transform::Identity);
    let n = FieldValue::Number("5000".parse().unwrap());
    let snapshot = Snapshot(BTreeMap::from([(
        key(),
        FieldSnapshot {
            attio: n.clone(),
            external: n.clone(),
            property: None,
        },
    )]));
    for text in ["5000", "5000.00", " 5000 "] {
        let attio: SideState = BTreeMap::from([(key(), SideValue::new(n.clone(), at(Some(1))))]);
        let external: SideState = BTreeMap::from([(key(), SideValue::new(v(text), at(Some(2))))]);
        let out = merge(std::slice::from_ref(&m), &snapshot, &attio, &external);
        assert!(
            !out.has_writes() && out.conflicts.is_empty(),
            "{text}: {out:?}"
        );
    }
    // A different number is still a change.
    let attio: SideState = BTreeMap::from([(key(), SideValue::new(n.clone(), at(Some(1))))]);
    let external: SideState = BTreeMap::from([(key(), SideValue::new(v("6000"), at(Some(2))))]);
    let out = merge(std::slice::from_ref(&m), &snapshot, &attio, &external);
    assert_eq!(out.to_attio.len(), 1);
    assert!(
        FieldValue::Bool(true).same_as(&v("TRUE")) && !FieldValue::Bool(true).same_as(&v("false"))
    );
}

#[test]
fn a_snapshot_taken_against_another_property_says_nothing() {
    // The mapping moved the field from `old` to `p` (the table's property): the CRM's empty
    // `p` is no change of the field, so Attio's value fills it instead of being cleared.
    let m = mapping(LatestWins, Transform::Identity);
    let snapshot = Snapshot(BTreeMap::from([(
        key(),
        FieldSnapshot {
            attio: v("a"),
            external: v("a"),
            property: Some(ExternalProperty::parse("old").unwrap()),
        },
    )]));
    let attio: SideState = BTreeMap::from([(key(), SideValue::new(v("a"), at(Some(1))))]);
    let external: SideState = BTreeMap::from([(key(), SideValue::new(v(""), at(Some(2))))]);
    let out = merge(std::slice::from_ref(&m), &snapshot, &attio, &external);
    assert!(out.to_attio.is_empty(), "{out:?}");
    assert_eq!(out.to_external.len(), 1, "{out:?}");
    assert_eq!(out.snapshot.get(&key()).property, Some(m.external.clone()));
    // The same snapshot taken against `p` itself: the CRM cleared it, which flows into Attio.
    let mut same = snapshot.clone();
    if let Some(s) = same.0.get_mut(&key()) {
        s.property = Some(m.external.clone());
    }
    let out = merge(std::slice::from_ref(&m), &same, &attio, &external);
    assert_eq!(out.to_attio.len(), 1, "{out:?}");
}
