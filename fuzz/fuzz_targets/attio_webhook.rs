//! Attio's webhook deliveries: the body parser and the signature check, on any bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = domain::webhook::WebhookDelivery::parse(data) {
        let _ = serde_json::to_vec(&d.events.len());
    }
    // The first line is taken as the signature header, the rest as the body.
    let (sig, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let sig = String::from_utf8_lossy(sig);
    let _ = adapter_attio_http::verify_attio(&["whsec-fuzz", ""], body, Some(&sig));
});
