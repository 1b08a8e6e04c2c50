//! `attio-sync demo` as a user runs it: it exits 0 and reports every change arrived.

// Test code: unwrap/expect are how a test says "this must hold".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod configuration;

#[tokio::test]
async fn the_demo_shows_every_change_arriving_in_both_crms() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_attio-sync"))
        .args(["demo", "--wait-s", "60"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("5 changes, 6 arrivals, 0 missing"),
        "{stdout}"
    );
    assert!(
        stdout.contains("deleted Alan Turing") && stdout.contains("archived"),
        "{stdout}"
    );
}
