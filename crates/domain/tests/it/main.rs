//! The domain crate's integration tests: fixtures from Attio's OpenAPI document and reference,
//! write forms, and the conflict rules (tables and properties).

// Test code: unwrap/expect are how a test says "this must hold".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;
mod merge_props;
mod merge_table;
mod webhooks;
mod write_forms;

use std::path::PathBuf;

pub fn fixture(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/attio")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {name} is not JSON: {e}"))
}
