//! [`Readiness`]: whether a validator, a replay store or a whole
//! [`BoundTokenLayer`](crate::BoundTokenLayer) can serve now, and if not, which part cannot.
//!
//! Liveness is the process answering at all; readiness is whether requests would be decided
//! rather than refused with `503` for want of something upstream: every trusted issuer's keys
//! loaded, the introspection endpoint answering, the DPoP replay store answering. A readiness
//! probe (Kubernetes `readinessProbe`, a load balancer's health check) asks
//! [`BoundTokenLayer::ready`](crate::BoundTokenLayer::ready) and answers `200` or `503`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Whether something can serve now: ready, or not ready with what is missing.
///
/// The reasons name the part (an issuer's URL, "introspection", "DPoP replay store") and what
/// is wrong in fixed words: never a token, a secret or a password. Combine the answers of
/// several parts with [`and`](Self::and).
///
/// # Example
/// ```
/// use certbound::Readiness;
///
/// let ready = Readiness::ready();
/// assert!(ready.is_ready());
/// let both = ready.and(Readiness::not_ready("keys of https://as.example: not loaded"));
/// assert!(!both.is_ready());
/// assert_eq!(both.to_string(), "not ready: keys of https://as.example: not loaded");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct Readiness {
    /// Empty when ready.
    reasons: Vec<String>,
}

impl Readiness {
    /// Ready.
    pub fn ready() -> Self {
        Self::default()
    }

    /// Not ready, because of `reason` (fixed text and public names only: it reaches logs and
    /// may be served by a readiness endpoint).
    pub fn not_ready(reason: impl Into<String>) -> Self {
        Self {
            reasons: vec![reason.into()],
        }
    }

    /// Whether it can serve.
    pub fn is_ready(&self) -> bool {
        self.reasons.is_empty()
    }

    /// Why not, one reason per part that is not ready (empty when ready).
    pub fn reasons(&self) -> &[String] {
        &self.reasons
    }

    /// Ready only if both are; the reasons of both.
    pub fn and(mut self, other: Readiness) -> Self {
        self.reasons.extend(other.reasons);
        self
    }
}

impl fmt::Display for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reasons.is_empty() {
            return f.write_str("ready");
        }
        write!(f, "not ready: {}", self.reasons.join("; "))
    }
}

/// The future of a readiness check (boxed: checks are rare, a probe every few seconds).
pub type ReadyFuture<'a> = Pin<Box<dyn Future<Output = Readiness> + Send + 'a>>;

/// A check that is ready at once.
pub(crate) fn ready_now<'a>() -> ReadyFuture<'a> {
    Box::pin(std::future::ready(Readiness::ready()))
}

/// Runs `checks` concurrently (each is bounded by its own timeout) and combines their answers
/// in order.
pub(crate) async fn all(checks: Vec<ReadyFuture<'_>>) -> Readiness {
    let mut pending: Vec<Option<ReadyFuture<'_>>> = checks.into_iter().map(Some).collect();
    let mut answers: Vec<Option<Readiness>> = vec![None; pending.len()];
    std::future::poll_fn(|cx: &mut Context<'_>| {
        let mut done = true;
        for (slot, answer) in pending.iter_mut().zip(answers.iter_mut()) {
            if let Some(check) = slot {
                match check.as_mut().poll(cx) {
                    Poll::Ready(readiness) => {
                        *answer = Some(readiness);
                        *slot = None;
                    }
                    Poll::Pending => done = false,
                }
            }
        }
        if done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    answers
        .into_iter()
        .flatten()
        .fold(Readiness::ready(), Readiness::and)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn all_checks_are_combined_in_order() {
        let checks: Vec<ReadyFuture<'_>> = vec![
            Box::pin(async { Readiness::not_ready("a") }),
            ready_now(),
            Box::pin(async {
                tokio::task::yield_now().await;
                Readiness::not_ready("c")
            }),
        ];
        let readiness = all(checks).await;
        assert_eq!(readiness.reasons(), ["a", "c"]);
        assert_eq!(readiness.to_string(), "not ready: a; c");
        assert!(all(Vec::new()).await.is_ready());
        assert_eq!(Readiness::ready().to_string(), "ready");
    }
}
