//! The configuration loader: any text as the TOML file of sync-worker and of webhook-api, read
//! over the defaults and validated. A bad file must be a typed error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(raw) = app_common::load_toml::<sync_worker::config::RawConfig>(text) {
        let _ = raw.validate();
    }
    if let Ok(raw) = app_common::load_toml::<webhook_api::config::RawConfig>(text) {
        let _ = raw.validate();
    }
});
