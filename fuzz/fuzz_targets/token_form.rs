//! Token-endpoint requests: the form body (RFC 6749 §3.2) and `Authorization: Basic` client
//! credentials (§2.3.1). Input: the Basic header value, a newline, the body (no newline: no
//! header, the whole input is the body).
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use certbound::fuzzing::{basic_client_id, token_form};
use certbound_fuzz::split_line;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (header, body) = match split_line(data) {
        (header, Some(body)) => (Some(header), body),
        (body, None) => (None, body),
    };
    if let Ok(Some(id)) = basic_client_id(header) {
        // The same id, written the RFC 6749 way, reads back.
        let encoded: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
        let again = format!("Basic {}", STANDARD.encode(format!("{encoded}:")));
        assert_eq!(basic_client_id(Some(again.as_bytes())), Ok(Some(id)));
    }
    let Ok(params) = token_form(body) else {
        return;
    };
    let pairs: Vec<(&str, &str)> = params.iter().collect();
    // One parameter per non-empty `&` segment: none merged, none dropped; names unique.
    let segments = body.split(|&b| b == b'&').filter(|s| !s.is_empty()).count();
    assert_eq!(pairs.len(), segments);
    for (i, (name, _)) in pairs.iter().enumerate() {
        assert!(!name.is_empty());
        assert!(
            pairs[..i].iter().all(|(n, _)| n != name),
            "{name:?} given twice"
        );
    }
    // form_urlencoded, which is lenient, reads the same pairs from an accepted body.
    let lenient: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let ours: Vec<(String, String)> = pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(lenient, ours);
    // And the values round-trip through form encoding.
    let written = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter())
        .finish();
    let again = token_form(written.as_bytes()).expect("re-encoded form parses");
    assert_eq!(again.iter().collect::<Vec<_>>(), pairs);
});
