//! What is measured: the protocols, the variants and the server each runs, the workloads.

use crate::proxied::Proxy;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Protocol {
    H1,
    H2,
}

impl Protocol {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Protocol::H1 => "HTTP/1.1",
            Protocol::H2 => "HTTP/2",
        }
    }

    pub(crate) fn alpn(self) -> &'static [u8] {
        match self {
            Protocol::H1 => b"http/1.1",
            Protocol::H2 => b"h2",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Variant {
    Baseline,
    Repeated,
    Distinct,
    PeerRepeated,
    PeerDistinct,
    Dpop,
    DpopRedis,
    HuskarlRepeated,
    HuskarlDistinct,
    HuskarlDpop,
    Issuers1Distinct,
    Issuers1000Repeated,
    Issuers1000Distinct,
    /// nginx terminating mTLS in front of the upstream, no authorization (issue 25).
    Nginx,
    /// The same with `auth_request` to certbound-authz, on each workload.
    NginxAuthzRepeated,
    NginxAuthzDistinct,
    NginxAuthzDpop,
    /// `nginx-authz-repeated` with a new connection to certbound-authz per request.
    NginxAuthzRepeatedNoKeepalive,
    /// Envoy-shaped `Check` requests to certbound-authz's gRPC listener, the repeated workload.
    GrpcCheckRepeated,
}

impl Variant {
    pub(crate) const ALL: [Variant; 19] = [
        Variant::Baseline,
        Variant::Repeated,
        Variant::Distinct,
        Variant::PeerRepeated,
        Variant::PeerDistinct,
        Variant::Dpop,
        Variant::DpopRedis,
        Variant::HuskarlRepeated,
        Variant::HuskarlDistinct,
        Variant::HuskarlDpop,
        Variant::Issuers1Distinct,
        Variant::Issuers1000Repeated,
        Variant::Issuers1000Distinct,
        Variant::Nginx,
        Variant::NginxAuthzRepeated,
        Variant::NginxAuthzDistinct,
        Variant::NginxAuthzDpop,
        Variant::NginxAuthzRepeatedNoKeepalive,
        Variant::GrpcCheckRepeated,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Variant::Baseline => "baseline",
            Variant::Repeated => "repeated",
            Variant::Distinct => "distinct",
            Variant::PeerRepeated => "peer-repeated",
            Variant::PeerDistinct => "peer-distinct",
            Variant::Dpop => "dpop",
            Variant::DpopRedis => "dpop-redis",
            Variant::HuskarlRepeated => "huskarl-repeated",
            Variant::HuskarlDistinct => "huskarl-distinct",
            Variant::HuskarlDpop => "huskarl-dpop",
            Variant::Issuers1Distinct => "issuers1-distinct",
            Variant::Issuers1000Repeated => "issuers1000-repeated",
            Variant::Issuers1000Distinct => "issuers1000-distinct",
            Variant::Nginx => "nginx",
            Variant::NginxAuthzRepeated => "nginx-authz-repeated",
            Variant::NginxAuthzDistinct => "nginx-authz-distinct",
            Variant::NginxAuthzDpop => "nginx-authz-dpop",
            Variant::NginxAuthzRepeatedNoKeepalive => "nginx-authz-repeated-no-keepalive",
            Variant::GrpcCheckRepeated => "grpc-check-repeated",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| format!("unknown variant {s:?}"))
    }

    /// The proxied set-up of the nginx variants (see `proxied.rs`); `None`: one server child.
    pub(crate) fn proxy(self) -> Option<Proxy> {
        match self {
            Variant::Nginx => Some(Proxy::NginxOnly),
            Variant::NginxAuthzRepeated | Variant::NginxAuthzDistinct | Variant::NginxAuthzDpop => {
                Some(Proxy::NginxAuthz)
            }
            Variant::NginxAuthzRepeatedNoKeepalive => Some(Proxy::NginxAuthzNoKeepalive),
            Variant::GrpcCheckRepeated => Some(Proxy::AuthzGrpc),
            _ => None,
        }
    }

    /// What the ratios of the summary divide by: the same stack without authentication.
    pub(crate) fn reference(self) -> Variant {
        if self == Variant::GrpcCheckRepeated {
            self
        } else if self.proxy().is_some() {
            Variant::Nginx
        } else {
            Variant::Baseline
        }
    }

    /// The server child; for the nginx variants, the server whose decisions they have (what
    /// the preflight expects of them).
    pub(crate) fn server(self) -> ServerKind {
        match self {
            Variant::Baseline | Variant::Nginx => ServerKind::Plain,
            Variant::Repeated
            | Variant::Distinct
            | Variant::NginxAuthzRepeated
            | Variant::NginxAuthzDistinct
            | Variant::NginxAuthzRepeatedNoKeepalive
            | Variant::GrpcCheckRepeated => ServerKind::Certbound,
            Variant::NginxAuthzDpop => ServerKind::CertboundDpop,
            Variant::PeerRepeated | Variant::PeerDistinct => ServerKind::Peer,
            Variant::Dpop => ServerKind::CertboundDpop,
            Variant::DpopRedis => ServerKind::CertboundDpopRedis,
            Variant::HuskarlRepeated | Variant::HuskarlDistinct | Variant::HuskarlDpop => {
                ServerKind::Huskarl
            }
            Variant::Issuers1Distinct => ServerKind::Issuers1,
            Variant::Issuers1000Repeated | Variant::Issuers1000Distinct => ServerKind::Issuers1000,
        }
    }

    pub(crate) fn workload(self) -> Workload {
        match self {
            // The baseline gets the same request bytes (a token it ignores), so that the ratio
            // measures the layer, not the parsing of a longer header (HPACK on HTTP/2).
            Variant::Baseline
            | Variant::Repeated
            | Variant::PeerRepeated
            | Variant::HuskarlRepeated
            | Variant::Issuers1000Repeated
            | Variant::Nginx
            | Variant::NginxAuthzRepeated
            | Variant::NginxAuthzRepeatedNoKeepalive
            | Variant::GrpcCheckRepeated => Workload::Repeated,
            Variant::Distinct
            | Variant::PeerDistinct
            | Variant::HuskarlDistinct
            | Variant::Issuers1Distinct
            | Variant::Issuers1000Distinct
            | Variant::NginxAuthzDistinct => Workload::Distinct,
            Variant::Dpop | Variant::DpopRedis | Variant::HuskarlDpop | Variant::NginxAuthzDpop => {
                Workload::Dpop
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ServerKind {
    Plain,
    Certbound,
    Peer,
    CertboundDpop,
    CertboundDpopRedis,
    Huskarl,
    /// `certbound::Issuers` with the one issuer of the tokens.
    Issuers1,
    /// `certbound::Issuers` with the issuer of the tokens among 999 others.
    Issuers1000,
    /// The trivial upstream behind nginx: plain HTTP/1.1, no TLS, no authentication.
    Upstream,
}

impl ServerKind {
    pub(crate) const ALL: [ServerKind; 9] = [
        ServerKind::Plain,
        ServerKind::Certbound,
        ServerKind::Peer,
        ServerKind::CertboundDpop,
        ServerKind::CertboundDpopRedis,
        ServerKind::Huskarl,
        ServerKind::Issuers1,
        ServerKind::Issuers1000,
        ServerKind::Upstream,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            ServerKind::Plain => "plain",
            ServerKind::Certbound => "certbound",
            ServerKind::Peer => "peer",
            ServerKind::CertboundDpop => "certbound-dpop",
            ServerKind::CertboundDpopRedis => "certbound-dpop-redis",
            ServerKind::Huskarl => "huskarl",
            ServerKind::Issuers1 => "issuers1",
            ServerKind::Issuers1000 => "issuers1000",
            ServerKind::Upstream => "upstream",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown server kind {s:?}"))
    }

    /// Whether the server checks `cnf.x5t#S256` against the connection's certificate.
    pub(crate) fn binds_certificates(self) -> bool {
        !matches!(
            self,
            ServerKind::Plain | ServerKind::Peer | ServerKind::Upstream
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Workload {
    /// The same certificate-bound Bearer token on every request of a connection.
    Repeated,
    /// A different certificate-bound Bearer token on every request.
    Distinct,
    /// The same DPoP-bound token on every request of a connection, a fresh proof each time.
    Dpop,
}
