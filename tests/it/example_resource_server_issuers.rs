//! `examples/resource_server.rs` with several issuers (keys by discovery), JWTs and opaque
//! tokens together, its RFC 9728 metadata and `GET /step-up`: started as a separate process,
//! driven over real HTTPS with real client certificates.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::*;
use crate::example_resource_server::start;

/// `GET url` with `token` (if any): status, every `WWW-Authenticate` value, body.
async fn get(
    client: &reqwest::Client,
    url: String,
    token: Option<&str>,
) -> (StatusCode, Vec<String>, String) {
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let resp = request.send().await.expect("request");
    let status = resp.status();
    let challenges = resp
        .headers()
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    (status, challenges, resp.text().await.unwrap())
}

/// Claims bound to `x5t`, from `iss`.
fn claims_from(iss: &str, x5t: &str) -> Value {
    let mut claims = claims_bound_to(x5t);
    claims["iss"] = json!(iss);
    claims
}

/// Every request the server made to `server`'s discovery and JWKS endpoints.
fn fetches(server: &JwksServer) -> usize {
    server.hits(JWKS_PATH) + server.hits(AS_METADATA_PATH) + server.hits(OIDC_CONFIG_PATH)
}

/// 401 whose every challenge has `error` and points at the metadata `url`.
fn assert_refused(
    (status, challenges, _): &(StatusCode, Vec<String>, String),
    error: &str,
    url: &str,
) {
    assert_eq!(*status, StatusCode::UNAUTHORIZED);
    assert!(!challenges.is_empty());
    for challenge in challenges {
        assert!(
            challenge.contains(&format!(r#"error="{error}""#)),
            "{challenge}"
        );
        assert!(
            challenge.ends_with(&format!(r#"resource_metadata="{url}""#)),
            "{challenge}"
        );
    }
}

/// The server's TLS files and an `--upstream-ca` file per authorization server.
struct Files {
    dir: ScratchDir,
    pki: Pki,
    cert: String,
    key: String,
}

impl Files {
    fn new(name: &str) -> Files {
        let dir = ScratchDir::new(name);
        let pki = Pki::new(&format!("{name}-ca"));
        let pem = pki.write_pem_files(&dir.0).expect("write PEM files");
        let [cert, key] =
            [&pem.server_cert, &pem.server_key].map(|p| p.to_str().expect("UTF-8 path").to_owned());
        Files {
            dir,
            pki,
            cert,
            key,
        }
    }

    fn tls(&self) -> Vec<String> {
        ["--tls-cert", &self.cert, "--tls-key", &self.key]
            .map(str::to_owned)
            .to_vec()
    }
}

async fn start_with(args: &[String]) -> ExampleProcess {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    start(&args).await
}

#[tokio::test]
async fn tokens_of_two_discovered_issuers_are_accepted_and_a_third_issuers_are_refused_without_any_fetch(
) {
    let (key_a, key_b) = (TestKey::es256("a1"), TestKey::es256("b1"));
    let as_a = JwksServer::start(jwks(&[&key_a])).await;
    let as_b = JwksServer::start(jwks(&[&key_b])).await;
    let files = Files::new("rs-issuers");
    let ca_a = files.dir.write("as-a.pem", as_a.pki().ca_pem());
    let ca_b = files.dir.write("as-b.pem", as_b.pki().ca_pem());
    let mut args = files.tls();
    for flag in [
        "--issuer",
        &as_a.base_url(),
        "--issuer",
        &as_b.base_url(),
        "--audience",
        AUDIENCE,
        "--upstream-ca",
        &ca_a,
        "--upstream-ca",
        &ca_b,
    ] {
        args.push(flag.to_owned());
    }
    let server = start_with(&args).await;
    // Each issuer's keys found by RFC 8414 discovery at start.
    for as_server in [&as_a, &as_b] {
        assert_eq!(as_server.hits(AS_METADATA_PATH), 1);
        assert_eq!(as_server.hits(JWKS_PATH), 1);
    }

    let a = files.pki.client_identity("client-a");
    let client = https_client(&files.pki.ca_der(), Some(&a));
    for (key, issuer) in [(&key_a, as_a.base_url()), (&key_b, as_b.base_url())] {
        let token = key.sign(&claims_from(&issuer, &a.x5t_s256()));
        for path in ["/whoami", "/step-up"] {
            let (status, _, body) = get(&client, server.url(path), Some(&token)).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            let body: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["iss"], issuer.as_str(), "{body}");
            assert_eq!(body["sub"], "alice");
            assert_eq!(body["x5t#S256"], a.x5t_s256().as_str());
        }
    }

    // The metadata URL is built from the Host the client used.
    let metadata_url = format!(
        "https://{}/.well-known/oauth-protected-resource",
        server.addr()
    );
    let before = (fetches(&as_a), fetches(&as_b));
    let third = key_a.sign(&claims_from("https://third.test", &a.x5t_s256()));
    let refused = get(&client, server.url("/whoami"), Some(&third)).await;
    assert_refused(&refused, "invalid_token", &metadata_url);
    assert_eq!((fetches(&as_a), fetches(&as_b)), before, "no network call");
    // A's key does not make a token of B's.
    let forged = key_a.sign(&claims_from(&as_b.base_url(), &a.x5t_s256()));
    let refused = get(&client, server.url("/whoami"), Some(&forged)).await;
    assert_refused(&refused, "invalid_token", &metadata_url);

    // Without a token: a challenge without error, pointing at the document.
    let (status, challenges, _) = get(&client, server.url("/whoami"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenges,
        [format!(r#"Bearer resource_metadata="{metadata_url}""#)]
    );

    // The document: open (no token, no client certificate), the issuers in the order given.
    let anonymous = https_client(&files.pki.ca_der(), None);
    let (status, _, body) = get(&anonymous, metadata_url.clone(), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let document: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        document,
        json!({
            "resource": format!("https://{}", server.addr()),
            "authorization_servers": [as_a.base_url(), as_b.base_url()],
            "bearer_methods_supported": ["header"],
            "tls_client_certificate_bound_access_tokens": true,
        })
    );
}

#[tokio::test]
async fn with_a_public_url_the_document_sits_under_its_path_and_lists_dpop() {
    let files = Files::new("rs-metadata");
    let key = TestKey::es256("k1");
    let jwks_file = files.dir.write("jwks.json", jwks(&[&key]).to_string());
    let mut args = files.tls();
    for flag in [
        "--issuer",
        ISSUER,
        "--audience",
        AUDIENCE,
        "--jwks-file",
        &jwks_file,
        "--dpop",
        "--public-url",
        "https://api.test/v1",
    ] {
        args.push(flag.to_owned());
    }
    let server = start_with(&args).await;
    let metadata_url = "https://api.test/.well-known/oauth-protected-resource/v1";

    let anonymous = https_client(&files.pki.ca_der(), None);
    let (status, _, body) = get(
        &anonymous,
        server.url("/.well-known/oauth-protected-resource/v1"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let document: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(document["resource"], "https://api.test/v1");
    assert_eq!(document["authorization_servers"], json!([ISSUER]));
    assert_eq!(document["bearer_methods_supported"], json!(["header"]));
    assert_eq!(document["tls_client_certificate_bound_access_tokens"], true);
    assert_eq!(document["dpop_bound_access_tokens_required"], false);
    let algs = document["dpop_signing_alg_values_supported"]
        .as_array()
        .expect("DPoP algorithms");
    assert!(algs.contains(&json!("ES256")), "{algs:?}");
    // Without the resource's path, the well-known URL is not the document: behind the layer.
    let (status, _, _) = get(
        &anonymous,
        server.url("/.well-known/oauth-protected-resource"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Both challenges (Bearer and DPoP) point at the document.
    let (status, challenges, _) = get(&anonymous, server.url("/whoami"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    for challenge in &challenges {
        assert!(
            challenge.ends_with(&format!(r#"resource_metadata="{metadata_url}""#)),
            "{challenge}"
        );
    }
}

#[tokio::test]
async fn step_up_requires_an_accepted_acr_and_a_recent_enough_login() {
    let files = Files::new("rs-step-up");
    let key = TestKey::es256("k1");
    let jwks_file = files.dir.write("jwks.json", jwks(&[&key]).to_string());
    let mut args = files.tls();
    for flag in [
        "--issuer",
        ISSUER,
        "--audience",
        AUDIENCE,
        "--jwks-file",
        &jwks_file,
        "--step-up-acr",
        "urn:example:mfa",
        "--step-up-acr",
        "urn:example:hwk",
        "--step-up-max-age",
        "300",
        "--public-url",
        "https://api.test",
    ] {
        args.push(flag.to_owned());
    }
    let server = start_with(&args).await;
    let metadata_url = "https://api.test/.well-known/oauth-protected-resource";
    let a = files.pki.client_identity("client-a");
    let client = https_client(&files.pki.ca_der(), Some(&a));
    let token = |acr: Option<&str>, age: Option<u64>| {
        let mut claims = claims_bound_to(&a.x5t_s256());
        if let Some(acr) = acr {
            claims["acr"] = json!(acr);
        }
        if let Some(age) = age {
            claims["auth_time"] = json!(now() - age);
        }
        key.sign(&claims)
    };

    for (acr, age, why) in [
        (None, Some(10), "no acr"),
        (Some("urn:example:pwd"), Some(10), "an acr not accepted"),
        (Some("urn:example:mfa"), None, "no auth_time"),
        (Some("urn:example:mfa"), Some(3600), "a login too old"),
    ] {
        let token = token(acr, age);
        let refused = get(&client, server.url("/step-up"), Some(&token)).await;
        assert_refused(&refused, "insufficient_user_authentication", metadata_url);
        let challenge = &refused.1[0];
        assert!(
            challenge.contains(r#"acr_values="urn:example:mfa urn:example:hwk", max_age=300"#),
            "{why}: {challenge}"
        );
        // The rest of the API does not ask for more.
        let (status, _, _) = get(&client, server.url("/whoami"), Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{why}");
    }
    for acr in ["urn:example:mfa", "urn:example:hwk"] {
        let (status, _, body) = get(
            &client,
            server.url("/step-up"),
            Some(&token(Some(acr), Some(10))),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{acr}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["iss"], ISSUER);
    }
}

#[tokio::test]
async fn with_introspection_the_issuers_jwts_are_verified_locally_and_other_tokens_introspected() {
    let key = TestKey::es256("k1");
    let as_jwt = JwksServer::start(jwks(&[&key])).await;
    let as_opaque = IntrospectionServer::start(Introspection::basic("rs", "rs secret")).await;
    let files = Files::new("rs-mixed");
    let ca_jwt = files.dir.write("as-jwt.pem", as_jwt.pki().ca_pem());
    let ca_opaque = files.dir.write("as-opaque.pem", as_opaque.pki().ca_pem());
    let issuer = as_jwt.base_url();
    let mut args = files.tls();
    for flag in [
        "--issuer",
        &issuer,
        "--audience",
        AUDIENCE,
        "--introspection-url",
        &as_opaque.url(),
        "--introspection-client-id",
        "rs",
        "--introspection-client-secret",
        "rs secret",
        "--introspection-cache-ttl",
        "0",
        "--upstream-ca",
        &ca_jwt,
        "--upstream-ca",
        &ca_opaque,
    ] {
        args.push(flag.to_owned());
    }
    let server = start_with(&args).await;
    let a = files.pki.client_identity("client-a");
    let client = https_client(&files.pki.ca_der(), Some(&a));
    let whoami = server.url("/whoami");

    // A JWT of the issuer: verified with its keys, never introspected.
    let jwt = key.sign(&claims_from(&issuer, &a.x5t_s256()));
    let (status, _, body) = get(&client, whoami.clone(), Some(&jwt)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(as_opaque.total_calls(), 0);

    // An opaque token: introspected (its answer's iss must be the one --issuer).
    as_opaque.set_answer(
        "opaque-a",
        json!({
            "active": true, "iss": issuer, "aud": AUDIENCE, "sub": "alice",
            "client_id": "client-a", "exp": now() + 600, "cnf": {"x5t#S256": a.x5t_s256()},
        }),
    );
    let (status, _, body) = get(&client, whoami.clone(), Some("opaque-a")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["iss"], issuer.as_str());
    assert_eq!(as_opaque.total_calls(), 1);

    // A JWT of another issuer is not a local one: introspected too (unknown there: refused).
    let other = key.sign(&claims_from("https://other.test", &a.x5t_s256()));
    let (status, _, _) = get(&client, whoami, Some(&other)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(as_opaque.total_calls(), 2);
}
