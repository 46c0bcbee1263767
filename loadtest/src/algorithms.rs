//! Issue 26's variants: RS256 and EdDSA tokens, the "baseline + one raw verification" servers,
//! and DPoP with a new token and a new proof on every request.
//!
//! - `distinct-rs256`, `distinct-eddsa` (and `peer-…`, `huskarl-…`): the `distinct` workload
//!   with tokens signed by a 2048-bit RSA key (RS256) or an Ed25519 key (EdDSA); each variant's
//!   server gets a JWKS holding that one key.
//! - `raw-verify-es256`, `raw-verify-rs256`, `raw-verify-eddsa`: the baseline server (no auth
//!   layer) that, per request, splits the Bearer token at its last '.', base64url-decodes the
//!   signature and verifies it with one `aws_lc_rs::signature::ParsedPublicKey` made once at
//!   start from the JWKS's key, and nothing else (`401` if it does not verify): the limit of the
//!   `distinct-…` variants, measured by the same tool.
//! - `dpop-distinct`: certbound's DPoP server, every request a new DPoP-bound token and a new
//!   proof (each token and proof used once, signed before the run).

use super::*;

use aws_lc_rs::encoding::{AsDer as _, Pkcs8V1Der};
use aws_lc_rs::signature::{self as sig, KeyPair as _, ParsedPublicKey, RsaPublicKeyComponents};

/// The signing algorithm of a variant's tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Alg {
    Es256,
    Rs256,
    EdDsa,
}

impl Alg {
    pub(crate) const ALL: [Alg; 3] = [Alg::Es256, Alg::Rs256, Alg::EdDsa];

    pub(crate) fn jwt(self) -> Algorithm {
        match self {
            Alg::Es256 => Algorithm::ES256,
            Alg::Rs256 => Algorithm::RS256,
            Alg::EdDsa => Algorithm::EdDSA,
        }
    }

    /// The JWS `alg` name (RFC 7518, RFC 8037).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Rs256 => "RS256",
            Alg::EdDsa => "EdDSA",
        }
    }

    pub(crate) fn kid(self) -> &'static str {
        match self {
            Alg::Es256 => KID,
            Alg::Rs256 => "load-key-rs256",
            Alg::EdDsa => "load-key-eddsa",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A new RS256 (2048-bit) or EdDSA (Ed25519) signer and the JWKS of its public key.
pub(crate) fn new_signer(alg: Alg) -> (TokenSigner, String) {
    let (key, jwk) = match alg {
        Alg::Rs256 => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .expect("RSA key");
            let pkcs8: Pkcs8V1Der<'static> = pair.as_der().expect("RSA PKCS#8");
            let public = pair.public_key();
            let jwk = json!({
                "kty": "RSA", "kid": alg.kid(), "use": "sig", "alg": alg.name(),
                "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
            });
            // jsonwebtoken's aws-lc-rs backend signs with a PKCS#1 key: its PEM reader takes
            // the PKCS#8 document apart.
            let pem = proxied::pem("PRIVATE KEY", pkcs8.as_ref());
            let key = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("RSA PEM");
            (key, jwk)
        }
        Alg::EdDsa => {
            let pair = sig::Ed25519KeyPair::generate().expect("Ed25519 key");
            let pkcs8 = pair.to_pkcs8().expect("Ed25519 PKCS#8");
            let jwk = json!({
                "kty": "OKP", "crv": "Ed25519", "kid": alg.kid(), "use": "sig", "alg": alg.name(),
                "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            });
            (EncodingKey::from_ed_der(pkcs8.as_ref()), jwk)
        }
        Alg::Es256 => unreachable!("the ES256 signer is Material's own"),
    };
    let signer = TokenSigner {
        key,
        alg,
        serial: AtomicU64::new(0),
    };
    (signer, json!({ "keys": [jwk] }).to_string())
}

/// The `alg` of the first key of a JWKS (every load-test JWKS holds one key).
pub(crate) fn jwks_alg(jwks: &str) -> Result<String, BoxError> {
    let v: Value = serde_json::from_str(jwks)?;
    Ok(v["keys"][0]["alg"]
        .as_str()
        .ok_or("JWKS: no alg")?
        .to_owned())
}

/// The JWKS's (first) key, parsed once for aws-lc-rs: what `raw-verify-…` verifies with.
pub(crate) fn parsed_key(jwks: &str) -> Result<ParsedPublicKey, BoxError> {
    let v: Value = serde_json::from_str(jwks)?;
    let key = &v["keys"][0];
    let member = |name: &str| -> Result<Vec<u8>, BoxError> {
        let text = key[name]
            .as_str()
            .ok_or_else(|| format!("JWK: no {name}"))?;
        Ok(URL_SAFE_NO_PAD.decode(text)?)
    };
    let parsed = match key["kty"].as_str() {
        Some("EC") => {
            let mut point = vec![0x04];
            point.extend(member("x")?);
            point.extend(member("y")?);
            ParsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point)
        }
        Some("RSA") => {
            let (n, e) = (member("n")?, member("e")?);
            RsaPublicKeyComponents { n: &n, e: &e }
                .to_parsed_public_key(&sig::RSA_PKCS1_2048_8192_SHA256)
        }
        Some("OKP") => ParsedPublicKey::new(&sig::ED25519, member("x")?),
        _ => return Err("JWK: unsupported kty".into()),
    };
    parsed.map_err(|e| format!("JWK rejected by aws-lc-rs: {e}").into())
}

/// Whether the request's Bearer token's signature verifies: one raw verification, no claim
/// read, no header parsed.
fn signature_verifies(key: &ParsedPublicKey, headers: &http::HeaderMap) -> bool {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
    else {
        return false;
    };
    let Some(dot) = token.iter().rposition(|&b| b == b'.') else {
        return false;
    };
    let Ok(signature) = URL_SAFE_NO_PAD.decode(&token[dot + 1..]) else {
        return false;
    };
    key.verify_sig(&token[..dot], &signature).is_ok()
}

/// The `raw-verify-…` server's service: [`hello`] behind one raw signature verification.
pub(crate) async fn raw_verify(
    key: Arc<ParsedPublicKey>,
    request: Request<Incoming>,
) -> Result<Response<OkBody>, Infallible> {
    if signature_verifies(&key, request.headers()) {
        hello(request).await
    } else {
        let mut response = Response::new(OkBody::default());
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        Ok(response)
    }
}

/// `authorization` (`Bearer <JWT>`) with one character of its signature changed: a token whose
/// signature no longer verifies (the preflight's proof that a server verifies).
pub(crate) fn corrupted(authorization: &HeaderValue) -> HeaderValue {
    let mut bytes = authorization.as_bytes().to_vec();
    let dot = bytes.iter().rposition(|&b| b == b'.').expect("a JWT");
    // Well inside the signature (not its last character, whose low bits may be padding).
    let i = dot + 5;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let mut value = HeaderValue::from_bytes(&bytes).expect("header value");
    value.set_sensitive(true);
    value
}

/// `dpop-distinct`: per connection, (DPoP-bound token, proof) pairs, each a new token and a
/// new proof; sized as [`proof_pools`], signed just before each run (proofs age).
pub(crate) fn dpop_pair_pools(args: &Args, material: &Material, connections: usize) -> Vec<Tokens> {
    let window = (args.warmup + args.duration).as_secs_f64();
    let rate = (args.pool_rate * args.server_threads as u64) as f64;
    let need = (rate * window / connections as f64 * 1.1).ceil() as usize + 16;
    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let pools: Vec<Tokens> = (0..connections)
        .map(|i| {
            let signer = &material.clients[i].dpop;
            let per_thread = need.div_ceil(threads);
            let pairs: Vec<(HeaderValue, HeaderValue)> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let n = per_thread.min(need.saturating_sub(t * per_thread));
                        s.spawn(move || {
                            (0..n)
                                .map(|_| {
                                    let token = material.signer.mint_dpop(&signer.jkt);
                                    let proof = signer.proof(&token.ath);
                                    (token.authorization, proof)
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().expect("signing thread"))
                    .collect()
            });
            Tokens::DpopPairs(Arc::new(pairs))
        })
        .collect();
    eprintln!(
        "load: signed {} DPoP-bound tokens and as many proofs in {:.1} s",
        need * connections,
        started.elapsed().as_secs_f64()
    );
    pools
}
