//! `Authorization: Bearer` / `DPoP` headers (RFC 6750 §2.1, RFC 9449 §7.1). Input: a flags
//! byte (bit 0: DPoP on; bit 1: an `access_token` query parameter; bits 2..: `max_len`), then
//! the header values, one per line.
#![no_main]

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, Uri};
use libfuzzer_sys::fuzz_target;

fn is_b64token(token: &[u8]) -> bool {
    // RFC 6750 §2.1: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let body = token.iter().take_while(|b| **b != b'=').count();
    body > 0
        && token[..body]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(b))
        && token[body..].iter().all(|b| *b == b'=')
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let dpop = flags & 1 != 0;
    let query = flags & 2 != 0;
    let max_len = usize::from(flags >> 2) * 4;
    let mut headers = HeaderMap::new();
    let mut values = Vec::new();
    for line in rest.split(|&b| b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(AUTHORIZATION, value);
            values.push(line);
        }
    }
    let uri: Uri = if query {
        "/r?a=1&access_token=x"
    } else {
        "/r?a=1"
    }
    .parse()
    .unwrap();
    let outcome = certbound::fuzzing::authorization_token(&headers, &uri, max_len, dpop);

    // The oracle: one header, "<scheme> 1*SP b64token", scheme Bearer (or DPoP when on).
    let expected = match (values.as_slice(), query) {
        ([value], false) => {
            let space = value.iter().position(|&b| b == b' ');
            let (name, after) = space.map_or((*value, &b""[..]), |i| (&value[..i], &value[i..]));
            let token = &after[after.iter().take_while(|b| **b == b' ').count()..];
            let is_dpop = dpop && name.eq_ignore_ascii_case(b"dpop");
            let scheme = name.eq_ignore_ascii_case(b"bearer") || is_dpop;
            (scheme && is_b64token(token) && token.len() <= max_len).then_some((is_dpop, token))
        }
        _ => None,
    };
    match (outcome, expected) {
        (Ok((is_dpop, token)), Some((want_dpop, want))) => {
            assert_eq!(token.as_bytes(), want);
            assert_eq!(is_dpop, want_dpop);
            assert!(!token.is_empty() && token.len() <= max_len);
            assert!(values[0].ends_with(token.as_bytes()), "token not verbatim");
        }
        (Ok((_, token)), None) => panic!("accepted {token:?} from {values:?}"),
        (Err(kind), Some(_)) => panic!("refused a well-formed header ({kind:?}): {values:?}"),
        (Err(_), None) => {}
    }
});
