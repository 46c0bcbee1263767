//! [`Observed`]: one exchange with an upstream, counted and timed
//! (`certbound_upstream_requests_total`, `certbound_upstream_request_duration_seconds`).

use std::future::Future;

use super::FetchError;
use crate::metrics::{self, Upstream, UpstreamResult};

/// One exchange with `upstream` in progress: [`finish`](Self::finish) records its outcome and
/// duration; dropped unfinished, it was cut short by its caller's timeout (every exchange runs
/// in a task of its own, which nothing else cancels) and counts as `timeout`.
#[must_use = "an exchange dropped unfinished counts as a timeout"]
pub(crate) struct Observed {
    upstream: Upstream,
    start: metrics::Started,
    done: bool,
}

impl Observed {
    /// Starts timing an exchange with `upstream`.
    pub(crate) fn start(upstream: Upstream) -> Self {
        Self {
            upstream,
            start: metrics::start(),
            done: false,
        }
    }

    /// Records the exchange's outcome and duration.
    pub(crate) fn finish(mut self, result: UpstreamResult) {
        self.done = true;
        metrics::upstream(self.upstream, result, Some(metrics::elapsed(self.start)));
    }

    /// Records a fetch's outcome: `ok`, `timeout` when the HTTP client's own timeout ended it,
    /// else `error`.
    pub(crate) fn finish_fetch<T>(self, result: &Result<T, FetchError>) {
        self.finish(match result {
            Ok(_) => UpstreamResult::Ok,
            Err(e) if e.is_timeout() => UpstreamResult::Timeout,
            Err(_) => UpstreamResult::Error,
        });
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        if !self.done {
            metrics::upstream(
                self.upstream,
                UpstreamResult::Timeout,
                Some(metrics::elapsed(self.start)),
            );
        }
    }
}

/// Runs `fetch`, an exchange with `upstream`, and records its outcome.
pub(crate) async fn observe<T>(
    upstream: Upstream,
    fetch: impl Future<Output = Result<T, FetchError>>,
) -> Result<T, FetchError> {
    let observed = Observed::start(upstream);
    let result = fetch.await;
    observed.finish_fetch(&result);
    result
}

/// A request not sent: too many to `upstream` in flight already (load shedding).
#[cfg(feature = "introspection")]
pub(crate) fn shed(upstream: Upstream) {
    metrics::upstream(upstream, UpstreamResult::Shed, None);
}
