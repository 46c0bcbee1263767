//! Mutual-TLS client authentication at a token endpoint (RFC 8705 §2), over real TLS with
//! rcgen-made certificates and a real HTTP client presenting them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::authz_support::*;
use crate::common::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use certbound::authorization_server::ClientAuthenticator;
use rcgen::{date_time_ymd, DnType, DnValue, SanType};
use serde_json::{json, Value};

fn tls_client(id: &str, field: &str, value: &str) -> Value {
    json!({"client_id": id, "token_endpoint_auth_method": "tls_client_auth", field: value})
}

fn authenticator(ca: &TestCa) -> ClientAuthenticator {
    ClientAuthenticator::builder()
        .client_ca([ca.der()])
        .expect("client CA")
        .build()
        .expect("authenticator")
}

/// The public JWK (P-256) of an identity's key.
fn ec_jwk(id: &ClientIdentity) -> Value {
    let key = rcgen::KeyPair::try_from(id.key_pkcs8.as_slice()).unwrap();
    let point = key.public_key_raw();
    json!({"kty": "EC", "crv": "P-256", "x": b64url(&point[1..33]), "y": b64url(&point[33..65])})
}

fn dns(name: &str) -> SanType {
    SanType::DnsName(name.try_into().unwrap())
}

#[tokio::test]
async fn subject_dn_is_compared_rdn_by_rdn() {
    let pki = Pki::new("authz-dn-server-ca");
    let ca = TestCa::new("authz-dn-client-ca");
    let registered = "CN=Payments Client,OU=Treasury,O=Example Bank\\, AG,C=DE";
    let multi = "CN=svc+UID=42,O=Acme";
    let server = start_token_endpoint(
        &pki,
        json!([
            tls_client("bank", "tls_client_auth_subject_dn", registered),
            tls_client("multi", "tls_client_auth_subject_dn", multi),
            tls_client(
                "escaped",
                "tls_client_auth_subject_dn",
                r#"CN=a\+b \"c\"\2C d"#
            ),
        ]),
        authenticator(&ca),
    )
    .await;

    // Certificate order: C, O, OU, CN (the reverse of the RFC 4514 string).
    let bank = |c: &str, o: &str, ou: &str, cn: &str| {
        let (c, o, ou, cn) = (c.to_owned(), o.to_owned(), ou.to_owned(), cn.to_owned());
        ca.issue(move |p| {
            p.distinguished_name.push(
                DnType::CountryName,
                DnValue::PrintableString(c.try_into().unwrap()),
            );
            p.distinguished_name.push(DnType::OrganizationName, o);
            p.distinguished_name
                .push(DnType::OrganizationalUnitName, ou);
            p.distinguished_name.push(DnType::CommonName, cn);
        })
    };
    let exact = bank("DE", "Example Bank, AG", "Treasury", "Payments Client");
    assert_authenticated(
        token_as(&server, &pki, Some(&exact), "bank").await,
        "bank",
        "same DN",
    );
    // Case and insignificant spaces in the values do not matter (caseIgnoreMatch).
    let case = bank("de", "EXAMPLE  bank, ag", " Treasury ", "payments client");
    assert_authenticated(
        token_as(&server, &pki, Some(&case), "bank").await,
        "bank",
        "case",
    );

    // Attribute order matters: the same attributes in another order are another DN.
    let reordered = ca.issue(|p| {
        p.distinguished_name
            .push(DnType::CommonName, "Payments Client");
        p.distinguished_name
            .push(DnType::OrganizationalUnitName, "Treasury");
        p.distinguished_name
            .push(DnType::OrganizationName, "Example Bank, AG");
        p.distinguished_name.push(
            DnType::CountryName,
            DnValue::PrintableString("DE".try_into().unwrap()),
        );
    });
    assert_invalid_client(
        token_as(&server, &pki, Some(&reordered), "bank").await,
        "order",
    );
    // The escaped comma is part of the value: "Example Bank" plus an RDN "AG" is not it.
    let split = ca.issue_with_subject(&der_name(&[
        &[(C, PRINTABLE, "DE")],
        &[(O, UTF8, "Example Bank")],
        &[(O, UTF8, "AG")],
        &[(OU, UTF8, "Treasury")],
        &[(CN, UTF8, "Payments Client")],
    ]));
    assert_invalid_client(
        token_as(&server, &pki, Some(&split), "bank").await,
        "split value",
    );
    // A value holding the separators, which a string comparison would confuse with the DN.
    let smuggled = ca.issue_with_subject(&der_name(&[&[(
        CN,
        UTF8,
        "Payments Client,OU=Treasury,O=Example Bank\\, AG,C=DE",
    )]]));
    assert_invalid_client(
        token_as(&server, &pki, Some(&smuggled), "bank").await,
        "smuggled",
    );
    let missing_ou = bank("DE", "Example Bank, AG", "", "Payments Client");
    assert_invalid_client(
        token_as(&server, &pki, Some(&missing_ou), "bank").await,
        "other OU",
    );

    // Multi-valued RDNs are sets: either order in the certificate matches.
    for rdn in [
        [(CN, UTF8, "svc"), (UID, UTF8, "42")],
        [(UID, UTF8, "42"), (CN, UTF8, "svc")],
    ] {
        let id = ca.issue_with_subject(&der_name(&[&[(O, UTF8, "Acme")], &rdn]));
        assert_authenticated(
            token_as(&server, &pki, Some(&id), "multi").await,
            "multi",
            "set",
        );
    }
    // The same attributes as separate RDNs are another DN.
    let flat = ca.issue_with_subject(&der_name(&[
        &[(O, UTF8, "Acme")],
        &[(UID, UTF8, "42")],
        &[(CN, UTF8, "svc")],
    ]));
    assert_invalid_client(token_as(&server, &pki, Some(&flat), "multi").await, "flat");

    // Escapes: \+ \" and hex \2C.
    let escaped = ca.issue_with_subject(&der_name(&[&[(CN, UTF8, "a+b \"c\", d")]]));
    assert_authenticated(
        token_as(&server, &pki, Some(&escaped), "escaped").await,
        "escaped",
        "escapes",
    );
}

#[tokio::test]
async fn each_san_type_matches_only_its_own_kind_of_entry() {
    let pki = Pki::new("authz-san-server-ca");
    let ca = TestCa::new("authz-san-client-ca");
    let server = start_token_endpoint(
        &pki,
        json!([
            tls_client("dns", "tls_client_auth_san_dns", "Client.Example.COM"),
            tls_client(
                "uri",
                "tls_client_auth_san_uri",
                "spiffe://example.com/payments"
            ),
            tls_client("ip4", "tls_client_auth_san_ip", "192.0.2.7"),
            tls_client("ip6", "tls_client_auth_san_ip", "0:0:0:0:0:0:0:1"),
            tls_client("ip6b", "tls_client_auth_san_ip", "2001:DB8:0:0:0:0:0:A"),
            tls_client("email", "tls_client_auth_san_email", "ops@Example.com"),
        ]),
        authenticator(&ca),
    )
    .await;
    let with_san = |sans: Vec<SanType>| {
        ca.issue(move |p| {
            p.distinguished_name
                .push(DnType::CommonName, "client.example.com");
            p.subject_alt_names = sans;
        })
    };
    let ok = |r, id: &str| assert_authenticated(r, id, id);

    // dNSName: case-insensitive equality, one of several entries.
    let id = with_san(vec![dns("other.example"), dns("client.example.com")]);
    ok(token_as(&server, &pki, Some(&id), "dns").await, "dns");
    // A wildcard entry is not a match (this is not hostname verification).
    let id = with_san(vec![dns("*.example.com")]);
    assert_invalid_client(token_as(&server, &pki, Some(&id), "dns").await, "wildcard");
    // No fallback to the subject CN (which is client.example.com in all of these).
    let id = with_san(vec![]);
    assert_invalid_client(
        token_as(&server, &pki, Some(&id), "dns").await,
        "CN fallback",
    );
    // The same text in a SAN of another type does not count.
    let id = with_san(vec![SanType::URI("client.example.com".try_into().unwrap())]);
    assert_invalid_client(
        token_as(&server, &pki, Some(&id), "dns").await,
        "URI as DNS",
    );

    // URI: exact.
    let id = with_san(vec![SanType::URI(
        "spiffe://example.com/payments".try_into().unwrap(),
    )]);
    ok(token_as(&server, &pki, Some(&id), "uri").await, "uri");
    let id = with_san(vec![SanType::URI(
        "spiffe://example.com/Payments".try_into().unwrap(),
    )]);
    assert_invalid_client(token_as(&server, &pki, Some(&id), "uri").await, "URI case");

    // IP: binary comparison; RFC 5952 and long IPv6 forms are the same address.
    let id = with_san(vec![SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(
        192, 0, 2, 7,
    )))]);
    ok(token_as(&server, &pki, Some(&id), "ip4").await, "ip4");
    let id = with_san(vec![SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST))]);
    ok(token_as(&server, &pki, Some(&id), "ip6").await, "ip6");
    let id = with_san(vec![SanType::IpAddress("2001:db8::a".parse().unwrap())]);
    ok(token_as(&server, &pki, Some(&id), "ip6b").await, "ip6b");
    let id = with_san(vec![SanType::IpAddress("::2".parse().unwrap())]);
    assert_invalid_client(
        token_as(&server, &pki, Some(&id), "ip6").await,
        "other IPv6",
    );
    let id = with_san(vec![SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST))]);
    assert_invalid_client(
        token_as(&server, &pki, Some(&id), "ip6").await,
        "IPv4 for IPv6",
    );
    let id = with_san(vec![SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(
        192, 0, 2, 8,
    )))]);
    assert_invalid_client(token_as(&server, &pki, Some(&id), "ip4").await, "other IP");
    // ::ffff:192.0.2.7 is another iPAddress value than 192.0.2.7.
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
    let id = with_san(vec![SanType::IpAddress(mapped)]);
    assert_invalid_client(
        token_as(&server, &pki, Some(&id), "ip4").await,
        "mapped IPv4",
    );

    // rfc822Name: domain case-insensitive, local part exact.
    let id = with_san(vec![SanType::Rfc822Name(
        "ops@example.COM".try_into().unwrap(),
    )]);
    ok(token_as(&server, &pki, Some(&id), "email").await, "email");
    let id = with_san(vec![SanType::Rfc822Name(
        "OPS@example.com".try_into().unwrap(),
    )]);
    assert_invalid_client(
        token_as(&server, &pki, Some(&id), "email").await,
        "local part case",
    );
    // No fallback to the DN's emailAddress.
    let id = ca.issue(|p| {
        p.distinguished_name.push(
            DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
            DnValue::Ia5String("ops@example.com".try_into().unwrap()),
        );
    });
    assert_invalid_client(
        token_as(&server, &pki, Some(&id), "email").await,
        "emailAddress",
    );
}

#[tokio::test]
async fn tls_client_auth_chains_are_validated_with_dates_and_trust_anchors() {
    let pki = Pki::new("authz-chain-server-ca");
    let ca = TestCa::new("authz-chain-client-ca");
    let server = start_token_endpoint(
        &pki,
        json!([tls_client("c", "tls_client_auth_san_dns", "c.example")]),
        authenticator(&ca),
    )
    .await;
    let issue = |customize: &dyn Fn(&mut rcgen::CertificateParams)| {
        ca.issue(|p| {
            p.subject_alt_names = vec![dns("c.example")];
            customize(p);
        })
    };
    let good = issue(&|_| {});
    assert_authenticated(
        token_as(&server, &pki, Some(&good), "c").await,
        "c",
        "valid chain",
    );

    // The subject matches in all of these; the chain does not hold.
    let expired = issue(&|p| {
        p.not_before = date_time_ymd(2000, 1, 1);
        p.not_after = date_time_ymd(2001, 1, 1);
    });
    assert_invalid_client(
        token_as(&server, &pki, Some(&expired), "c").await,
        "expired",
    );
    let year = this_year();
    let not_yet = issue(&move |p| {
        p.not_before = date_time_ymd(year + 5, 1, 1);
        p.not_after = date_time_ymd(year + 6, 1, 1);
    });
    assert_invalid_client(
        token_as(&server, &pki, Some(&not_yet), "c").await,
        "not yet valid",
    );
    let stranger = TestCa::new("authz-chain-other-ca").issue(|p| {
        p.subject_alt_names = vec![dns("c.example")];
    });
    assert_invalid_client(
        token_as(&server, &pki, Some(&stranger), "c").await,
        "untrusted CA",
    );
    let server_only = issue(&|p| {
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    });
    assert_invalid_client(
        token_as(&server, &pki, Some(&server_only), "c").await,
        "serverAuth EKU",
    );
    let self_signed = {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["c.example".to_owned()]).unwrap();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.self_signed(&key).unwrap();
        ClientIdentity {
            chain: vec![cert.der().clone()],
            key_pkcs8: key.serialize_der(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    };
    assert_invalid_client(
        token_as(&server, &pki, Some(&self_signed), "c").await,
        "self-signed",
    );

    // Without trust anchors, no tls_client_auth client authenticates.
    let no_roots = start_token_endpoint(
        &pki,
        json!([tls_client("c", "tls_client_auth_san_dns", "c.example")]),
        ClientAuthenticator::builder().build().unwrap(),
    )
    .await;
    assert_invalid_client(
        token_as(&no_roots, &pki, Some(&good), "c").await,
        "no CA configured",
    );
}

#[tokio::test]
async fn self_signed_clients_match_the_registered_certificate_or_key() {
    let pki = Pki::new("authz-self-server-ca");
    let a = Pki::self_signed_client("client-a");
    let twin = Pki::self_signed_client("client-a"); // same subject, another key
    let key_only = Pki::self_signed_client("key-only");
    let key_jwk = ec_jwk(&key_only);
    let jwks = json!({"keys": [
        {"kty": "EC", "crv": "P-256", "x5c": [STANDARD.encode(a.leaf_der())],
         // The key of another certificate: with x5c, only the certificate counts.
         "x": key_jwk["x"], "y": key_jwk["y"]},
    ]});
    let server = start_token_endpoint(
        &pki,
        json!([
            {"client_id": "a", "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": jwks},
            {"client_id": "k", "token_endpoint_auth_method": "self_signed_tls_client_auth",
             "jwks": {"keys": [key_jwk]}},
            tls_client("pki", "tls_client_auth_subject_dn", "CN=client-a"),
        ]),
        ClientAuthenticator::builder().build().unwrap(),
    )
    .await;
    assert_authenticated(token_as(&server, &pki, Some(&a), "a").await, "a", "x5c[0]");
    assert_invalid_client(
        token_as(&server, &pki, Some(&twin), "a").await,
        "same subject",
    );
    assert_invalid_client(
        token_as(&server, &pki, Some(&key_only), "a").await,
        "key beside x5c",
    );
    // A JWK without x5c: the certificate's public key is compared.
    assert_authenticated(
        token_as(&server, &pki, Some(&key_only), "k").await,
        "k",
        "JWK key",
    );
    assert_invalid_client(token_as(&server, &pki, Some(&a), "k").await, "other key");
    // A self-signed certificate never authenticates a tls_client_auth client.
    assert_invalid_client(
        token_as(&server, &pki, Some(&a), "pki").await,
        "wrong method",
    );
}

/// SSRF: a `jwks_uri` is fetched on a client's behalf, so by default one on loopback is never
/// fetched, whether written as an IP literal (IPv4-mapped IPv6 included) or as a name that
/// resolves there; relaxed explicitly, the same registration works.
#[tokio::test]
async fn a_jwks_uri_on_a_loopback_address_is_never_fetched_unless_allowed() {
    let pki = Pki::new("authz-ssrf-server-ca");
    let client = Pki::self_signed_client("ssrf");
    let x5c = json!({"kty": "EC", "x5c": [STANDARD.encode(client.leaf_der())]});
    let jwks_server = JwksServer::start(json!({"keys": [x5c]})).await;
    let port = jwks_server.addr().port();
    let registrations = json!([
        {"client_id": "literal", "token_endpoint_auth_method": "self_signed_tls_client_auth",
         "jwks_uri": jwks_server.url(JWKS_PATH)},
        {"client_id": "named", "token_endpoint_auth_method": "self_signed_tls_client_auth",
         "jwks_uri": format!("https://localhost:{port}{JWKS_PATH}")},
        {"client_id": "mapped", "token_endpoint_auth_method": "self_signed_tls_client_auth",
         "jwks_uri": format!("https://[::ffff:127.0.0.1]:{port}{JWKS_PATH}")},
    ]);
    let guarded = ClientAuthenticator::builder()
        .jwks_trust_root(jwks_server.ca_der())
        .jwks_min_refresh_interval(Duration::ZERO)
        .build()
        .unwrap();
    let server = start_token_endpoint(&pki, registrations.clone(), guarded).await;
    // An IP literal is a wrong registration; a name is refused by the resolver, which looks
    // like an endpoint that cannot be reached (it may resolve elsewhere later).
    for id in ["literal", "mapped"] {
        assert_invalid_client(token_as(&server, &pki, Some(&client), id).await, id);
    }
    let (status, body) = token_as(&server, &pki, Some(&client), "named").await;
    assert_eq!(
        (status, &body["error"]),
        (503, &json!("temporarily_unavailable"))
    );
    assert_eq!(
        jwks_server.hits(JWKS_PATH),
        0,
        "nothing reached the loopback server"
    );

    let relaxed = ClientAuthenticator::builder()
        .jwks_trust_root(jwks_server.ca_der())
        .allow_private_jwks_uri()
        .build()
        .unwrap();
    let server = start_token_endpoint(&pki, registrations, relaxed).await;
    assert_authenticated(
        token_as(&server, &pki, Some(&client), "literal").await,
        "literal",
        "allowed explicitly",
    );
    assert_eq!(jwks_server.hits(JWKS_PATH), 1);
}

#[tokio::test]
async fn self_signed_keys_rotate_through_jwks_uri() {
    let pki = Pki::new("authz-rotate-server-ca");
    let old = Pki::self_signed_client("rotating");
    let new = Pki::self_signed_client("rotating");
    let x5c = |id: &ClientIdentity| json!({"kty": "EC", "x5c": [STANDARD.encode(id.leaf_der())]});
    let jwks_server = JwksServer::start(json!({"keys": [x5c(&old)]})).await;
    let authenticator = ClientAuthenticator::builder()
        .jwks_trust_root(jwks_server.ca_der())
        .jwks_only_trust_roots()
        // The test's jwks_uri is on 127.0.0.1.
        .allow_private_jwks_uri()
        // Every miss may refetch, so that the test needs no waiting.
        .jwks_min_refresh_interval(Duration::ZERO)
        .build()
        .unwrap();
    let server = start_token_endpoint(
        &pki,
        json!([{"client_id": "r", "token_endpoint_auth_method": "self_signed_tls_client_auth",
                "jwks_uri": jwks_server.url(JWKS_PATH)}]),
        authenticator,
    )
    .await;

    assert_authenticated(
        token_as(&server, &pki, Some(&old), "r").await,
        "r",
        "old key",
    );
    assert_eq!(jwks_server.hits(JWKS_PATH), 1);
    // Cached: no fetch for a match.
    assert_authenticated(
        token_as(&server, &pki, Some(&old), "r").await,
        "r",
        "cached",
    );
    assert_eq!(jwks_server.hits(JWKS_PATH), 1);

    // The client publishes its new certificate next to the old one, then drops the old one.
    jwks_server.set_jwks(json!({"keys": [x5c(&old), x5c(&new)]}));
    assert_authenticated(
        token_as(&server, &pki, Some(&new), "r").await,
        "r",
        "new key",
    );
    assert_eq!(jwks_server.hits(JWKS_PATH), 2, "a miss refetches");
    jwks_server.set_jwks(json!({"keys": [x5c(&new)]}));
    assert_invalid_client(
        token_as(
            &server,
            &pki,
            Some(&Pki::self_signed_client("rotating")),
            "r",
        )
        .await,
        "never registered",
    );
    assert_eq!(jwks_server.hits(JWKS_PATH), 3);
    assert_invalid_client(
        token_as(&server, &pki, Some(&old), "r").await,
        "removed key",
    );

    // The endpoint goes down: the cached keys keep working, unknown certificates do not.
    jwks_server.set_status(JWKS_PATH, reqwest::StatusCode::INTERNAL_SERVER_ERROR);
    assert_authenticated(
        token_as(&server, &pki, Some(&new), "r").await,
        "r",
        "cached on outage",
    );
    assert_invalid_client(
        token_as(&server, &pki, Some(&old), "r").await,
        "outage, old key",
    );
}

#[tokio::test]
async fn rate_limited_refetch_keeps_unknown_certificates_out_without_hammering() {
    let pki = Pki::new("authz-ratelimit-server-ca");
    let known = Pki::self_signed_client("known");
    let jwks_server = JwksServer::start(
        json!({"keys": [{"kty": "EC", "x5c": [STANDARD.encode(known.leaf_der())]}]}),
    )
    .await;
    let authenticator = ClientAuthenticator::builder()
        .jwks_trust_root(jwks_server.ca_der())
        .jwks_only_trust_roots()
        .allow_private_jwks_uri()
        .jwks_min_refresh_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let server = start_token_endpoint(
        &pki,
        json!([{"client_id": "r", "token_endpoint_auth_method": "self_signed_tls_client_auth",
                "jwks_uri": jwks_server.url(JWKS_PATH)}]),
        authenticator,
    )
    .await;
    assert_authenticated(
        token_as(&server, &pki, Some(&known), "r").await,
        "r",
        "known",
    );
    for i in 0..5 {
        let stranger = Pki::self_signed_client("stranger");
        assert_invalid_client(
            token_as(&server, &pki, Some(&stranger), "r").await,
            &format!("{i}"),
        );
    }
    assert_eq!(
        jwks_server.hits(JWKS_PATH),
        1,
        "misses within the interval do not refetch"
    );
}

#[tokio::test]
async fn malformed_requests_and_missing_credentials() {
    let pki = Pki::new("authz-requests-server-ca");
    let ca = TestCa::new("authz-requests-client-ca");
    let server = start_token_endpoint(
        &pki,
        json!([
            tls_client("c", "tls_client_auth_san_dns", "c.example"),
            {"client_id": "secret", "token_endpoint_auth_method": "client_secret_basic"},
            {"client_id": "jwt", "token_endpoint_auth_method": "private_key_jwt",
             "tls_client_auth_san_dns": "c.example"},
        ]),
        authenticator(&ca),
    )
    .await;
    let c = ca.issue(|p| p.subject_alt_names = vec![dns("c.example")]);
    let client = https_client(&pki.ca_der(), Some(&c));
    let url = server.url("/token");
    let invalid_request = |(status, body, headers): (u16, Value, reqwest::header::HeaderMap),
                           expected: u16,
                           what: &str| {
        assert_eq!(status, expected, "{what}: {body}");
        assert_eq!(body["error"], "invalid_request", "{what}");
        assert_eq!(headers["content-type"], "application/json", "{what}");
        assert_eq!(headers["cache-control"], "no-store", "{what}");
    };

    // The one that works, for reference: client_id in the body, or in Basic.
    let (status, body, _) =
        post_form(&client, &url, "grant_type=client_credentials&client_id=c").await;
    assert_eq!(
        (status, body["grant_type"].as_str()),
        (200, Some("client_credentials"))
    );
    let basic = |creds: &str| format!("Basic {}", STANDARD.encode(creds));
    let response = client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", basic("c:"))
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Missing client_id, client registered for another method, no certificate: invalid_client.
    assert_invalid_client(
        token_as(&server, &pki, Some(&c), "").await,
        "empty client_id",
    );
    let (status, body, _) = post_form(&client, &url, "grant_type=client_credentials").await;
    assert_invalid_client((status, body), "no client_id");
    assert_invalid_client(
        token_as(&server, &pki, Some(&c), "secret").await,
        "client_secret_basic",
    );
    assert_invalid_client(
        token_as(&server, &pki, Some(&c), "jwt").await,
        "private_key_jwt",
    );
    assert_invalid_client(
        token_as(&server, &pki, Some(&c), "nobody").await,
        "unknown client",
    );
    assert_invalid_client(token_as(&server, &pki, None, "c").await, "no certificate");

    // Malformed: duplicate parameters (RFC 6749 §3.2), wrong content type, disagreeing
    // client ids, a second authentication method, bad encoding.
    invalid_request(
        post_form(
            &client,
            &url,
            "grant_type=client_credentials&client_id=c&client_id=c",
        )
        .await,
        400,
        "duplicate client_id",
    );
    invalid_request(
        post_form(
            &client,
            &url,
            "grant_type=client_credentials&grant_type=x&client_id=c",
        )
        .await,
        400,
        "duplicate grant_type",
    );
    invalid_request(
        post_form(
            &client,
            &url,
            "grant_type=client_credentials&client_id=c&client_secret=s",
        )
        .await,
        400,
        "client secret too",
    );
    invalid_request(
        post_form(&client, &url, "client_id=%zz").await,
        400,
        "bad escape",
    );
    let send = |content_type: &'static str, authorization: Option<String>, body: &'static str| {
        let mut request = client
            .post(&url)
            .header("content-type", content_type)
            .body(body);
        if let Some(a) = authorization {
            request = request.header("authorization", a);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            (status, response.json::<Value>().await.unwrap(), headers)
        }
    };
    invalid_request(
        send("application/json", None, r#"{"client_id":"c"}"#).await,
        400,
        "JSON",
    );
    invalid_request(
        send("text/plain", None, "client_id=c").await,
        400,
        "text/plain",
    );
    invalid_request(
        send(
            "application/x-www-form-urlencoded",
            Some(basic("other:")),
            "client_id=c",
        )
        .await,
        400,
        "Basic and body disagree",
    );
    invalid_request(
        send(
            "application/x-www-form-urlencoded",
            Some(basic("c:secret")),
            "client_id=c",
        )
        .await,
        400,
        "Basic with a secret",
    );
    // Basic for an unknown client: invalid_client with a Basic challenge (RFC 6749 §5.2).
    let (status, body, headers) = send(
        "application/x-www-form-urlencoded",
        Some(basic("nobody:")),
        "grant_type=x",
    )
    .await;
    assert_invalid_client((status, body), "Basic unknown client");
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic "));

    // Over the size limit (4 KiB here): 413.
    let big = format!("client_id=c&pad={}", "x".repeat(8192));
    let response = client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );

    // Not a POST.
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
}
