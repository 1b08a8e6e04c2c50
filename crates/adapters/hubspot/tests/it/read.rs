//! Reads beyond the port — by unique property, batch reads, paged lists — and the dated path
//! prefix, against hubspot-sim.

use ports::crm::{ExternalCrm, ExternalUpsert, RecordOutcome};
use ports::error::PortError;

use crate::crm::{contact, id_of, prop, setup, setup_with};

fn many(prefix: &str, n: usize) -> Vec<ExternalUpsert> {
    (0..n)
        .map(|i| {
            contact(
                &format!("{prefix}{i}"),
                &format!("{prefix}{i}@x.com"),
                "Many",
            )
        })
        .collect()
}

#[tokio::test]
async fn reads_by_unique_property_and_in_batches_with_missing_inputs_listed() {
    let (_s, c) = setup(hubspot_sim::HubSpotConfig::default()).await;
    let by = prop("attio_record_id");
    let made = c
        .upsert_batch("contacts", &by, &many("b", 3))
        .await
        .unwrap();
    let wanted = [prop("email"), prop("firstname")];
    let by_email = c
        .get_by("contacts", &prop("email"), "B1@x.com", &wanted)
        .await
        .unwrap();
    assert_eq!(by_email.id, id_of(&made[1]), "e-mail lookups ignore case");
    assert!(
        by_email.changed_at.contains_key(&prop("firstname")),
        "history gives change times"
    );
    let by_key = c.get_by("contacts", &by, "b2", &wanted).await.unwrap();
    assert_eq!(by_key.id, id_of(&made[2]));
    assert!(matches!(
        c.get_by("contacts", &by, "nobody", &wanted).await,
        Err(PortError::NotFound(_))
    ));

    let ids: Vec<String> = made
        .iter()
        .map(|o| id_of(o).as_str().to_owned())
        .chain(["999999".to_owned()])
        .collect();
    let read = c.batch_read("contacts", &ids, None, &wanted).await.unwrap();
    assert_eq!(read.found.len(), 3);
    assert_eq!(read.missing, vec!["999999".to_owned()]);
    let keyed = c
        .batch_read("contacts", &["b0".into(), "zz".into()], Some(&by), &wanted)
        .await
        .unwrap();
    assert_eq!(keyed.found[0].id, id_of(&made[0]));
    assert_eq!(keyed.missing, vec!["zz".to_owned()]);
    let too_many: Vec<String> = (0..101).map(|i| i.to_string()).collect();
    assert!(matches!(
        c.batch_read("contacts", &too_many, None, &wanted).await,
        Err(PortError::Invalid(_))
    ));
}

#[tokio::test]
async fn lists_page_past_the_first_page() {
    let (_s, c) = setup(hubspot_sim::HubSpotConfig::default()).await;
    let by = prop("attio_record_id");
    for chunk in 0..3 {
        let batch = many(&format!("l{chunk}-"), 85);
        let out = c.upsert_batch("contacts", &by, &batch).await.unwrap();
        assert!(out.iter().all(|o| matches!(o, RecordOutcome::Created(_))));
    }
    let (mut after, mut pages, mut seen) = (None, 0, Vec::new());
    loop {
        let page = c.list("contacts", &[prop("email")], after).await.unwrap();
        pages += 1;
        seen.extend(page.records);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!((pages, seen.len()), (3, 255));
    let mut ids: Vec<_> = seen.iter().map(|r| r.id.clone()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 255, "no record twice");
}

#[tokio::test]
async fn the_date_versioned_prefix_serves_the_same_operations() {
    let (_s, c) = setup_with(hubspot_sim::HubSpotConfig::default(), |cfg| {
        cfg.objects_prefix = "/crm/objects/2026-09".into();
        cfg.associations_prefix = "/crm/objects/2026-09".into();
    })
    .await;
    let by = prop("attio_record_id");
    let made = c
        .upsert_batch("contacts", &by, &many("d", 2))
        .await
        .unwrap();
    let got = c
        .get("contacts", &id_of(&made[0]), &[prop("email")])
        .await
        .unwrap();
    assert_eq!(
        got.properties[&prop("email")],
        domain::field::FieldValue::text("d0@x.com")
    );
    let read = c
        .batch_read("contacts", &["d1".into()], Some(&by), &[prop("email")])
        .await
        .unwrap();
    assert_eq!(read.found[0].id, id_of(&made[1]));
    let archived = c
        .archive_batch("contacts", &[id_of(&made[0])])
        .await
        .unwrap();
    assert!(matches!(archived[0], RecordOutcome::Updated(_)));
}
