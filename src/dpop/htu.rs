//! The `htu` a proof must carry (RFC 9449 §4.3 check 9): the request's URL without query and
//! fragment, compared after RFC 3986 §6.2.2 syntax-based and §6.2.3 scheme-based normalisation.
//!
//! Normalising means: scheme and host in lower case, the scheme's default port dropped (and an
//! empty port), an empty path as `/`, percent-encodings with upper-case hex digits, and
//! percent-encoded unreserved characters decoded. Dot segments are not removed: hyper passes
//! request paths as the client sent them, and the client signs what it sends.

use std::borrow::Cow;
use std::fmt;

use crate::error::ConfigError;
use crate::support::encoding::hex_pair;

/// Normalises an absolute `http` or `https` URL for comparison, dropping its query and
/// fragment. `None` when it is not one (relative, another scheme, userinfo, a bad port, a bad
/// percent-encoding).
pub(crate) fn normalize(url: &str) -> Option<String> {
    let url = url.split('#').next().unwrap_or("");
    let url = url.split('?').next().unwrap_or("");
    let (scheme, rest) = url.split_once("://")?;
    let scheme = http_scheme(scheme)?;
    let (authority, path) = split_authority(rest);
    let mut out = String::with_capacity(url.len() + 1);
    out.push_str(scheme);
    out.push_str("://");
    push_authority(&mut out, scheme, authority)?;
    push_path(&mut out, if path.is_empty() { "/" } else { path })?;
    Some(out)
}

/// Writes `authority` normalised: host in lower case, the default port of `scheme` dropped.
fn push_authority(out: &mut String, scheme: &str, authority: &str) -> Option<()> {
    let (host, port) = authority_parts(authority)?;
    for b in host.bytes() {
        out.push(char::from(b.to_ascii_lowercase()));
    }
    if let Some(number) = port {
        if number != default_port(scheme) {
            out.push(':');
            // Leading zeros are not part of the port's value.
            out.push_str(&number.to_string());
        }
    }
    Some(())
}

/// The default port of `scheme` (`http` or `https`, normalised).
fn default_port(scheme: &str) -> u16 {
    if scheme == "https" {
        443
    } else {
        80
    }
}

/// The host (as written, ASCII) and the port (`None` when absent or empty) of an authority;
/// `None` when it is not one (empty, userinfo, a bad host or port).
fn authority_parts(authority: &str) -> Option<(&str, Option<u16>)> {
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        // An IP literal: "[" ... "]" [ ":" port ]
        let end = rest.find(']')?;
        let host = &authority[..end + 2];
        match &rest[end + 1..] {
            "" => (host, None),
            after => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let host_ok = !host.is_empty()
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'['
                        | b']'
                        | b':'
                        | b'%'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                )
        });
    if !host_ok {
        return None;
    }
    let port = match port {
        None | Some("") => None,
        Some(port) => {
            if port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Above 65 535 is no port.
            Some(port.parse::<u16>().ok()?)
        }
    };
    Some((host, port))
}

/// Writes `path` with its percent-encodings normalised.
pub(crate) fn push_path(out: &mut String, path: &str) -> Option<()> {
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let decoded = hex_pair(*bytes.get(i + 1)?, *bytes.get(i + 2)?)?;
            if unreserved(decoded) {
                out.push(char::from(decoded));
            } else {
                out.push('%');
                crate::support::encoding::push_hex(out, &[decoded], true);
            }
            i += 3;
        } else if b.is_ascii_graphic() {
            out.push(char::from(b));
            i += 1;
        } else {
            return None;
        }
    }
    Some(())
}

/// A configured public URL: the origin (and optional path prefix) clients use. `htu` must be
/// this plus the request's path.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PublicUrl {
    /// Normalised, without a trailing slash (`https://api.example/prefix` or
    /// `https://api.example`).
    base: String,
    /// Its parts, for [`ExpectedHtu`]: `http` or `https`; the host in lower case; the port;
    /// the path prefix normalised, without a trailing slash (empty for none).
    scheme: &'static str,
    /// As configured (it normalises).
    authority: String,
    host: String,
    port: u16,
    prefix: String,
}

impl fmt::Debug for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicUrl").field(&self.base).finish()
    }
}

impl PublicUrl {
    pub(crate) fn parse(url: &str) -> Result<Self, ConfigError> {
        let bad = |reason| ConfigError::Url {
            option: "public_url",
            url: url.to_owned(),
            reason,
        };
        if url.contains('?') || url.contains('#') {
            return Err(bad("a public URL has no query or fragment"));
        }
        let not_http = || bad("not an absolute http(s) URL");
        let mut base = normalize(url).ok_or_else(not_http)?;
        while base.ends_with('/') {
            base.pop();
        }
        // The same parts `normalize` read (it accepted them).
        let (scheme, rest) = url.split_once("://").ok_or_else(not_http)?;
        let scheme = http_scheme(scheme).ok_or_else(not_http)?;
        let (authority, path) = split_authority(rest);
        let (host, port) = authority_parts(authority).ok_or_else(not_http)?;
        let mut prefix = String::with_capacity(path.len() + 1);
        push_path(&mut prefix, if path.is_empty() { "/" } else { path }).ok_or_else(not_http)?;
        while prefix.ends_with('/') {
            prefix.pop();
        }
        Ok(Self {
            base,
            scheme,
            authority: authority.to_owned(),
            host: host.to_ascii_lowercase(),
            port: port.unwrap_or_else(|| default_port(scheme)),
            prefix,
        })
    }

    /// The `htu` a request for `path` (its path as received, without the query) must carry;
    /// `None` when the path has a bad percent-encoding or a byte that is not graphic ASCII.
    pub(crate) fn expected<'a>(&'a self, path: &'a str) -> Option<ExpectedHtu<'a>> {
        if !valid_path(path) {
            return None;
        }
        Some(ExpectedHtu::Parts(Parts {
            scheme: self.scheme,
            authority: &self.authority,
            host: &self.host,
            port: self.port,
            prefix: &self.prefix,
            path,
        }))
    }

    /// The `htu` of a request for `path`, as a string (what [`Self::expected`] matches).
    #[cfg(any(test, fuzzing))]
    pub(crate) fn htu(&self, path: &str) -> Option<String> {
        let mut out = String::with_capacity(self.base.len() + path.len() + 1);
        out.push_str(&self.base);
        if !path.starts_with('/') {
            out.push('/');
        }
        push_path(&mut out, path)?;
        Some(out)
    }
}

/// `http` or `https` whatever its case.
fn http_scheme(scheme: &str) -> Option<&'static str> {
    if scheme.eq_ignore_ascii_case("https") {
        Some("https")
    } else if scheme.eq_ignore_ascii_case("http") {
        Some("http")
    } else {
        None
    }
}

/// What follows `scheme://`, split before the first `/`.
fn split_authority(rest: &str) -> (&str, &str) {
    match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    }
}

/// The `htu` of a request from its scheme, authority and path.
pub(crate) fn from_parts(scheme: &str, authority: &str, path: &str) -> Option<String> {
    let mut url = String::with_capacity(scheme.len() + authority.len() + path.len() + 4);
    url.push_str(scheme);
    url.push_str("://");
    url.push_str(authority);
    if !path.starts_with('/') {
        url.push('/');
    }
    url.push_str(path);
    normalize(&url)
}

/// The `htu` a request's proof must carry. Compared with a proof's `htu` piece by piece
/// (scheme, host, port, path) under the same normalisation as [`normalize`], without building
/// either URL: building and normalising both as strings was ~5 250 instructions of a DPoP
/// request, the request's parts checked and compared ~1 400 (`dpop` variant, HTTP/1.1,
/// callgrind; BENCHMARKS.md, issue 26). [`ExpectedHtu::matches`] accepts exactly what `normalize(htu) == normalize(url)`
/// accepts (tests: `the_piecewise_comparison_agrees_with_comparing_normalised_strings`).
#[derive(Debug, Clone)]
pub(crate) enum ExpectedHtu<'a> {
    /// The request's parts, each checked to normalise.
    Parts(Parts<'a>),
    /// A normalised URL: the token endpoint's, or a request whose authority or path holds a
    /// `/`, `?` or `#` (which `normalize` reads as the URL's own delimiters).
    Normalized(Cow<'a, str>),
}

/// The pieces of an [`ExpectedHtu`]: the URL is `scheme://host[:port]prefix[/]path`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parts<'a> {
    /// `http` or `https`.
    scheme: &'static str,
    /// As written (checked to normalise): the request's, or the public URL's as configured.
    authority: &'a str,
    /// As written (checked ASCII), compared whatever its case.
    host: &'a str,
    /// The port, the scheme's default when the URL has none.
    port: u16,
    /// Normalised already (a public URL's path), or empty.
    prefix: &'a str,
    /// As received (checked to normalise); a `/` goes before it unless it starts with one.
    path: &'a str,
}

impl<'a> ExpectedHtu<'a> {
    /// The `htu` of a request from its scheme, authority and path (as [`from_parts`] builds
    /// it); `None` when they make no URL.
    pub(crate) fn of_request(scheme: &str, authority: &'a str, path: &'a str) -> Option<Self> {
        let delimiter = |b| matches!(b, b'/' | b'?' | b'#');
        let plain =
            !authority.bytes().any(delimiter) && !path.bytes().any(|b| b == b'?' || b == b'#');
        match http_scheme(scheme) {
            Some(scheme) if plain => {
                let (host, port) = authority_parts(authority)?;
                if !valid_path(path) {
                    return None;
                }
                Some(Self::Parts(Parts {
                    scheme,
                    authority,
                    host,
                    port: port.unwrap_or_else(|| default_port(scheme)),
                    prefix: "",
                    path,
                }))
            }
            _ => from_parts(scheme, authority, path).map(|url| Self::Normalized(Cow::Owned(url))),
        }
    }

    /// The `htu` of an absolute URL (a token endpoint's); `None` when it is not one.
    pub(crate) fn of_url(url: &str) -> Option<Self> {
        normalize(url).map(|url| Self::Normalized(Cow::Owned(url)))
    }

    /// Whether a proof's `htu` claim names this URL, after normalising both.
    pub(crate) fn matches(&self, htu: &str) -> bool {
        match self {
            Self::Normalized(url) => normalize(htu).as_deref() == Some(&**url),
            Self::Parts(expected) => expected.matches(htu),
        }
    }

    /// The URL as a string, as [`normalize`] writes it.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn to_url(&self) -> String {
        match self {
            Self::Normalized(url) => url.to_string(),
            Self::Parts(p) => {
                let mut out = format!("{}://{}", p.scheme, p.host.to_ascii_lowercase());
                if p.port != default_port(p.scheme) {
                    out.push_str(&format!(":{}", p.port));
                }
                out.push_str(p.prefix);
                if !p.path.starts_with('/') {
                    out.push('/');
                }
                push_path(&mut out, p.path).expect("checked");
                out
            }
        }
    }
}

impl Parts<'_> {
    /// `normalize(htu) == normalize(self)`, read as `normalize` reads `htu`.
    fn matches(&self, htu: &str) -> bool {
        // The query and the fragment: from the first `?` or `#` on.
        let end = htu.bytes().position(|b| b == b'?' || b == b'#');
        let url = &htu[..end.unwrap_or(htu.len())];
        // `scheme://`, the scheme whatever its case (`normalize` splits at the first `://`,
        // which is this one when the URL starts so).
        let n = self.scheme.len();
        let Some(rest) = url
            .get(..n)
            .filter(|scheme| scheme.eq_ignore_ascii_case(self.scheme))
            .and_then(|_| url[n..].strip_prefix("://"))
        else {
            return false;
        };
        let (authority, path) = split_authority(rest);
        // The common case, a client that wrote the URL as the request came: the same text
        // normalises the same way.
        if authority != self.authority {
            let Some((host, port)) = authority_parts(authority) else {
                return false;
            };
            // Compared as `push_authority` writes them: a host may hold `:` itself, so
            // `a:443:80` (host `a:443`, the default port) is `a:443` (host `a`, port 443).
            let port = port.unwrap_or_else(|| default_port(self.scheme));
            if !Authority::new(self.scheme, host, port)
                .bytes()
                .eq(Authority::new(self.scheme, self.host, self.port).bytes())
            {
                return false;
            }
        }
        let path = if path.is_empty() { "/" } else { path };
        let slash = if self.path.starts_with('/') { "" } else { "/" };
        // Likewise the path: the text of the one normalised already (`prefix`), then the
        // request's as received (checked to normalise).
        let literal = path
            .strip_prefix(self.prefix)
            .and_then(|rest| rest.strip_prefix(slash))
            .is_some_and(|rest| rest == self.path);
        if literal {
            return true;
        }
        let mut expected = Units(self.prefix.as_bytes())
            .chain(Units(slash.as_bytes()))
            .chain(Units(self.path.as_bytes()));
        let mut actual = Units(path.as_bytes());
        loop {
            match (actual.next(), expected.next()) {
                (None, None) => return true,
                (Some(Some(a)), Some(Some(e))) if a == e => {}
                _ => return false,
            }
        }
    }
}

/// An authority as [`push_authority`] writes it, without allocating.
struct Authority<'a> {
    host: &'a str,
    /// `:` and the port's digits, or nothing for the scheme's default port.
    port: [u8; 6],
    port_len: usize,
}

impl<'a> Authority<'a> {
    fn new(scheme: &str, host: &'a str, port: u16) -> Self {
        let mut out = Self {
            host,
            port: [0; 6],
            port_len: 0,
        };
        if port != default_port(scheme) {
            // At most five digits.
            let digits = port.checked_ilog10().unwrap_or(0) as usize + 1;
            out.port[0] = b':';
            let mut rest = port;
            for i in (1..=digits).rev() {
                out.port[i] = b'0' + (rest % 10) as u8;
                rest /= 10;
            }
            out.port_len = digits + 1;
        }
        out
    }

    fn bytes(&self) -> impl Iterator<Item = u8> + '_ {
        self.host
            .bytes()
            .map(|b| b.to_ascii_lowercase())
            .chain(self.port[..self.port_len].iter().copied())
    }
}

/// One character of a path as [`push_path`] writes it: a byte (never `%`), or a
/// percent-encoding (`%` and two upper-case hex digits) of the byte it encodes. A path's units
/// are equal exactly when their normalised strings are: `%` starts every encoding and nothing
/// else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Byte(u8),
    Encoded(u8),
}

/// The units of a path; a `None` item where [`push_path`] fails.
struct Units<'a>(&'a [u8]);

impl Iterator for Units<'_> {
    type Item = Option<Unit>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&b, rest) = self.0.split_first()?;
        if b == b'%' {
            let decoded = match rest {
                [high, low, ..] => hex_pair(*high, *low),
                _ => None,
            };
            let Some(decoded) = decoded else {
                self.0 = &[];
                return Some(None);
            };
            self.0 = &rest[2..];
            Some(Some(if unreserved(decoded) {
                Unit::Byte(decoded)
            } else {
                Unit::Encoded(decoded)
            }))
        } else if b.is_ascii_graphic() {
            self.0 = rest;
            Some(Some(Unit::Byte(b)))
        } else {
            self.0 = &[];
            Some(None)
        }
    }
}

/// Whether [`push_path`] accepts `path`.
fn valid_path(path: &str) -> bool {
    Units(path.as_bytes()).all(|unit| unit.is_some())
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
#[path = "htu_tests.rs"]
mod tests;
