//! A CRM's webhook deliveries (HubSpot's event batches): the event parser, the plugin's
//! conversion into changes, and the v3 signature check, on any bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ports::provider::WebhookFeed;

fuzz_target!(|data: &[u8]| {
    let _ = adapter_hubspot::parse_events(data);
    let _ = adapter_hubspot::HubSpotProvider.parse(data);
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let (timestamp, signature, body) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let _ = adapter_hubspot::verify_v3(
        "fuzz-secret",
        "POST",
        "https://sync.example.com/v1/webhooks/x/acme",
        body.as_bytes(),
        timestamp,
        signature,
        1_700_000_000_000,
    );
});
