//! Lingering close, as nginx's `lingering_close`: when the server ends a connection on its own
//! after answering while the client may still be sending (an error answer such as `431` to a
//! request head it stopped reading, a response to a request whose body it did not read), it
//! half-closes its side (TLS `close_notify`, then TCP `shutdown(Write)`) and reads and discards
//! the client's input, bounded in time and bytes, before closing. Closing with unread input
//! makes the kernel reset the connection, and the reset can destroy the answer in flight (the
//! client's write fails before it reads, or its unread input is discarded).
//!
//! hyper owns the IO while it serves the connection and drops it at the end, so the IO is
//! wrapped in [`Watched`], which notes what hyper did with it and hands it back to the
//! connection's task when hyper drops it.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};

/// What a connection's IO saw while hyper used it.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Seen {
    /// A read ended (EOF or an error): the client is not sending any more.
    client_done: bool,
    /// The server wrote after the last input it read: an answer an unread remainder of the
    /// client's input could destroy.
    answered: bool,
    /// The write side was shut down already (hyper's HTTP/1 does it when it ends).
    shut_down: bool,
}

impl Seen {
    /// Whether the connection ended with an answer while the client may still be sending.
    pub(super) fn may_have_unread_input(&self) -> bool {
        self.answered && !self.client_done
    }
}

/// The two transports `serve` speaks over, unwrapped down to TCP for the lingering phase (the
/// discarded input is never decrypted).
pub(super) trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    fn into_tcp(self) -> TcpStream;
}

impl Transport for TcpStream {
    fn into_tcp(self) -> TcpStream {
        self
    }
}

impl Transport for tokio_rustls::server::TlsStream<TcpStream> {
    fn into_tcp(self) -> TcpStream {
        self.into_inner().0
    }
}

/// The IO hyper serves a connection over: notes what it sees, and sends the IO back through
/// `back` when hyper drops it. (hyper-util's auto builder has no `into_parts`, and an upgraded
/// connection keeps its IO: then nothing comes back and nothing lingers.)
pub(super) struct Watched<T> {
    /// `None` only once dropped.
    io: Option<T>,
    seen: Seen,
    back: Option<oneshot::Sender<(T, Seen)>>,
}

impl<T> Watched<T> {
    pub(super) fn new(io: T) -> (Self, oneshot::Receiver<(T, Seen)>) {
        let (back, returned) = oneshot::channel();
        let watched = Self {
            io: Some(io),
            seen: Seen::default(),
            back: Some(back),
        };
        (watched, returned)
    }
}

fn gone() -> io::Error {
    io::ErrorKind::NotConnected.into()
}

impl<T> Drop for Watched<T> {
    fn drop(&mut self) {
        if let (Some(io), Some(back)) = (self.io.take(), self.back.take()) {
            // The connection's task may be gone (the server future dropped): then the IO is
            // dropped with the unsent message.
            let _ = back.send((io, self.seen));
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let io = this.io.as_mut().ok_or_else(gone)?;
        let before = buf.filled().len();
        let had_room = buf.remaining() > 0;
        let result = ready!(Pin::new(io).poll_read(cx, buf));
        match &result {
            Ok(()) if buf.filled().len() > before => this.seen.answered = false,
            // An empty read into an empty buffer says nothing about the peer.
            Ok(()) if !had_room => {}
            _ => this.seen.client_done = true,
        }
        Poll::Ready(result)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let io = this.io.as_mut().ok_or_else(gone)?;
        let written = ready!(Pin::new(io).poll_write(cx, buf));
        if matches!(written, Ok(n) if n > 0) {
            this.seen.answered = true;
        }
        Poll::Ready(written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let io = this.io.as_mut().ok_or_else(gone)?;
        let written = ready!(Pin::new(io).poll_write_vectored(cx, bufs));
        if matches!(written, Ok(n) if n > 0) {
            this.seen.answered = true;
        }
        Poll::Ready(written)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(T::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let io = self.get_mut().io.as_mut().ok_or_else(gone)?;
        Pin::new(io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let io = this.io.as_mut().ok_or_else(gone)?;
        let result = ready!(Pin::new(io).poll_shutdown(cx));
        if result.is_ok() {
            this.seen.shut_down = true;
        }
        Poll::Ready(result)
    }
}

/// How long and how much a connection lingers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    pub(super) timeout: Duration,
    pub(super) bytes: u64,
}

impl Bounds {
    pub(super) fn is_off(&self) -> bool {
        self.timeout.is_zero() || self.bytes == 0
    }
}

/// Half-closes `io` and discards its input until the client closes, `bounds.bytes` have been
/// read, `bounds.timeout` has passed (the half-close included: a client that reads nothing
/// cannot stall it), or the server shuts down; then `io` is dropped.
pub(super) async fn linger<T: Transport>(
    mut io: T,
    seen: Seen,
    bounds: Bounds,
    stop: &mut watch::Receiver<bool>,
) {
    let discard = async move {
        if !seen.shut_down && io.shutdown().await.is_err() {
            return;
        }
        let mut tcp = io.into_tcp().take(bounds.bytes);
        // tokio's copy into a sink: reads and drops, with its own small buffer.
        let _ = tokio::io::copy(&mut tcp, &mut tokio::io::sink()).await;
    };
    tokio::select! {
        () = discard => {}
        _ = tokio::time::sleep(bounds.timeout) => {}
        // A dropped sender (the server future dropped) stops too.
        _ = stop.wait_for(|stop| *stop) => {}
    }
}
