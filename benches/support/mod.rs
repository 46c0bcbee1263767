//! What the benches share (each bench is its own crate: included with `#[path]`).

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Polls a future that is expected to be ready at once (no executor, no allocation).
pub(crate) fn block_on_ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    // The fast path never returns Pending; bound the loop so a regression fails loudly instead
    // of spinning forever.
    for _ in 0..64 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
    panic!("future not ready: the benchmark left the fast path");
}

/// Installs aws-lc-rs as jsonwebtoken's process-wide provider, for the raw jsonwebtoken
/// baselines (certbound passes its provider explicitly and needs none).
#[allow(dead_code)] // Not every bench has a raw jsonwebtoken baseline.
pub(crate) fn install_jose_default() {
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
    );
}
