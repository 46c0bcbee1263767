//! Client registrations (RFC 7591 / RFC 8705 §2.1.2 metadata) of `StaticClients::from_json`.
//! Input: the JSON array.
#![no_main]

use certbound::authorization_server::StaticClients;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(clients) = StaticClients::from_json(json) else {
        return;
    };
    let list: Vec<Value> = serde_json::from_str(json).expect("an accepted registry is an array");
    assert_eq!(clients.len(), list.len());
    for entry in &list {
        let id = entry["client_id"]
            .as_str()
            .expect("every client has a client_id");
        assert!(clients.get(id).is_some(), "{id:?} registered but not found");
    }
});
