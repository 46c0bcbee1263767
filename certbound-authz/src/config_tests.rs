//! The configuration's keys and its one-line errors, as a table.

use std::path::Path;

use super::*;

/// A valid configuration without files (no `ca_file`, no key file).
const VALID: &str = r#"
[listen]
http = "127.0.0.1:9191"

[[issuers]]
issuer = "https://as.example.com"
audiences = ["https://api.example.com"]
jwks_url = "https://as.example.com/jwks"

[tokens]
allow_unbound = false
dpop = true
public_url = "https://api.example.com"

[proxy]
profile = "nginx"
trusted = ["127.0.0.1/32", "::1"]

[[routes]]
path_prefix = "/admin"
methods = ["POST"]
scopes = ["admin"]

[[routes]]
path_prefix = "/public"
open = true

[identity_headers]
subject = "x-auth-subject"
binding = "x-auth-binding"
"#;

fn error(text: &str) -> ConfigError {
    parse(text, Path::new(".")).expect_err("an invalid configuration")
}

/// `VALID` with `line` inserted after the line `after`.
fn with(after: &str, line: &str) -> String {
    VALID.replacen(after, &format!("{after}\n{line}"), 1)
}

#[test]
fn the_contract_s_keys_make_a_valid_configuration() {
    let config = parse(VALID, Path::new(".")).expect("valid");
    assert_eq!(config.listen_http, Some("127.0.0.1:9191".parse().unwrap()));
    assert_eq!(config.issuers[0].issuer, "https://as.example.com");
    assert!(config.tokens.dpop && !config.tokens.allow_unbound);
    assert_eq!(config.proxy.profile, Profile::Nginx);
    assert_eq!(config.proxy.client_cert_header, "x-ssl-client-cert");
    assert_eq!(config.routes.len(), 2);
    assert!(config.routes[1].open);
    assert_eq!(
        config.identity_headers.subject.as_ref().unwrap(),
        "x-auth-subject"
    );
    assert!(config.identity_headers.scope.is_none());
}

#[test]
fn an_unknown_key_is_named_with_its_table() {
    for (after, line, key) in [
        ("[listen]", "htp = \"127.0.0.1:1\"", "listen.htp"),
        ("[tokens]", "allow_unbund = true", "tokens.allow_unbund"),
        ("[proxy]", "trusted_proxies = []", "proxy.trusted_proxies"),
        (
            "[identity_headers]",
            "email = \"x-email\"",
            "identity_headers.email",
        ),
        ("[[routes]]", "prefix = \"/x\"", "routes.prefix"),
    ] {
        let e = error(&with(after, line));
        assert_eq!(e.key, key, "{e}");
        assert!(e.message.contains("unknown field"), "{e}");
    }
    let e = error(&format!("{VALID}\n[extra]\nx = 1\n"));
    assert_eq!(e.key, "extra", "{e}");
}

#[test]
fn a_value_of_the_wrong_type_is_named() {
    let e = error(&VALID.replace("allow_unbound = false", "allow_unbound = \"no\""));
    assert_eq!(e.key, "tokens.allow_unbound", "{e}");
    let e = error(&VALID.replace("profile = \"nginx\"", "profile = \"apache\""));
    assert_eq!(e.key, "proxy.profile", "{e}");
}

#[test]
fn a_missing_table_or_key_is_named() {
    let e = error(&VALID.replace(
        "[proxy]\nprofile = \"nginx\"\ntrusted = [\"127.0.0.1/32\", \"::1\"]\n",
        "",
    ));
    assert_eq!(e.key, "proxy", "{e}");
    let e = error(&VALID.replace("trusted = [\"127.0.0.1/32\", \"::1\"]\n", ""));
    assert_eq!(e.key, "proxy.trusted", "{e}");
}

#[test]
fn bad_values_are_named_by_their_key() {
    for (from, to, key) in [
        (
            "http = \"127.0.0.1:9191\"",
            "http = \"localhost\"",
            "listen.http",
        ),
        (
            "http = \"127.0.0.1:9191\"",
            "http = \"127.0.0.1:9191\"\ngrpc = \"localhost:9192\"",
            "listen.grpc",
        ),
        (
            "trusted = [\"127.0.0.1/32\", \"::1\"]",
            "trusted = [\"127.0.0.1/32\", \"::1\"]\ngrpc_client_cert = \"header\"",
            "proxy.grpc_client_cert",
        ),
        ("profile = \"nginx\"\n", "", "proxy.profile"),
        (
            "jwks_url = \"https://as.example.com/jwks\"",
            "jwks_url = \"http://as.example.com/jwks\"",
            "issuers[0].jwks_url",
        ),
        (
            "audiences = [\"https://api.example.com\"]",
            "audiences = []",
            "issuers[0].audiences",
        ),
        (
            "public_url = \"https://api.example.com\"",
            "public_url = \"api.example.com\"",
            "tokens.public_url",
        ),
        ("\"::1\"", "\"::1/200\"", "proxy.trusted[1]"),
        (
            "trusted = [\"127.0.0.1/32\", \"::1\"]",
            "trusted = []",
            "proxy.trusted",
        ),
        (
            "path_prefix = \"/admin\"",
            "path_prefix = \"admin\"",
            "routes[0].path_prefix",
        ),
        (
            "methods = [\"POST\"]",
            "methods = [\"PO ST\"]",
            "routes[0].methods",
        ),
        (
            "scopes = [\"admin\"]",
            "scopes = [\"a b\"]",
            "routes[0].scopes",
        ),
        (
            "subject = \"x-auth-subject\"",
            "subject = \"x auth\"",
            "identity_headers.subject",
        ),
        (
            "dpop = true",
            "dpop = true\ndpop_nonce_key_file = \"/nonexistent/nonce.key\"",
            "tokens.dpop_nonce_key_file",
        ),
        (
            "dpop = true",
            "dpop = false\nreplay_redis = \"redis://127.0.0.1:6379\"",
            "tokens.replay_redis",
        ),
        (
            "dpop = true",
            "dpop = false\ndpop_max_cached_proof_keys = 100",
            "tokens.dpop_max_cached_proof_keys",
        ),
    ] {
        assert!(VALID.contains(from), "{from}");
        let e = error(&VALID.replacen(from, to, 1));
        assert_eq!(e.key, key, "{e}");
    }
}

#[test]
fn the_grpc_listener_alone_needs_no_profile_and_takes_the_certificate_from_xfcc_when_asked() {
    let text = VALID
        .replace("http = \"127.0.0.1:9191\"", "grpc = \"127.0.0.1:9192\"")
        .replace("profile = \"nginx\"\n", "grpc_client_cert = \"xfcc\"\n");
    let config = parse(&text, Path::new(".")).expect("valid");
    assert_eq!(config.listen_http, None);
    assert_eq!(config.listen_grpc, Some("127.0.0.1:9192".parse().unwrap()));
    assert_eq!(config.proxy.grpc_client_cert, GrpcClientCert::Xfcc);
    let both = VALID.replace(
        "http = \"127.0.0.1:9191\"",
        "http = \"127.0.0.1:9191\"\ngrpc = \"127.0.0.1:9192\"",
    );
    let config = parse(&both, Path::new(".")).expect("valid");
    assert_eq!(config.proxy.grpc_client_cert, GrpcClientCert::Source);
    assert!(config.listen_http.is_some() && config.listen_grpc.is_some());
}

#[test]
fn an_open_route_cannot_require_scopes() {
    let e = error(&VALID.replace("open = true", "open = true\nscopes = [\"x\"]"));
    assert_eq!(e.key, "routes[1].scopes", "{e}");
}

#[test]
fn files_are_read_at_load() {
    let e = error(&VALID.replace(
        "jwks_url = \"https://as.example.com/jwks\"",
        "ca_file = \"/nonexistent/ca.pem\"",
    ));
    assert_eq!(e.key, "issuers[0].ca_file", "{e}");
    let e = error(&format!(
        "{VALID}\n[introspection]\nurl = \"https://as.example.com/introspect\"\nclient_id = \"rs\"\nclient_secret_file = \"/nonexistent/secret\"\n"
    ));
    assert_eq!(e.key, "introspection.client_secret_file", "{e}");
}

#[test]
fn every_error_is_one_line() {
    let e = error("[listen\nhttp = 1");
    assert!(!e.to_string().contains('\n'), "{e}");
}

#[test]
fn a_route_prefix_matches_whole_segments_and_its_methods() {
    let route = Route {
        path_prefix: "/admin".into(),
        methods: Some(vec![Method::POST]),
        scopes: vec![],
        open: false,
        case_sensitive: true,
        acr_values: None,
        max_age: None,
    };
    assert!(route.covers(&Method::POST, "/admin"));
    assert!(route.covers(&Method::POST, "/admin/users"));
    assert!(!route.covers(&Method::POST, "/administrators"));
    assert!(!route.covers(&Method::GET, "/admin"));
    assert!(!route.covers(&Method::POST, "/ADMIN"));
}

#[test]
fn a_case_insensitive_route_covers_its_prefix_in_any_letter_case() {
    let config = parse(
        &format!(
            "{}\n[[routes]]\npath_prefix = \"/Admin\"\ncase_sensitive = false\nscopes = [\"admin\"]\n",
            VALID
        ),
        Path::new("."),
    )
    .expect("valid");
    // After the two routes of `VALID`.
    let route = &config.routes[2];
    for path in ["/admin", "/ADMIN/users", "/aDmIn"] {
        assert!(route.covers(&Method::GET, path), "{path}");
    }
    assert!(!route.covers(&Method::GET, "/ADMINISTRATORS"));
}

#[test]
fn the_metrics_listener_is_read_and_a_bad_address_named() {
    let config = parse(
        &with("[listen]", "metrics = \"127.0.0.1:9193\""),
        Path::new("."),
    )
    .expect("valid");
    assert_eq!(
        config.listen_metrics,
        Some("127.0.0.1:9193".parse().unwrap())
    );
    assert_eq!(parse(VALID, Path::new(".")).unwrap().listen_metrics, None);
    let e = error(&with("[listen]", "metrics = \"localhost:9193\""));
    assert_eq!(e.key, "listen.metrics", "{e}");
}

#[test]
fn the_log_format_is_text_by_default_json_when_asked_and_nothing_else() {
    assert_eq!(
        parse(VALID, Path::new(".")).unwrap().log_format,
        LogFormat::Text
    );
    let json = format!("{VALID}\n[log]\nformat = \"json\"\n");
    assert_eq!(
        parse(&json, Path::new(".")).unwrap().log_format,
        LogFormat::Json
    );
    let text = format!("{VALID}\n[log]\nformat = \"text\"\n");
    assert_eq!(
        parse(&text, Path::new(".")).unwrap().log_format,
        LogFormat::Text
    );
    let e = error(&format!("{VALID}\n[log]\nformat = \"xml\"\n"));
    assert_eq!(e.key, "log.format", "{e}");
    let e = error(&format!("{VALID}\n[log]\nformt = \"json\"\n"));
    assert_eq!(e.key, "log.formt", "{e}");
}

#[test]
fn a_route_s_step_up_keys_are_read() {
    let text = VALID.replace(
        "scopes = [\"admin\"]",
        "scopes = [\"admin\"]\nacr_values = [\"urn:mfa\", \"urn:hw\"]\nmax_age = 300",
    );
    let config = parse(&text, Path::new(".")).expect("valid");
    let route = &config.routes[0];
    assert_eq!(
        route.acr_values.as_deref(),
        Some(&["urn:mfa".to_owned(), "urn:hw".to_owned()][..])
    );
    assert_eq!(route.max_age, Some(std::time::Duration::from_secs(300)));
    assert_eq!(config.routes[1].acr_values, None);
    assert_eq!(config.routes[1].max_age, None);
    // Either alone.
    let only_age = VALID.replace("scopes = [\"admin\"]", "max_age = 0");
    let config = parse(&only_age, Path::new(".")).expect("valid");
    assert_eq!(config.routes[0].max_age, Some(std::time::Duration::ZERO));
    assert_eq!(config.routes[0].acr_values, None);
}

#[test]
fn bad_step_up_keys_are_named_with_the_route_s_index() {
    for (from, to, key) in [
        (
            "scopes = [\"admin\"]",
            "acr_values = []",
            "routes[0].acr_values",
        ),
        (
            "scopes = [\"admin\"]",
            "acr_values = [\"urn:a b\"]",
            "routes[0].acr_values",
        ),
        (
            "scopes = [\"admin\"]",
            "acr_values = [\"urn:\\\"q\"]",
            "routes[0].acr_values",
        ),
        ("scopes = [\"admin\"]", "max_age = -1", "routes[0].max_age"),
        (
            "open = true",
            "open = true\nacr_values = [\"urn:mfa\"]",
            "routes[1].acr_values",
        ),
        (
            "open = true",
            "open = true\nmax_age = 60",
            "routes[1].max_age",
        ),
    ] {
        let e = error(&VALID.replacen(from, to, 1));
        assert_eq!(e.key, key, "{to}: {e}");
    }
    // A value of the wrong type: named by toml's error, with the table.
    let e = error(&VALID.replacen("scopes = [\"admin\"]", "max_age = \"5m\"", 1));
    assert_eq!(e.key, "routes.max_age", "{e}");
}

#[test]
fn the_proof_key_memory_is_the_librarys_default_unless_sized_and_zero_turns_it_off() {
    let config = parse(VALID, Path::new(".")).expect("valid");
    assert_eq!(config.tokens.dpop_max_cached_proof_keys, None);
    for size in [0, 20_000] {
        let text = with(
            "dpop = true",
            &format!("dpop_max_cached_proof_keys = {size}"),
        );
        let config = parse(&text, Path::new(".")).expect("valid");
        assert_eq!(config.tokens.dpop_max_cached_proof_keys, Some(size));
    }
    let negative = with("dpop = true", "dpop_max_cached_proof_keys = -1");
    assert_eq!(error(&negative).key, "tokens.dpop_max_cached_proof_keys");
}
