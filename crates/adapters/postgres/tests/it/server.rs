//! What the adapter reads of the server's own settings.

use sqlx::Connection;

use crate::{connect, database_url, fresh_schema, master_key};

/// `SHOW`'s text of a size setting ("80MB", "1GB", "512kB") in bytes, parsed here independently
/// of the adapter's query.
fn shown_bytes(text: &str) -> u64 {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().unwrap();
    n * match unit {
        "kB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        other => panic!("unit {other:?} of {text:?}"),
    }
}

#[tokio::test]
async fn min_wal_size_is_read_in_bytes() {
    let url = database_url().await;
    let store = connect(&fresh_schema(), master_key('a')).await;
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let (min, segment): (String, String) = sqlx::query_as(
        "SELECT current_setting('min_wal_size'), current_setting('wal_segment_size')",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    let read = store.min_wal_size().await.unwrap();
    assert_eq!(read, shown_bytes(&min), "SHOW min_wal_size says {min}");
    // PostgreSQL keeps at least two segments.
    assert!(
        read >= 2 * shown_bytes(&segment),
        "{read} bytes, segments of {segment}"
    );
}
