//! What a client may hold of the server: the limits [`serve`](super::serve) sets explicitly on
//! rustls, hyper and h2 rather than inheriting whatever their defaults are at the time, and the
//! ones certbound enforces itself (connections, idle time).

use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;

use super::linger::Bounds;

/// The limits of one server; see the setters on [`Serve`](super::Serve).
#[derive(Debug, Clone)]
pub(super) struct Limits {
    pub(super) handshake_timeout: Duration,
    pub(super) header_read_timeout: Duration,
    pub(super) idle_timeout: Duration,
    pub(super) max_connections: usize,
    pub(super) max_concurrent_streams: u32,
    pub(super) max_header_bytes: usize,
    pub(super) lingering_timeout: Duration,
    pub(super) lingering_bytes: u64,
}

/// hyper refuses an HTTP/1 read buffer smaller than this.
const MIN_HTTP1_BUFFER: usize = 8192;

/// The largest `max_connections`: the shutdown waits for every slot at once.
pub(super) const MAX_CONNECTIONS_LIMIT: usize = u32::MAX as usize;

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_concurrent_streams: 200,
            max_header_bytes: 32 * 1024,
            // nginx's `lingering_timeout` (a client that has stopped sending is not waited for
            // longer), and enough for a client that sent a whole 1 MiB head to finish writing.
            lingering_timeout: Duration::from_secs(5),
            lingering_bytes: 1024 * 1024,
        }
    }
}

impl Limits {
    pub(super) fn lingering(&self) -> Bounds {
        Bounds {
            timeout: self.lingering_timeout,
            bytes: self.lingering_bytes,
        }
    }
}

/// The three HTTP flavours a connection can get, built once per server.
pub(super) struct Protocols {
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
    /// No ALPN: sniff the HTTP/2 preface.
    any: auto::Builder<TokioExecutor>,
}

/// Which HTTP a connection speaks.
#[derive(Clone, Copy)]
pub(super) enum Protocol {
    Http1,
    Http2,
    /// No ALPN (or plain TCP): sniff the HTTP/2 preface.
    Sniff,
}

impl Protocol {
    pub(super) fn from_alpn(alpn: Option<&[u8]>) -> Self {
        match alpn {
            Some(b"h2") => Self::Http2,
            Some(b"http/1.1") => Self::Http1,
            _ => Self::Sniff,
        }
    }
}

impl Protocols {
    pub(super) fn new(limits: &Limits) -> Self {
        let mut any = auto::Builder::new(TokioExecutor::new());
        any.http1()
            .timer(TokioTimer::new())
            // Slowloris: the whole request head within this time, and the same bound on the
            // wait for the next request of a keep-alive connection.
            .header_read_timeout(Some(limits.header_read_timeout).filter(|t| !t.is_zero()))
            // The head must fit the read buffer (431 otherwise), at most 100 header fields.
            .max_buf_size(limits.max_header_bytes.max(MIN_HTTP1_BUFFER))
            .max_headers(100);
        any.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_concurrent_streams)
            // Decoded header list, CONTINUATION frames included (h2 refuses beyond it).
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            // Rapid reset (CVE-2023-44487): streams the client opens and resets before they
            // are served, and streams the server had to reset, are bounded per connection;
            // beyond, the connection gets GOAWAY.
            .max_pending_accept_reset_streams(20)
            .max_local_error_reset_streams(1024)
            // A peer that stops answering pings is disconnected.
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10));
        Self {
            h1: any.clone().http1_only(),
            h2: any.clone().http2_only(),
            any,
        }
    }

    pub(super) fn get(&self, protocol: Protocol) -> &auto::Builder<TokioExecutor> {
        match protocol {
            Protocol::Http2 => &self.h2,
            Protocol::Http1 => &self.h1,
            Protocol::Sniff => &self.any,
        }
    }
}
