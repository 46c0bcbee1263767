//! `tls_client_auth` subject matching (RFC 8705 §2.1.2): the one registered subject value
//! against the certificate's subject DN or its subjectAltName entries of one type.
//!
//! SAN matching is *equality* of the registered value with one SAN entry of the registered
//! type; it is not hostname verification: no wildcards, no fallback to the subject's CN or to the
//! DN's `emailAddress`.

use std::net::IpAddr;

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::dn::DistinguishedName;
use crate::error::ConfigError;

/// The registered subject of a `tls_client_auth` client.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SubjectMatcher {
    /// `tls_client_auth_subject_dn`.
    Dn(DistinguishedName),
    /// `tls_client_auth_san_dns`: compared ignoring ASCII case.
    Dns(String),
    /// `tls_client_auth_san_uri`: compared exactly.
    Uri(String),
    /// `tls_client_auth_san_ip`: compared in binary form.
    Ip(IpAddr),
    /// `tls_client_auth_san_email`: local part exactly, domain ignoring ASCII case.
    Email { local: String, domain: String },
}

impl SubjectMatcher {
    pub(crate) fn subject_dn(dn: &str) -> Result<Self, ConfigError> {
        DistinguishedName::parse(dn)
            .map(Self::Dn)
            .map_err(|e| ConfigError::invalid("tls_client_auth_subject_dn", e.to_string()))
    }

    pub(crate) fn san_dns(name: &str) -> Result<Self, ConfigError> {
        if name.is_empty() || !name.is_ascii() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(ConfigError::invalid(
                "tls_client_auth_san_dns",
                "must be a non-empty ASCII name (A-labels for IDNs)",
            ));
        }
        Ok(Self::Dns(name.to_owned()))
    }

    pub(crate) fn san_uri(uri: &str) -> Result<Self, ConfigError> {
        // An absolute URI has a scheme; anything without one cannot equal a SAN URI.
        let scheme_ok = uri.split_once(':').is_some_and(|(scheme, rest)| {
            !rest.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        });
        if !scheme_ok {
            return Err(ConfigError::invalid(
                "tls_client_auth_san_uri",
                "must be an absolute URI",
            ));
        }
        Ok(Self::Uri(uri.to_owned()))
    }

    pub(crate) fn san_ip(ip: &str) -> Result<Self, ConfigError> {
        // std's parser takes every RFC 4291 text form (`::1`, `0:0:0:0:0:0:0:1`, upper-case
        // hex, embedded IPv4); the comparison is on the 4 or 16 octets.
        ip.parse::<IpAddr>().map(Self::Ip).map_err(|_| {
            ConfigError::invalid("tls_client_auth_san_ip", "not an IPv4 or IPv6 address")
        })
    }

    pub(crate) fn san_email(email: &str) -> Result<Self, ConfigError> {
        match email.rsplit_once('@') {
            Some((local, domain)) if !local.is_empty() && !domain.is_empty() => Ok(Self::Email {
                local: local.to_owned(),
                domain: domain.to_owned(),
            }),
            _ => Err(ConfigError::invalid(
                "tls_client_auth_san_email",
                "must be local@domain",
            )),
        }
    }

    /// Whether the certificate carries the registered subject.
    pub(crate) fn matches(&self, cert: &X509Certificate<'_>) -> bool {
        if let Self::Dn(dn) = self {
            return dn.matches(cert.subject());
        }
        // A certificate with two SAN extensions is malformed (RFC 5280 §4.2): no match.
        let Ok(Some(san)) = cert.subject_alternative_name() else {
            return false;
        };
        san.value
            .general_names
            .iter()
            .any(|name| self.matches_san(name))
    }

    fn matches_san(&self, name: &GeneralName<'_>) -> bool {
        match (self, name) {
            (Self::Dns(ours), GeneralName::DNSName(theirs)) => ours.eq_ignore_ascii_case(theirs),
            (Self::Uri(ours), GeneralName::URI(theirs)) => ours == theirs,
            (Self::Ip(ours), GeneralName::IPAddress(theirs)) => match ours {
                IpAddr::V4(ip) => ip.octets().as_slice() == *theirs,
                IpAddr::V6(ip) => ip.octets().as_slice() == *theirs,
            },
            (Self::Email { local, domain }, GeneralName::RFC822Name(theirs)) => {
                // RFC 5280 §4.2.1.6 / §7.5: the local part is case-sensitive, the domain not.
                theirs
                    .rsplit_once('@')
                    .is_some_and(|(l, d)| l == local.as_str() && d.eq_ignore_ascii_case(domain))
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_dn_shows_only_its_shape_in_debug() {
        let matcher = SubjectMatcher::subject_dn("CN=bank-client+UID=42,O=Example Bank").unwrap();
        let debug = format!("{matcher:?}");
        // Certificate order: O first, then the two-valued RDN.
        assert!(
            debug.contains("DistinguishedName { rdn_sizes: [1, 2] }"),
            "{debug}"
        );
        assert!(!debug.contains("bank-client"), "{debug}");
    }

    #[test]
    fn registered_values_are_validated() {
        assert!(SubjectMatcher::san_dns("").is_err());
        assert!(SubjectMatcher::san_dns("bücher.example").is_err());
        assert!(SubjectMatcher::san_dns("a b").is_err());
        assert!(SubjectMatcher::san_uri("no-scheme").is_err());
        assert!(SubjectMatcher::san_uri("spiffe://example.org/x").is_ok());
        assert!(SubjectMatcher::san_uri("urn:example:client-7").is_ok());
        // A scheme starts with a letter, holds only letters, digits, '+', '-', '.', and is
        // followed by something.
        for bad in ["1http://x", "https:", ":x", "ht tp://x", "ht_tp://x"] {
            assert!(SubjectMatcher::san_uri(bad).is_err(), "{bad}");
        }
        assert!(SubjectMatcher::san_ip("fe80::1%eth0").is_err());
        assert!(SubjectMatcher::san_ip("1.2.3").is_err());
        assert!(SubjectMatcher::san_email("nobody").is_err());
        assert!(SubjectMatcher::san_email("@example.com").is_err());
        assert!(SubjectMatcher::subject_dn("").is_err());
    }

    #[test]
    fn a_certificate_matches_its_own_subject_and_sans_only() {
        use x509_parser::prelude::FromDer as _;
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["client.example".to_owned()]).unwrap();
        params.subject_alt_names.push(rcgen::SanType::URI(
            "spiffe://example.org/client".try_into().unwrap(),
        ));
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "client");
        let cert = params.self_signed(&key).unwrap();
        let (_, parsed) = X509Certificate::from_der(cert.der()).unwrap();
        let matches = |m: Result<SubjectMatcher, ConfigError>| m.unwrap().matches(&parsed);
        assert!(matches(SubjectMatcher::subject_dn("CN=client,O=Example")));
        assert!(!matches(SubjectMatcher::subject_dn("CN=client,O=Other")));
        assert!(matches(SubjectMatcher::san_dns("client.example")));
        assert!(!matches(SubjectMatcher::san_dns("other.example")));
        assert!(!matches(SubjectMatcher::san_uri("https://client.example")));
        assert!(matches(SubjectMatcher::san_uri(
            "spiffe://example.org/client"
        )));
        assert!(!matches(SubjectMatcher::san_uri(
            "spiffe://example.org/other"
        )));
        // A certificate without any SAN matches no SAN value.
        let bare = rcgen::CertificateParams::default()
            .self_signed(&key)
            .unwrap();
        let (_, bare) = X509Certificate::from_der(bare.der()).unwrap();
        assert!(!SubjectMatcher::san_dns("client.example")
            .unwrap()
            .matches(&bare));
    }

    #[test]
    fn ipv6_text_forms_are_one_address() {
        let a = SubjectMatcher::san_ip("::1").unwrap();
        let b = SubjectMatcher::san_ip("0:0:0:0:0:0:0:1").unwrap();
        assert_eq!(a, b);
        let c = SubjectMatcher::san_ip("2001:DB8::A").unwrap();
        let d = SubjectMatcher::san_ip("2001:0db8:0000:0000:0000:0000:0000:000a").unwrap();
        assert_eq!(c, d);
    }

    #[test]
    fn sans_of_another_type_do_not_match() {
        let dns = SubjectMatcher::san_dns("client.example").unwrap();
        assert!(!dns.matches_san(&GeneralName::URI("client.example")));
        assert!(!dns.matches_san(&GeneralName::RFC822Name("client.example")));
        assert!(dns.matches_san(&GeneralName::DNSName("CLIENT.example")));
        assert!(!dns.matches_san(&GeneralName::DNSName("*.example")));
        let wildcard = SubjectMatcher::san_dns("a.example").unwrap();
        assert!(!wildcard.matches_san(&GeneralName::DNSName("*.example")));
    }

    #[test]
    fn email_domain_ignores_case_and_local_part_does_not() {
        let m = SubjectMatcher::san_email("Ops@Example.COM").unwrap();
        assert!(m.matches_san(&GeneralName::RFC822Name("Ops@example.com")));
        assert!(!m.matches_san(&GeneralName::RFC822Name("ops@example.com")));
        assert!(!m.matches_san(&GeneralName::RFC822Name("example.com")));
    }

    #[test]
    fn ip_compares_octets() {
        let m = SubjectMatcher::san_ip("::1").unwrap();
        let mut one = [0u8; 16];
        one[15] = 1;
        assert!(m.matches_san(&GeneralName::IPAddress(&one)));
        assert!(!m.matches_san(&GeneralName::IPAddress(&[127, 0, 0, 1])));
        let v4 = SubjectMatcher::san_ip("127.0.0.1").unwrap();
        assert!(v4.matches_san(&GeneralName::IPAddress(&[127, 0, 0, 1])));
        // An IPv4-mapped IPv6 address is another SAN value.
        let mut mapped = [0u8; 16];
        mapped[10..].copy_from_slice(&[0xff, 0xff, 127, 0, 0, 1]);
        assert!(!v4.matches_san(&GeneralName::IPAddress(&mapped)));
    }
}
