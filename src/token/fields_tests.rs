use super::*;

/// The fields of `json` both ways: in one pass, and from the map of every claim.
fn both(json: &str) -> (Result<Fields<'_>, ()>, Result<Map<String, Value>, ()>) {
    (
        Fields::from_json(json).map_err(|_| ()),
        serde_json::from_str::<Map<String, Value>>(json).map_err(|_| ()),
    )
}

#[test]
fn one_pass_reads_what_the_claims_map_holds() {
    for json in [
        r#"{}"#,
        r#"{"iss":"a","aud":["x","y"],"exp":1700000000,"nbf":1.5,"sub":"s\u0041",
            "client_id":"c","azp":null,"scope":"r w","scp":["a",1],"acr":5,
            "auth_time":-3,"cnf":{"x5t#S256":"t","jkt":["k"],"other":{"a":[1e3]}},
            "extra":{"nested":[[],{}]},"big":123456789012345678901234567890}"#,
        r#"{"aud":[],"cnf":"x","scp":[["a"]],"exp":true,"iss":{"a":1}}"#,
        r#"{"cnf":[1],"acr":"urn:\/x","x5t#S256":"top-level, not read"}"#,
        r#"{"cnf":null,"exp":-1e2,"nbf":18446744073709551616}"#,
        r#"{"extra":1,"extra":2}"#,
    ] {
        let (fields, map) = both(json);
        let map = map.expect(json);
        assert_eq!(fields.expect(json), Fields::of_map(&map), "{json}");
    }
}

#[test]
fn one_pass_refuses_what_the_claims_map_refuses() {
    for json in [
        r#"{"x":1e400}"#,
        r#"{"x":[1e400]}"#,
        r#"{"x":{"y":-1e400}}"#,
        r#"{"x":"\ud800"}"#,
        r#"{"x":"\q"}"#,
        r#"{"x":1,}"#,
        r#"{"x":1} x"#,
        r#"["iss"]"#,
        r#"{"cnf":{"k":1e999}}"#,
        r#"{"aud":["a",1e999]}"#,
    ] {
        let (fields, map) = both(json);
        assert!(map.is_err(), "{json}");
        assert!(fields.is_err(), "{json}");
    }
    let deep = format!("{{\"x\":{}{}}}", "[".repeat(200), "]".repeat(200));
    let (fields, map) = both(&deep);
    assert!(map.is_err() && fields.is_err());
}

#[test]
fn a_claim_certbound_reads_may_not_appear_twice() {
    for json in [
        r#"{"exp":1,"exp":2}"#,
        r#"{"iss":"a","\u0069ss":"b"}"#,
        r#"{"cnf":{},"cnf":{}}"#,
        r#"{"cnf":{"jkt":"a","jkt":"b"}}"#,
        r#"{"cnf":{"x5t#S256":"a","x5t#S256":"a"}}"#,
    ] {
        assert!(Fields::from_json(json).is_err(), "{json}");
    }
    // Others may, as in a claims map (the last one counts there).
    assert!(Fields::from_json(r#"{"x":1,"x":2,"cnf":{"y":1,"y":2}}"#).is_ok());
}

#[test]
fn unescaped_strings_are_borrowed_from_the_payload() {
    let fields = Fields::from_json(r#"{"sub":"alice","aud":["a","b\/c"]}"#).unwrap();
    assert!(matches!(
        fields.sub,
        Some(Loose::Str(Cow::Borrowed("alice")))
    ));
    let Some(Loose::Strings(aud)) = fields.aud else {
        panic!("strings expected")
    };
    assert!(matches!(aud[0], Cow::Borrowed("a")));
    assert_eq!(aud[1], "b/c");
}
