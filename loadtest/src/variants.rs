//! What is measured: the protocols, the variants and the server each runs, the workloads.

use crate::algorithms::Alg;
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
    /// Issue 26 (only when named, see `algorithms.rs`): `distinct` with RS256 and EdDSA tokens,
    /// and the peers' equivalents.
    DistinctRs256,
    DistinctEddsa,
    PeerDistinctRs256,
    PeerDistinctEddsa,
    HuskarlDistinctRs256,
    HuskarlDistinctEddsa,
    /// The baseline server plus one raw aws-lc-rs verification of each request's token.
    RawVerifyEs256,
    RawVerifyRs256,
    RawVerifyEddsa,
    /// `dpop` with a new token and a new proof on every request.
    DpopDistinct,
    /// `distinct` with the validated-token cache off (`no_cache()`), and with a cache small
    /// enough to stay in the CPU's caches (1 000 entries, 1 MiB): what caching every new token
    /// costs natively (issue 26, third round; instruction counts do not see memory).
    DistinctNoCache,
    DistinctSmallCache,
}

impl Variant {
    pub(crate) const ALL: [Variant; 31] = [
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
        Variant::DistinctRs256,
        Variant::DistinctEddsa,
        Variant::PeerDistinctRs256,
        Variant::PeerDistinctEddsa,
        Variant::HuskarlDistinctRs256,
        Variant::HuskarlDistinctEddsa,
        Variant::RawVerifyEs256,
        Variant::RawVerifyRs256,
        Variant::RawVerifyEddsa,
        Variant::DpopDistinct,
        Variant::DistinctNoCache,
        Variant::DistinctSmallCache,
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
            Variant::DistinctRs256 => "distinct-rs256",
            Variant::DistinctEddsa => "distinct-eddsa",
            Variant::PeerDistinctRs256 => "peer-distinct-rs256",
            Variant::PeerDistinctEddsa => "peer-distinct-eddsa",
            Variant::HuskarlDistinctRs256 => "huskarl-distinct-rs256",
            Variant::HuskarlDistinctEddsa => "huskarl-distinct-eddsa",
            Variant::RawVerifyEs256 => "raw-verify-es256",
            Variant::RawVerifyRs256 => "raw-verify-rs256",
            Variant::RawVerifyEddsa => "raw-verify-eddsa",
            Variant::DpopDistinct => "dpop-distinct",
            Variant::DistinctNoCache => "distinct-nocache",
            Variant::DistinctSmallCache => "distinct-smallcache",
        }
    }

    /// Issue 26's variants: run only when named (`--variants`).
    pub(crate) fn only_when_named(self) -> bool {
        self.proxy().is_some() || self >= Variant::DistinctRs256
    }

    /// The signing algorithm of the variant's access tokens.
    pub(crate) fn alg(self) -> Alg {
        match self {
            Variant::DistinctRs256
            | Variant::PeerDistinctRs256
            | Variant::HuskarlDistinctRs256
            | Variant::RawVerifyRs256 => Alg::Rs256,
            Variant::DistinctEddsa
            | Variant::PeerDistinctEddsa
            | Variant::HuskarlDistinctEddsa
            | Variant::RawVerifyEddsa => Alg::EdDsa,
            _ => Alg::Es256,
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
            | Variant::DistinctRs256
            | Variant::DistinctEddsa
            | Variant::NginxAuthzRepeated
            | Variant::NginxAuthzDistinct
            | Variant::NginxAuthzRepeatedNoKeepalive
            | Variant::GrpcCheckRepeated => ServerKind::Certbound,
            Variant::DistinctNoCache => ServerKind::CertboundNoCache,
            Variant::DistinctSmallCache => ServerKind::CertboundSmallCache,
            Variant::NginxAuthzDpop => ServerKind::CertboundDpop,
            Variant::PeerRepeated
            | Variant::PeerDistinct
            | Variant::PeerDistinctRs256
            | Variant::PeerDistinctEddsa => ServerKind::Peer,
            Variant::Dpop | Variant::DpopDistinct => ServerKind::CertboundDpop,
            Variant::RawVerifyEs256 | Variant::RawVerifyRs256 | Variant::RawVerifyEddsa => {
                ServerKind::RawVerify
            }
            Variant::DpopRedis => ServerKind::CertboundDpopRedis,
            Variant::HuskarlRepeated
            | Variant::HuskarlDistinct
            | Variant::HuskarlDistinctRs256
            | Variant::HuskarlDistinctEddsa
            | Variant::HuskarlDpop => ServerKind::Huskarl,
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
            | Variant::NginxAuthzDistinct
            | Variant::DistinctRs256
            | Variant::DistinctEddsa
            | Variant::PeerDistinctRs256
            | Variant::PeerDistinctEddsa
            | Variant::HuskarlDistinctRs256
            | Variant::HuskarlDistinctEddsa
            | Variant::RawVerifyEs256
            | Variant::RawVerifyRs256
            | Variant::RawVerifyEddsa
            | Variant::DistinctNoCache
            | Variant::DistinctSmallCache => Workload::Distinct,
            Variant::DpopDistinct => Workload::DpopDistinct,
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
    /// `Certbound` with the validated-token cache off (`distinct-nocache`).
    CertboundNoCache,
    /// `Certbound` with a cache of 1 000 entries and 1 MiB (`distinct-smallcache`).
    CertboundSmallCache,
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
    /// The plain server plus one raw aws-lc-rs verification of the token's signature (issue 26).
    RawVerify,
    /// The soak's server (issue 26, `--soak`): certificate-bound and DPoP-bound tokens on one
    /// server (DPoP with the in-memory replay store), client certificates optional, and a
    /// route `/admin` that requires scope `admin`.
    Soak,
}

impl ServerKind {
    pub(crate) const ALL: [ServerKind; 13] = [
        ServerKind::Plain,
        ServerKind::Certbound,
        ServerKind::CertboundNoCache,
        ServerKind::CertboundSmallCache,
        ServerKind::Peer,
        ServerKind::CertboundDpop,
        ServerKind::CertboundDpopRedis,
        ServerKind::Huskarl,
        ServerKind::Issuers1,
        ServerKind::Issuers1000,
        ServerKind::Upstream,
        ServerKind::RawVerify,
        ServerKind::Soak,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            ServerKind::Plain => "plain",
            ServerKind::Certbound => "certbound",
            ServerKind::CertboundNoCache => "certbound-nocache",
            ServerKind::CertboundSmallCache => "certbound-smallcache",
            ServerKind::Peer => "peer",
            ServerKind::CertboundDpop => "certbound-dpop",
            ServerKind::CertboundDpopRedis => "certbound-dpop-redis",
            ServerKind::Huskarl => "huskarl",
            ServerKind::Issuers1 => "issuers1",
            ServerKind::Issuers1000 => "issuers1000",
            ServerKind::Upstream => "upstream",
            ServerKind::RawVerify => "raw-verify",
            ServerKind::Soak => "soak",
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
            ServerKind::Plain | ServerKind::Peer | ServerKind::Upstream | ServerKind::RawVerify
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
    /// A new DPoP-bound token and a new proof on every request.
    DpopDistinct,
}
