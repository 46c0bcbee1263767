//! What every proxy must get right, one function per case; `proxy_nginx.rs`,
//! `proxy_traefik.rs` and `proxy_caddy.rs` run each of them behind their proxy.

use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use reqwest::StatusCode;

use super::{ClientId, Deployment, Kind, Reply, PUBLIC_URL};
use crate::support::*;

/// The public URL of the resource every case asks for (its query is not part of `htu`).
const RESOURCE: &str = "/api/orders?page=2";
/// Where the upstream finds it: the proxy removes `/api`.
const UPSTREAM_TARGET: &str = "/orders?page=2";

fn public(path: &str) -> String {
    format!("{PUBLIC_URL}{path}")
}

async fn deployment(kind: Kind, tokens: &str) -> Option<Deployment> {
    Deployment::start(kind, TempDir::new(), tokens).await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Reached the upstream, as `subject`, bound by `binding`.
fn assert_allowed(reply: &Reply, binding: &str) {
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.upstream_target(), Some(UPSTREAM_TARGET), "{reply:?}");
    assert_eq!(
        reply.upstream_header("x-auth-subject"),
        ["alice"],
        "{reply:?}"
    );
    assert_eq!(
        reply.upstream_header("x-auth-binding"),
        [binding],
        "{reply:?}"
    );
}

/// Refused with 401 and the challenge's `error`, and the upstream never saw it.
fn assert_refused(reply: &Reply, error: &str) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{reply:?}");
    assert!(reply.upstream.is_none(), "{reply:?}");
    assert_eq!(
        reply.headers.get_all("www-authenticate").iter().count(),
        1,
        "{reply:?}"
    );
    assert!(
        reply.challenge().contains(&format!("error=\"{error}\"")),
        "{reply:?}"
    );
}

pub async fn a_certificate_bound_token_with_its_certificate_reaches_the_upstream_with_the_identity(
    kind: Kind,
) {
    let Some(d) = deployment(kind, "").await else {
        return;
    };
    let alice = ClientId::new("alice");
    let token = d.jwks.issuer.token("read", cnf_certificate(&alice.der));
    let reply = d
        .get(
            Some(&alice),
            RESOURCE,
            &[("authorization", &bearer(&token))],
        )
        .await;
    assert_allowed(&reply, "certificate");
    assert_eq!(reply.upstream_header("x-auth-client-id"), ["client-a"]);
    assert_eq!(reply.upstream_header("x-auth-scope"), ["read"]);
    assert_eq!(reply.upstream_header("x-auth-issuer"), [ISSUER]);
}

pub async fn a_token_stolen_to_another_certificate_or_used_without_one_is_refused(kind: Kind) {
    let Some(d) = deployment(kind, "").await else {
        return;
    };
    let alice = ClientId::new("alice");
    let thief = ClientId::new("thief");
    let token = d.jwks.issuer.token("read", cnf_certificate(&alice.der));
    for identity in [Some(&thief), None] {
        let reply = d
            .get(identity, RESOURCE, &[("authorization", &bearer(&token))])
            .await;
        assert_refused(&reply, "invalid_token");
    }
}

pub async fn identity_headers_sent_by_the_client_never_reach_the_upstream_as_sent(kind: Kind) {
    let Some(d) = deployment(kind, "").await else {
        return;
    };
    let alice = ClientId::new("alice");
    let token = d.jwks.issuer.token("read", cnf_certificate(&alice.der));
    let forged = [
        ("x-auth-subject", "admin"),
        ("x-auth-scope", "admin"),
        ("x-auth-binding", "certificate"),
    ];
    let auth = bearer(&token);
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend(forged);
    let reply = d.get(Some(&alice), RESOURCE, &headers).await;
    assert_allowed(&reply, "certificate");
    assert_eq!(reply.upstream_header("x-auth-scope"), ["read"]);

    // A token without `client_id`: certbound-authz sends no X-Auth-Client-Id, and the
    // client's copy is removed all the same.
    let mut claims = claims("read", cnf_certificate(&alice.der));
    claims.as_object_mut().expect("claims").remove("client_id");
    let token = d.jwks.issuer.sign(&claims);
    let auth = bearer(&token);
    let reply = d
        .get(
            Some(&alice),
            RESOURCE,
            &[
                ("authorization", &auth),
                ("x-auth-client-id", "client-admin"),
            ],
        )
        .await;
    assert_allowed(&reply, "certificate");
    assert!(
        reply.upstream_header("x-auth-client-id").is_empty(),
        "{reply:?}"
    );

    // Refused: nothing reaches the upstream, forged or not.
    let reply = d.get(None, RESOURCE, &forged).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{reply:?}");
    assert!(reply.upstream.is_none(), "{reply:?}");
}

/// The certificate headers of every profile, each forging `victim`'s certificate.
fn forged_certificate_headers(victim: &ClientId) -> Vec<(&'static str, String)> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(&victim.der);
    vec![
        (
            "x-ssl-client-cert",
            utf8_percent_encode(&victim.pem, NON_ALPHANUMERIC).to_string(),
        ),
        (
            "x-forwarded-tls-client-cert",
            utf8_percent_encode(&b64, NON_ALPHANUMERIC).to_string(),
        ),
        ("x-client-cert", b64.clone()),
        ("x-forwarded-client-cert", format!("Hash=00;Cert=\"{b64}\"")),
        ("client-cert", format!(":{b64}:")),
    ]
}

pub async fn a_certificate_header_sent_by_the_client_is_not_believed(kind: Kind) {
    let Some(d) = deployment(kind, "").await else {
        return;
    };
    let alice = ClientId::new("alice");
    let thief = ClientId::new("thief");
    let token = d.jwks.issuer.token("read", cnf_certificate(&alice.der));
    let auth = bearer(&token);
    // Each header alone (beside another, certbound-authz would see a conflict and no
    // certificate anyway), without a certificate and with the thief's own.
    for (name, value) in forged_certificate_headers(&alice) {
        for identity in [None, Some(&thief)] {
            let reply = d
                .get(
                    identity,
                    RESOURCE,
                    &[("authorization", &auth), (name, &value)],
                )
                .await;
            assert_refused(&reply, "invalid_token");
        }
    }
    // Alice's own request with the thief's certificate in the proxy's own certificate
    // header: the proxy's value replaces the client's (two values would be refused).
    let own = match kind {
        Kind::Nginx => "x-ssl-client-cert",
        Kind::Traefik => "x-forwarded-tls-client-cert",
        Kind::Caddy => "x-client-cert",
    };
    let forged = forged_certificate_headers(&thief);
    let (_, value) = forged
        .iter()
        .find(|(name, _)| *name == own)
        .expect("a header");
    let reply = d
        .get(
            Some(&alice),
            RESOURCE,
            &[("authorization", &auth), (own, value)],
        )
        .await;
    assert_allowed(&reply, "certificate");
    assert!(
        !reply.upstream_header(own).contains(value),
        "the client's {own} reached the upstream: {reply:?}"
    );
}

pub async fn a_dpop_proof_is_good_once_and_a_replayed_or_foreign_key_proof_is_refused(kind: Kind) {
    let Some(d) = deployment(kind, "").await else {
        return;
    };
    let key = dpop_key();
    let token = d.jwks.issuer.token("read", cnf_dpop(&key));
    let auth = format!("DPoP {token}");
    let url = public("/api/orders");
    let good = proof(&key, "GET", &url, &token, None);
    let send = |proof: String| {
        let auth = auth.clone();
        let d = &d;
        async move {
            d.get(
                None,
                RESOURCE,
                &[("authorization", &auth), ("dpop", &proof)],
            )
            .await
        }
    };
    let reply = send(good.clone()).await;
    assert_allowed(&reply, "dpop");
    // Without `dpop_nonce_key_file`, no nonce.
    assert!(!reply.headers.contains_key("dpop-nonce"), "{reply:?}");
    assert_refused(&send(good).await, "invalid_dpop_proof");
    // A proof by another key: the token is bound to a key the proof does not show.
    let foreign = proof(&dpop_key(), "GET", &url, &token, None);
    assert_refused(&send(foreign).await, "invalid_token");
}

pub async fn a_dpop_nonce_makes_the_round_trip_through_the_proxy(kind: Kind) {
    let dir = TempDir::new();
    let key_file = dir.write("nonce.key", [7u8; 32]);
    let tokens = format!("dpop_nonce_key_file = {:?}", key_file.display().to_string());
    let Some(d) = Deployment::start(kind, dir, &tokens).await else {
        return;
    };
    let key = dpop_key();
    let token = d.jwks.issuer.token("read", cnf_dpop(&key));
    let auth = format!("DPoP {token}");
    let url = public("/api/orders");
    let first = proof(&key, "GET", &url, &token, None);
    let reply = d
        .get(
            None,
            RESOURCE,
            &[("authorization", &auth), ("dpop", &first)],
        )
        .await;
    assert_refused(&reply, "use_dpop_nonce");
    let nonce = reply
        .headers
        .get("dpop-nonce")
        .unwrap_or_else(|| panic!("no DPoP-Nonce for the client: {reply:?}"))
        .to_str()
        .expect("a nonce")
        .to_owned();
    let retry = proof(&key, "GET", &url, &token, Some(&nonce));
    let reply = d
        .get(
            None,
            RESOURCE,
            &[("authorization", &auth), ("dpop", &retry)],
        )
        .await;
    assert_allowed(&reply, "dpop");
}

pub async fn a_dpop_proof_for_the_public_url_is_allowed_behind_a_path_prefixing_proxy(kind: Kind) {
    let Some(d) = deployment(kind, "").await else {
        return;
    };
    let key = dpop_key();
    let token = d.jwks.issuer.token("read", cnf_dpop(&key));
    let auth = format!("DPoP {token}");
    // A proof for the URL the upstream sees, or for the proxy's own address: not the
    // resource's public URL.
    for htu in [
        public("/orders"),
        format!("https://127.0.0.1:{}/api/orders", d.proxy.port),
    ] {
        let wrong = proof(&key, "GET", &htu, &token, None);
        let reply = d
            .get(
                None,
                RESOURCE,
                &[("authorization", &auth), ("dpop", &wrong)],
            )
            .await;
        assert_refused(&reply, "invalid_dpop_proof");
    }
    // The public URL: `tokens.public_url` + the path the client asked for.
    let right = proof(&key, "GET", &public("/api/orders"), &token, None);
    let reply = d
        .get(
            None,
            RESOURCE,
            &[("authorization", &auth), ("dpop", &right)],
        )
        .await;
    assert_allowed(&reply, "dpop");
}

pub async fn a_token_without_the_routes_scope_is_refused_with_403_and_the_challenge(kind: Kind) {
    let routes = "\n[[routes]]\npath_prefix = \"/api/orders\"\nscopes = [\"admin\"]\n";
    let Some(d) = deployment(kind, routes).await else {
        return;
    };
    let alice = ClientId::new("alice");
    let token = d.jwks.issuer.token("read", cnf_certificate(&alice.der));
    let reply = d
        .get(
            Some(&alice),
            RESOURCE,
            &[("authorization", &bearer(&token))],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{reply:?}");
    assert!(reply.upstream.is_none(), "{reply:?}");
    let challenge = reply.challenge();
    assert!(
        challenge.contains("error=\"insufficient_scope\"") && challenge.contains("scope=\"admin\""),
        "{reply:?}"
    );
    // With the scope: through.
    let token = d
        .jwks
        .issuer
        .token("read admin", cnf_certificate(&alice.der));
    let reply = d
        .get(
            Some(&alice),
            RESOURCE,
            &[("authorization", &bearer(&token))],
        )
        .await;
    assert_allowed(&reply, "certificate");
    // Only the refusal carries a challenge.
    assert!(!reply.headers.contains_key("www-authenticate"), "{reply:?}");
}

/// A nonce of the previous time step (certbound's default step, 60 s) keyed with `secret`, made
/// as certbound makes them: still accepted, and the allow then carries a fresh one.
fn previous_step_nonce(secret: &[u8]) -> String {
    use hmac::Mac as _;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let step = now / 60 - 1;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC key");
    mac.update(b"certbound dpop nonce v1");
    mac.update(&step.to_be_bytes());
    let mut raw = step.to_be_bytes().to_vec();
    raw.extend_from_slice(&mac.finalize().into_bytes()[..16]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// Allowed with a nonce of the previous step: whether the fresh `DPoP-Nonce` of the allow
/// reached the client (`None`: the proxy is not installed).
pub async fn a_fresh_nonce_on_an_allow_reaches_the_client(kind: Kind) -> Option<bool> {
    let secret = [7u8; 32];
    let dir = TempDir::new();
    let key_file = dir.write("nonce.key", secret);
    let tokens = format!("dpop_nonce_key_file = {:?}", key_file.display().to_string());
    let d = Deployment::start(kind, dir, &tokens).await?;
    let key = dpop_key();
    let token = d.jwks.issuer.token("read", cnf_dpop(&key));
    let auth = format!("DPoP {token}");
    let url = public("/api/orders");
    // Twice at most: when the step turns between making the nonce and checking it, the nonce
    // is two steps old and refused.
    for _ in 0..2 {
        let nonce = previous_step_nonce(&secret);
        let proof = proof(&key, "GET", &url, &token, Some(&nonce));
        let reply = d
            .get(
                None,
                RESOURCE,
                &[("authorization", &auth), ("dpop", &proof)],
            )
            .await;
        if reply.challenge().contains("use_dpop_nonce") {
            continue;
        }
        assert_allowed(&reply, "dpop");
        return Some(reply.headers.contains_key("dpop-nonce"));
    }
    panic!("a nonce of the previous step was refused twice");
}
