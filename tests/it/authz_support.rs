//! Support for the authorization-server tests: a CA that can also issue certificates whose
//! subject rcgen cannot express (multi-valued RDNs, repeated attribute types), intermediate CAs
//! and CRLs, and a token endpoint behind `MtlsClientAuthLayer`, served over real TLS.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::routing::post;
use axum::{Json, Router};
use certbound::authorization_server::{
    AuthenticatedClient, ClientAuthenticator, ClientRegistry, FormParameters, MtlsClientAuthLayer,
    StaticClients,
};
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertificateRevocationList,
    CertificateRevocationListParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
    SigningKey as _, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::CertificateDer;
use serde_json::{json, Value};

use crate::common::{any_certificate_tls, https_client, init, ClientIdentity, Pki, TestServer};

/// A CA of its own (rcgen, P-256), keeping its key to re-sign patched certificates and sign
/// CRLs.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    key: KeyPair,
    cert: rcgen::Certificate,
    /// What a client certificate it issues is sent with: this CA and those above it, when it
    /// is an intermediate (the root is never sent).
    chain_tail: Vec<CertificateDer<'static>>,
}

fn ca_params(name: &str, serial: u64) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(SerialNumber::from(serial));
    params
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        init();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("CA key");
        let copy = KeyPair::try_from(key.serialize_der().as_slice()).expect("CA key copy");
        let params = ca_params(name, 1);
        let cert = params.self_signed(&key).expect("self-sign CA");
        TestCa {
            issuer: Issuer::new(params, copy),
            key,
            cert,
            chain_tail: Vec::new(),
        }
    }

    /// An intermediate CA named `name`, with serial number `serial`, issued by this CA. The
    /// identities it issues carry it in their chain.
    pub fn intermediate(&self, name: &str, serial: u64) -> TestCa {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("CA key");
        let copy = KeyPair::try_from(key.serialize_der().as_slice()).expect("CA key copy");
        let params = ca_params(name, serial);
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign intermediate");
        let mut chain_tail = vec![cert.der().clone()];
        chain_tail.extend(self.chain_tail.iter().cloned());
        TestCa {
            issuer: Issuer::new(params, copy),
            key,
            cert,
            chain_tail,
        }
    }

    /// A client certificate with serial number `serial` and subject `CN=cn`.
    pub fn issue_serial(&self, serial: u64, cn: &str) -> ClientIdentity {
        let cn = cn.to_owned();
        self.issue(move |p| {
            p.serial_number = Some(SerialNumber::from(serial));
            p.distinguished_name.push(DnType::CommonName, cn);
        })
    }

    /// A current CRL (issued last year, next update next year) revoking `serials`.
    pub fn crl(&self, serials: &[u64]) -> CertificateRevocationList {
        let year = this_year();
        self.crl_between(serials, year - 1, year + 1)
    }

    /// A CRL past its nextUpdate (2000 to 2001) revoking `serials`.
    pub fn expired_crl(&self, serials: &[u64]) -> CertificateRevocationList {
        self.crl_between(serials, 2000, 2001)
    }

    /// A CRL issued on 1 January `this_update`, next update on 1 January `next_update`.
    fn crl_between(
        &self,
        serials: &[u64],
        this_update: i32,
        next_update: i32,
    ) -> CertificateRevocationList {
        let this_update = date_time_ymd(this_update, 1, 1);
        CertificateRevocationListParams {
            this_update,
            next_update: date_time_ymd(next_update, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|serial| RevokedCertParams {
                    serial_number: SerialNumber::from(*serial),
                    revocation_time: this_update,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer)
        .expect("sign CRL")
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A client certificate (clientAuth EKU, empty subject unless `customize` sets one).
    pub fn issue(&self, customize: impl FnOnce(&mut CertificateParams)) -> ClientIdentity {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("client key");
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        customize(&mut params);
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign client cert");
        let mut chain = vec![cert.der().clone()];
        chain.extend(self.chain_tail.iter().cloned());
        ClientIdentity {
            chain,
            key_pkcs8: key.serialize_der(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A client certificate whose subject is exactly `subject` (a DER `Name`), signed by this
    /// CA: issued by rcgen, then the subject replaced and the certificate signed again.
    pub fn issue_with_subject(&self, subject: &[u8]) -> ClientIdentity {
        let mut id = self.issue(|p| {
            p.distinguished_name.push(DnType::CommonName, "placeholder");
        });
        let cert = id.chain[0].as_ref();
        let (outer, _) = read_tlv(cert);
        let (tbs_tlv, rest) = split_tlv(outer);
        let (alg, _) = split_tlv(rest);
        let (tbs, _) = read_tlv(tbs_tlv);
        // TBSCertificate: [0] version, serial, signature, issuer, validity, subject, ...
        let mut fields = Vec::new();
        let mut cursor = tbs;
        while !cursor.is_empty() {
            let (field, rest) = split_tlv(cursor);
            fields.push(field.to_vec());
            cursor = rest;
        }
        fields[5] = subject.to_vec();
        let new_tbs = tlv(0x30, &fields.concat());
        let signature = self.key.sign(&new_tbs).expect("sign TBS");
        let mut bits = vec![0u8];
        bits.extend(signature);
        let der = tlv(0x30, &[new_tbs, alg.to_vec(), tlv(0x03, &bits)].concat());
        id.chain = vec![CertificateDer::from(der)];
        id
    }
}

/// DER tag-length-value.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// The content of the TLV at the start of `der`, and what follows it.
fn read_tlv(der: &[u8]) -> (&[u8], &[u8]) {
    let (header, len) = match der[1] {
        l if l < 0x80 => (2, l as usize),
        l => {
            let n = (l & 0x7f) as usize;
            (
                2 + n,
                der[2..2 + n]
                    .iter()
                    .fold(0, |acc, b| (acc << 8) | *b as usize),
            )
        }
    };
    (&der[header..header + len], &der[header + len..])
}

/// The whole TLV at the start of `der`, and what follows it.
fn split_tlv(der: &[u8]) -> (&[u8], &[u8]) {
    let (_, rest) = read_tlv(der);
    (&der[..der.len() - rest.len()], rest)
}

/// A DER `Name`: RDNs in certificate order, each a set of (OID arcs, string tag, value).
pub fn der_name(rdns: &[&[(&[u64], u8, &str)]]) -> Vec<u8> {
    let mut seq = Vec::new();
    for rdn in rdns {
        // DER orders the members of a SET OF by their encoding.
        let mut members: Vec<Vec<u8>> = rdn
            .iter()
            .map(|(arcs, tag, value)| {
                let mut atv = oid(arcs);
                atv.extend(tlv(*tag, value.as_bytes()));
                tlv(0x30, &atv)
            })
            .collect();
        members.sort();
        seq.extend(tlv(0x31, &members.concat()));
    }
    tlv(0x30, &seq)
}

fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut body = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for &arc in &arcs[2..] {
        let mut bytes = vec![(arc & 0x7f) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            bytes.push(0x80 | (rest & 0x7f) as u8);
            rest >>= 7;
        }
        bytes.reverse();
        body.extend(bytes);
    }
    tlv(0x06, &body)
}

pub const CN: &[u64] = &[2, 5, 4, 3];
pub const O: &[u64] = &[2, 5, 4, 10];
pub const OU: &[u64] = &[2, 5, 4, 11];
pub const C: &[u64] = &[2, 5, 4, 6];
pub const UID: &[u64] = &[0, 9, 2342, 19200300, 100, 1, 1];
pub const UTF8: u8 = 0x0c;
pub const PRINTABLE: u8 = 0x13;

/// A token endpoint: `POST /token` behind the layer, answering with what the layer found.
pub fn token_app(clients: impl ClientRegistry, authenticator: ClientAuthenticator) -> Router {
    Router::new()
        .route(
            "/token",
            post(
                |client: AuthenticatedClient, params: FormParameters| async move {
                    Json(json!({
                        "client_id": client.client_id(),
                        "method": client.auth_method().as_str(),
                        "x5t#S256": client.thumbprint().to_string(),
                        "grant_type": params.get("grant_type"),
                    }))
                },
            ),
        )
        .layer(MtlsClientAuthLayer::new(clients, authenticator).max_body_bytes(4096))
}

/// A token endpoint for `clients` served over TLS that accepts any client certificate, with
/// `authenticator`.
pub async fn start_token_endpoint(
    pki: &Pki,
    clients: Value,
    authenticator: ClientAuthenticator,
) -> TestServer {
    let clients = StaticClients::from_json(&clients.to_string()).expect("registrations");
    TestServer::start(any_certificate_tls(pki), token_app(clients, authenticator)).await
}

/// Status and JSON body of a token request with `body` as form.
pub async fn post_form(
    client: &reqwest::Client,
    url: &str,
    body: &str,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let response = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e:?}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.expect("JSON body");
    (status, body, headers)
}

/// Asks for a token as `client_id` presenting `identity`; the status and body.
pub async fn token_as(
    server: &TestServer,
    pki: &Pki,
    identity: Option<&ClientIdentity>,
    client_id: &str,
) -> (u16, Value) {
    let client = https_client(&pki.ca_der(), identity);
    let (status, body, headers) = post_form(
        &client,
        &server.url("/token"),
        &format!("grant_type=client_credentials&client_id={client_id}"),
    )
    .await;
    assert_eq!(headers["content-type"], "application/json");
    if status != 200 {
        assert_eq!(headers["cache-control"], "no-store");
    }
    (status, body)
}

/// Asserts an RFC 6749 §5.2 `invalid_client` with the one fixed description.
pub fn assert_invalid_client((status, body): (u16, Value), what: &str) {
    assert_eq!(status, 401, "{what}: {body}");
    assert_eq!(
        body,
        json!({"error": "invalid_client", "error_description": "client authentication failed"}),
        "{what}"
    );
}

/// Asserts success as `client_id`.
pub fn assert_authenticated((status, body): (u16, Value), client_id: &str, what: &str) {
    assert_eq!(status, 200, "{what}: {body}");
    assert_eq!(body["client_id"], client_id, "{what}");
}

/// Now, in whole years since 1970 (for certificates valid from some years ahead).
pub fn this_year() -> i32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    1970 + (secs / 31_556_952) as i32
}
