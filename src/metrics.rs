//! What certbound counts and times, through the [`metrics`](https://docs.rs/metrics) facade
//! (feature `metrics`). Every series, its labels and their values are listed in the README's
//! metrics table; this module is the only place that names them.
//!
//! Without the feature every function here is an empty inline function. With it and no recorder
//! installed, each is the facade's no-op: a thread-local and an atomic load. Labels are fixed
//! sets of static strings (bounded cardinality): never a token, proof, subject, client or
//! address.
//!
//! The keys of the hot series (accepted requests, cache hits and misses) are statics with static
//! labels, and their handles are kept per thread and recorder (`increment_hot`), so recording
//! allocates nothing and looks nothing up; a rejection builds its key's label list (one small
//! allocation, only while a recorder is installed).

use std::time::Duration;

use crate::error::AuthErrorKind;

/// The `scheme` label of `certbound_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Bearer,
    Dpop,
    /// No token (or one in an unknown scheme).
    None,
}

/// The `upstream` label of the upstream series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // Each variant is recorded by its own feature.
pub(crate) enum Upstream {
    Jwks,
    Discovery,
    Introspection,
    ClientJwksUri,
    TokenEndpoint,
}

/// The `result` label of `certbound_upstream_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
pub(crate) enum UpstreamResult {
    Ok,
    Error,
    Timeout,
    /// Not sent: load shedding (too many requests to this upstream in flight).
    Shed,
}

/// The `result` label of `certbound_dpop_replay_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
pub(crate) enum Replay {
    Fresh,
    Replayed,
    Error,
}

/// The `store` label of `certbound_dpop_replay_duration_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
pub(crate) enum ReplayStore {
    Memory,
    Redis,
}

/// The `result` label of `certbound_tls_handshakes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
pub(crate) enum Handshake {
    Ok,
    Failed,
    Timeout,
}

/// The `reason` label of `certbound_tls_client_certificates_refused_total`: why a handshake
/// refused the client's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
pub(crate) enum CertificateRefusal {
    /// On a CRL.
    Revoked,
    /// Not yet valid or expired.
    Expired,
    /// No chain to a trusted root, or a bad signature.
    Untrusted,
    /// The revocation status could not be established (no CRL for an issuer, a CRL past its
    /// `nextUpdate`).
    RevocationUnknown,
    /// Anything else (a wrong key usage, an unparsable certificate).
    Other,
}

impl Scheme {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    const fn label(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::Dpop => "dpop",
            Self::None => "none",
        }
    }
}

impl Upstream {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    const fn label(self) -> &'static str {
        match self {
            Self::Jwks => "jwks",
            Self::Discovery => "discovery",
            Self::Introspection => "introspection",
            Self::ClientJwksUri => "client_jwks_uri",
            Self::TokenEndpoint => "token_endpoint",
        }
    }
}

impl UpstreamResult {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    const fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Shed => "shed",
        }
    }
}

impl CertificateRefusal {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    const fn label(self) -> &'static str {
        match self {
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::Untrusted => "untrusted",
            Self::RevocationUnknown => "revocation_unknown",
            Self::Other => "other",
        }
    }

    /// The refusal `error` describes, if it is one of a client certificate.
    pub(crate) fn of(error: &rustls::Error) -> Option<Self> {
        use rustls::CertificateError as E;
        let rustls::Error::InvalidCertificate(e) = error else {
            return None;
        };
        Some(match e {
            E::Revoked => Self::Revoked,
            E::Expired
            | E::ExpiredContext { .. }
            | E::NotValidYet
            | E::NotValidYetContext { .. } => Self::Expired,
            E::UnknownIssuer | E::BadSignature | E::UnsupportedSignatureAlgorithmContext { .. } => {
                Self::Untrusted
            }
            E::UnknownRevocationStatus
            | E::ExpiredRevocationList
            | E::ExpiredRevocationListContext { .. } => Self::RevocationUnknown,
            _ => Self::Other,
        })
    }
}

#[cfg(feature = "metrics")]
mod record {
    use super::*;
    use std::cell::Cell;

    use metrics::{counter, gauge, histogram, Key, Label};

    static METADATA: metrics::Metadata<'static> =
        metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

    const fn accepted(scheme: &'static str) -> [Label; 3] {
        [
            Label::from_static_parts("result", "accepted"),
            Label::from_static_parts("reason", ""),
            Label::from_static_parts("scheme", scheme),
        ]
    }
    static ACCEPTED_BEARER: [Label; 3] = accepted("bearer");
    static ACCEPTED_DPOP: [Label; 3] = accepted("dpop");
    static ACCEPTED_NONE: [Label; 3] = accepted("none");
    static CACHE_HIT: [Label; 1] = [Label::from_static_parts("result", "hit")];
    static CACHE_MISS: [Label; 1] = [Label::from_static_parts("result", "miss")];
    /// The hot series, in the order of their handles' slots.
    static HOT_KEYS: [Key; 5] = [
        Key::from_static_parts("certbound_requests_total", &ACCEPTED_BEARER),
        Key::from_static_parts("certbound_requests_total", &ACCEPTED_DPOP),
        Key::from_static_parts("certbound_requests_total", &ACCEPTED_NONE),
        Key::from_static_parts("certbound_token_cache_total", &CACHE_HIT),
        Key::from_static_parts("certbound_token_cache_total", &CACHE_MISS),
    ];

    thread_local! {
        /// The hot series' handles this thread got, with the address of the recorder that
        /// made them. A `Cell` of a `Copy` value: no borrow flag, and no drop glue, so no
        /// destructor registration and state check on each access either (together a fifth of
        /// a recording's cost without a recorder, measured with callgrind: 58 instructions
        /// instead of 75; the rest is the facade's own recorder lookup).
        static HANDLES: Cell<Option<(usize, &'static Handles)>> = const { Cell::new(None) };
    }

    /// A thread's handles of the hot series, in the order of [`HOT_KEYS`].
    type Handles = [metrics::Counter; 5];
    /// The slots of the cache series in [`HOT_KEYS`].
    const HOT_CACHE_HIT: usize = 3;
    const HOT_CACHE_MISS: usize = 4;

    /// Adds one to the hot series `slot` of [`HOT_KEYS`] (a request accepted, a cache hit or
    /// miss: on every request). A recorder's registry lookup (hashing the key, a probe, an
    /// `Arc` clone) costs more than the rest of a cache hit's bookkeeping, so each thread
    /// keeps the handles it got, with the address of the recorder they came from: they are
    /// used again only while the same recorder is in force (`metrics::with_recorder`: the
    /// thread's local one, else the global one, else none). A global recorder installed after
    /// the layer was built is therefore seen from its first request on. (A local recorder
    /// dropped and replaced by another at the same address would keep being handed the old
    /// one's handles on that thread: tests that swap local recorders give each its own
    /// allocation.)
    ///
    /// The handles of a thread are leaked, five `Counter`s each time the recorder in force
    /// changes on it: with a global recorder, at most twice per thread (none, then the
    /// recorder). A handle is a reference to a series the recorder keeps anyway.
    #[inline]
    fn increment_hot(slot: usize) {
        metrics::with_recorder(|recorder| {
            let id = std::ptr::from_ref(recorder).cast::<()>() as usize;
            let counters = match HANDLES.get() {
                Some((at, counters)) if at == id => counters,
                _ => {
                    // All five at once: the series show from the first request on, at zero
                    // until something happens (as Prometheus advises for known label values).
                    let counters: &'static Handles =
                        Box::leak(Box::new(std::array::from_fn(|series| {
                            recorder.register_counter(&HOT_KEYS[series], &METADATA)
                        })));
                    HANDLES.set(Some((id, counters)));
                    counters
                }
            };
            counters[slot].increment(1);
        });
    }

    pub(crate) fn request_accepted(scheme: Scheme) {
        increment_hot(match scheme {
            Scheme::Bearer => 0,
            Scheme::Dpop => 1,
            Scheme::None => 2,
        });
    }

    pub(crate) fn request_rejected(kind: AuthErrorKind, scheme: Scheme) {
        metrics::with_recorder(|recorder| {
            let key = Key::from_parts(
                "certbound_requests_total",
                vec![
                    Label::from_static_parts("result", "rejected"),
                    Label::from_static_parts("reason", kind.snake_case()),
                    Label::from_static_parts("scheme", scheme.label()),
                ],
            );
            recorder.register_counter(&key, &METADATA).increment(1);
        });
    }

    pub(crate) fn token_cache(hit: bool) {
        increment_hot(if hit { HOT_CACHE_HIT } else { HOT_CACHE_MISS });
    }

    pub(crate) fn upstream(upstream: Upstream, result: UpstreamResult, elapsed: Option<Duration>) {
        counter!(
            "certbound_upstream_requests_total",
            "upstream" => upstream.label(),
            "result" => result.label()
        )
        .increment(1);
        if let Some(elapsed) = elapsed {
            histogram!("certbound_upstream_request_duration_seconds", "upstream" => upstream.label())
                .record(elapsed.as_secs_f64());
        }
    }

    pub(crate) fn dpop_replay(result: Replay, store: ReplayStore, elapsed: Duration) {
        match result {
            Replay::Fresh => {
                counter!("certbound_dpop_replay_total", "result" => "fresh").increment(1)
            }
            Replay::Replayed => {
                counter!("certbound_dpop_replay_total", "result" => "replayed").increment(1)
            }
            Replay::Error => {
                counter!("certbound_dpop_replay_total", "result" => "error").increment(1)
            }
        }
        match store {
            ReplayStore::Memory => {
                histogram!("certbound_dpop_replay_duration_seconds", "store" => "memory")
                    .record(elapsed.as_secs_f64())
            }
            ReplayStore::Redis => {
                histogram!("certbound_dpop_replay_duration_seconds", "store" => "redis")
                    .record(elapsed.as_secs_f64())
            }
        }
    }

    pub(crate) fn dpop_nonce_issued() {
        counter!("certbound_dpop_nonces_issued_total").increment(1);
    }

    pub(crate) fn tls_handshake(result: Handshake) {
        match result {
            Handshake::Ok => {
                counter!("certbound_tls_handshakes_total", "result" => "ok").increment(1)
            }
            Handshake::Failed => {
                counter!("certbound_tls_handshakes_total", "result" => "failed").increment(1)
            }
            Handshake::Timeout => {
                counter!("certbound_tls_handshakes_total", "result" => "timeout").increment(1)
            }
        }
    }

    pub(crate) fn client_certificate_refused(reason: CertificateRefusal) {
        counter!("certbound_tls_client_certificates_refused_total", "reason" => reason.label())
            .increment(1);
    }

    pub(crate) fn connection_opened() {
        gauge!("certbound_connections_open").increment(1.0);
    }

    pub(crate) fn connection_closed() {
        gauge!("certbound_connections_open").decrement(1.0);
    }

    pub(crate) fn tls_reload(ok: bool) {
        if ok {
            counter!("certbound_tls_reloads_total", "result" => "ok").increment(1);
        } else {
            counter!("certbound_tls_reloads_total", "result" => "failed").increment(1);
        }
    }

    /// `not_after`: the served certificate's notAfter, in Unix seconds.
    pub(crate) fn tls_certificate_expiry(not_after: i64) {
        #[allow(clippy::cast_precision_loss)] // Exact below 2^53 s.
        gauge!("certbound_tls_certificate_expiry_timestamp_seconds").set(not_after as f64);
    }
}

#[cfg(not(feature = "metrics"))]
#[allow(dead_code, clippy::missing_const_for_fn)]
mod record {
    use super::*;

    #[inline(always)]
    pub(crate) fn request_accepted(_: Scheme) {}
    #[inline(always)]
    pub(crate) fn request_rejected(_: AuthErrorKind, _: Scheme) {}
    #[inline(always)]
    pub(crate) fn token_cache(_: bool) {}
    #[inline(always)]
    pub(crate) fn upstream(_: Upstream, _: UpstreamResult, _: Option<Duration>) {}
    #[inline(always)]
    pub(crate) fn dpop_replay(_: Replay, _: ReplayStore, _: Duration) {}
    #[inline(always)]
    pub(crate) fn dpop_nonce_issued() {}
    #[inline(always)]
    pub(crate) fn tls_handshake(_: Handshake) {}
    #[inline(always)]
    pub(crate) fn client_certificate_refused(_: CertificateRefusal) {}
    #[inline(always)]
    pub(crate) fn connection_opened() {}
    #[inline(always)]
    pub(crate) fn connection_closed() {}
    #[inline(always)]
    pub(crate) fn tls_reload(_: bool) {}
    #[inline(always)]
    pub(crate) fn tls_certificate_expiry(_: i64) {}
}

#[allow(unused_imports)] // Each feature records its own series.
pub(crate) use record::*;

/// The start of a timed operation: a clock reading with the `metrics` feature, nothing without
/// (a unit struct rather than `()`, so that call sites read the same in both builds).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Started(#[cfg(feature = "metrics")] std::time::Instant);

/// Starts timing (reads the clock only with the `metrics` feature).
#[inline(always)]
pub(crate) fn start() -> Started {
    Started(
        #[cfg(feature = "metrics")]
        std::time::Instant::now(),
    )
}

/// The time since `start` (zero without the `metrics` feature).
#[inline(always)]
#[cfg_attr(
    not(feature = "metrics"),
    allow(clippy::needless_pass_by_value, unused_variables)
)]
pub(crate) fn elapsed(start: Started) -> Duration {
    #[cfg(feature = "metrics")]
    {
        start.0.elapsed()
    }
    #[cfg(not(feature = "metrics"))]
    {
        Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_labels_are_the_kinds_in_snake_case() {
        assert_eq!(AuthErrorKind::MissingToken.snake_case(), "missing_token");
        assert_eq!(
            AuthErrorKind::InsufficientUserAuthentication.snake_case(),
            "insufficient_user_authentication"
        );
        assert_eq!(
            AuthErrorKind::ReplayStoreUnavailable.snake_case(),
            "replay_store_unavailable"
        );
    }

    #[test]
    fn a_revoked_certificate_is_counted_as_revoked() {
        let revoked = rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked);
        assert_eq!(
            CertificateRefusal::of(&revoked),
            Some(CertificateRefusal::Revoked)
        );
        assert_eq!(
            CertificateRefusal::of(&rustls::Error::HandshakeNotComplete),
            None
        );
    }
}
