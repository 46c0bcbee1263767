//! Where a fetch may go when the URL comes from someone else (a client's registered
//! `jwks_uri`): public unicast addresses only, so that a registration cannot make the server
//! call its own loopback, its private network or a cloud metadata endpoint (SSRF).
//!
//! The check is made on the addresses actually connected to, after DNS: a resolver that
//! drops non-public addresses (a name left with none fails) and a check of IP-literal hosts.
//! Redirects stay within the URL's origin (the default client's policy), so they reach no
//! other host. A name that resolved to a public address once and to a private one later (DNS
//! rebinding) is caught on every connection.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// Whether `ip` is a public unicast address: not loopback, private (RFC 1918, RFC 4193),
/// shared (RFC 6598), link-local (which includes the 169.254.169.254 metadata endpoints),
/// unspecified, multicast, broadcast or documentation, also when written as an IPv4-mapped
/// IPv6 address.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let this_network = a == 0;
    let shared = a == 100 && (64..128).contains(&b);
    !(this_network
        || shared
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation())
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let documentation = ip.segments()[0] == 0x2001 && ip.segments()[1] == 0x0db8;
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        || documentation)
}

/// Refuses a URL whose host is an IP literal that is not public (names are checked by
/// [`PublicOnly`] when they are resolved).
pub(crate) fn check_literal(url: &Url) -> Result<(), &'static str> {
    let Some(host) = url.host_str() else {
        return Err("no host");
    };
    // The URL parser has normalised IPv4 forms (decimal, hex) to dotted quads already.
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let Ok(ip) = literal.parse::<IpAddr>() else {
        return Ok(());
    };
    if is_public(ip) {
        Ok(())
    } else {
        Err("a loopback, private or link-local address")
    }
}

/// A resolver that keeps only public addresses of the system resolver's answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| is_public(addr.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!(
                    "{host} resolves to no public address (a loopback, private or link-local \
                     destination is refused)"
                )
                .into());
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_unicast_addresses_are_public() {
        for refused in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(!is_public(refused.parse().unwrap()), "{refused}");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn ip_literal_hosts_are_checked_and_names_are_left_to_the_resolver() {
        let check = |u: &str| check_literal(&Url::parse(u).unwrap());
        assert!(check("https://127.0.0.1/jwks").is_err());
        assert!(check("https://[::1]:8443/jwks").is_err());
        assert!(check("https://[::ffff:192.168.0.1]/jwks").is_err());
        assert!(check("https://169.254.169.254/latest/meta-data").is_err());
        assert!(check("https://93.184.215.14/jwks").is_ok());
        assert!(check("https://client.example/jwks").is_ok());
        // A decimal or hex IPv4 is normalised by the URL parser before the check.
        assert!(check("https://2130706433/jwks").is_err());
        assert!(check("https://0x7f.1/jwks").is_err());
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_with_only_private_addresses() {
        let err = match PublicOnly.resolve("localhost".parse().unwrap()).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        assert!(err.to_string().contains("no public address"), "{err}");
    }
}
