//! A proof's `htu` against a request's URL: the layer compares them piece by piece without
//! building either; the oracle normalises both as strings and compares those. They must decide
//! alike, and make the same URL. Input: lines `scheme`, `authority`, `path`, the proof's `htu`;
//! a first line `public <url>` makes the request's URL that public URL and its path instead.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let first = lines.next().unwrap_or_default();
    let public = first.strip_prefix("public ");
    let scheme = if public.is_some() { "https" } else { first };
    let authority = if public.is_some() { "" } else { lines.next().unwrap_or_default() };
    let path = lines.next().unwrap_or_default();
    let proof = lines.next().unwrap_or_default();
    let Some((piecewise, whole)) = certbound::fuzzing::htu(public, scheme, authority, path, proof)
    else {
        return;
    };
    assert_eq!(piecewise, whole, "{public:?} {scheme:?} {authority:?} {path:?} {proof:?}");
});
