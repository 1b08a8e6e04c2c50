//! SOQL as salesforce-sim parses it, on any text.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(q) = std::str::from_utf8(data) {
        let _ = salesforce_sim::parse_soql(q);
    }
});
