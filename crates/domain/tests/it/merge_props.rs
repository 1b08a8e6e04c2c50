//! Properties of the merge: deterministic, never drops a one-sided change, and converges (applying
//! its writes and merging again writes nothing).

use std::collections::BTreeMap;

use domain::field::FieldValue;
use domain::mapping::{
    AttioField, ExternalProperty, FieldKey, FieldMapping, SyncRule, Transform, ValueMap,
};
use domain::merge::{FieldSnapshot, MergeOutcome, SideState, SideValue, Snapshot, merge};
use proptest::prelude::*;
use time::OffsetDateTime;

const RULES: [SyncRule; 8] = [
    SyncRule::LatestWins,
    SyncRule::PreferAttio,
    SyncRule::PreferExternal,
    SyncRule::PreferAttioUnlessBlank,
    SyncRule::PreferExternalUnlessBlank,
    SyncRule::AttioToExternal,
    SyncRule::ExternalToAttio,
    SyncRule::Manual,
];

fn value() -> impl Strategy<Value = FieldValue> {
    prop_oneof![
        Just(FieldValue::Empty),
        Just(FieldValue::Text(String::new())),
        prop::sample::select(vec!["a", "A", " a ", "b", "Won", "closedwon"])
            .prop_map(|s| FieldValue::Text(s.into())),
        prop::collection::vec(prop::sample::select(vec!["x", "y", "X"]), 0..3)
            .prop_map(|v| FieldValue::List(v.into_iter().map(String::from).collect())),
        any::<bool>().prop_map(FieldValue::Bool),
    ]
}

fn transform() -> impl Strategy<Value = Transform> {
    prop_oneof![
        Just(Transform::Identity),
        Just(Transform::Trim),
        Just(Transform::Lowercase),
        Just(Transform::MapValues {
            values: ValueMap::new(BTreeMap::from([
                ("Won".to_owned(), "closedwon".to_owned()),
                ("a".to_owned(), "b".to_owned())
            ]))
            .unwrap(),
        }),
    ]
}

fn side() -> impl Strategy<Value = SideValue> {
    (value(), prop::option::of(0i64..4)).prop_map(|(v, t)| {
        SideValue::new(
            v,
            t.map(|t| OffsetDateTime::from_unix_timestamp(t).unwrap()),
        )
    })
}

#[derive(Debug, Clone)]
struct Field {
    mapping: FieldMapping,
    snapshot: FieldSnapshot,
    attio: SideValue,
    external: SideValue,
}

fn fields() -> impl Strategy<Value = Vec<Field>> {
    prop::collection::vec(
        (
            prop::sample::select(RULES.to_vec()),
            transform(),
            value(),
            value(),
            side(),
            side(),
        ),
        1..5,
    )
    .prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(|(i, (rule, transform, sa, se, attio, external))| Field {
                mapping: FieldMapping {
                    attio: AttioField {
                        attribute: format!("f{i}").parse().unwrap(),
                        part: None,
                        all_values: false,
                        references: None,
                    },
                    external: ExternalProperty::parse(&format!("p{i}")).unwrap(),
                    rule,
                    transform,
                },
                snapshot: FieldSnapshot {
                    attio: sa,
                    external: se,
                    property: None,
                },
                attio,
                external,
            })
            .collect()
    })
}

fn inputs(fields: &[Field]) -> (Vec<FieldMapping>, Snapshot, SideState, SideState) {
    let mappings = fields.iter().map(|f| f.mapping.clone()).collect();
    let snapshot = Snapshot(
        fields
            .iter()
            .map(|f| (f.mapping.key(), f.snapshot.clone()))
            .collect(),
    );
    let attio = fields
        .iter()
        .map(|f| (f.mapping.key(), f.attio.clone()))
        .collect();
    let external = fields
        .iter()
        .map(|f| (f.mapping.key(), f.external.clone()))
        .collect();
    (mappings, snapshot, attio, external)
}

fn written(out: &[domain::merge::FieldWrite], key: &FieldKey) -> Option<FieldValue> {
    out.iter().find(|w| &w.key == key).map(|w| w.value.clone())
}

fn apply(side: &SideState, writes: &[domain::merge::FieldWrite]) -> SideState {
    let mut side = side.clone();
    for w in writes {
        side.entry(w.key.clone()).or_default().value = w.value.clone();
    }
    side
}

fn sorted(mut out: MergeOutcome) -> MergeOutcome {
    out.to_attio.sort_by(|a, b| a.key.cmp(&b.key));
    out.to_external.sort_by(|a, b| a.key.cmp(&b.key));
    out.conflicts.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn merge_is_deterministic_and_independent_of_mapping_order(fields in fields()) {
        let (m, s, a, e) = inputs(&fields);
        let first = merge(&m, &s, &a, &e);
        prop_assert_eq!(&first, &merge(&m, &s, &a, &e));
        let mut reversed = m.clone();
        reversed.reverse();
        prop_assert_eq!(sorted(first), sorted(merge(&reversed, &s, &a, &e)));
    }

    #[test]
    fn a_change_made_on_only_one_side_is_never_dropped(fields in fields()) {
        let (m, s, a, e) = inputs(&fields);
        let out = merge(&m, &s, &a, &e);
        for f in &fields {
            let key = f.mapping.key();
            let (sa, se) = (f.snapshot.attio.clone().normalized(), f.snapshot.external.clone().normalized());
            let (av, ev) = (f.attio.value.clone().normalized(), f.external.value.clone().normalized());
            if av != sa && ev == se && f.mapping.rule.flows_to_external() {
                let want = f.mapping.transform.to_external(&av);
                let reached = written(&out.to_external, &key).map(|w| w == want).unwrap_or(want == ev);
                prop_assert!(reached, "Attio's change to {key} was dropped: {out:?}");
            }
            if ev != se && av == sa && f.mapping.rule.flows_to_attio() {
                let want = f.mapping.transform.to_attio(&ev);
                let reached = written(&out.to_attio, &key).map(|w| w == want).unwrap_or(want == av);
                prop_assert!(reached, "the external change to {key} was dropped: {out:?}");
            }
            // Conflicts arise only where both sides changed, and only under rules that allow them.
            if out.conflicts.iter().any(|c| c.key == key) {
                prop_assert!(av != sa && ev != se);
                prop_assert!(matches!(f.mapping.rule, SyncRule::Manual | SyncRule::LatestWins));
            }
        }
    }

    #[test]
    fn applying_the_outcome_and_merging_again_writes_nothing(fields in fields()) {
        let (m, s, a, e) = inputs(&fields);
        let out = merge(&m, &s, &a, &e);
        let a2 = apply(&a, &out.to_attio);
        let e2 = apply(&e, &out.to_external);
        let again = merge(&m, &out.snapshot, &a2, &e2);
        prop_assert!(!again.has_writes(), "second merge wrote: {again:?}\nfirst: {out:?}");
        prop_assert_eq!(again.conflicts.len(), out.conflicts.len());
    }
}
