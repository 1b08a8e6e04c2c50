//! The HubSpot adapter against hubspot-sim over real HTTP.

// Test code: unwrap/expect are how a test says "this must hold".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod crm;
mod read;
mod secrecy;
mod webhooks;
