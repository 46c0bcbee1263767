//! [`ForwardedCertFormat`]: how a proxy writes the client certificate into its header.

use std::fmt;
use std::str::FromStr;

use super::parse;
use crate::error::ConfigError;

/// How a proxy writes the client certificate into its header (see the [module docs](crate::forwarded)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedCertFormat {
    /// RFC 9440 `Client-Cert` (and `Client-Cert-Chain`): an RFC 8941 byte sequence of the DER.
    Rfc9440,
    /// Envoy `x-forwarded-client-cert`: `Cert=` (URL-encoded PEM) and/or `Hash=` (hex SHA-256)
    /// of the element the nearest proxy appended.
    Xfcc,
    /// nginx `$ssl_client_escaped_cert`: URL-encoded PEM.
    Nginx,
    /// HAProxy `%[ssl_c_der,base64]`: base64 of the DER.
    Haproxy,
    /// Apache `%{SSL_CLIENT_CERT}s`: PEM (line breaks as spaces), `(null)` when there is none.
    Apache,
}

impl ForwardedCertFormat {
    /// The header this format usually travels in.
    pub const fn default_header(self) -> &'static str {
        match self {
            Self::Rfc9440 => "client-cert",
            Self::Xfcc => "x-forwarded-client-cert",
            Self::Nginx | Self::Haproxy | Self::Apache => "x-ssl-client-cert",
        }
    }

    pub(crate) fn parse(self, value: &[u8], chain: Option<&[u8]>) -> parse::Parsed {
        match self {
            Self::Rfc9440 => parse::rfc9440(value, chain),
            Self::Xfcc => parse::xfcc(value),
            Self::Nginx => parse::escaped_pem(value),
            Self::Haproxy => parse::base64_der(value),
            Self::Apache => parse::apache_pem(value),
        }
    }
}

impl FromStr for ForwardedCertFormat {
    type Err = ConfigError;

    /// `rfc9440`, `xfcc`, `nginx`, `haproxy` or `apache`.
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        Ok(match s {
            "rfc9440" => Self::Rfc9440,
            "xfcc" => Self::Xfcc,
            "nginx" => Self::Nginx,
            "haproxy" => Self::Haproxy,
            "apache" => Self::Apache,
            _ => {
                return Err(ConfigError::invalid(
                    "forwarded certificate format",
                    format!("unknown format {s:?} (rfc9440, xfcc, nginx, haproxy, apache)"),
                ))
            }
        })
    }
}

impl fmt::Display for ForwardedCertFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Rfc9440 => "rfc9440",
            Self::Xfcc => "xfcc",
            Self::Nginx => "nginx",
            Self::Haproxy => "haproxy",
            Self::Apache => "apache",
        })
    }
}
