//! The `htu` a proof must carry (RFC 9449 §4.3 check 9): the request's URL without query and
//! fragment, compared after RFC 3986 §6.2.2 syntax-based and §6.2.3 scheme-based normalisation.
//!
//! Normalising means: scheme and host in lower case, the scheme's default port dropped (and an
//! empty port), an empty path as `/`, percent-encodings with upper-case hex digits, and
//! percent-encoded unreserved characters decoded. Dot segments are not removed: hyper passes
//! request paths as the client sent them, and the client signs what it sends.

use crate::error::ConfigError;

/// Normalises an absolute `http` or `https` URL for comparison, dropping its query and
/// fragment. `None` when it is not one (relative, another scheme, userinfo, a bad port, a bad
/// percent-encoding).
pub(crate) fn normalize(url: &str) -> Option<String> {
    let url = url.split('#').next().unwrap_or("");
    let url = url.split('?').next().unwrap_or("");
    let (scheme, rest) = url.split_once("://")?;
    let scheme = if scheme.eq_ignore_ascii_case("https") {
        "https"
    } else if scheme.eq_ignore_ascii_case("http") {
        "http"
    } else {
        return None;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let mut out = String::with_capacity(url.len() + 1);
    out.push_str(scheme);
    out.push_str("://");
    push_authority(&mut out, scheme, authority)?;
    push_path(&mut out, if path.is_empty() { "/" } else { path })?;
    Some(out)
}

/// Writes `authority` normalised: host in lower case, the default port of `scheme` dropped.
fn push_authority(out: &mut String, scheme: &str, authority: &str) -> Option<()> {
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
    for b in host.bytes() {
        out.push(char::from(b.to_ascii_lowercase()));
    }
    match port {
        None | Some("") => {}
        Some(port) => {
            if port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let number: u32 = port.parse().ok()?;
            if number > 65_535 {
                return None;
            }
            let default = if scheme == "https" { 443 } else { 80 };
            if number != default {
                out.push(':');
                // Leading zeros are not part of the port's value.
                out.push_str(&number.to_string());
            }
        }
    }
    Some(())
}

/// Writes `path` with its percent-encodings normalised.
pub(crate) fn push_path(out: &mut String, path: &str) -> Option<()> {
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let high = hex_value(*bytes.get(i + 1)?)?;
            let low = hex_value(*bytes.get(i + 2)?)?;
            let decoded = high << 4 | low;
            if decoded.is_ascii_alphanumeric() || matches!(decoded, b'-' | b'.' | b'_' | b'~') {
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

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A configured public URL: the origin (and optional path prefix) clients use. `htu` must be
/// this plus the request's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublicUrl {
    /// Normalised, without a trailing slash (`https://api.example/prefix` or
    /// `https://api.example`).
    base: String,
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
        let mut base = normalize(url).ok_or_else(|| bad("not an absolute http(s) URL"))?;
        while base.ends_with('/') {
            base.pop();
        }
        Ok(Self { base })
    }

    /// The `htu` of a request for `path` (its path as received, without the query).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_host_case_default_ports_and_empty_paths_normalise_away() {
        let same = [
            "https://api.example/whoami",
            "HTTPS://API.Example/whoami",
            "https://api.example:443/whoami",
            "https://api.example:/whoami",
            "https://api.example/whoami?x=1",
            "https://api.example/whoami#frag",
            "https://api.example/who%61mi",
        ];
        for url in same {
            assert_eq!(
                normalize(url).as_deref(),
                Some("https://api.example/whoami"),
                "{url}"
            );
        }
        assert_eq!(
            normalize("http://h:80").as_deref(),
            Some("http://h/"),
            "default port and empty path"
        );
        assert_eq!(
            normalize("https://h:8443/a").as_deref(),
            Some("https://h:8443/a")
        );
        assert_eq!(
            normalize("https://h:08443/a").as_deref(),
            Some("https://h:8443/a")
        );
        assert_eq!(
            normalize("https://[::1]:443/a").as_deref(),
            Some("https://[::1]/a")
        );
        assert_eq!(
            normalize("https://h/a%2fb").as_deref(),
            Some("https://h/a%2Fb")
        );
    }

    #[test]
    fn what_differs_after_normalising_stays_different() {
        let base = normalize("https://api.example/whoami");
        for other in [
            "http://api.example/whoami",
            "https://api.example:8443/whoami",
            "https://api.example/WHOAMI",
            "https://api.example/whoami/",
            "https://other.example/whoami",
        ] {
            assert_ne!(normalize(other), base, "{other}");
        }
    }

    #[test]
    fn malformed_urls_do_not_normalise() {
        for bad in [
            "",
            "/whoami",
            "ftp://h/",
            "https://",
            "https://user@h/",
            "https://h:99999/",
            "https://h:x/",
            "https://h/%zz",
            "https://h/%4",
            "https://h/a b",
            "https://h\u{e9}/",
            "https://[::1/",
            "https://[::1]x/",
        ] {
            assert_eq!(normalize(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_public_url_with_or_without_trailing_slash_prefixes_the_request_path() {
        for configured in ["https://API.example/base", "https://api.example/base/"] {
            let public = PublicUrl::parse(configured).unwrap();
            assert_eq!(
                public.htu("/whoami").as_deref(),
                Some("https://api.example/base/whoami")
            );
        }
        let root = PublicUrl::parse("https://api.example:443").unwrap();
        assert_eq!(root.htu("/").as_deref(), Some("https://api.example/"));
        assert!(PublicUrl::parse("api.example").is_err());
        assert!(PublicUrl::parse("https://api.example/?q").is_err());
    }

    #[test]
    fn request_parts_make_the_same_htu_as_the_client_url() {
        assert_eq!(
            from_parts("https", "API.example:443", "/whoami"),
            normalize("https://api.example/whoami")
        );
    }
}
