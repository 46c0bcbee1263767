//! [`ResourceChallenge`]: what a resource server's `WWW-Authenticate` challenges ask of the
//! client (RFC 6750 §3, RFC 9449 §7.1, RFC 9470 §3, RFC 9728 §5.1), read from untrusted
//! headers without ever failing.

use http::header::WWW_AUTHENTICATE;
use http::HeaderMap;

use super::error::oauth_text;
use crate::upstream::check_url;

/// The most challenges, and parameters per challenge, read from one response: a server that
/// sends more is not describing anything a client can act on.
const MAX_CHALLENGES: usize = 16;
const MAX_PARAMS: usize = 32;
/// The most `acr_values` kept, and the longest of each.
const MAX_ACR_VALUES: usize = 16;
const MAX_ACR_LEN: usize = 200;
/// The longest `resource_metadata` URL kept.
const MAX_URL_LEN: usize = 2048;

/// What a resource server's `Bearer` or `DPoP` challenges say, read from the
/// `WWW-Authenticate` headers of its `401` (or `403`) answer.
///
/// [`TokenLayer`](super::TokenLayer) and [`ReqwestClient`](super::ReqwestClient) put it in the
/// extensions of every refusal they hand to the caller; it can also be read from any headers
/// with [`from_headers`](Self::from_headers). Values that do not fit their grammar are
/// dropped, never passed on: `error` and each `acr_values` entry are printable ASCII,
/// `max_age` is a whole number of seconds, `resource_metadata` an `https` URL.
///
/// **`resource_metadata` is not followed automatically** (RFC 9728 §7.4 and §7.6): the
/// resource server names it, and a malicious or compromised one could name metadata listing
/// an authorization server of its choosing, to which the client would then authenticate and
/// send its requests. An application that trusts the resource server for this can build a
/// [`TokenSource`](super::TokenSource) from it with
/// [`resource_url`](super::TokenSourceBuilder::resource_url).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceChallenge {
    error: Option<String>,
    resource_metadata: Option<String>,
    acr_values: Vec<String>,
    max_age: Option<u64>,
}

impl ResourceChallenge {
    /// The `Bearer` and `DPoP` challenges of `headers`, or `None` when there are none. When
    /// several carry an `error`, a step-up request (`insufficient_user_authentication`) is
    /// preferred, then the first; `resource_metadata` is the first one given.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let mut found = false;
        let mut primary: Option<Challenge> = None;
        let mut resource_metadata = None;
        for challenge in headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse)
            .take(MAX_CHALLENGES)
            .filter(|c| c.is_oauth())
        {
            found = true;
            if resource_metadata.is_none() {
                resource_metadata = challenge.param("resource_metadata").and_then(https_url);
            }
            let better = match &primary {
                None => true,
                Some(p) => {
                    p.param("error").is_none() && challenge.param("error").is_some()
                        || !p.is_step_up() && challenge.is_step_up()
                }
            };
            if better {
                primary = Some(challenge);
            }
        }
        if !found {
            return None;
        }
        let mut read = Self {
            resource_metadata,
            ..Self::default()
        };
        if let Some(primary) = primary {
            read.error = primary.param("error").and_then(|e| oauth_text(e, 64));
            read.acr_values = primary
                .param("acr_values")
                .map(|values| {
                    values
                        .split(' ')
                        .filter(|v| !v.is_empty())
                        .filter_map(|v| oauth_text(v, MAX_ACR_LEN).filter(|t| t.len() == v.len()))
                        .take(MAX_ACR_VALUES)
                        .collect()
                })
                .unwrap_or_default();
            read.max_age = primary.param("max_age").and_then(seconds);
        }
        Some(read)
    }

    /// The RFC 6750 `error` code (`invalid_token`, `insufficient_scope`,
    /// `insufficient_user_authentication`, ...), when the challenge carries one.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The resource's protected resource metadata URL (RFC 9728 §5.1), when given. Not
    /// followed by certbound: see the type's docs.
    pub fn resource_metadata(&self) -> Option<&str> {
        self.resource_metadata.as_deref()
    }

    /// The acceptable authentication context classes of a step-up request (RFC 9470 §3).
    pub fn acr_values(&self) -> &[String] {
        &self.acr_values
    }

    /// The largest acceptable age, in seconds, of the user's authentication in a step-up
    /// request (RFC 9470 §3).
    pub fn max_age(&self) -> Option<u64> {
        self.max_age
    }

    /// Whether the resource server asks for a stronger or more recent user authentication
    /// (`error="insufficient_user_authentication"`, RFC 9470 §3).
    pub fn is_step_up(&self) -> bool {
        self.error.as_deref() == Some(STEP_UP)
    }
}

const STEP_UP: &str = "insufficient_user_authentication";

/// `max_age`: one or more digits, a number of seconds.
fn seconds(value: &str) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// `resource_metadata`: an https URL of printable ASCII, kept whole or not at all.
fn https_url(value: &str) -> Option<String> {
    let clean = oauth_text(value, MAX_URL_LEN).filter(|t| t.len() == value.len())?;
    check_url(&clean, false).ok()?;
    Some(clean)
}

/// One challenge: its scheme and parameters (names lowercased; values unquoted).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub(crate) scheme: String,
    pub(crate) params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of parameter `name` (lowercase), the first when repeated.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A challenge of the schemes OAuth resource servers use.
    fn is_oauth(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("bearer") || self.scheme.eq_ignore_ascii_case("dpop")
    }

    fn is_step_up(&self) -> bool {
        self.param("error") == Some(STEP_UP)
    }
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The challenges of one `WWW-Authenticate` value (RFC 9110 §11.6.1):
/// `scheme [ token68 / #( name = ( token / quoted-string ) ) ]`, comma-separated. Anything
/// that does not fit is skipped up to the next comma; a parameter before any scheme is
/// dropped. Never fails, never loops: every step consumes input.
pub(crate) fn parse(value: &str) -> Vec<Challenge> {
    let bytes = value.as_bytes();
    let mut at = 0;
    let mut challenges: Vec<Challenge> = Vec::new();
    let skip_spaces = |at: &mut usize| {
        while *at < bytes.len() && matches!(bytes[*at], b' ' | b'\t') {
            *at += 1;
        }
    };
    while at < bytes.len() && challenges.len() <= MAX_CHALLENGES {
        if matches!(bytes[at], b' ' | b'\t' | b',') {
            at += 1;
            continue;
        }
        let start = at;
        while at < bytes.len() && is_tchar(bytes[at]) {
            at += 1;
        }
        if at == start {
            skip_to_comma(bytes, &mut at);
            continue;
        }
        let token = &value[start..at];
        skip_spaces(&mut at);
        if at < bytes.len() && bytes[at] == b'=' {
            at += 1;
            skip_spaces(&mut at);
            let param = read_value(value, &mut at);
            // After the value, only a comma (or the end) may follow.
            skip_spaces(&mut at);
            let trailing = at < bytes.len() && bytes[at] != b',';
            if trailing {
                skip_to_comma(bytes, &mut at);
            }
            if let (Some(param), false, Some(current)) = (param, trailing, challenges.last_mut()) {
                if current.params.len() < MAX_PARAMS {
                    current.params.push((token.to_ascii_lowercase(), param));
                }
            }
        } else {
            challenges.push(Challenge {
                scheme: token.to_owned(),
                params: Vec::new(),
            });
            // A token68 (`Basic dXNlcg==`) is not a parameter: skip it.
            let next = at;
            while at < bytes.len() && (is_tchar(bytes[at]) || bytes[at] == b'/') {
                at += 1;
            }
            let token68 = at > next && {
                while at < bytes.len() && bytes[at] == b'=' {
                    at += 1;
                }
                skip_spaces(&mut at);
                at >= bytes.len() || bytes[at] == b','
            };
            if !token68 {
                at = next;
            }
        }
    }
    challenges.truncate(MAX_CHALLENGES);
    challenges
}

fn skip_to_comma(bytes: &[u8], at: &mut usize) {
    while *at < bytes.len() && bytes[*at] != b',' {
        *at += 1;
    }
}

/// A parameter value at `at`: a token, or a quoted-string with its `\` escapes undone. `None`
/// (input consumed up to the next comma) for anything else, such as an unterminated string.
fn read_value(value: &str, at: &mut usize) -> Option<String> {
    let bytes = value.as_bytes();
    if *at < bytes.len() && bytes[*at] == b'"' {
        *at += 1;
        let mut text = Vec::new();
        while *at < bytes.len() {
            match bytes[*at] {
                b'"' => {
                    *at += 1;
                    return String::from_utf8(text).ok();
                }
                b'\\' if *at + 1 < bytes.len() => {
                    text.push(bytes[*at + 1]);
                    *at += 2;
                }
                b => {
                    text.push(b);
                    *at += 1;
                }
            }
        }
        return None;
    }
    let start = *at;
    while *at < bytes.len() && is_tchar(bytes[*at]) {
        *at += 1;
    }
    if *at == start {
        skip_to_comma(bytes, at);
        return None;
    }
    Some(value[start..*at].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                WWW_AUTHENTICATE,
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        headers
    }

    fn params(challenge: &Challenge) -> Vec<(&str, &str)> {
        challenge
            .params
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn challenges_and_their_parameters_are_read_quoted_or_not() {
        let read = parse(
            r#"Bearer realm="api", error=invalid_token, Basic dXNlcjpwYXNz==, DPoP algs="ES256 EdDSA", error="a \"quoted\" text""#,
        );
        let schemes: Vec<&str> = read.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["Bearer", "Basic", "DPoP"]);
        assert_eq!(
            params(&read[0]),
            [("realm", "api"), ("error", "invalid_token")]
        );
        assert!(read[1].params.is_empty());
        assert_eq!(
            params(&read[2]),
            [("algs", "ES256 EdDSA"), ("error", r#"a "quoted" text"#)]
        );
        assert_eq!(parse("Bearer")[0].scheme, "Bearer");
        assert_eq!(
            params(&parse("Bearer ERROR = insufficient_scope")[0]),
            [("error", "insufficient_scope")]
        );
    }

    #[test]
    fn a_step_up_challenge_gives_its_acr_values_max_age_and_metadata_url() {
        let read = ResourceChallenge::from_headers(&headers(&[
            r#"Bearer realm="api", error="insufficient_user_authentication", error_description="stronger login", acr_values="urn:mace:incommon:iap:silver phr", max_age=300, resource_metadata="https://api.example/.well-known/oauth-protected-resource/v1""#,
        ]))
        .expect("a challenge");
        assert!(read.is_step_up());
        assert_eq!(read.error(), Some("insufficient_user_authentication"));
        assert_eq!(read.acr_values(), ["urn:mace:incommon:iap:silver", "phr"]);
        assert_eq!(read.max_age(), Some(300));
        assert_eq!(
            read.resource_metadata(),
            Some("https://api.example/.well-known/oauth-protected-resource/v1")
        );
    }

    #[test]
    fn the_step_up_challenge_wins_over_another_scheme_and_the_metadata_comes_from_any() {
        let read = ResourceChallenge::from_headers(&headers(&[
            r#"Bearer error="invalid_token", resource_metadata="https://a.example/.well-known/oauth-protected-resource""#,
            r#"DPoP algs="ES256", error="insufficient_user_authentication", max_age=0"#,
        ]))
        .expect("a challenge");
        assert!(read.is_step_up());
        assert_eq!(read.max_age(), Some(0));
        assert!(read.acr_values().is_empty());
        assert_eq!(
            read.resource_metadata(),
            Some("https://a.example/.well-known/oauth-protected-resource")
        );
        let plain = ResourceChallenge::from_headers(&headers(&["Bearer"])).expect("challenge");
        assert_eq!(plain, ResourceChallenge::default());
        assert_eq!(ResourceChallenge::from_headers(&headers(&["Basic"])), None);
        assert_eq!(ResourceChallenge::from_headers(&HeaderMap::new()), None);
    }

    #[test]
    fn values_outside_their_grammar_are_dropped() {
        let read = ResourceChallenge::from_headers(&headers(&[
            r#"Bearer error="insufficient_user_authentication", max_age=-1, acr_values="ok b\"ad", resource_metadata="http://plain.example/x""#,
        ]))
        .expect("a challenge");
        assert!(read.is_step_up());
        assert_eq!(read.max_age(), None);
        assert_eq!(read.acr_values(), ["ok"]);
        assert_eq!(read.resource_metadata(), None);
        for max_age in ["1e3", "99999999999999999999", "", "3 00"] {
            let value =
                format!(r#"Bearer error="insufficient_user_authentication", max_age={max_age}"#);
            let read = ResourceChallenge::from_headers(&headers(&[&value])).expect("challenge");
            assert_eq!(read.max_age(), None, "{max_age:?}");
        }
    }

    #[test]
    fn garbled_and_hostile_headers_never_panic_and_stay_bounded() {
        let long = format!("Bearer {}", "a=b, ".repeat(10_000));
        let many = "Bearer, ".repeat(10_000);
        let inputs = [
            "",
            ",,,,",
            "=",
            "==",
            "Bearer =",
            "Bearer error=",
            "Bearer error=\"",
            "Bearer error=\"\\",
            "Bearer error=\"unterminated, DPoP error=\"x\"",
            "\"Bearer\"",
            "Bearer error==x",
            "Bearer error=\"a\"b",
            "Bearer a b c d = = =",
            "é=ü, Bearer error=\"é\"",
            long.as_str(),
            many.as_str(),
        ];
        for input in inputs {
            let read = parse(input);
            assert!(read.len() <= MAX_CHALLENGES, "{input:?}");
            assert!(read.iter().all(|c| c.params.len() <= MAX_PARAMS));
        }
        // Every prefix of a real challenge.
        let real = r#"DPoP error="insufficient_user_authentication", acr_values="a b", max_age=5, resource_metadata="https://x.example/""#;
        for end in 0..=real.len() {
            let _ = parse(&real[..end]);
        }
        assert_eq!(params(&parse("Bearer error=\"a\"b, x=y")[0]), [("x", "y")]);
    }
}
