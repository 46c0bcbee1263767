use super::*;

#[test]
fn scheme_host_case_default_ports_and_empty_paths_normalise_away() {
    let same = [
        "https://api.example/whoami",
        "HTTPS://API.Example/whoami",
        "https://api.example:443/whoami",
        "https://api.example:/whoami",
        "https://api.example/whoami?x=1",
        "https://api.example/whoami#frag",
        "https://api.example/who%61mi",
    ];
    for url in same {
        assert_eq!(
            normalize(url).as_deref(),
            Some("https://api.example/whoami"),
            "{url}"
        );
    }
    assert_eq!(
        normalize("http://h:80").as_deref(),
        Some("http://h/"),
        "default port and empty path"
    );
    assert_eq!(
        normalize("https://h:8443/a").as_deref(),
        Some("https://h:8443/a")
    );
    assert_eq!(
        normalize("https://h:08443/a").as_deref(),
        Some("https://h:8443/a")
    );
    assert_eq!(
        normalize("https://[::1]:443/a").as_deref(),
        Some("https://[::1]/a")
    );
    assert_eq!(
        normalize("https://h/a%2fb").as_deref(),
        Some("https://h/a%2Fb")
    );
}

#[test]
fn what_differs_after_normalising_stays_different() {
    let base = normalize("https://api.example/whoami");
    for other in [
        "http://api.example/whoami",
        "https://api.example:8443/whoami",
        "https://api.example/WHOAMI",
        "https://api.example/whoami/",
        "https://other.example/whoami",
    ] {
        assert_ne!(normalize(other), base, "{other}");
    }
}

#[test]
fn malformed_urls_do_not_normalise() {
    for bad in [
        "",
        "/whoami",
        "ftp://h/",
        "https://",
        "https://user@h/",
        "https://h:99999/",
        "https://h:x/",
        "https://h/%zz",
        "https://h/%4",
        "https://h/a b",
        "https://h\u{e9}/",
        "https://[::1/",
        "https://[::1]x/",
    ] {
        assert_eq!(normalize(bad), None, "{bad:?}");
    }
}

#[test]
fn a_public_url_with_or_without_trailing_slash_prefixes_the_request_path() {
    for configured in ["https://API.example/base", "https://api.example/base/"] {
        let public = PublicUrl::parse(configured).unwrap();
        assert_eq!(
            public.htu("/whoami").as_deref(),
            Some("https://api.example/base/whoami")
        );
    }
    let root = PublicUrl::parse("https://api.example:443").unwrap();
    assert_eq!(root.htu("/").as_deref(), Some("https://api.example/"));
    assert!(PublicUrl::parse("api.example").is_err());
    assert!(PublicUrl::parse("https://api.example/?q").is_err());
}

#[test]
fn request_parts_make_the_same_htu_as_the_client_url() {
    assert_eq!(
        from_parts("https", "API.example:443", "/whoami"),
        normalize("https://api.example/whoami")
    );
}

/// Whether the piecewise comparison of a proof's `htu` with a request's parts decides as
/// comparing both normalised strings does, and the request's parts make no URL exactly when
/// they made none as a string. Returns whether the proof was accepted.
fn agrees(scheme: &str, authority: &str, path: &str, htu: &str) -> bool {
    let parts = ExpectedHtu::of_request(scheme, authority, path);
    let string = from_parts(scheme, authority, path);
    assert_eq!(
        parts.as_ref().map(ExpectedHtu::to_url),
        string,
        "{scheme:?} {authority:?} {path:?}"
    );
    let (Some(parts), Some(string)) = (parts, string) else {
        return false;
    };
    let accepted = parts.matches(htu);
    assert_eq!(
        accepted,
        normalize(htu).as_deref() == Some(string.as_str()),
        "{scheme:?} {authority:?} {path:?} against {htu:?}"
    );
    accepted
}

const SCHEMES: [&str; 4] = ["https", "HTTP", "http", "ftp"];
const AUTHORITIES: [&str; 16] = [
    "api.example",
    "API.Example",
    "api.example:443",
    "api.example:80",
    "api.example:",
    "api.example:0443",
    "api.example:8443",
    "[::1]",
    "[::1]:443",
    "[::1",
    "user@api.example",
    "api.example:99999",
    "a:b:443",
    "a/b",
    "a?x",
    "h\u{e9}",
];
const PATHS: [&str; 14] = [
    "/whoami",
    "",
    "*",
    "/WHOAMI",
    "/who%61mi",
    "/who%2fmi",
    "/who%2Fmi",
    "/a/../b",
    "/%zz",
    "/%4",
    "/a b",
    "/caf\u{e9}",
    "/a#x",
    "//",
];

#[test]
fn the_piecewise_comparison_agrees_with_comparing_normalised_strings() {
    let suffixes = ["", "?q=1#f"];
    let mut proofs = vec![
        String::new(),
        "/whoami".into(),
        "https://".into(),
        "https:/api.example/whoami".into(),
    ];
    for scheme in SCHEMES {
        for authority in AUTHORITIES {
            for path in PATHS {
                for suffix in suffixes {
                    proofs.push(format!("{scheme}://{authority}{path}{suffix}"));
                }
            }
        }
    }
    let mut accepted = 0;
    for scheme in SCHEMES {
        for authority in AUTHORITIES {
            for path in PATHS {
                for proof in &proofs {
                    accepted += usize::from(agrees(scheme, authority, path, proof));
                }
            }
        }
    }
    // Many of the shapes name the same URL: the table exercises acceptance, not only refusal.
    assert!(accepted > 1_000, "{accepted}");
}

#[test]
fn random_urls_and_their_variants_decide_alike_piecewise_and_as_strings() {
    // A fixed xorshift: the same cases on every run.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % n as u64).unwrap()
    };
    let alphabet = [
        "a", "A", "z", "0", "1", "4", "3", "8", "f", "F", "6", "/", "%", ":", "[", "]", "?", "#",
        "@", ".", "~", "-", " ", "\u{e9}", "%2F", "%2f", "%41", "%7e", "%3A", ":443", ":80",
    ];
    let text = |max: usize, next: &mut dyn FnMut(usize) -> usize| {
        let len = next(max + 1);
        (0..len)
            .map(|_| alphabet[next(alphabet.len())])
            .collect::<String>()
    };
    let mut accepted = 0;
    for _ in 0..20_000 {
        let scheme = SCHEMES[next(SCHEMES.len())];
        let authority = if next(2) == 0 {
            AUTHORITIES[next(AUTHORITIES.len())].to_owned()
        } else {
            text(6, &mut next)
        };
        let path = if next(2) == 0 {
            PATHS[next(PATHS.len())].to_owned()
        } else {
            format!("/{}", text(8, &mut next))
        };
        // The request's own URL, then variants of it: each byte's case flipped or
        // percent-encoded at random, and random text appended.
        let own = format!("{scheme}://{authority}{path}");
        let mut variant = String::new();
        for c in own.chars() {
            match next(6) {
                0 => variant.push(c.to_ascii_uppercase()),
                1 => variant.push(c.to_ascii_lowercase()),
                2 if c.is_ascii() => variant.push_str(&format!("%{:02x}", c as u32)),
                _ => variant.push(c),
            }
        }
        let appended = format!("{own}{}", text(3, &mut next));
        for htu in [&own, &variant, &appended] {
            accepted += usize::from(agrees(scheme, &authority, &path, htu));
        }
    }
    assert!(accepted > 1_000, "{accepted}");
}

#[test]
fn a_public_urls_parts_decide_as_its_string_does() {
    let configured = [
        "https://API.example/base",
        "https://api.example/base/",
        "https://api.example:443",
        "http://api.example:8080/v%31//",
        "https://[::1]:8443/",
        "https://a:b:443/x",
    ];
    let proofs: Vec<String> = ["https", "http", "HTTPS"]
        .iter()
        .flat_map(|scheme| {
            [
                "api.example",
                "API.EXAMPLE:443",
                "api.example:8080",
                "[::1]:8443",
                "a:b",
                "a:b:443",
            ]
            .iter()
            .flat_map(move |authority| {
                [
                    "/base/whoami",
                    "/BASE/whoami",
                    "/base/who%61mi",
                    "/base//whoami",
                    "/whoami",
                    "/v1//whoami",
                    "/v%31//whoami",
                    "/x/whoami",
                    "",
                    "/",
                    "/base/*",
                ]
                .iter()
                .map(move |path| format!("{scheme}://{authority}{path}?q"))
            })
        })
        .collect();
    let mut accepted = 0;
    for url in configured {
        let public = PublicUrl::parse(url).unwrap();
        for path in ["/whoami", "", "*", "/who%61mi", "/", "/%zz", "/a b"] {
            let parts = public.expected(path);
            let string = public.htu(path);
            assert_eq!(
                parts.as_ref().map(ExpectedHtu::to_url),
                string,
                "{url} {path}"
            );
            let (Some(parts), Some(string)) = (parts, string) else {
                continue;
            };
            for proof in &proofs {
                let matches = parts.matches(proof);
                assert_eq!(
                    matches,
                    normalize(proof).as_deref() == Some(string.as_str()),
                    "{url} {path} against {proof}"
                );
                accepted += usize::from(matches);
            }
        }
    }
    assert!(accepted >= 10, "{accepted}");
}

#[test]
fn a_token_endpoints_url_matches_as_its_normalised_string() {
    let endpoint = ExpectedHtu::of_url("HTTPS://AS.example:443/token?x").unwrap();
    assert!(endpoint.matches("https://as.example/token"));
    assert!(endpoint.matches("https://as.example/%74oken#f"));
    assert!(!endpoint.matches("https://as.example/token/"));
    assert!(ExpectedHtu::of_url("/token").is_none());
}
