//! Strict `application/x-www-form-urlencoded` parsing and HTTP Basic client credentials
//! (RFC 6749 §2.3.1, §3.2).

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE};

use crate::support::encoding::{percent_decode, Plus};

/// The parameters of a token-endpoint request body, each name at most once (RFC 6749 §3.2),
/// as parsed by [`MtlsClientAuthLayer`](super::MtlsClientAuthLayer) and inserted into the
/// request's extensions next to the [`AuthenticatedClient`](super::AuthenticatedClient).
///
/// Its `Debug` output shows parameter names only (values can be secrets, e.g. `code`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct FormParameters(Vec<(String, String)>);

impl FormParameters {
    /// The value of `name`; `None` when absent or empty (RFC 6749 §3.1: a parameter without a
    /// value is treated as omitted).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// All parameters, in request order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

impl fmt::Debug for FormParameters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(n, _)| n))
            .finish()
    }
}

/// Why a request could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FormError(pub(crate) &'static str);

/// Parses a form body: `name=value` pairs separated by `&`, `+` for space, `%XX` escapes,
/// UTF-8 after decoding. A name given twice is an error (RFC 6749 §3.2), empty or not.
pub(crate) fn parse_form(body: &[u8]) -> Result<FormParameters, FormError> {
    let mut params: Vec<(String, String)> = Vec::new();
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        let name = decode(name)?;
        if name.is_empty() {
            return Err(FormError("parameter without a name"));
        }
        if params.iter().any(|(n, _)| *n == name) {
            return Err(FormError("parameter given more than once"));
        }
        params.push((name, decode(value)?));
    }
    Ok(FormParameters(params))
}

/// `application/x-www-form-urlencoded` decoding of one name or value, strictly: a `%` must
/// start two hex digits, and the result must be UTF-8.
fn decode(input: &[u8]) -> Result<String, FormError> {
    let out = percent_decode(input, Plus::Space).ok_or(FormError("malformed percent-encoding"))?;
    String::from_utf8(out).map_err(|_| FormError("parameter is not UTF-8"))
}

/// Whether the request's content type is `application/x-www-form-urlencoded` (parameters
/// such as `charset` allowed).
pub(crate) fn is_form(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(CONTENT_TYPE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let media_type = value.split(';').next().unwrap_or_default().trim();
    media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded")
}

/// What the `Authorization` header says about the client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BasicCredentials {
    /// No `Authorization` header.
    None,
    /// `Basic` with this client id and an empty password.
    ClientId(String),
}

/// Why the `Authorization` header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthorizationError {
    /// Two headers, bad encoding, or a password (a second authentication method, RFC 6749
    /// §2.3): `invalid_request`.
    Malformed(&'static str),
    /// Another scheme: an authentication method this layer does not support,
    /// `invalid_client`.
    UnsupportedScheme,
}

/// Reads HTTP Basic client credentials (RFC 6749 §2.3.1: both parts form-urlencoded, then
/// joined by `:` and base64-encoded).
pub(crate) fn basic_credentials(
    headers: &HeaderMap,
) -> Result<BasicCredentials, AuthorizationError> {
    use AuthorizationError::Malformed;
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(BasicCredentials::None);
    };
    if values.next().is_some() {
        return Err(Malformed("more than one Authorization header"));
    }
    let value = value.as_bytes();
    let (scheme, rest) = match value.iter().position(|b| *b == b' ') {
        Some(i) => (&value[..i], &value[i + 1..]),
        None => (value, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return Err(AuthorizationError::UnsupportedScheme);
    }
    let decoded = STANDARD
        .decode(rest.trim_ascii())
        .map_err(|_| Malformed("malformed Basic credentials"))?;
    let colon = decoded
        .iter()
        .position(|b| *b == b':')
        .ok_or(Malformed("malformed Basic credentials"))?;
    let id = decode(&decoded[..colon]).map_err(|_| Malformed("malformed Basic credentials"))?;
    let secret = &decoded[colon + 1..];
    if !secret.is_empty() {
        return Err(Malformed("client secret with mutual-TLS authentication"));
    }
    Ok(BasicCredentials::ClientId(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn forms_decode_strictly() {
        let p = parse_form(b"grant_type=client_credentials&client_id=a%2Bb+c&scope=").unwrap();
        assert_eq!(p.get("client_id"), Some("a+b c"));
        assert_eq!(p.get("scope"), None, "empty means omitted");
        assert_eq!(p.get("grant_type"), Some("client_credentials"));
        assert_eq!(parse_form(b"a=%C3%BC").unwrap().get("a"), Some("ü"));
        assert!(parse_form(b"a=%zz").is_err());
        assert!(parse_form(b"a=%C3").is_err());
        assert!(parse_form(b"a=%4").is_err());
        assert!(parse_form(b"=x").is_err());
        assert!(parse_form(b"").unwrap().iter().next().is_none());
    }

    #[test]
    fn a_parameter_given_twice_is_malformed_even_when_empty() {
        assert!(parse_form(b"client_id=a&client_id=a").is_err());
        assert!(parse_form(b"scope=&scope=x").is_err());
        assert!(
            parse_form(b"client%5Fid=a&client_id=b").is_err(),
            "names compare decoded"
        );
    }

    #[test]
    fn debug_shows_names_only() {
        let p = parse_form(b"code=s3cret").unwrap();
        assert!(!format!("{p:?}").contains("s3cret"));
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn form_content_type_allows_parameters_and_case() {
        assert!(is_form(&headers(&[(
            "content-type",
            "application/x-www-form-urlencoded"
        )])));
        assert!(is_form(&headers(&[(
            "content-type",
            "Application/X-WWW-Form-Urlencoded; charset=UTF-8"
        )])));
        assert!(!is_form(&headers(&[("content-type", "application/json")])));
        assert!(!is_form(&headers(&[])));
        assert!(!is_form(&headers(&[
            ("content-type", "application/x-www-form-urlencoded"),
            ("content-type", "application/x-www-form-urlencoded"),
        ])));
    }

    #[test]
    fn basic_carries_a_form_encoded_client_id_and_no_secret() {
        let b64 = |s: &str| STANDARD.encode(s);
        let h = headers(&[("authorization", &format!("Basic {}", b64("my%3Aclient:")))]);
        assert_eq!(
            basic_credentials(&h),
            Ok(BasicCredentials::ClientId("my:client".into()))
        );
        let h = headers(&[("authorization", &format!("basic {}", b64("c:secret")))]);
        assert!(matches!(
            basic_credentials(&h),
            Err(AuthorizationError::Malformed(_))
        ));
        let h = headers(&[("authorization", "Basic !!!")]);
        assert!(matches!(
            basic_credentials(&h),
            Err(AuthorizationError::Malformed(_))
        ));
        let h = headers(&[("authorization", &format!("Basic {}", b64("no-colon")))]);
        assert!(matches!(
            basic_credentials(&h),
            Err(AuthorizationError::Malformed(_))
        ));
        let h = headers(&[("authorization", "Bearer abc")]);
        assert_eq!(
            basic_credentials(&h),
            Err(AuthorizationError::UnsupportedScheme)
        );
        let h = headers(&[
            ("authorization", "Basic YTo="),
            ("authorization", "Basic YTo="),
        ]);
        assert!(matches!(
            basic_credentials(&h),
            Err(AuthorizationError::Malformed(_))
        ));
        assert_eq!(
            basic_credentials(&HeaderMap::new()),
            Ok(BasicCredentials::None)
        );
    }
}
