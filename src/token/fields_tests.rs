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

#[test]
fn one_pass_and_the_claims_map_agree_on_mutated_payloads() {
    use crate::token::access::{AccessToken, Read};
    let seeds: [&[u8]; 4] = [
        br#"{"iss":"a","aud":["x","y"],"exp":17,"nbf":1.5,"sub":"s","scope":"r w","scp":["a"]}"#,
        br#"{"cnf":{"x5t#S256":"A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0","jkt":null}}"#,
        br#"{"acr":"urn:x","auth_time":1e3,"client_id":"c","azp":"d","o":{"k":[1,[2],{}]}}"#,
        br#"{"aud":"x","exp":-1,"nbf":18446744073709551616,"scp":"a b","x":"\u00e9\n"}"#,
    ];
    let mut compared = 0;
    for input in crate::test_helpers::mutations(26, &seeds, br#"{}[]",:0e-.\u"#, 20_000) {
        let Ok(json) = std::str::from_utf8(&input) else {
            continue;
        };
        let (fields, map) = both(json);
        let (fields, map) = match (fields, map) {
            (Err(()), Err(())) => continue,
            // Only a read claim appearing twice is refused by the one pass alone.
            (Err(()), Ok(_)) => {
                assert!(
                    Fields::from_json(json)
                        .unwrap_err()
                        .to_string()
                        .contains("appears twice"),
                    "{json}"
                );
                continue;
            }
            (Ok(_), Err(())) => panic!("only the map refuses {json}"),
            (Ok(fields), Ok(map)) => (fields, map),
        };
        assert_eq!(fields, Fields::of_map(&map), "{json}");
        let by_map = AccessToken::from_claims(map.clone());
        let by_pass =
            Read::of(&fields, Some(json)).map(|read| AccessToken::from_json(read, json.to_owned()));
        match (by_map, by_pass) {
            (Err(a), Err(b)) => assert_eq!(a.detail(), b.detail(), "{json}"),
            (Ok(a), Ok(b)) => {
                assert_eq!(format!("{a:?}"), format!("{b:?}"), "{json}");
                assert_eq!((a.acr(), a.auth_time()), (b.acr(), b.auth_time()), "{json}");
                assert_eq!(b.claims(), &map, "{json}");
            }
            (a, b) => panic!("{json}: {:?} / {:?}", a.err(), b.err()),
        }
        compared += 1;
    }
    // Enough inputs got through both for the comparison to mean something.
    assert!(compared > 1_000, "{compared}");
}
