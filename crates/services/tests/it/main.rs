//! The services against the three simulators over real HTTP, through the real adapters, with the
//! memory stores.

// Test code: unwrap/expect are how a test says "this must hold".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod activity;
mod adopt;
mod backfill;
mod contact;
mod converge;
mod deletes;
mod mappings;
mod outbound;
mod owners;
mod pipeline;
mod poll;
mod reconcile;
mod references;
mod resolve;
mod retention;
mod values;
mod worker;
