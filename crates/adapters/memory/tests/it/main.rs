//! The memory adapters' integration tests: every conformance suite of the ports they implement,
//! and broken adapters showing that the suites catch broken behaviour.

// Test code: unwrap/expect are how a test says "this must hold".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod broken;
mod conformance;
