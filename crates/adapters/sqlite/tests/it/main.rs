//! The SQLite adapter on real database files: every conformance suite of its ports, reopening a
//! file, and credentials at rest.

// Test code: unwrap/expect are how a test says "this must hold".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod durability;

use std::path::PathBuf;
use std::sync::Arc;

use adapter_sqlite::{MasterKey, SqliteStore};

pub fn master_key(c: char) -> MasterKey {
    MasterKey::from_hex(&c.to_string().repeat(64)).unwrap()
}

/// A database file no other test uses; files older than two hours (earlier runs) are removed.
pub fn fresh_path() -> PathBuf {
    let dir = std::env::temp_dir().join("attio-sync-sqlite-tests");
    std::fs::create_dir_all(&dir).unwrap();
    static CLEANED: std::sync::Once = std::sync::Once::new();
    CLEANED.call_once(|| {
        let cutoff = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 3600);
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|m| m < cutoff)
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    });
    dir.join(format!("{}.db", uuid::Uuid::new_v4().simple()))
}

pub async fn store() -> Arc<SqliteStore> {
    Arc::new(
        SqliteStore::open(&fresh_path(), &master_key('a'))
            .await
            .unwrap(),
    )
}
