//! [`ForwardedOrigin`]: the scheme and authority the client used, as a trusted proxy reports
//! them in the headers [`OriginHeaders`] names.
//!
//! Strict like the certificate parsers: a value that is not exactly one `http`/`https` scheme
//! and one plain `host[:port]` is refused, never "repaired", and the reason is fixed text for
//! debug traces only.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use http::header::{HeaderMap, HeaderName, FORWARDED, HOST};
use http::Uri;

use super::parse::{split_unquoted, trim, unquote};
use crate::error::ConfigError;

const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Every header that carries the client's origin in either style. All of them are removed from
/// an untrusted peer's request, whichever style the layer reads, so that no component behind it
/// can be told an origin by the client.
pub(super) const HEADERS: [HeaderName; 3] = [X_FORWARDED_PROTO, X_FORWARDED_HOST, FORWARDED];

/// The scheme and authority the client used to reach a trusted TLS-terminating proxy, as that
/// proxy said (see the [module docs](crate::forwarded#the-origin-the-client-used)).
///
/// Inserted into a request's extensions by [`ForwardedCertLayer`](crate::ForwardedCertLayer)
/// configured with [`forwarded_origin`](crate::ForwardedCertLayer::forwarded_origin), for
/// requests from trusted proxies whose headers are well formed, and never otherwise. A DPoP
/// proof's `htu` (RFC 9449 §4.3) is checked against it instead of the request's own scheme
/// and `Host`, which behind such a proxy are those of the proxy's connection.
///
/// Normalized as RFC 3986 §6.2.2 and §6.2.3 say: scheme and host in lower case, and the
/// scheme's default port omitted, so that equal origins compare equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedOrigin {
    scheme: &'static str,
    authority: Box<str>,
}

impl ForwardedOrigin {
    /// The scheme, `http` or `https`.
    pub fn scheme(&self) -> &str {
        self.scheme
    }

    /// The authority: `host` or `host:port`, where host is a DNS name, a dotted-decimal IPv4
    /// address or a bracketed IPv6 address (`[2001:db8::1]:8443`), in lower case; never
    /// userinfo, a path or the scheme's default port.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Validates and normalizes a scheme and an authority as a proxy wrote them.
    pub(crate) fn parse(scheme: &[u8], authority: &[u8]) -> Result<Self, &'static str> {
        let (scheme, default_port) = if scheme.eq_ignore_ascii_case(b"https") {
            ("https", 443)
        } else if scheme.eq_ignore_ascii_case(b"http") {
            ("http", 80)
        } else {
            return Err("the scheme is neither http nor https");
        };
        let (host, port) = split_authority(authority)?;
        let mut normalized = String::with_capacity(authority.len());
        // ASCII checked by split_authority.
        normalized.extend(host.iter().map(|b| char::from(b.to_ascii_lowercase())));
        if let Some(port) = port.filter(|port| *port != default_port) {
            // Writing to a String cannot fail.
            let _ = write!(normalized, ":{port}");
        }
        Ok(Self {
            scheme,
            authority: normalized.into_boxed_str(),
        })
    }
}

impl fmt::Display for ForwardedOrigin {
    /// `scheme://authority`, the origin's serialization (RFC 6454 §6.2).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

/// Splits an RFC 3986 §3.2 authority without userinfo into its host and port. The host is a
/// bracketed IPv6 address, a dotted-decimal IPv4 address or a reg-name of unreserved
/// characters only: no percent-encoding and no sub-delimiters (`,` `;` `=` ...), which no DNS
/// name needs and which would let the value mean different things to different parsers.
fn split_authority(authority: &[u8]) -> Result<(&[u8], Option<u16>), &'static str> {
    let (host, port) = if let Some(literal) = authority.strip_prefix(b"[") {
        let end = literal
            .iter()
            .position(|&b| b == b']')
            .ok_or("an unterminated IPv6 literal")?;
        // std parses exactly RFC 4291 text: no zone identifier, no IPvFuture.
        std::str::from_utf8(&literal[..end])
            .ok()
            .and_then(|text| Ipv6Addr::from_str(text).ok())
            .ok_or("not an IPv6 address in brackets")?;
        let (host, rest) = authority.split_at(end + 2);
        let port = match rest {
            [] => None,
            [b':', port @ ..] => Some(port),
            _ => return Err("text after an IPv6 literal"),
        };
        (host, port)
    } else {
        match authority.iter().position(|&b| b == b':') {
            Some(colon) => (&authority[..colon], Some(&authority[colon + 1..])),
            None => (authority, None),
        }
    };
    if !host.starts_with(b"[") {
        reg_name_or_ipv4(host)?;
    }
    let port = match port {
        None => None,
        Some(digits) => Some(port_number(digits)?),
    };
    Ok((host, port))
}

fn reg_name_or_ipv4(host: &[u8]) -> Result<(), &'static str> {
    if host.is_empty() {
        return Err("an empty host");
    }
    // RFC 3986 §2.3 unreserved.
    if !host
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    {
        return Err("a host with characters outside a DNS name");
    }
    // URL parsers (WHATWG) read a host that ends in a number as an IPv4 address even in forms
    // RFC 3986 calls reg-names (`127.1`, `0x7f.0.0.1`): only the dotted-decimal form is
    // accepted, so that the host means one thing to every parser.
    let labels = host.strip_suffix(b".").unwrap_or(host);
    let last = labels.rsplit(|&b| b == b'.').next().unwrap_or_default();
    let numeric = match last {
        [b'0', b'x' | b'X', hex @ ..] => hex.iter().all(u8::is_ascii_hexdigit),
        _ => !last.is_empty() && last.iter().all(u8::is_ascii_digit),
    };
    if numeric {
        let text = std::str::from_utf8(host).map_err(|_| "not ASCII")?;
        // std refuses leading zeros, octal and hex parts, and fewer than four parts.
        Ipv4Addr::from_str(text).map_err(|_| "a host that ends in a number but is not IPv4")?;
    }
    Ok(())
}

/// RFC 3986 §3.2.3 port, restricted to what names a TCP port once: 1 to 65535, no leading zero.
fn port_number(digits: &[u8]) -> Result<u16, &'static str> {
    match digits {
        [b'1'..=b'9', rest @ ..] if rest.len() < 5 && rest.iter().all(u8::is_ascii_digit) => {
            std::str::from_utf8(digits)
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or("a port above 65535")
        }
        _ => Err("not a port number"),
    }
}

/// Which headers a trusted proxy reports the client's origin in (see
/// [`ForwardedCertLayer::forwarded_origin`](crate::ForwardedCertLayer::forwarded_origin)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OriginHeaders {
    /// `X-Forwarded-Proto` (the scheme) and `X-Forwarded-Host` (the authority), each at most
    /// once, each one plain value (nginx `proxy_set_header X-Forwarded-Proto $scheme;`, HAProxy
    /// `http-request set-header`, Envoy, most cloud load balancers).
    XForwarded,
    /// RFC 7239 `Forwarded`: the `proto` and `host` parameters of the list's last element, the
    /// one the proxy next to the service appended.
    Forwarded,
}

impl OriginHeaders {
    /// What a trusted proxy's headers say: `Ok(None)` when they say nothing, `Err` when they
    /// cannot be used (the request must then get no origin).
    pub(crate) fn read(
        self,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Option<ForwardedOrigin>, &'static str> {
        let (scheme, host) = match self {
            Self::XForwarded => (
                single(headers, &X_FORWARDED_PROTO)?.map(Cow::Borrowed),
                single(headers, &X_FORWARDED_HOST)?.map(Cow::Borrowed),
            ),
            Self::Forwarded => last_forwarded_element(headers)?,
        };
        let scheme = match (scheme, &host) {
            (None, None) => return Ok(None),
            // Behind a TLS-terminating proxy the request's own scheme is that of the proxy's
            // connection: guessing would be a silent `https`, or a silent downgrade.
            (None, Some(_)) => return Err("a forwarded host without the scheme"),
            (Some(scheme), _) => scheme,
        };
        let authority: &[u8] = match &host {
            Some(host) => host,
            None => own_authority(uri, headers)?,
        };
        ForwardedOrigin::parse(&scheme, authority).map(Some)
    }
}

/// The value of header `name`, trimmed, if it is there once; an error if it is there twice.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a [u8]>, &'static str> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(value), None) => Ok(Some(trim(value.as_bytes()))),
        (Some(_), Some(_)) => Err("an origin header given more than once"),
    }
}

/// The request's own authority, for a proxy that forwarded the scheme alone and passed the
/// client's `Host` on: the request target's authority (HTTP/2 `:authority`, HTTP/1.1
/// absolute-form, RFC 9112 §3.2.2), else its one `Host` header.
fn own_authority<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Result<&'a [u8], &'static str> {
    match uri.authority() {
        Some(authority) => Ok(authority.as_str().as_bytes()),
        None => single(headers, &HOST)?.ok_or("a forwarded scheme and no host at all"),
    }
}

/// `Forwarded` parameter values: a scheme and a host.
type Parameters<'a> = (Option<Cow<'a, [u8]>>, Option<Cow<'a, [u8]>>);

/// RFC 7239 §4: `proto` and `host` of the last element of the `Forwarded` list.
///
/// The last element is the one the proxy next to the service added: a proxy appends its own
/// element to those that came with the request (RFC 7239 §4), and everything before it came
/// from the client or from hops that are not trusted. Several header lines are one list
/// (RFC 9110 §5.3), each line parsed on its own so that a quote cannot run from a line the
/// client wrote into the proxy's. Empty elements are skipped as RFC 9110 §5.6.1 asks, except
/// the last: an empty last element means the proxy added nothing usable, and stepping back
/// would read the client's.
fn last_forwarded_element(headers: &HeaderMap) -> Result<Parameters<'_>, &'static str> {
    let mut last = None;
    for line in headers.get_all(FORWARDED) {
        if let Some(element) = split_unquoted(line.as_bytes(), b',')?.pop() {
            last = Some(trim(element));
        }
    }
    let Some(element) = last else {
        return Ok((None, None));
    };
    if element.is_empty() {
        return Err("the last Forwarded element is empty");
    }
    let (mut proto, mut host) = (None, None);
    for pair in split_unquoted(element, b';')? {
        // forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )
        let pair = trim(pair);
        if pair.is_empty() {
            continue;
        }
        let eq = pair
            .iter()
            .position(|&b| b == b'=')
            .ok_or("a Forwarded parameter without '='")?;
        let (name, value) = (&pair[..eq], forwarded_value(&pair[eq + 1..])?);
        if !is_token(name) {
            return Err("a Forwarded parameter name that is not a token");
        }
        // RFC 7239 §4: parameter names are case-insensitive; unknown ones are ignored (§5.5).
        let slot = if name.eq_ignore_ascii_case(b"proto") {
            &mut proto
        } else if name.eq_ignore_ascii_case(b"host") {
            &mut host
        } else {
            continue;
        };
        // RFC 7239 §4: each parameter at most once per element.
        if slot.replace(value).is_some() {
            return Err("a Forwarded parameter given twice in one element");
        }
    }
    Ok((proto, host))
}

/// RFC 7239 §4 `value = token / quoted-string`, unquoted. Unquoted, `:` `[` `]` are accepted
/// too: RFC 7239 asks for quotes around a host with a port or an IPv6 address, hand-written
/// proxy configurations often leave them out, and those characters delimit nothing here.
fn forwarded_value(value: &[u8]) -> Result<Cow<'_, [u8]>, &'static str> {
    if value.starts_with(b"\"") {
        return unquote(value).map(Cow::Owned);
    }
    if value.is_empty()
        || !value
            .iter()
            .all(|&b| is_tchar(b) || matches!(b, b':' | b'[' | b']'))
    {
        return Err("a Forwarded value that is neither a token nor a quoted string");
    }
    Ok(Cow::Borrowed(value))
}

/// RFC 9110 §5.6.2 token.
fn is_token(value: &[u8]) -> bool {
    !value.is_empty() && value.iter().all(|&b| is_tchar(b))
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl FromStr for OriginHeaders {
    type Err = ConfigError;

    /// `x-forwarded` or `forwarded`.
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "x-forwarded" => Ok(Self::XForwarded),
            "forwarded" => Ok(Self::Forwarded),
            _ => Err(ConfigError::invalid(
                "origin headers",
                format!("unknown origin headers {s:?} (x-forwarded, forwarded)"),
            )),
        }
    }
}

impl fmt::Display for OriginHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::XForwarded => "x-forwarded",
            Self::Forwarded => "forwarded",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(scheme: &str, authority: &str) -> Result<ForwardedOrigin, &'static str> {
        ForwardedOrigin::parse(scheme.as_bytes(), authority.as_bytes())
    }

    /// What `style` reads from `headers` on a request for `uri`, as `scheme://authority`.
    fn read(style: OriginHeaders, uri: &str, headers: &[(&str, &str)]) -> Option<String> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        style
            .read(&uri.parse().unwrap(), &map)
            .ok()
            .flatten()
            .map(|origin| origin.to_string())
    }

    fn forwarded(lines: &[&str]) -> Option<String> {
        let headers: Vec<_> = lines.iter().map(|line| ("forwarded", *line)).collect();
        read(OriginHeaders::Forwarded, "/", &headers)
    }

    #[test]
    fn scheme_and_host_are_lowercased_and_the_default_port_dropped() {
        let o = origin("HTTPS", "API.Example:8443").unwrap();
        assert_eq!((o.scheme(), o.authority()), ("https", "api.example:8443"));
        assert_eq!(
            origin("https", "api.example:443"),
            origin("https", "api.example")
        );
        assert_eq!(
            origin("Http", "API.example:80").unwrap().authority(),
            "api.example"
        );
        // Not the default port of this scheme: kept.
        assert_eq!(
            origin("http", "a.example:443").unwrap().authority(),
            "a.example:443"
        );
        assert_eq!(
            origin("https", "a.example:80").unwrap().to_string(),
            "https://a.example:80"
        );
    }

    #[test]
    fn ip_addresses_are_hosts_ipv6_in_brackets() {
        for (written, normalized) in [
            ("[2001:DB8::1]", "[2001:db8::1]"),
            ("[2001:db8::1]:8443", "[2001:db8::1]:8443"),
            ("[::ffff:192.0.2.1]", "[::ffff:192.0.2.1]"),
            ("192.0.2.1:8080", "192.0.2.1:8080"),
            ("a-b_c~d.example.", "a-b_c~d.example."),
            ("1password.example", "1password.example"),
        ] {
            assert_eq!(origin("https", written).unwrap().authority(), normalized);
        }
    }

    #[test]
    fn anything_but_a_plain_host_and_port_is_refused() {
        for authority in [
            "",
            ":443",
            "user@api.example",
            "user:pass@api.example",
            "api.example/path",
            "api.example?q",
            "api.example#f",
            "api example",
            "api.example, evil.example",
            "api.example;x",
            "ap%69.example",
            "\"api.example\"",
            "api.example:",
            "api.example:0",
            "api.example:08443",
            "api.example:65536",
            "api.example:123456",
            "api.example:+443",
            "api.example:443:443",
            "api.example:https",
            "2001:db8::1",
            "[2001:db8::1",
            "[2001:db8::1]443",
            "[fe80::1%25eth0]",
            "[v1.fe80::1]",
            "[api.example]",
            "127.1",
            "0x7f.0.0.1",
            "1.2.3.0x4",
            "010.0.0.1",
            "256.0.0.1",
            "1.2.3.4.",
            "api.ex\u{e4}mple",
        ] {
            assert!(origin("https", authority).is_err(), "{authority:?}");
        }
        for scheme in ["", "ftp", "https, http", "wss", "https:"] {
            assert!(origin(scheme, "api.example").is_err(), "{scheme:?}");
        }
    }

    #[test]
    fn x_forwarded_needs_each_header_at_most_once() {
        let style = OriginHeaders::XForwarded;
        let pair = [
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "API.example:8443"),
        ];
        assert_eq!(
            read(style, "/", &pair).as_deref(),
            Some("https://api.example:8443")
        );
        for twice in ["x-forwarded-proto", "x-forwarded-host"] {
            let mut headers = pair.to_vec();
            headers.push((twice, "https"));
            assert_eq!(read(style, "/", &headers), None, "{twice}");
        }
        // Nothing said, or several proxies' values in one header: no origin.
        assert_eq!(read(style, "/", &[]), None);
        assert_eq!(
            read(style, "/", &[("x-forwarded-proto", "https, http")]),
            None
        );
    }

    #[test]
    fn a_scheme_alone_goes_with_the_requests_own_authority() {
        let style = OriginHeaders::XForwarded;
        let proto = ("x-forwarded-proto", "https");
        assert_eq!(
            read(style, "/", &[proto, ("host", "Api.Example")]).as_deref(),
            Some("https://api.example")
        );
        // The request target's authority wins over Host (HTTP/2, absolute-form).
        assert_eq!(
            read(
                style,
                "http://a.example:8080/x",
                &[proto, ("host", "b.example")]
            )
            .as_deref(),
            Some("https://a.example:8080")
        );
        assert_eq!(read(style, "/", &[proto]), None);
        assert_eq!(
            read(
                style,
                "/",
                &[proto, ("host", "a.example"), ("host", "b.example")]
            ),
            None
        );
        assert_eq!(forwarded(&["proto=https"]), None, "no Host on this request");
    }

    #[test]
    fn a_host_without_scheme_gives_no_origin() {
        assert_eq!(
            read(
                OriginHeaders::XForwarded,
                "/",
                &[("x-forwarded-host", "api.example")]
            ),
            None
        );
        assert_eq!(forwarded(&["host=api.example"]), None);
    }

    #[test]
    fn the_last_forwarded_element_counts() {
        let ok = |lines: &[&str]| forwarded(lines).expect("an origin");
        assert_eq!(
            ok(&["for=192.0.2.43;proto=http;host=evil.example, for=198.51.100.17;by=203.0.113.60;proto=https;host=api.example"]),
            "https://api.example"
        );
        // Several lines are one list; quoted values with the delimiters inside.
        assert_eq!(
            ok(&[
                "proto=http;host=\"evil.example\"",
                "for=\"[2001:db8:cafe::17]:4711\";Proto=HTTPS;HOST=\"API.Example:8443\", for=\"_a,b;c\";host=\"[2001:DB8::1]:8443\";proto=\"https\""
            ]),
            "https://[2001:db8::1]:8443"
        );
        // Case-insensitive names, optional whitespace, empty pairs and earlier empty elements.
        assert_eq!(
            ok(&[", ,PROTO=https ; ;Host=api.example:8443"]),
            "https://api.example:8443"
        );
        // Unquoted host with port (RFC 7239 wants quotes; tolerated).
        assert_eq!(
            ok(&["proto=https;host=api.example:8443"]),
            "https://api.example:8443"
        );
        // A quoted-pair stands for its character.
        assert_eq!(
            ok(&["proto=https;host=\"api\\.example\""]),
            "https://api.example"
        );
        // The last element says nothing of the origin: an earlier one is never used.
        assert_eq!(
            forwarded(&["proto=https;host=api.example, for=192.0.2.1"]),
            None
        );
    }

    #[test]
    fn malformed_forwarded_values_give_no_origin() {
        for lines in [
            &["proto=https;host=evil.com/path"][..],
            &["proto=https;host=\"user@api.example\""],
            &["proto=https;host=\"api.example:99999\""],
            &["proto=https;host=api.example, "],
            &["proto=https;host=api.example", ""],
            &["proto=https;host=\"api.example"],
            &[
                "proto=https;host=\"api.example",
                "\",proto=https;host=evil.example",
            ],
            &["proto=https;proto=https;host=api.example"],
            &["proto=https;host=a.example;HOST=b.example"],
            &["proto=https;host="],
            &["proto=https;host"],
            &["proto=https;host=a\"b\""],
            &["proto = https;host=api.example"],
            &["pro\"to\"=https;host=api.example"],
            &["proto=https;host=\"api.example\"x"],
            &["proto=https;host=\"api.example\\\""],
            &["proto=ht\"tp\"s;host=api.example"],
            &["proto=\"https, http\";host=api.example"],
        ] {
            assert_eq!(forwarded(lines), None, "{lines:?}");
        }
    }

    #[test]
    fn origin_header_styles_parse_from_their_names() {
        for style in [OriginHeaders::XForwarded, OriginHeaders::Forwarded] {
            assert_eq!(style.to_string().parse::<OriginHeaders>().unwrap(), style);
        }
        assert!("X-Forwarded".parse::<OriginHeaders>().is_err());
    }

    /// Seeded random mutations of valid values: never a panic, and never an origin that is not
    /// normalized.
    #[test]
    fn random_input_never_panics() {
        let valid = [
            "for=\"[2001:db8::17]:4711\";proto=https;host=\"[2001:db8::1]:8443\"",
            "proto=http;host=a.example, proto=https;host=api.example:8443",
            "api.example:8443",
            "192.0.2.1:443",
        ];
        let valid = valid.map(str::as_bytes);
        let inserts = b"\\\":;,=[]@/% ";
        for bytes in crate::test_helpers::mutations(0x2545_f491_4f6c_dd1d, &valid, inserts, 4000) {
            let mut headers = HeaderMap::new();
            if let Ok(value) = http::HeaderValue::from_bytes(&bytes) {
                headers.append(FORWARDED, value.clone());
                headers.append(X_FORWARDED_PROTO, "https".parse().unwrap());
                headers.append(X_FORWARDED_HOST, value);
            }
            for style in [OriginHeaders::Forwarded, OriginHeaders::XForwarded] {
                if let Ok(Some(o)) = style.read(&Uri::from_static("/"), &headers) {
                    let again =
                        ForwardedOrigin::parse(o.scheme().as_bytes(), o.authority().as_bytes());
                    assert_eq!(again.as_ref(), Ok(&o), "{bytes:?}");
                }
            }
            let _ = ForwardedOrigin::parse(b"https", &bytes);
        }
    }
}
