//! Writes the seed corpora of the fuzz targets into `fuzz/corpus/<target>/`: the inputs of
//! certbound's own tests, and real artefacts made here with fixed keys (signed JWTs and DPoP
//! proofs, an rcgen certificate in every forwarded format).
//!
//! Run from `fuzz/`: `cargo run --example seeds`. The keys below are throwaway test keys; ECDSA
//! signatures are randomised, so JWT and ES256 proof seeds differ from run to run (EdDSA ones
//! and everything else are the same every time).

use std::fs;
use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use certbound::DpopKey;
use certbound_fuzz::{AUDIENCE, DPOP_HTU, DPOP_METHOD, DPOP_NOW, ISSUER, JWT_KEY_ID};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The private half of `certbound_fuzz::JWT_KEY_X` / `JWT_KEY_Y`.
const JWT_KEY: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgIhYJRZa6sUnedcfP\n\
AtJNXi2vr9vp7ObMY5IvnW1LrZ+hRANCAAQKjLDBg9oB6mKwraBTU/JCMWC+0vy4\n\
vlFphkCvc/RloaI1J2mjh9ULahrxsciYIheJVxBlxsJWOSj+Ot7HLDZn\n\
-----END PRIVATE KEY-----\n\
";

const DPOP_ES256: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgZ338LI/N7gNaQGUO\n\
4gZW080D3s9x8mTB+ZzvC/COVluhRANCAAR+ssKx2/nbhobXHU9AVKY6CVS8+Kl/\n\
DLY5+y2+rRB0280T3bh1HTB/viXPv/2BlhnyeYM3hiJiiPxseLKCHPxL\n\
-----END PRIVATE KEY-----\n\
";

const DPOP_ED25519: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MC4CAQAwBQYDK2VwBCIEIHw4WuGko5gjsUTYlwfbRZ7+D3TqXXyvA6hp0eD/DuH2\n\
-----END PRIVATE KEY-----\n\
";

const DPOP_RSA: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDc7JTBNoHNX+F/\n\
BjoAgAb+kerSUva8A4WZ4DuHVFMPeJepqTeL8LZRWvrP3hIl6QXMEOUzTs5kwUx+\n\
bQRuV3+OWl5aYHWPZklPVTvst7BNVz+SViUdxtr86TPsRpPEeJqY3qhhBW5qGeVX\n\
3JN3XXnGHMTOGO7C04n4ZIh3BATW6Z4i7hVBMb1qf/Q1dhto7VmWvGNnPXrionYf\n\
WnsAuOMjQrmPENtMGS2lWnryWAfL74ztlMBW3eKKpFP01aFgSkiUiXlxY1hIXk4q\n\
P9VwJUtSIIbEft7OhAcs31PWaft9Z0J+dZhbrgSUl1/vePT7iHHOeKjg+Q0cN1du\n\
jOa/r5M1AgMBAAECggEAMCJfusUsfNnCINHzez5px7d1KUQoPAisaD1h2vd1bW6B\n\
5NZYouXcY1dmRDoHTDk8KR0ZQxeNgohXKUiJaZ0ozpRD8H8Jvie0G1PfzZCsGf3D\n\
fRfF2HoGJoqM5JLwCSOZ02rX1uO/DeD8hisp+hzktlR4UMs/4jUC35rP3NaEU2qF\n\
htn3rnmtkez4lAXAiYbSmHxVPYHunl/Yt38+433hfd3IiL+qksWQyMHJ3rBjXC3b\n\
S7lrfLrD/XAuiH7jTW+Y1wVfX8ddJtm9Gsg2GmKDlu2xlPyVC2VhyQr1N9wssMl+\n\
SW71Qj9nWhuVffFNxepJ+QSVlz/wkTjxi9ZiRJG/oQKBgQDvVb/j5eTzb3mh5EAY\n\
MbykepQGK9fpJK5QB5PF+OdFmO/TntAn5c65thzqjAepOCSSsIJF/e4amIpv7O/o\n\
D6CR+qionziq5AKJyZDaPFe/KHp3gnirkeqhG+FjgHDWGAo+Xt0YrODHxSU5LLCV\n\
rouVKLK5qdlpR1GZu1Y6EwM5SQKBgQDsTqaSl60r4HsdwE65z8XMTcjrDHmX1QmE\n\
kcw44YKIjPjogrlxZa3EMb6jMrGBOQkJhWaKX2wVdu4FON7KCVhwVBjRKK0Sbst2\n\
RajjPUIQl5AR+IhcJlem41CeupkzgZ2A2lDcvt8jJUU63fvZkZSujE4JQBiiG4tQ\n\
biL4ItbWjQKBgH2Lk68uhx0TmtBLdTu7y2LUUhWypf3MmgutDd1JpbeidBukMTjc\n\
mcZdO2nlrpcbtkOkh5HDlEUrQ2NW/LnUiLxKqnJZo1YxaQtySqPQB49k4mkSbc5C\n\
Krv8bgzN8WK9FZKGHKC2/uqMBeyp/q9l8h56TNaLvFo3aRylYqPwGT7RAoGAfFMk\n\
8Bs80MjZ/V0gDkJyHnsOKhv2HRvIVice+w4qTw1cJ3gfeLm2InLJibMyEHqhdpDo\n\
0gRCKUjZEYZKMKGaFf8oz2JHLFt+UEt1/5hLGc+jzNClbVX+557Q27HwyFh5NUGn\n\
KXyCiUsikUYZKu6c+vh2VgeS7jbvpPFNFJ+/yEECgYEAzVz12cun7d3xhYfzx0r1\n\
O0eA0TY6Ds/UdzJd4hDiukuG7xgeh2YYMH2XWewiHYnR6l5SL25U3mQZ0x/oaxMH\n\
9pIhBEVVzsexfQDGLdpvsDtaHzKJ2QEZbmqrZ8NiMBUxxr7J8I37Xb6R0OVtYcwa\n\
DBt2eWdqnwPpVd9ntriim6Y=\n\
-----END PRIVATE KEY-----\n\
";

/// Far beyond any fuzzing run: the JWT seeds must stay valid for the validator's real clock.
const FAR_EXP: u64 = 4_102_444_800;
const THUMBPRINT: &str = "A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0";

struct Corpus(&'static str);

impl Corpus {
    fn clear(target: &'static str) -> Self {
        let dir = Path::new("corpus").join(target);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(target)
    }

    fn add(&self, name: &str, bytes: impl AsRef<[u8]>) {
        let bytes = bytes.as_ref();
        assert!(bytes.len() < 16 * 1024, "{}/{name} is too big", self.0);
        fs::write(Path::new("corpus").join(self.0).join(name), bytes).unwrap();
    }
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn sign_jwt(header: &Value, claims: &Value) -> String {
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pem_der(JWT_KEY)).unwrap();
    let message = format!("{}.{}", b64(header), b64(claims));
    let signature = key.sign(&SystemRandom::new(), message.as_bytes()).unwrap();
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

fn claims() -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "exp": FAR_EXP, "iat": 1_700_000_000,
        "sub": "alice", "client_id": "payments", "scope": "read write",
        "cnf": {"x5t#S256": THUMBPRINT}})
}

fn main() {
    jwts();
    claims_seeds();
    dpop();
    forwarded();
    dns();
    forms();
    introspection();
    jwks();
    registrations();
    authorization_headers();
}

fn authorization_headers() {
    let c = Corpus::clear("authorization_header");
    // Flags: bit 0 DPoP on, bit 1 query token, bits 2.. max_len / 4 (0xFC: 252).
    let seeds: &[(&str, u8, &[u8])] = &[
        ("bearer", 0xFC, b"Bearer abc.def"),
        ("bearer_lower", 0xFC, b"bearer abc.def"),
        ("bearer_upper_padding", 0xFC, b"BEARER   abc=="),
        ("dpop_on", 0xFD, b"DPoP abc.def-_~+/"),
        ("dpop_off", 0xFC, b"dPoP abc"),
        ("dpop_empty", 0xFD, b"DPoP "),
        ("scheme_only", 0xFC, b"Bearer"),
        ("two_tokens", 0xFC, b"Bearer a b"),
        ("inner_equals", 0xFC, b"Bearer a=b"),
        ("only_padding", 0xFC, b"Bearer ===="),
        ("tab", 0xFC, b"Bearer a\tb"),
        ("obs_text", 0xFC, b"Bearer \xff"),
        ("basic", 0xFC, b"Basic dXNlcjpwYXNz"),
        ("two_headers", 0xFC, b"Bearer a\nBearer a"),
        ("query_token", 0xFE, b"Bearer abc"),
        ("query_only", 0xFE, b""),
        ("too_long", 0x04, b"Bearer abcde"),
        ("just_fits", 0x04, b"Bearer abcd"),
        ("bearerx", 0xFC, b"Bearerx abc"),
    ];
    for (name, flags, value) in seeds {
        c.add(name, [&[*flags][..], value].concat());
    }
    let jwt = sign_jwt(
        &json!({"alg": "ES256", "typ": "at+jwt"}),
        &json!({"sub": "a"}),
    );
    c.add(
        "jwt",
        [&[0xFD][..], format!("DPoP {jwt}").as_bytes()].concat(),
    );
}

fn jwts() {
    let c = Corpus::clear("jose_header");
    let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": JWT_KEY_ID});
    c.add("valid", sign_jwt(&header, &claims()));
    c.add(
        "valid_no_kid",
        sign_jwt(&json!({"alg": "ES256"}), &claims()),
    );
    c.add(
        "valid_application_typ",
        sign_jwt(
            &json!({"alg": "ES256", "typ": "application/at+jwt", "kid": JWT_KEY_ID}),
            &claims(),
        ),
    );
    c.add(
        "unknown_kid",
        sign_jwt(&json!({"alg": "ES256", "kid": "other"}), &claims()),
    );
    c.add(
        "expired",
        sign_jwt(&header, &json!({"iss": ISSUER, "aud": AUDIENCE, "exp": 1})),
    );
    c.add(
        "wrong_audience",
        sign_jwt(&header, &json!({"iss": ISSUER, "aud": "x", "exp": FAR_EXP})),
    );
    c.add(
        "no_exp",
        sign_jwt(&header, &json!({"iss": ISSUER, "aud": AUDIENCE})),
    );
    c.add(
        "bad_cnf",
        sign_jwt(
            &header,
            &json!({"iss": ISSUER, "aud": AUDIENCE,
        "exp": FAR_EXP, "cnf": {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}}),
        ),
    );
    // The escaped and the oversized header of the JOSE header tests.
    c.add(
        "escaped_header",
        sign_jwt(
            &json!({"alg": "ES\u{32}56", "kid": "fuzz\u{2d}es256"}),
            &claims(),
        ),
    );
    let raw = r#"{"alg":"ES\u0032\u0035\u0036","kid":"fuzz-es256"}"#;
    let message = format!("{}.{}", URL_SAFE_NO_PAD.encode(raw), b64(&claims()));
    c.add("escaped_raw_header", format!("{message}.AAAA"));
    let big = json!({"alg": "ES256", "kid": JWT_KEY_ID, "x": "p".repeat(1100)});
    c.add("oversized_header", sign_jwt(&big, &claims()));
    let unsigned = format!("{}.{}", b64(&json!({"alg": "none"})), b64(&claims()));
    c.add("alg_none", format!("{unsigned}."));
    let hs = format!("{}.{}", b64(&json!({"alg": "HS256"})), b64(&claims()));
    c.add("hs256", format!("{hs}.c2lnbmF0dXJl"));
    c.add(
        "four_segments",
        format!("{}.x", sign_jwt(&header, &claims())),
    );
    c.add("garbage", "not.a.jwt");
    c.add(
        "header_not_json",
        format!("{}.e30.AA", URL_SAFE_NO_PAD.encode("[1,2")),
    );
}

fn claims_seeds() {
    let c = Corpus::clear("jwt_claims");
    let seeds = [
        ("full", claims()),
        (
            "jkt",
            json!({"sub": "a", "cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}),
        ),
        (
            "both",
            json!({"cnf": {"x5t#S256": THUMBPRINT, "jkt": THUMBPRINT}}),
        ),
        (
            "non_canonical",
            json!({"cnf": {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}}),
        ),
        (
            "padded",
            json!({"cnf": {"x5t#S256": format!("{THUMBPRINT}=")}}),
        ),
        (
            "standard_alphabet",
            json!({"cnf": {"x5t#S256": "A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v+"}}),
        ),
        ("cnf_string", json!({"cnf": THUMBPRINT})),
        ("x5t_number", json!({"cnf": {"x5t#S256": 1}})),
        ("scp_array", json!({"scp": ["read", "write"], "azp": "web"})),
        (
            "scp_string",
            json!({"scp": "read  write", "scope": null, "sub": null}),
        ),
        ("scope_number", json!({"scope": 3})),
        ("client_id_number", json!({"client_id": 3})),
        ("empty", json!({})),
    ];
    for (name, value) in seeds {
        c.add(name, value.to_string());
    }
}

fn dpop() {
    let c = Corpus::clear("dpop_proof");
    for (name, pem) in [
        ("es256", DPOP_ES256),
        ("ed25519", DPOP_ED25519),
        ("ps256", DPOP_RSA),
    ] {
        let key = DpopKey::from_pkcs8_pem(pem.as_bytes()).unwrap();
        let proof = |url: &str| {
            key.proof(DPOP_METHOD, url)
                .issued_at(DPOP_NOW)
                .jti("seed-jti")
        };
        c.add(&format!("{name}_valid"), proof(DPOP_HTU).sign().unwrap());
        if name == "ps256" {
            continue;
        }
        c.add(
            &format!("{name}_nonce"),
            proof(DPOP_HTU).nonce("n-1").sign().unwrap(),
        );
        c.add(
            &format!("{name}_query"),
            proof("https://SERVER.example:443/token?x=1")
                .sign()
                .unwrap(),
        );
        c.add(
            &format!("{name}_ath"),
            proof(DPOP_HTU).access_token("tok").sign().unwrap(),
        );
        c.add(
            &format!("{name}_get"),
            key.proof("GET", DPOP_HTU)
                .issued_at(DPOP_NOW)
                .sign()
                .unwrap(),
        );
        c.add(
            &format!("{name}_old"),
            proof(DPOP_HTU).issued_at(DPOP_NOW - 61).sign().unwrap(),
        );
        c.add(
            &format!("{name}_ahead"),
            proof(DPOP_HTU).issued_at(DPOP_NOW + 15).sign().unwrap(),
        );
        c.add(
            &format!("{name}_other_htu"),
            proof("https://server.example/other").sign().unwrap(),
        );
        c.add(
            &format!("{name}_float_iat"),
            proof(DPOP_HTU)
                .claim("iat", json!(DPOP_NOW as f64 + 0.5))
                .sign()
                .unwrap(),
        );
        let valid = proof(DPOP_HTU).sign().unwrap();
        // Header variants, signed parts kept: the signature no longer matches.
        let (_, rest) = valid.split_once('.').unwrap();
        let jwk = serde_json::to_value(key.public_jwk()).unwrap();
        let mut private = jwk.clone();
        private["d"] = json!("AAAA");
        for (variant, header) in [
            (
                "private_jwk",
                json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private}),
            ),
            (
                "crit",
                json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk, "crit": ["x"]}),
            ),
            ("jwt_typ", json!({"typ": "JWT", "alg": "ES256", "jwk": jwk})),
            (
                "hs256",
                json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": jwk}),
            ),
        ] {
            c.add(
                &format!("{name}_{variant}"),
                format!("{}.{rest}", b64(&header)),
            );
        }
    }
}

fn certificate() -> (Vec<u8>, Vec<u8>) {
    use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::from_pem(DPOP_ED25519).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name.push(DnType::CommonName, "Fuzz CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::from_pem(JWT_KEY).unwrap();
    let mut params = CertificateParams::new(vec!["client.example".to_owned()]).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CountryName, "DE");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Example Bank AG");
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, "Payments");
    params
        .distinguished_name
        .push(DnType::CommonName, "client-42");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf = params.signed_by(&key, &issuer).unwrap();
    (leaf.der().to_vec(), ca_cert.der().to_vec())
}

fn escape(pem: &str) -> String {
    pem.bytes()
        .map(|b| match b {
            b'\n' => "%0A".to_owned(),
            b' ' => "%20".to_owned(),
            b'+' => "%2B".to_owned(),
            b'/' => "%2F".to_owned(),
            b'=' => "%3D".to_owned(),
            other => char::from(other).to_string(),
        })
        .collect()
}

fn pem_of(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

fn forwarded() {
    let (leaf, ca) = certificate();
    let (leaf_b64, ca_b64) = (STANDARD.encode(&leaf), STANDARD.encode(&ca));
    let (pem, ca_pem) = (pem_of(&leaf), pem_of(&ca));
    let hash: String = Sha256::digest(&leaf)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let truncated = STANDARD.encode(&leaf[..leaf.len() - 1]);
    let trailing = STANDARD.encode([&leaf[..], &[0]].concat());

    let c = Corpus::clear("forwarded_rfc9440");
    c.add("leaf", format!(":{leaf_b64}:"));
    c.add(
        "leaf_unpadded",
        format!(":{}:", leaf_b64.trim_end_matches('=')),
    );
    c.add("chain", format!(":{leaf_b64}:\n:{ca_b64}:, :{ca_b64}:"));
    c.add("chain_empty_item", format!(":{leaf_b64}:\n:{ca_b64}:,"));
    c.add("parameter", format!(":{leaf_b64}:;a=1"));
    c.add("truncated", format!(":{truncated}:"));
    c.add("trailing_byte", format!(":{trailing}:"));
    c.add("empty", "::");

    let c = Corpus::clear("forwarded_xfcc");
    let cert = escape(&pem);
    c.add("cert_and_hash", format!("By=spiffe://proxy;Hash={hash};Cert=\"{cert}\";Subject=\"CN=client-42,O=Example\";URI=spiffe://client"));
    c.add("hash_only", format!("Hash={hash}"));
    c.add("cert_only", format!("Cert={cert}"));
    c.add(
        "two_elements",
        format!(
            "Hash={};Cert=\"{}\",Hash={hash}",
            "0".repeat(64),
            escape(&ca_pem)
        ),
    );
    c.add(
        "hash_mismatch",
        format!("Hash={};Cert=\"{cert}\"", "a".repeat(64)),
    );
    c.add("twice", format!("Hash={hash};Hash={hash}"));
    c.add("no_cert", "By=spiffe://proxy;URI=spiffe://client");
    c.add(
        "quoted_escape",
        format!("Hash=\"{}\\{}\"", &hash[..10], &hash[10..]),
    );
    c.add("empty_element", format!("Hash={hash}, "));

    let c = Corpus::clear("forwarded_nginx");
    c.add("leaf", escape(&pem));
    c.add("leaf_literal_plus", escape(&pem).replace("%2B", "+"));
    c.add("two_blocks", escape(&format!("{pem}{ca_pem}")));
    c.add("bad_escape", format!("{}%G0", escape(&pem)));
    c.add("truncated", escape(&pem_of(&leaf[..leaf.len() - 1])));

    let c = Corpus::clear("forwarded_haproxy");
    c.add("leaf", &leaf_b64);
    c.add("leaf_spaces", format!("  {leaf_b64} "));
    c.add("unpadded", leaf_b64.trim_end_matches('='));
    c.add("truncated", &truncated);
    c.add("trailing_byte", &trailing);
    c.add("urlsafe", URL_SAFE_NO_PAD.encode(&leaf));

    let c = Corpus::clear("forwarded_apache");
    c.add("leaf", pem.replace('\n', " "));
    c.add("leaf_newlines", &pem);
    c.add("null", "(null)");
    c.add(
        "key_block",
        "-----BEGIN PRIVATE KEY----- AAAA -----END PRIVATE KEY-----",
    );
    c.add("two_blocks", format!("{pem}{ca_pem}").replace('\n', " "));
}

fn dns() {
    let c = Corpus::clear("dn");
    let seeds = [
        "CN=client-42,OU=Payments,O=Example Bank AG,C=DE",
        "cn=client-42,ou=Payments,o=Example Bank AG,c=DE",
        "2.5.4.3=client-42,OrganizationalUnitName=Payments,O=Example Bank AG,countryName=DE",
        "CN=CLIENT-42, OU=payments , O=example   bank ag,C=de",
        r#"CN=a\+b=c \"q\",O=Acme\, Inc."#,
        r"CN=a\2Bb\3Dc \22q\22,O=Acme\2c Inc.",
        r"CN=J\C3\BCrgen",
        "CN=JÜRGEN",
        r"UID=\ x\ ",
        r"1.3.6.1.4.1.99999.1=\ x\ ",
        "UID=42 + CN=svc,O=Acme",
        "OU=b+OU=a",
        "CN=#1303616263",
        "CN=#0c03414243",
        "CN=#1e06005a006f00eb",
        "1.3.6.1.4.1.99999.2=#04020102",
        "1.3.6.1.4.1.99999.2=#3003020101",
        "DC=example,DC=com,emailAddress=a@example.com,serialNumber=42,jurisdictionC=DE",
        "CN=",
        "CN=a\\",
        "CN=\"quoted\"",
        "CN=a;O=b",
        "01.2=x",
        "CN=#0403",
    ];
    for (i, dn) in seeds.iter().enumerate() {
        c.add(&format!("dn{i:02}"), dn);
    }
}

fn forms() {
    let c = Corpus::clear("token_form");
    let basic = |id: &str| format!("Basic {}", STANDARD.encode(format!("{id}:")));
    let seeds = [
        ("client_credentials", "grant_type=client_credentials&client_id=payments&scope=read+write".to_owned()),
        ("escapes", "grant_type=client_credentials&scope=a%20b%2Bc&redirect_uri=https%3A%2F%2Fc.example%2Fcb".to_owned()),
        ("duplicate", "scope=a&scope=b".to_owned()),
        ("duplicate_empty", "scope=&scope".to_owned()),
        ("empty_name", "=x".to_owned()),
        ("empty_segments", "&&a=1&&b=&".to_owned()),
        ("bad_escape", "a=%G1".to_owned()),
        ("not_utf8", "a=%ff".to_owned()),
        ("utf8", "name=J%C3%BCrgen".to_owned()),
        ("basic", format!("{}\ngrant_type=client_credentials", basic("payments"))),
        ("basic_escaped", format!("{}\ngrant_type=client_credentials", basic("a%3Ab+c"))),
        ("basic_secret", format!("Basic {}\na=1", STANDARD.encode("payments:secret"))),
        ("basic_no_colon", format!("Basic {}\na=1", STANDARD.encode("payments"))),
        ("bearer", "Bearer abc\na=1".to_owned()),
    ];
    for (name, body) in seeds {
        c.add(name, body);
    }
}

fn introspection() {
    let c = Corpus::clear("introspection_answer");
    let active = json!({"active": true, "iss": ISSUER, "aud": AUDIENCE, "exp": FAR_EXP,
        "nbf": 1_700_000_000, "sub": "alice", "scope": "read", "token_type": "Bearer",
        "cnf": {"x5t#S256": THUMBPRINT}});
    let with = |name: &str, value: Value| {
        let mut v = active.clone();
        if value.is_null() {
            v.as_object_mut().unwrap().remove(name);
        } else {
            v[name] = value;
        }
        v
    };
    let seeds = [
        ("active", active.clone()),
        ("inactive", json!({"active": false})),
        ("no_active", with("active", Value::Null)),
        ("active_string", with("active", json!("true"))),
        ("aud_array", with("aud", json!(["x", AUDIENCE]))),
        ("wrong_aud", with("aud", json!("x"))),
        ("no_iss", with("iss", Value::Null)),
        ("dpop_unbound", with("token_type", json!("DPoP"))),
        (
            "dpop_bound",
            with("cnf", json!({"jkt": THUMBPRINT}))
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert("token_type".into(), json!("DPoP"));
                    Value::Object(o)
                })
                .unwrap(),
        ),
        ("refresh", with("token_use", json!("refresh_token"))),
        ("expired", with("exp", json!(1))),
        ("float_exp", with("exp", json!(4.1e9))),
        ("huge_exp", with("exp", json!(1e300))),
        ("future_nbf", with("nbf", json!(FAR_EXP))),
        ("bad_cnf", with("cnf", json!("x"))),
        ("scope_number", with("scope", json!(1))),
    ];
    for (name, value) in seeds {
        c.add(name, value.to_string());
    }
    c.add("array", "[]");
}

fn jwks() {
    let c = Corpus::clear("jwks");
    c.add("fixed", certbound_fuzz::jwks_json());
    let rsa = DpopKey::from_pkcs8_pem(DPOP_RSA.as_bytes()).unwrap();
    let ed = DpopKey::from_pkcs8_pem(DPOP_ED25519.as_bytes()).unwrap();
    let es = DpopKey::from_pkcs8_pem(DPOP_ES256.as_bytes()).unwrap();
    let key = |k: &DpopKey, extra: Value| {
        let mut v = serde_json::to_value(k.public_jwk()).unwrap();
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    let seeds = [
        (
            "mixed",
            json!({"keys": [key(&rsa, json!({"kid": "r", "alg": "RS256"})),
            key(&ed, json!({"kid": "e"})), key(&es, json!({"use": "sig"}))]}),
        ),
        (
            "with_unusable",
            json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"},
            key(&es, json!({"use": "enc"})), key(&es, json!({"kid": "ok"})), {"kty": "XYZ"}, 3]}),
        ),
        (
            "only_oct",
            json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}]}),
        ),
        ("empty", json!({"keys": []})),
        ("no_keys", json!({"key": []})),
        (
            "bad_point",
            json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}]}),
        ),
        (
            "ps256",
            json!({"keys": [key(&rsa, json!({"alg": "PS256"}))]}),
        ),
    ];
    for (name, value) in seeds {
        c.add(name, value.to_string());
    }
}

fn registrations() {
    let c = Corpus::clear("client_registration");
    let jwks = json!({"keys": [{"kty": "EC", "x5c": ["AQID"]}]});
    let seeds = [
        (
            "tls_client_auth",
            json!([{"client_id": "payments", "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": "CN=client-42,OU=Payments,O=Example Bank AG,C=DE"}]),
        ),
        (
            "san_kinds",
            json!([
            {"client_id": "a", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": "a.example"},
            {"client_id": "b", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_uri": "https://b.example"},
            {"client_id": "c", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_ip": "192.0.2.1"},
            {"client_id": "d", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_email": "d@example.com"}]),
        ),
        (
            "self_signed",
            json!([{"client_id": "s", "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": jwks},
            {"client_id": "u", "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks_uri": "https://c.example/jwks"}]),
        ),
        (
            "duplicate",
            json!([{"client_id": "a", "token_endpoint_auth_method": "none"},
            {"client_id": "a", "token_endpoint_auth_method": "none"}]),
        ),
        (
            "none",
            json!([{"client_id": "a", "token_endpoint_auth_method": "none", "dpop_bound_access_tokens": true}]),
        ),
        (
            "two_subjects",
            json!([{"client_id": "c", "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_san_dns": "c.example", "tls_client_auth_san_uri": "https://c.example"}]),
        ),
        (
            "bad_dn",
            json!([{"client_id": "c", "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": "CN=c;O=x"}]),
        ),
        (
            "http_jwks_uri",
            json!([{"client_id": "c", "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "jwks_uri": "http://c.example/jwks"}]),
        ),
        (
            "secret_basic",
            json!([{"client_id": "c", "token_endpoint_auth_method": "client_secret_basic"}]),
        ),
        (
            "empty_id",
            json!([{"client_id": "", "token_endpoint_auth_method": "none"}]),
        ),
        ("empty", json!([])),
        ("object", json!({})),
    ];
    for (name, value) in seeds {
        c.add(name, value.to_string());
    }
}
