//! Certificates and tokens, made at start (nothing committed).

use super::*;

/// What the server child needs, sent to it as one JSON line on its stdin.
#[derive(Clone)]
pub(crate) struct ServerMaterial {
    pub(crate) ca_der: Vec<u8>,
    pub(crate) cert_der: Vec<u8>,
    pub(crate) key_pkcs8: Vec<u8>,
    pub(crate) jwks: String,
    /// The DPoP variants: `max_entries` of the in-memory replay store.
    pub(crate) replay_max_entries: Option<usize>,
    /// `dpop-redis`: the redis-server this tool started.
    pub(crate) redis_url: Option<String>,
    /// The JWKS of the RS256 and EdDSA signers (in the parent only: a child gets its
    /// variant's JWKS as `jwks`, see [`ServerMaterial::for_alg`]).
    pub(crate) jwks_rs256: String,
    pub(crate) jwks_eddsa: String,
}

impl ServerMaterial {
    /// The material of a server for `alg` tokens: `jwks` holds that algorithm's one key.
    pub(crate) fn for_alg(&self, alg: Alg) -> ServerMaterial {
        let mut material = self.clone();
        match alg {
            Alg::Es256 => {}
            Alg::Rs256 => material.jwks = self.jwks_rs256.clone(),
            Alg::EdDsa => material.jwks = self.jwks_eddsa.clone(),
        }
        material
    }

    pub(crate) fn to_json_line(&self) -> String {
        let mut line = json!({
            "ca": STANDARD.encode(&self.ca_der),
            "cert": STANDARD.encode(&self.cert_der),
            "key": STANDARD.encode(&self.key_pkcs8),
            "jwks": self.jwks,
            "replay_max_entries": self.replay_max_entries,
            "redis_url": self.redis_url,
        })
        .to_string();
        line.push('\n');
        line
    }

    pub(crate) fn from_json_line(line: &str) -> Result<Self, BoxError> {
        let v: Value = serde_json::from_str(line)?;
        let field = |name: &str| -> Result<String, BoxError> {
            Ok(v[name]
                .as_str()
                .ok_or_else(|| format!("material: no {name}"))?
                .to_owned())
        };
        Ok(ServerMaterial {
            ca_der: STANDARD.decode(field("ca")?)?,
            cert_der: STANDARD.decode(field("cert")?)?,
            key_pkcs8: STANDARD.decode(field("key")?)?,
            jwks: field("jwks")?,
            replay_max_entries: v["replay_max_entries"]
                .as_u64()
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            redis_url: v["redis_url"].as_str().map(str::to_owned),
            jwks_rs256: String::new(),
            jwks_eddsa: String::new(),
        })
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// One simulated client: its certificate, key and thumbprint.
pub(crate) struct ClientIdentity {
    pub(crate) cert: CertificateDer<'static>,
    pub(crate) key_pkcs8: Vec<u8>,
    /// RFC 8705 §3.1, computed here independently of certbound.
    pub(crate) x5t_s256: String,
    /// This client's DPoP key (P-256), which signs its proofs.
    pub(crate) dpop: DpopSigner,
}

/// A client's DPoP key: signs proofs (RFC 9449 §4.2) with jsonwebtoken's aws-lc-rs backend,
/// independently of certbound's own signer.
pub(crate) struct DpopSigner {
    pub(crate) key: EncodingKey,
    /// The proof header, base64url-encoded once: `typ`, `alg` and the public `jwk`.
    pub(crate) header_b64: String,
    /// RFC 7638 thumbprint of the public key (the token's `cnf.jkt`).
    pub(crate) jkt: String,
    /// Makes every proof's `jti` unique.
    pub(crate) serial: AtomicU64,
}

/// The `htu` of every proof: what both servers see as the request's URL (`https`, the `Host`
/// or `:authority` the client sends, path `/`).
pub(crate) const HTU: &str = "https://localhost/";

impl DpopSigner {
    pub(crate) fn new(client: usize) -> Self {
        let key = p256();
        let point = key.public_key_raw();
        let (x, y) = (
            URL_SAFE_NO_PAD.encode(&point[1..33]),
            URL_SAFE_NO_PAD.encode(&point[33..]),
        );
        let header = json!({
            "typ": "dpop+jwt", "alg": "ES256",
            "jwk": { "kty": "EC", "crv": "P-256", "x": x, "y": y },
        });
        // RFC 7638 §3.2: the required members in lexicographic order, no whitespace.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        DpopSigner {
            key: EncodingKey::from_ec_der(&key.serialize_der()),
            header_b64: URL_SAFE_NO_PAD.encode(header.to_string()),
            jkt: URL_SAFE_NO_PAD.encode(Sha256::digest(canonical)),
            // Distinct per client, so that two clients never share a jti either.
            serial: AtomicU64::new((client as u64) << 40),
        }
    }

    /// A fresh proof for `GET https://localhost/` with access token hash `ath`.
    pub(crate) fn proof(&self, ath: &str) -> HeaderValue {
        self.proof_for("GET", HTU, 0, ath)
    }

    /// A fresh proof (new `jti`) for `htm` `htu`, issued `age` seconds ago (the soak's proofs
    /// for another request and stale proofs).
    pub(crate) fn proof_for(&self, htm: &str, htu: &str, age: u64, ath: &str) -> HeaderValue {
        let now = unix_now().saturating_sub(age);
        let jti = self.serial.fetch_add(1, Ordering::Relaxed);
        let claims = format!(
            r#"{{"jti":"p-{jti:x}","htm":"{htm}","htu":"{htu}","iat":{now},"ath":"{ath}"}}"#
        );
        let input = format!("{}.{}", self.header_b64, URL_SAFE_NO_PAD.encode(claims));
        let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &self.key, Algorithm::ES256)
            .expect("proof signs");
        HeaderValue::try_from(format!("{input}.{signature}")).expect("header value")
    }

    /// `count` fresh proofs, signed on all cores.
    pub(crate) fn proofs(&self, ath: &str, count: usize) -> Vec<HeaderValue> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let per_thread = count.div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let n = per_thread.min(count.saturating_sub(t * per_thread));
                    s.spawn(move || (0..n).map(|_| self.proof(ath)).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("signing thread"))
                .collect()
        })
    }
}

/// A client's DPoP-bound access token (`Authorization: DPoP ...`) and its `ath`.
#[derive(Clone)]
pub(crate) struct DpopToken {
    pub(crate) authorization: HeaderValue,
    pub(crate) ath: Arc<str>,
}

pub(crate) struct Material {
    pub(crate) server: ServerMaterial,
    pub(crate) clients: Vec<ClientIdentity>,
    pub(crate) signer: TokenSigner,
    /// The RS256 (2048-bit RSA) and EdDSA (Ed25519) signers of issue 26's variants.
    pub(crate) rs256: TokenSigner,
    pub(crate) eddsa: TokenSigner,
}

impl Material {
    pub(crate) fn signer_for(&self, alg: Alg) -> &TokenSigner {
        match alg {
            Alg::Es256 => &self.signer,
            Alg::Rs256 => &self.rs256,
            Alg::EdDsa => &self.eddsa,
        }
    }
}

pub(crate) fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

pub(crate) fn p256() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("P-256 key")
}

impl Material {
    pub(crate) fn new(clients: usize) -> Self {
        let ca_key = p256();
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = dn("certbound load CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = p256();
        let mut params = CertificateParams::default();
        params.distinguished_name = dn("localhost");
        params.subject_alt_names = vec![SanType::DnsName("localhost".try_into().expect("dns"))];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = params
            .signed_by(&server_key, &issuer)
            .expect("server certificate");

        let clients = (0..clients)
            .map(|i| {
                let key = p256();
                let mut params = CertificateParams::default();
                params.distinguished_name = dn(&format!("load client {i}"));
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
                let cert = params.signed_by(&key, &issuer).expect("client certificate");
                let cert = cert.der().clone();
                let x5t_s256 = URL_SAFE_NO_PAD.encode(Sha256::digest(cert.as_ref()));
                ClientIdentity {
                    cert,
                    key_pkcs8: key.serialize_der(),
                    x5t_s256,
                    dpop: DpopSigner::new(i),
                }
            })
            .collect();

        let signing_key = p256();
        let point = signing_key.public_key_raw();
        assert_eq!((point.len(), point[0]), (65, 0x04), "uncompressed P-256");
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": KID, "use": "sig", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        });
        let (rs256, jwks_rs256) = new_signer(Alg::Rs256);
        let (eddsa, jwks_eddsa) = new_signer(Alg::EdDsa);
        Material {
            server: ServerMaterial {
                ca_der: ca_cert.der().to_vec(),
                cert_der: server_cert.der().to_vec(),
                key_pkcs8: server_key.serialize_der(),
                jwks: json!({ "keys": [jwk] }).to_string(),
                replay_max_entries: None,
                redis_url: None,
                jwks_rs256,
                jwks_eddsa,
            },
            clients,
            signer: TokenSigner {
                key: EncodingKey::from_ec_der(&signing_key.serialize_der()),
                alg: Alg::Es256,
                serial: AtomicU64::new(0),
            },
            rs256,
            eddsa,
        }
    }
}

/// Mints access tokens (RFC 9068 shape) bound to a certificate thumbprint: ES256, or issue
/// 26's RS256 and EdDSA.
pub(crate) struct TokenSigner {
    pub(crate) key: EncodingKey,
    pub(crate) alg: Alg,
    /// Makes every token's `jti`, hence every token, unique.
    pub(crate) serial: AtomicU64,
}

impl TokenSigner {
    pub(crate) fn mint(&self, x5t_s256: &str) -> HeaderValue {
        let token = self.mint_with_cnf(json!({ "x5t#S256": x5t_s256 }));
        let mut value = HeaderValue::try_from(format!("Bearer {token}")).expect("header value");
        value.set_sensitive(true);
        value
    }

    /// A token bound (`cnf.jkt`) to a client's DPoP key.
    pub(crate) fn mint_dpop(&self, jkt: &str) -> DpopToken {
        let token = self.mint_with_cnf(json!({ "jkt": jkt }));
        let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
        let mut authorization =
            HeaderValue::try_from(format!("DPoP {token}")).expect("header value");
        authorization.set_sensitive(true);
        DpopToken {
            authorization,
            ath: ath.into(),
        }
    }

    pub(crate) fn mint_with_cnf(&self, cnf: Value) -> String {
        self.sign(&self.claims(Some(cnf), 3600), self.alg.kid())
    }

    /// The claims of a new token (its own `jti`), bound by `cnf` (`None`: unbound), valid from
    /// now for `lifetime` seconds (negative: expired that long ago; `nbf` and `iat` then lie
    /// before `exp`). Callers may change any claim before [`sign`](Self::sign).
    pub(crate) fn claims(&self, cnf: Option<Value>, lifetime: i64) -> Value {
        let now = unix_now() as i64;
        let issued = now.min(now + lifetime - 60);
        let mut claims = json!({
            "iss": ISS, "aud": AUD, "sub": "load-user", "client_id": "load-client",
            "scope": "read write", "iat": issued, "nbf": issued, "exp": now + lifetime,
            "jti": format!("load-{}", self.serial.fetch_add(1, Ordering::Relaxed)),
        });
        if let Some(cnf) = cnf {
            claims["cnf"] = cnf;
        }
        claims
    }

    /// `claims` signed, with `kid` in the header.
    pub(crate) fn sign(&self, claims: &Value, kid: &str) -> String {
        let mut header = Header::new(self.alg.jwt());
        header.kid = Some(kid.to_owned());
        header.typ = Some("at+jwt".to_owned());
        jsonwebtoken::encode(&header, claims, &self.key).expect("token signs")
    }

    /// `count` distinct tokens bound to `x5t_s256`, minted on all cores.
    pub(crate) fn mint_many(&self, x5t_s256: &str, count: usize) -> Vec<HeaderValue> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let per_thread = count.div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let n = per_thread.min(count.saturating_sub(t * per_thread));
                    s.spawn(move || (0..n).map(|_| self.mint(x5t_s256)).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("minting thread"))
                .collect()
        })
    }
}
