//! A tenant's mappings as an operator gives them (any JSON), and their checks.
#![no_main]
use domain::ids::SystemId;
use domain::mapping_doc::MappingDocument;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<MappingDocument>(data) else {
        return;
    };
    let _ = doc.check(|name| {
        ["crm-a", "crm-b"]
            .contains(&name)
            .then(|| SystemId::parse(name).ok())
            .flatten()
    });
});
