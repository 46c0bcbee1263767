//! Claims into an [`AccessToken`]: `cnf` (`x5t#S256`, `jkt`), `sub`, `client_id`, scopes.
//! Input: the claims JSON object.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use certbound::AccessToken;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(claims) = serde_json::from_slice::<Map<String, Value>>(data) else {
        return;
    };
    let Ok(token) = AccessToken::from_claims(claims.clone()) else {
        return;
    };
    let cnf = claims.get("cnf");
    let member = |name: &str| cnf.and_then(|c| c.get(name)).and_then(Value::as_str);
    match (token.thumbprint(), member("x5t#S256")) {
        (Some(tp), Some(text)) => {
            assert_eq!(URL_SAFE_NO_PAD.encode(tp.as_bytes()), text);
            assert_eq!(tp.to_string(), text);
        }
        (None, None) => {}
        (tp, text) => panic!("x5t#S256 {text:?} read as {tp:?}"),
    }
    match (token.dpop_thumbprint(), member("jkt")) {
        (Some(jkt), Some(text)) => assert_eq!(jkt.to_string(), text),
        (None, None) => {}
        (jkt, text) => panic!("jkt {text:?} read as {jkt:?}"),
    }
    assert_eq!(token.subject(), claims.get("sub").and_then(Value::as_str));
    if let Some(Value::String(scope)) = claims.get("scope") {
        assert!(scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .all(|s| token.has_scope(s)));
    }
});
