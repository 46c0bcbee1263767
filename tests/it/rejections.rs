//! The rejection table (DESIGN.md), end to end: every condition over real TLS through
//! `certbound::serve`, with its status and exact `WWW-Authenticate` challenge, and the server
//! still serving good requests afterwards.

use crate::common::*;
use axum::body::Body;
use axum::routing::get;
use axum::Router;
use certbound::{BoundTokenLayer, JwtValidator, RequireScopeLayer};
use jsonwebtoken::{Algorithm, Header};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::Version;
use serde_json::{json, Value};
use tower::ServiceExt as _;

const INVALID_TOKEN: &str = "invalid access token";
const EXPIRED: &str = "access token expired";
const NOT_YET_VALID: &str = "access token not yet valid";
const UNKNOWN_KEY: &str = "unknown signing key";
const NO_CERTIFICATE: &str = "client certificate required";
const MISMATCH: &str = "access token bound to another certificate";
const UNBOUND: &str = "access token not sender-constrained";
const DPOP_AS_BEARER: &str = "DPoP-bound access token presented as a bearer token";
const INVALID_REQUEST_CHALLENGE: &str =
    "Bearer error=\"invalid_request\", error_description=\"malformed authorization header\"";
const INSUFFICIENT_SCOPE_CHALLENGE: &str =
    "Bearer error=\"insufficient_scope\", error_description=\"insufficient scope\", scope=\"admin\"";

/// Which client sends a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// Alice's certificate, ALPN h2 + http/1.1 (negotiates h2).
    Alice,
    /// Alice's certificate, HTTP/1.1 only.
    AliceHttp1,
    /// Bob's certificate (another client of the same CA).
    Bob,
    /// No client certificate.
    Anonymous,
}

/// One row of the matrix: a request and the rejection it must get.
#[derive(Debug)]
struct Case {
    name: &'static str,
    who: Who,
    path: String,
    headers: HeaderMap,
    status: u16,
    /// The exact `WWW-Authenticate`, or `None` when there must be none.
    challenge: Option<String>,
    /// What the challenge must never echo.
    token: String,
}

impl Case {
    fn new(name: &'static str, who: Who, headers: HeaderMap, status: u16, challenge: &str) -> Case {
        Case {
            name,
            who,
            path: "/whoami".to_owned(),
            headers,
            status,
            challenge: Some(challenge.to_owned()),
            token: String::new(),
        }
    }

    fn invalid_request(name: &'static str, who: Who, headers: HeaderMap) -> Case {
        Case::new(name, who, headers, 400, INVALID_REQUEST_CHALLENGE)
    }

    fn invalid_token(name: &'static str, who: Who, token: String, description: &str) -> Case {
        Case {
            token: token.clone(),
            ..Case::new(
                name,
                who,
                bearer(&token),
                401,
                &invalid_token_challenge(description),
            )
        }
    }

    fn at(mut self, path: impl Into<String>) -> Case {
        self.path = path.into();
        self
    }
}

/// The protected application, one server per test.
struct Fixture {
    pki: Pki,
    alice: ClientIdentity,
    bob: ClientIdentity,
    /// Signs the good tokens; in the JWKS.
    es: TestKey,
    /// In the JWKS too: the target of the HS256 key-confusion attack.
    rsa: &'static TestKey,
    server: TestServer,
    alice_client: reqwest::Client,
    alice_http1: reqwest::Client,
    bob_client: reqwest::Client,
    anonymous: reqwest::Client,
}

/// Routes of the standard application:
/// - `/whoami` (GET, POST): `BoundTokenLayer::new(v)`;
/// - `/scoped`: `RequireScopeLayer(["admin"])` behind the same layer;
/// - `/admin`: `BoundTokenLayer::new(v).require_scope("admin")`;
/// - `/unbound-ok`: `BoundTokenLayer::new(v).allow_unbound()`;
/// - `/at-jwt`: a validator with `require_at_jwt()`;
/// - `/unguarded`: the `AccessToken` extractor without any layer;
/// - `/open`: no layer, no extractor.
fn standard_app(keys: &[&TestKey]) -> Router {
    let v = static_validator(keys);
    let at_jwt = JwtValidator::builder(ISSUER, AUDIENCE)
        .jwks_json(jwks(keys).to_string())
        .require_at_jwt()
        .build()
        .expect("at+jwt validator");
    let guarded = Router::new()
        .route("/whoami", get(whoami).post(whoami))
        .route(
            "/scoped",
            get(whoami).layer(RequireScopeLayer::new(["admin"]).expect("scope")),
        )
        .layer(BoundTokenLayer::new(v.clone()));
    Router::new()
        .merge(guarded)
        .route(
            "/admin",
            get(whoami).post(whoami).layer(
                BoundTokenLayer::new(v.clone())
                    .require_scope("admin")
                    .expect("scope"),
            ),
        )
        .route(
            "/unbound-ok",
            get(whoami).layer(BoundTokenLayer::new(v).allow_unbound()),
        )
        .route("/at-jwt", get(whoami).layer(BoundTokenLayer::new(at_jwt)))
        .route("/unguarded", get(whoami))
        .route("/open", get(|| async { "open" }))
}

impl Fixture {
    async fn start() -> Fixture {
        Self::start_with_tls(ca_verified_tls).await
    }

    async fn start_with_tls(tls: fn(&Pki) -> std::sync::Arc<rustls::ServerConfig>) -> Fixture {
        let pki = Pki::new("rejections-ca");
        let alice = pki.client_identity("alice");
        let bob = pki.client_identity("bob");
        let es = TestKey::es256("es-1");
        let rsa = rsa_key();
        let server = TestServer::start(tls(&pki), standard_app(&[&es, rsa])).await;
        let ca = pki.ca_der();
        Fixture {
            alice_client: https_client(&ca, Some(&alice)),
            alice_http1: https_client_http1(&ca, Some(&alice)),
            bob_client: https_client(&ca, Some(&bob)),
            anonymous: https_client(&ca, None),
            pki,
            alice,
            bob,
            es,
            rsa,
            server,
        }
    }

    fn client(&self, who: Who) -> &reqwest::Client {
        match who {
            Who::Alice => &self.alice_client,
            Who::AliceHttp1 => &self.alice_http1,
            Who::Bob => &self.bob_client,
            Who::Anonymous => &self.anonymous,
        }
    }

    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// A good token bound to Alice's certificate.
    fn alice_token(&self) -> String {
        self.es.sign(&claims_bound_to(&self.alice.x5t_s256()))
    }

    /// Alice's claims, changed by `edit`, signed with the good key.
    fn alice_token_with(&self, edit: impl FnOnce(&mut Value)) -> String {
        let mut claims = claims_bound_to(&self.alice.x5t_s256());
        edit(&mut claims);
        self.es.sign(&claims)
    }

    async fn send(&self, who: Who, path: &str, headers: HeaderMap) -> reqwest::Response {
        send(self.client(who), &self.url(path), headers).await
    }

    async fn check(&self, case: &Case) {
        let response = self.send(case.who, &case.path, case.headers.clone()).await;
        assert_eq!(response.status(), case.status, "{}", case.name);
        assert_eq!(
            www_authenticate(&response),
            case.challenge,
            "{}: WWW-Authenticate",
            case.name
        );
        if let Some(challenge) = &case.challenge {
            assert_no_token_material(challenge, &case.token);
        }
        assert!(
            response.headers().get("grpc-status").is_none(),
            "{}",
            case.name
        );
    }

    async fn check_all(&self, cases: &[Case]) {
        for case in cases {
            self.check(case).await;
        }
    }

    /// Checks the `expected` cases whose name starts with `prefix`, then a good request.
    async fn check_named(&self, cases: Vec<Case>, prefix: &str, expected: usize) {
        let cases: Vec<Case> = cases
            .into_iter()
            .filter(|c| c.name.starts_with(prefix))
            .collect();
        assert_eq!(cases.len(), expected, "cases named {prefix:?}");
        self.check_all(&cases).await;
        self.assert_still_serves().await;
    }

    /// A good request from Alice is answered with what the token and the connection say.
    async fn assert_serves(&self, who: Who) -> Value {
        assert!(!self.server.is_finished(), "the server stopped");
        let response = self.send(who, "/whoami", bearer(&self.alice_token())).await;
        assert_eq!(response.status(), 200);
        assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
        let body: Value = response.json().await.expect("JSON body");
        let x5t = self.alice.x5t_s256();
        assert_eq!(body["sub"], "alice");
        assert_eq!(body["client_id"], "client-a");
        assert_eq!(body["thumbprint"], x5t.as_str());
        assert_eq!(body["connection"]["thumbprint"], x5t.as_str());
        body
    }

    async fn assert_still_serves(&self) {
        self.assert_serves(Who::Alice).await;
        self.assert_serves(Who::AliceHttp1).await;
    }
}

/// One RSA key for all tests of this binary: generating RSA keys is the slow part of a fixture.
fn rsa_key() -> &'static TestKey {
    static KEY: std::sync::OnceLock<TestKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| TestKey::rs256("rsa-1"))
}

fn headers_with(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(value).expect("header value"),
    );
    headers
}

// ----- the cases, by row of the table --------------------------------------------------------

fn header_cases(fx: &Fixture) -> Vec<Case> {
    let good = fx.alice_token();
    let mut duplicate = HeaderMap::new();
    for _ in 0..2 {
        duplicate.append(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {good}")).expect("header value"),
        );
    }
    vec![
        Case::new(
            "no Authorization",
            Who::Alice,
            HeaderMap::new(),
            401,
            "Bearer",
        ),
        Case::new(
            "no Authorization (HTTP/1.1)",
            Who::AliceHttp1,
            HeaderMap::new(),
            401,
            "Bearer",
        ),
        Case::new(
            "Basic scheme",
            Who::Alice,
            headers_with("Basic YWxpY2U6c2VjcmV0"),
            401,
            "Bearer",
        ),
        Case::invalid_request("empty token", Who::Alice, headers_with("Bearer ")),
        Case::invalid_request(
            "empty token (HTTP/1.1)",
            Who::AliceHttp1,
            headers_with("Bearer "),
        ),
        Case::invalid_request("scheme only", Who::Alice, headers_with("Bearer")),
        Case::invalid_request("two Authorization headers", Who::Alice, duplicate.clone()),
        Case::invalid_request(
            "two Authorization headers (HTTP/1.1)",
            Who::AliceHttp1,
            duplicate,
        ),
        Case::invalid_request(
            "token with spaces",
            Who::Alice,
            headers_with(&format!("Bearer {good} trailing")),
        ),
        Case::invalid_request(
            "token with spaces inside",
            Who::Alice,
            headers_with("Bearer abc def"),
        ),
        // RFC 6750 §3.1: an unsupported method alone is a request without authentication.
        Case::new(
            "token only in the query",
            Who::Alice,
            HeaderMap::new(),
            401,
            "Bearer",
        )
        .at(format!("/whoami?access_token={good}")),
        Case::invalid_request(
            "token in the query and the header",
            Who::Alice,
            bearer(&good),
        )
        .at(format!("/whoami?x=1&access_token={good}")),
    ]
}

fn forged_token_cases(fx: &Fixture) -> Vec<Case> {
    let good = fx.alice_token();
    let claims = claims_bound_to(&fx.alice.x5t_s256());
    let mut mallory = claims.clone();
    mallory["sub"] = json!("mallory");
    let (head, _) = good.rsplit_once('.').expect("compact JWS");
    let stranger = TestKey::es256("not-in-the-jwks");
    vec![
        Case::invalid_token(
            "truncated signature",
            Who::Alice,
            good[..good.len() - 5].to_owned(),
            INVALID_TOKEN,
        ),
        Case::invalid_token(
            "signature dropped",
            Who::Alice,
            head.to_owned(),
            INVALID_TOKEN,
        ),
        Case::invalid_token(
            "tampered payload",
            Who::Alice,
            tamper_payload(&good, &mallory),
            INVALID_TOKEN,
        ),
        Case::invalid_token(
            "alg none",
            Who::Alice,
            alg_none_token(&claims),
            INVALID_TOKEN,
        ),
        Case::invalid_token(
            "HS256 keyed with the RSA public key PEM",
            Who::Alice,
            hs256_token(&fx.rsa.rsa_public_pem_bytes(), fx.rsa.kid(), &claims),
            INVALID_TOKEN,
        ),
        Case::invalid_token(
            "HS256 keyed with the RSA public key PKCS#1 DER",
            Who::Alice,
            hs256_token(&fx.rsa.rsa_public_key_der_bytes(), fx.rsa.kid(), &claims),
            INVALID_TOKEN,
        ),
        Case::invalid_token(
            "HS256 keyed with the RSA public key PEM, no kid",
            Who::Alice,
            hs256_token(&fx.rsa.rsa_public_pem_bytes(), None, &claims),
            INVALID_TOKEN,
        ),
        Case::invalid_token(
            "unknown kid",
            Who::Alice,
            stranger.sign(&claims),
            UNKNOWN_KEY,
        ),
    ]
}

fn claim_cases(fx: &Fixture) -> Vec<Case> {
    let now = now();
    vec![
        Case::invalid_token(
            "wrong issuer",
            Who::Alice,
            fx.alice_token_with(|c| c["iss"] = json!("https://evil.test")),
            INVALID_TOKEN,
        ),
        Case::invalid_token(
            "wrong audience",
            Who::Alice,
            fx.alice_token_with(|c| c["aud"] = json!("https://other-api.test")),
            INVALID_TOKEN,
        ),
        Case::invalid_token(
            "expired",
            Who::Alice,
            fx.alice_token_with(|c| {
                c["iat"] = json!(now - 7200);
                c["nbf"] = json!(now - 7200);
                c["exp"] = json!(now - 3600);
            }),
            EXPIRED,
        ),
        Case::invalid_token(
            "not yet valid",
            Who::Alice,
            fx.alice_token_with(|c| {
                c["nbf"] = json!(now + 3600);
                c["exp"] = json!(now + 7200);
            }),
            NOT_YET_VALID,
        ),
        Case::invalid_token(
            "no exp",
            Who::Alice,
            fx.alice_token_with(|c| {
                c.as_object_mut().expect("claims").remove("exp");
            }),
            INVALID_TOKEN,
        ),
    ]
}

fn cnf_cases(fx: &Fixture) -> Vec<Case> {
    let x5t = fx.alice.x5t_s256();
    let with_cnf = |cnf: Value| fx.alice_token_with(|c| c["cnf"] = cnf);
    vec![
        Case::invalid_token("no cnf", Who::Alice, fx.es.sign(&claims_unbound()), UNBOUND),
        // Bound to a DPoP key only: presented as Bearer, it is a downgrade (RFC 9449 §7.2),
        // refused whatever certificate comes with it.
        Case::invalid_token(
            "cnf with jkt only, as Bearer",
            Who::Alice,
            with_cnf(json!({ "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" })),
            DPOP_AS_BEARER,
        ),
        Case::invalid_token(
            "cnf without any binding",
            Who::Alice,
            with_cnf(json!({ "other": "x" })),
            UNBOUND,
        ),
        Case::invalid_token(
            "cnf is a string",
            Who::Alice,
            with_cnf(json!(x5t)),
            INVALID_TOKEN,
        ),
        Case::invalid_token(
            "cnf is an array",
            Who::Alice,
            with_cnf(json!([{ "x5t#S256": x5t }])),
            INVALID_TOKEN,
        ),
        Case::invalid_token(
            "x5t#S256 is a number",
            Who::Alice,
            with_cnf(json!({ "x5t#S256": 5 })),
            INVALID_TOKEN,
        ),
        Case::invalid_token(
            "x5t#S256 is padded",
            Who::Alice,
            with_cnf(json!({ "x5t#S256": format!("{x5t}=") })),
            INVALID_TOKEN,
        ),
        Case::invalid_token(
            "x5t#S256 one character short",
            Who::Alice,
            with_cnf(json!({ "x5t#S256": &x5t[..42] })),
            INVALID_TOKEN,
        ),
        Case::invalid_token(
            "x5t#S256 one character long",
            Who::Alice,
            with_cnf(json!({ "x5t#S256": format!("{x5t}A") })),
            INVALID_TOKEN,
        ),
        Case::invalid_token(
            "x5t#S256 in hex",
            Who::Alice,
            with_cnf(json!({ "x5t#S256": hex(&x5t) })),
            INVALID_TOKEN,
        ),
    ]
}

fn binding_cases(fx: &Fixture) -> Vec<Case> {
    let alice = fx.alice_token();
    let bob = fx.es.sign(&claims_bound_to(&fx.bob.x5t_s256()));
    vec![
        Case::invalid_token(
            "Alice's token on Bob's connection",
            Who::Bob,
            alice.clone(),
            MISMATCH,
        ),
        Case::invalid_token(
            "Bob's token on Alice's connection",
            Who::Alice,
            bob.clone(),
            MISMATCH,
        ),
        Case::invalid_token(
            "Bob's token on Alice's connection (HTTP/1.1)",
            Who::AliceHttp1,
            bob,
            MISMATCH,
        ),
        Case::invalid_token(
            "bound token without a client certificate",
            Who::Anonymous,
            alice,
            NO_CERTIFICATE,
        ),
    ]
}

fn scope_cases(fx: &Fixture) -> Vec<Case> {
    let token = fx.alice_token(); // scope "read write"
    vec![
        Case::new(
            "scope required by BoundTokenLayer",
            Who::Alice,
            bearer(&token),
            403,
            INSUFFICIENT_SCOPE_CHALLENGE,
        )
        .at("/admin"),
        Case::new(
            "scope required by RequireScopeLayer",
            Who::Alice,
            bearer(&token),
            403,
            INSUFFICIENT_SCOPE_CHALLENGE,
        )
        .at("/scoped"),
    ]
}

/// The SHA-256 digest behind `x5t` as lowercase hex (64 characters; a wrong encoding).
fn hex(x5t: &str) -> String {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(x5t)
        .expect("oracle thumbprint");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ----- the tests -----------------------------------------------------------------------------

#[tokio::test]
async fn good_bound_token_with_matching_certificate_reaches_the_handler() {
    let fx = Fixture::start().await;
    for who in [Who::Alice, Who::AliceHttp1] {
        let body = fx.assert_serves(who).await;
        assert_eq!(body["scopes"], json!(["read", "write"]));
    }
    // The thumbprint the handler sees is the independent oracle's, and the protocol is the one
    // each client asked for.
    let token = fx.alice_token();
    let h2 = get_with_token(&fx.alice_client, &fx.url("/whoami"), &token).await;
    assert_eq!(h2.version(), Version::HTTP_2);
    let h1 = get_with_token(&fx.alice_http1, &fx.url("/whoami"), &token).await;
    assert_eq!(h1.version(), Version::HTTP_11);
    // Any case of the scheme, and more than one space before the token.
    for value in [format!("bearer {token}"), format!("BEARER   {token}")] {
        let response = fx.send(Who::Alice, "/whoami", headers_with(&value)).await;
        assert_eq!(response.status(), 200, "{value:.12}");
    }
    // Bob with his own token is fine too.
    let bob = fx.es.sign(&claims_bound_to(&fx.bob.x5t_s256()));
    let response = fx.send(Who::Bob, "/whoami", bearer(&bob)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["thumbprint"], fx.bob.x5t_s256().as_str());
}

#[tokio::test]
async fn request_without_authorization_gets_a_bare_bearer_challenge() {
    let fx = Fixture::start().await;
    fx.check_all(&header_cases(&fx)[..2]).await;
    fx.assert_still_serves().await;
}

#[tokio::test]
async fn other_authorization_scheme_is_treated_as_no_token() {
    let fx = Fixture::start().await;
    let cases = header_cases(&fx);
    fx.check(cases.iter().find(|c| c.name == "Basic scheme").unwrap())
        .await;
    fx.assert_still_serves().await;
}

#[tokio::test]
async fn malformed_authorization_is_an_invalid_request() {
    let fx = Fixture::start().await;
    let cases: Vec<Case> = header_cases(&fx)
        .into_iter()
        .filter(|c| c.status == 400)
        .collect();
    assert!(cases.len() >= 8);
    fx.check_all(&cases).await;
    fx.assert_still_serves().await;
}

#[tokio::test]
async fn duplicate_authorization_headers_are_an_invalid_request() {
    let fx = Fixture::start().await;
    fx.check_named(header_cases(&fx), "two Authorization headers", 2)
        .await;
}

#[tokio::test]
async fn a_token_only_in_the_query_string_is_a_request_without_authentication() {
    let fx = Fixture::start().await;
    fx.check_named(header_cases(&fx), "token only in the query", 1)
        .await;
}

#[tokio::test]
async fn a_token_in_the_query_string_and_the_header_is_an_invalid_request() {
    let fx = Fixture::start().await;
    fx.check_named(header_cases(&fx), "token in the query and the header", 1)
        .await;
}

#[tokio::test]
async fn forged_and_damaged_tokens_are_invalid_tokens() {
    let fx = Fixture::start().await;
    fx.check_all(&forged_token_cases(&fx)).await;
    fx.assert_still_serves().await;
}

#[tokio::test]
async fn hs256_token_keyed_with_the_rsa_public_key_is_refused() {
    let fx = Fixture::start().await;
    fx.check_named(forged_token_cases(&fx), "HS256", 3).await;
}

#[tokio::test]
async fn wrong_issuer_audience_and_lifetime_are_invalid_tokens() {
    let fx = Fixture::start().await;
    fx.check_all(&claim_cases(&fx)).await;
    fx.assert_still_serves().await;
}

#[tokio::test]
async fn expiry_and_not_before_honour_the_leeway() {
    let fx = Fixture::start().await;
    let now = now();
    // Within the default 60 s leeway on both sides: accepted.
    let slightly_expired = fx.alice_token_with(|c| {
        c["iat"] = json!(now - 600);
        c["nbf"] = json!(now - 600);
        c["exp"] = json!(now - 20);
    });
    let slightly_early = fx.alice_token_with(|c| c["nbf"] = json!(now + 20));
    for token in [slightly_expired, slightly_early] {
        let response = fx.send(Who::Alice, "/whoami", bearer(&token)).await;
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test]
async fn unknown_kid_in_a_static_jwks_is_an_invalid_token() {
    let fx = Fixture::start().await;
    let claims = claims_bound_to(&fx.alice.x5t_s256());
    // A stranger's key, with a new kid and with the kid of a published key.
    let stranger = TestKey::es256("es-9");
    let impostor = TestKey::es256("es-1");
    let cases = [
        Case::invalid_token(
            "unknown kid",
            Who::Alice,
            stranger.sign(&claims),
            UNKNOWN_KEY,
        ),
        Case::invalid_token(
            "published kid, other key",
            Who::Alice,
            impostor.sign(&claims),
            INVALID_TOKEN,
        ),
    ];
    fx.check_all(&cases).await;
    fx.assert_still_serves().await;
}

#[tokio::test]
async fn unbound_token_is_refused_when_binding_is_required() {
    let fx = Fixture::start().await;
    let cases: Vec<Case> = cnf_cases(&fx)
        .into_iter()
        .filter(|c| c.name.starts_with("no cnf") || c.name.starts_with("cnf without"))
        .collect();
    assert_eq!(cases.len(), 2);
    fx.check_all(&cases).await;
    fx.assert_still_serves().await;
}

#[tokio::test]
async fn malformed_cnf_claims_are_invalid_tokens_even_with_the_matching_certificate() {
    let fx = Fixture::start().await;
    fx.check_all(&cnf_cases(&fx)).await;
    fx.assert_still_serves().await;
}

#[tokio::test]
async fn thumbprint_in_the_standard_base64_alphabet_is_refused() {
    let fx = Fixture::start().await;
    // A client whose canonical thumbprint contains '-' or '_' (about 3 in 4 do).
    let carol = (0..64)
        .map(|i| fx.pki.client_identity(&format!("carol-{i}")))
        .find(|id| id.x5t_s256().contains(['-', '_']))
        .expect("a thumbprint with - or _");
    let x5t = carol.x5t_s256();
    let standard: String = x5t
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    assert_ne!(standard, x5t);
    let client = https_client(&fx.pki.ca_der(), Some(&carol));
    let url = fx.url("/whoami");

    // The canonical spelling is accepted on Carol's connection ...
    let canonical = fx.es.sign(&claims_bound_to(&x5t));
    let response = get_with_token(&client, &url, &canonical).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["connection"]["thumbprint"], x5t.as_str());

    // ... the same digest in the standard alphabet is not, nor padded in it.
    for spelling in [standard.clone(), format!("{standard}=")] {
        let token = fx.es.sign(&claims_bound_to(&spelling));
        let response = get_with_token(&client, &url, &token).await;
        assert_invalid_token(&response, &token, INVALID_TOKEN);
    }
    fx.assert_still_serves().await;
}

#[tokio::test]
async fn stolen_token_is_refused_with_another_certificate() {
    let fx = Fixture::start().await;
    fx.check_all(&binding_cases(&fx)[..3]).await;
    fx.assert_still_serves().await;
}

#[tokio::test]
async fn bound_token_without_a_client_certificate_is_refused() {
    let fx = Fixture::start().await;
    let cases = binding_cases(&fx);
    fx.check(cases.last().unwrap()).await;
    // The connection without certificate still gets the public route.
    let response = send(&fx.anonymous, &fx.url("/open"), HeaderMap::new()).await;
    assert_eq!(response.status(), 200);
    fx.assert_still_serves().await;
}

#[tokio::test]
async fn oversized_authorization_header_over_http1_is_refused_by_the_server_or_the_layer() {
    let fx = Fixture::start().await;
    // Over serve's request-head limit (32 KiB by default): 431 before the layer, no challenge.
    let token = "a".repeat(64 * 1024);
    let response = fx.send(Who::AliceHttp1, "/whoami", bearer(&token)).await;
    assert_eq!(response.version(), Version::HTTP_11);
    assert_eq!(response.status(), 431);
    assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
    // Within it, just over the layer's token limit (16 KiB): invalid_token from the layer.
    let token = "a".repeat(16 * 1024 + 1);
    let response = fx.send(Who::AliceHttp1, "/whoami", bearer(&token)).await;
    assert_invalid_token(&response, &token, INVALID_TOKEN);
    fx.assert_still_serves().await;
}

#[tokio::test]
async fn oversized_authorization_header_over_http2_is_refused_by_http2_and_others_keep_working() {
    // serve advertises SETTINGS_MAX_HEADER_LIST_SIZE = 32 KiB (max_header_bytes), and h2 (0.4):
    // - within it, the layer refuses a token over its own limit (16 KiB): invalid_token;
    // - above it, h2 answers the stream with 431 and the connection lives on;
    // - far above it (more than 4 times, as h2 counts), h2 treats it as abuse and closes the
    //   whole connection with GOAWAY ENHANCE_YOUR_CALM; the request fails at the client.
    // Either way nothing echoes the token, and the server keeps serving.
    let fx = Fixture::start().await;
    let bob_token = fx.es.sign(&claims_bound_to(&fx.bob.x5t_s256()));
    let bob_before = {
        let response = fx.send(Who::Bob, "/whoami", bearer(&bob_token)).await;
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()["connection"]["remote_addr"].clone()
    };
    let alice_before = fx.assert_serves(Who::Alice).await["connection"]["remote_addr"].clone();

    // 20 KiB: through h2, refused by the layer.
    let token = "a".repeat(20 * 1024);
    let response = fx.send(Who::Alice, "/whoami", bearer(&token)).await;
    assert_eq!(response.version(), Version::HTTP_2);
    assert_invalid_token(&response, &token, INVALID_TOKEN);

    // 40 KiB: 431 from h2, same connection afterwards.
    let token = "a".repeat(40 * 1024);
    let response = fx.send(Who::Alice, "/whoami", bearer(&token)).await;
    assert_eq!(response.status(), 431);
    assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
    let alice_after = fx.assert_serves(Who::Alice).await["connection"]["remote_addr"].clone();
    assert_eq!(alice_before, alice_after);

    // 256 KiB: the connection is closed by HTTP/2 itself.
    let token = "a".repeat(256 * 1024);
    let result = fx
        .alice_client
        .get(fx.url("/whoami"))
        .headers(bearer(&token))
        .send()
        .await;
    let error = result.expect_err("HTTP/2 refuses a 256 KiB header list");
    assert!(!error.is_timeout(), "{error:?}");

    // Bob's connection was not affected, and Alice gets a new connection that works.
    let response = fx.send(Who::Bob, "/whoami", bearer(&bob_token)).await;
    assert_eq!(response.status(), 200);
    let bob_after = response.json::<Value>().await.unwrap()["connection"]["remote_addr"].clone();
    assert_eq!(bob_before, bob_after);
    let alice_new = fx.assert_serves(Who::Alice).await["connection"]["remote_addr"].clone();
    assert_ne!(alice_new, alice_before);
    fx.assert_still_serves().await;
}

#[tokio::test]
async fn allow_unbound_accepts_unbound_tokens_but_still_checks_bound_ones() {
    let fx = Fixture::start().await;
    let unbound = fx.es.sign(&claims_unbound());
    for who in [Who::Alice, Who::AliceHttp1, Who::Anonymous] {
        let response = fx.send(who, "/unbound-ok", bearer(&unbound)).await;
        assert_eq!(response.status(), 200, "{who:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["sub"], "alice");
        assert_eq!(body["thumbprint"], Value::Null);
    }
    let alice = fx.alice_token();
    let response = fx.send(Who::Alice, "/unbound-ok", bearer(&alice)).await;
    assert_eq!(response.status(), 200);
    let malformed = fx.alice_token_with(|c| c["cnf"] = json!("x"));
    let cases = [
        Case::invalid_token(
            "bound to Alice, sent by Bob",
            Who::Bob,
            alice.clone(),
            MISMATCH,
        )
        .at("/unbound-ok"),
        Case::invalid_token(
            "bound to Alice, no certificate",
            Who::Anonymous,
            alice,
            NO_CERTIFICATE,
        )
        .at("/unbound-ok"),
        Case::invalid_token("malformed cnf", Who::Alice, malformed, INVALID_TOKEN)
            .at("/unbound-ok"),
    ];
    fx.check_all(&cases).await;
    // The default route still requires binding.
    fx.check(&Case::invalid_token(
        "unbound on a bound route",
        Who::Alice,
        unbound,
        UNBOUND,
    ))
    .await;
    fx.assert_still_serves().await;
}

#[tokio::test]
async fn missing_scope_is_forbidden_with_an_insufficient_scope_challenge() {
    let fx = Fixture::start().await;
    fx.check_all(&scope_cases(&fx)).await;
    // Scope checks come after binding: a stolen token is still 401, not 403.
    fx.check(
        &Case::invalid_token(
            "stolen token on a scoped route",
            Who::Bob,
            fx.alice_token_with(|c| c["scope"] = json!("admin")),
            MISMATCH,
        )
        .at("/admin"),
    )
    .await;
    fx.assert_still_serves().await;
}

#[tokio::test]
async fn granted_scope_is_accepted_as_string_or_scp_array() {
    let fx = Fixture::start().await;
    let as_string = fx.alice_token_with(|c| c["scope"] = json!("read admin"));
    let as_array = fx.alice_token_with(|c| {
        c.as_object_mut().expect("claims").remove("scope");
        c["scp"] = json!(["admin", "write"]);
    });
    for token in [as_string, as_array] {
        for path in ["/admin", "/scoped"] {
            let response = fx.send(Who::Alice, path, bearer(&token)).await;
            assert_eq!(response.status(), 200, "{path}");
            let body: Value = response.json().await.unwrap();
            assert!(
                body["scopes"].as_array().unwrap().contains(&json!("admin")),
                "{body}"
            );
        }
    }
    // A scope claim of the wrong shape is not "no scope": the token is invalid.
    let bad = fx.alice_token_with(|c| c["scope"] = json!(["admin"]));
    let response = fx.send(Who::Alice, "/admin", bearer(&bad)).await;
    assert_invalid_token(&response, &bad, INVALID_TOKEN);
}

#[tokio::test]
async fn grpc_requests_are_rejected_with_grpc_status_over_http2() {
    let fx = Fixture::start().await;
    let alice = fx.alice_token();
    let mut duplicate = bearer(&alice);
    duplicate.append(AUTHORIZATION, bearer(&alice)[AUTHORIZATION].clone());
    let cases: [(&str, Who, &str, HeaderMap, &str, &str); 5] = [
        (
            "no token",
            Who::Alice,
            "/whoami",
            HeaderMap::new(),
            "16",
            "Bearer",
        ),
        (
            "two headers",
            Who::Alice,
            "/whoami",
            duplicate,
            "3",
            INVALID_REQUEST_CHALLENGE,
        ),
        (
            "stolen token",
            Who::Bob,
            "/whoami",
            bearer(&alice),
            "16",
            &invalid_token_challenge(MISMATCH),
        ),
        (
            "no certificate",
            Who::Anonymous,
            "/whoami",
            bearer(&alice),
            "16",
            &invalid_token_challenge(NO_CERTIFICATE),
        ),
        (
            "missing scope",
            Who::Alice,
            "/admin",
            bearer(&alice),
            "7",
            INSUFFICIENT_SCOPE_CHALLENGE,
        ),
    ];
    for (name, who, path, mut headers, grpc_status, challenge) in cases {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        let response = fx
            .client(who)
            .post(fx.url(path))
            .headers(headers)
            .send()
            .await
            .unwrap();
        assert_eq!(response.version(), Version::HTTP_2, "{name}");
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(response.headers()["grpc-status"], grpc_status, "{name}");
        assert!(
            response.headers()[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/grpc"),
            "{name}"
        );
        assert_eq!(
            www_authenticate(&response).as_deref(),
            Some(challenge),
            "{name}"
        );
    }
    // `application/grpc+proto` counts as gRPC too.
    let response = fx
        .alice_client
        .post(fx.url("/whoami"))
        .header(CONTENT_TYPE, "application/grpc+proto")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["grpc-status"], "16");
    fx.assert_still_serves().await;
}

#[tokio::test]
async fn access_token_extractor_on_a_route_without_the_layer_is_a_server_error() {
    let fx = Fixture::start().await;
    let response = fx
        .send(Who::Alice, "/unguarded", bearer(&fx.alice_token()))
        .await;
    assert_eq!(response.status(), 500);
    assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
    fx.assert_still_serves().await;
}

#[tokio::test]
async fn layer_without_a_certificate_source_is_a_server_error() {
    let es = TestKey::es256("es-1");
    let x5t = Pki::self_signed_client("alice").x5t_s256();
    let token = es.sign(&claims_bound_to(&x5t));
    let app = whoami_app(BoundTokenLayer::new(static_validator(&[&es])));
    for headers in [bearer(&token), HeaderMap::new()] {
        let mut request = axum::http::Request::get("/whoami")
            .body(Body::empty())
            .unwrap();
        *request.headers_mut() = headers;
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 500);
        assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
    }
}

#[tokio::test]
async fn require_at_jwt_refuses_tokens_of_another_type() {
    let fx = Fixture::start().await;
    let claims = claims_bound_to(&fx.alice.x5t_s256());
    let typed = |typ: Option<&str>| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = fx.es.kid().map(str::to_owned);
        header.typ = typ.map(str::to_owned);
        fx.es.sign_with_header(header, &claims)
    };
    for token in [typed(Some("JWT")), typed(None)] {
        fx.check(
            &Case::invalid_token("typ JWT", Who::Alice, token.clone(), INVALID_TOKEN).at("/at-jwt"),
        )
        .await;
        // Without require_at_jwt the same token is fine.
        let response = fx.send(Who::Alice, "/whoami", bearer(&token)).await;
        assert_eq!(response.status(), 200);
    }
    for token in [typed(Some("at+jwt")), typed(Some("application/at+jwt"))] {
        let response = fx.send(Who::Alice, "/at-jwt", bearer(&token)).await;
        assert_eq!(response.status(), 200);
    }
    fx.assert_still_serves().await;
}

#[tokio::test]
async fn self_signed_client_certificate_works_in_any_certificate_mode() {
    let fx = Fixture::start_with_tls(any_certificate_tls).await;
    let dave = Pki::self_signed_client("dave");
    let client = https_client(&fx.pki.ca_der(), Some(&dave));
    let token = fx.es.sign(&claims_bound_to(&dave.x5t_s256()));
    let response = get_with_token(&client, &fx.url("/whoami"), &token).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["thumbprint"], dave.x5t_s256().as_str());
    assert_eq!(body["connection"]["thumbprint"], dave.x5t_s256().as_str());
    // The binding still decides: Alice's token on Dave's connection is refused.
    let response = get_with_token(&client, &fx.url("/whoami"), &fx.alice_token()).await;
    assert_invalid_token(&response, &fx.alice_token(), MISMATCH);
    // CA-issued certificates work in this mode too.
    fx.assert_still_serves().await;
}

#[tokio::test]
async fn self_signed_client_certificate_fails_the_handshake_in_ca_mode() {
    let fx = Fixture::start().await;
    let dave = Pki::self_signed_client("dave");
    let client = https_client(&fx.pki.ca_der(), Some(&dave));
    let token = fx.es.sign(&claims_bound_to(&dave.x5t_s256()));
    for _ in 0..2 {
        let result = client
            .get(fx.url("/whoami"))
            .headers(bearer(&token))
            .send()
            .await;
        assert!(result.is_err(), "{result:?}");
    }
    // A certificate from another CA fails the same way.
    let other = Pki::new("other-ca").client_identity("eve");
    let client = https_client(&fx.pki.ca_der(), Some(&other));
    let token = fx.es.sign(&claims_bound_to(&other.x5t_s256()));
    let result = client
        .get(fx.url("/whoami"))
        .headers(bearer(&token))
        .send()
        .await;
    assert!(result.is_err(), "{result:?}");
    fx.assert_still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_rejection_matrix_leaves_the_server_serving() {
    let fx = Fixture::start().await;
    let cases: Vec<Case> = [
        header_cases(&fx),
        forged_token_cases(&fx),
        claim_cases(&fx),
        cnf_cases(&fx),
        binding_cases(&fx),
        scope_cases(&fx),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(cases.len() >= 40, "{}", cases.len());

    // Once in order, then all at once over the shared connections.
    fx.check_all(&cases).await;
    let fx = std::sync::Arc::new(fx);
    let cases = std::sync::Arc::new(cases);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..cases.len() {
        let (fx, cases) = (fx.clone(), cases.clone());
        tasks.spawn(async move { fx.check(&cases[i]).await });
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("case panicked");
    }
    fx.assert_still_serves().await;
    let response = send(&fx.anonymous, &fx.url("/open"), HeaderMap::new()).await;
    assert_eq!(response.status(), 200);
}
