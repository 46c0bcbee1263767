//! [`FetchError`]: why an exchange with the authorization server failed, with the underlying
//! error (the HTTP client's, a timeout, an HTTP status, a JSON parser's) as its source.

use std::fmt;
use std::sync::Arc;

/// Why a fetch failed: whether the other side could not answer or answered unusably, what was
/// being done (URLs and fixed text, never token material), and the underlying error.
#[derive(Debug, Clone)]
pub(crate) struct FetchError {
    // Read by introspection only (remote keys treat both kinds alike).
    #[cfg_attr(not(feature = "introspection"), allow(dead_code))]
    unavailable: bool,
    context: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl FetchError {
    /// Connection, TLS, timeout, or an HTTP error status: the other side could not answer.
    pub(crate) fn unavailable(context: impl Into<String>) -> Self {
        Self {
            unavailable: true,
            context: context.into(),
            source: None,
        }
    }

    /// An answer arrived but cannot be used: too large, not JSON, wrong shape.
    pub(crate) fn malformed(context: impl Into<String>) -> Self {
        Self {
            unavailable: false,
            ..Self::unavailable(context)
        }
    }

    /// Records the underlying error.
    #[must_use]
    pub(crate) fn because(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The same error, counted as the other side not answering.
    #[cfg_attr(not(feature = "introspection"), allow(dead_code))]
    pub(crate) fn into_unavailable(self) -> Self {
        Self {
            unavailable: true,
            ..self
        }
    }

    /// Whether the other side could not answer (rather than answered unusably).
    #[cfg_attr(
        not(any(feature = "introspection", feature = "client")),
        allow(dead_code)
    )]
    pub(crate) fn is_unavailable(&self) -> bool {
        self.unavailable
    }

    /// Whether a timeout ended the exchange: the HTTP client's own, or a `tokio` timeout
    /// recorded as the source.
    pub(crate) fn is_timeout(&self) -> bool {
        self.source.as_deref().is_some_and(|source| {
            source
                .downcast_ref::<reqwest::Error>()
                .is_some_and(reqwest::Error::is_timeout)
                || source.is::<tokio::time::error::Elapsed>()
        })
    }

    /// The context and the underlying error's text, for logs and `prefetch` errors.
    pub(crate) fn message(&self) -> String {
        match &self.source {
            Some(source) => format!("{}: {source}", self.context),
            None => self.context.clone(),
        }
    }

    pub(crate) fn into_message(self) -> String {
        self.message()
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.context)
    }
}

impl std::error::Error for FetchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

/// An answer with another HTTP status than expected.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpStatus(pub(crate) http::StatusCode);

impl fmt::Display for HttpStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.0)
    }
}

impl std::error::Error for HttpStatus {}
