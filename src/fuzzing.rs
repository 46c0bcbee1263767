//! Entry points of the fuzz targets in `fuzz/`: thin wrappers around the crate-private parsers
//! of untrusted input, compiled only with `--cfg fuzzing` (cargo-fuzz sets it). Not an API.

use http::{HeaderMap, HeaderValue, Uri};

use crate::authorization_server as auth_server;
use crate::dpop::VerifiedProof;
use crate::error::AuthErrorKind;
use crate::token::jwt::keys::KeySet;
use crate::{AccessToken, ClientCertificate, ForwardedCertFormat};

/// `authorization_header`: the token of a request's `Authorization` headers, as the layer
/// reads it (`credentials`, then `b64token`), and whether the scheme was `DPoP`.
pub fn authorization_token<'a>(
    headers: &'a HeaderMap,
    uri: &Uri,
    max_len: usize,
    dpop: bool,
) -> Result<(bool, &'a str), AuthErrorKind> {
    use crate::bound_token::{b64token, credentials};
    let (scheme, token) = credentials(headers, uri, max_len, dpop).map_err(|(_, e)| e.kind())?;
    let token = b64token(token).map_err(|e| e.kind())?;
    Ok((scheme == crate::challenge::Scheme::Dpop, token))
}

/// `jose_header`: the JOSE header fields the JWT validator reads first: `alg`, `kid`, `typ`.
pub fn jose_header(token: &str) -> Option<(String, Option<String>, Option<String>)> {
    crate::token::jwt::read_jose_header(token)
}

/// `dpop_proof`: checks `proof` against a request `method` `htu` (not yet normalised) at
/// `now`, with the default rules and no access token.
pub fn dpop_proof(
    proof: &str,
    method: &str,
    htu: &str,
    now: i64,
) -> Result<VerifiedProof, AuthErrorKind> {
    let htu = crate::dpop::ExpectedHtu::of_url(htu).ok_or(AuthErrorKind::InvalidRequest)?;
    let expected = crate::dpop::Expected {
        method,
        htu: &htu,
        ath: None,
        now,
    };
    crate::dpop::verify_proof(
        proof,
        &expected,
        &crate::dpop::ProofRules::default(),
        crate::dpop::ProofMemos::default(),
    )
    .map_err(|e| e.kind())
}

/// `htu`: whether a proof's `htu` names the request of `scheme`, `authority` and `path`, as
/// the layer decides it (piecewise, [`ExpectedHtu`](crate::dpop::ExpectedHtu)) and as
/// comparing both normalised strings decides it; `None` for a request that makes no URL, each
/// way. With `public`, the request's URL is that public URL and `path` (`scheme` and
/// `authority` unused); `None` for a public URL that is refused.
#[allow(clippy::type_complexity)]
pub fn htu(
    public: Option<&str>,
    scheme: &str,
    authority: &str,
    path: &str,
    proof: &str,
) -> Option<(
    (Option<String>, Option<bool>),
    (Option<String>, Option<bool>),
)> {
    use crate::dpop::{htu_from_parts, normalize_htu, ExpectedHtu, PublicUrl};
    let public = match public {
        Some(url) => Some(PublicUrl::parse(url).ok()?),
        None => None,
    };
    let (parts, string) = match &public {
        Some(public) => (public.expected(path), public.htu(path)),
        None => (
            ExpectedHtu::of_request(scheme, authority, path),
            htu_from_parts(scheme, authority, path),
        ),
    };
    let piecewise = parts.map(|p| (p.to_url(), p.matches(proof)));
    let whole = string.map(|s| {
        let matches = normalize_htu(proof).as_deref() == Some(s.as_str());
        (s, matches)
    });
    Some((
        (
            piecewise.as_ref().map(|p| p.0.clone()),
            piecewise.map(|p| p.1),
        ),
        (whole.as_ref().map(|w| w.0.clone()), whole.map(|w| w.1)),
    ))
}

/// The five forwarded-certificate targets: a header value (and RFC 9440's chain) in `format`.
pub fn forwarded_certificate(
    format: ForwardedCertFormat,
    value: &[u8],
    chain: Option<&[u8]>,
) -> Result<Option<ClientCertificate>, &'static str> {
    format.parse(value, chain)
}

/// `dn`: whether `dn` parses; whether it matches the DER `Name` `subject` (when it parses);
/// and the DER `Name`s built from its own attributes, as is and with the `#hex` values in
/// another class (see `to_name_der`).
#[allow(clippy::type_complexity)]
pub fn distinguished_name(
    dn: &str,
    subject: &[u8],
) -> Option<(Option<bool>, Option<(Vec<u8>, Vec<u8>)>)> {
    use x509_parser::prelude::{FromDer as _, X509Name};
    let dn = auth_server::DistinguishedName::parse(dn).ok()?;
    let matches = X509Name::from_der(subject)
        .ok()
        .map(|(_, name)| dn.matches(&name));
    let own = dn.to_name_der(false).zip(dn.to_name_der(true));
    Some((matches, own))
}

/// `token_form`: the parameters of a token request body.
pub fn token_form(body: &[u8]) -> Result<auth_server::FormParameters, &'static str> {
    auth_server::parse_form(body).map_err(|e| e.0)
}

/// `token_form` again: the client id of an `Authorization: Basic` value (`None`: no header).
pub fn basic_client_id(value: Option<&[u8]>) -> Result<Option<String>, ()> {
    let mut headers = HeaderMap::new();
    if let Some(value) = value {
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_bytes(value).map_err(|_| ())?,
        );
    }
    match auth_server::basic_credentials(&headers) {
        Ok(auth_server::BasicCredentials::None) => Ok(None),
        Ok(auth_server::BasicCredentials::ClientId(id)) => Ok(Some(id)),
        Err(_) => Err(()),
    }
}

/// `introspection_answer`: a `200` answer of the introspection endpoint, for `issuer` and
/// `audience`.
pub fn introspection_answer(
    body: &[u8],
    issuer: &str,
    audience: &str,
) -> Result<AccessToken, AuthErrorKind> {
    crate::token::introspection::interpret_answer(body, issuer, audience).map_err(|e| e.kind())
}

/// `jwks`: the number of usable keys of a JWKS document.
pub fn jwks_key_count(json: &[u8]) -> Option<usize> {
    KeySet::from_jwks_json(json).ok().map(|keys| keys.len())
}

/// `jwt_fields`: the claims the JWT validator reads in one pass over a payload's JSON, against
/// the map of every claim that `AccessToken::claims` decodes later. `Err` says how they
/// disagree: refused by one and not the other (beyond a claim certbound reads appearing twice,
/// which only the one pass refuses), other values, or another token.
pub fn jwt_fields(json: &str) -> Result<(), String> {
    use crate::token::access::Read;
    use crate::token::fields::Fields;
    use serde_json::{Map, Value};
    let map = serde_json::from_str::<Map<String, Value>>(json);
    let fields = Fields::from_json(json);
    let (map, fields) = match (map, fields) {
        (Err(_), Err(_)) => return Ok(()),
        (Err(e), Ok(_)) => return Err(format!("only the map refuses it: {e}")),
        (Ok(_), Err(e)) if e.to_string().contains("appears twice") => return Ok(()),
        (Ok(_), Err(e)) => return Err(format!("only the one pass refuses it: {e}")),
        (Ok(map), Ok(fields)) => (map, fields),
    };
    if Fields::of_map(&map) != fields {
        return Err(format!("other fields: {:?}", Fields::of_map(&map)));
    }
    let by_map = AccessToken::from_claims(map.clone());
    let by_pass =
        Read::of(&fields, Some(json)).map(|read| AccessToken::from_json(read, json.to_owned()));
    match (by_map, by_pass) {
        (Err(a), Err(b)) if a.detail() == b.detail() => Ok(()),
        (Ok(a), Ok(b)) => {
            let same = a.issuer() == b.issuer()
                && a.subject() == b.subject()
                && a.client_id() == b.client_id()
                && a.scopes() == b.scopes()
                && a.thumbprint() == b.thumbprint()
                && a.dpop_thumbprint() == b.dpop_thumbprint()
                && a.acr() == b.acr()
                && a.auth_time() == b.auth_time()
                && b.claims() == &map;
            same.then_some(()).ok_or_else(|| "another token".to_owned())
        }
        (a, b) => Err(format!("another verdict: {:?} / {:?}", a.err(), b.err())),
    }
}
