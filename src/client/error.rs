//! [`TokenError`]: why no access token could be obtained.

use std::fmt;
use std::sync::Arc;

/// Why a [`TokenSource`](super::TokenSource) could not obtain an access token. Never holds the
/// token, the DPoP proof or the client's key.
#[derive(Clone)]
pub struct TokenError {
    kind: TokenErrorKind,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

/// The kinds of [`TokenError`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenErrorKind {
    /// The authorization server refused the token request with an RFC 6749 §5.2 error
    /// (`invalid_client`, `invalid_scope`, `unauthorized_client`, `invalid_target`, ...).
    /// Not retried: asking again would get the same answer.
    Refused {
        /// The HTTP status of the answer (400 or 401, usually).
        status: u16,
        /// The `error` code.
        error: String,
        /// The `error_description`, when the server gave one (printable ASCII only, at most
        /// 200 characters).
        description: Option<String>,
    },
    /// The authorization server could not be reached or did not answer in time, or answered
    /// `429` or `5xx`, on every attempt.
    Unavailable {
        /// What failed last, in a few words (the URL and the failure; never a token).
        reason: String,
    },
    /// The answer was not a usable token response (or metadata document): not JSON, no
    /// `access_token`, an unknown `token_type`, an unexpected status.
    InvalidResponse {
        /// What was wrong, in a few words.
        reason: String,
    },
    /// The protected resource's metadata (RFC 9728), from which a
    /// [`resource_url`](super::TokenSourceBuilder::resource_url) source learns its
    /// authorization server, is missing, unreachable or unusable: not JSON, its `resource` not
    /// the resource asked about (§3.3), no (or not the preferred) authorization server. Nothing
    /// was sent to any authorization server; the next request for a token tries again.
    ResourceMetadata {
        /// What was wrong, in a few words (the metadata URL and the problem).
        reason: String,
    },
    /// The client could not make its request (its DPoP proof could not be signed).
    Local {
        /// What failed, in a few words.
        reason: String,
    },
}

impl TokenError {
    pub(crate) fn refused(status: u16, error: String, description: Option<String>) -> Self {
        Self::from(TokenErrorKind::Refused {
            status,
            error,
            description,
        })
    }

    pub(crate) fn unavailable(reason: impl Into<String>) -> Self {
        Self::from(TokenErrorKind::Unavailable {
            reason: reason.into(),
        })
    }

    pub(crate) fn invalid_response(reason: impl Into<String>) -> Self {
        Self::from(TokenErrorKind::InvalidResponse {
            reason: reason.into(),
        })
    }

    pub(crate) fn resource_metadata(reason: impl Into<String>) -> Self {
        Self::from(TokenErrorKind::ResourceMetadata {
            reason: reason.into(),
        })
    }

    pub(crate) fn local(reason: impl Into<String>) -> Self {
        Self::from(TokenErrorKind::Local {
            reason: reason.into(),
        })
    }

    pub(crate) fn because(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> &TokenErrorKind {
        &self.kind
    }

    /// The RFC 6749 `error` code when the authorization server refused the request.
    pub fn oauth_error(&self) -> Option<&str> {
        match &self.kind {
            TokenErrorKind::Refused { error, .. } => Some(error),
            _ => None,
        }
    }

    /// Whether asking again later may succeed (the server was unavailable).
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, TokenErrorKind::Unavailable { .. })
    }

    /// Whether the HTTP client's timeout ended the exchange.
    pub(crate) fn is_timeout(&self) -> bool {
        self.source.as_deref().is_some_and(|source| {
            source
                .downcast_ref::<reqwest::Error>()
                .is_some_and(reqwest::Error::is_timeout)
        })
    }
}

impl From<TokenErrorKind> for TokenError {
    fn from(kind: TokenErrorKind) -> Self {
        Self { kind, source: None }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            TokenErrorKind::Refused {
                status,
                error,
                description,
            } => {
                write!(
                    f,
                    "the authorization server refused the token request ({status}): {error}"
                )?;
                if let Some(description) = description {
                    write!(f, " ({description})")?;
                }
                Ok(())
            }
            TokenErrorKind::Unavailable { reason } => {
                write!(f, "the authorization server is unavailable: {reason}")
            }
            TokenErrorKind::InvalidResponse { reason } => {
                write!(f, "the authorization server's answer is unusable: {reason}")
            }
            TokenErrorKind::ResourceMetadata { reason } => {
                write!(f, "the resource's metadata is unusable: {reason}")
            }
            TokenErrorKind::Local { reason } => write!(f, "the token request failed: {reason}"),
        }
    }
}

impl fmt::Debug for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenError")
            .field("kind", &self.kind)
            .field("source", &self.source)
            .finish()
    }
}

impl std::error::Error for TokenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// `text` when it is printable ASCII without `"` and `\` (RFC 6749 §5.2's character set for
/// `error` and `error_description`), cut to `max` characters; `None` otherwise, so that a
/// server cannot put control characters into the client's logs.
pub(crate) fn oauth_text(text: &str, max: usize) -> Option<String> {
    let clean = text
        .bytes()
        .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E));
    (clean && !text.is_empty()).then(|| text.chars().take(max).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_the_servers_error_and_only_unavailability_is_transient() {
        let refused = TokenError::refused(
            401,
            "invalid_client".to_owned(),
            Some("no matching certificate".to_owned()),
        );
        assert_eq!(
            refused.to_string(),
            "the authorization server refused the token request (401): invalid_client \
             (no matching certificate)"
        );
        assert_eq!(refused.oauth_error(), Some("invalid_client"));
        assert!(!refused.is_transient());
        let down = TokenError::unavailable("https://as.test/token: 503 Service Unavailable");
        assert!(down.is_transient());
        assert_eq!(down.oauth_error(), None);
        assert!(!TokenError::invalid_response("no access_token").is_transient());
    }

    #[test]
    fn error_texts_outside_the_rfc_6749_character_set_are_dropped() {
        assert_eq!(
            oauth_text("invalid_scope", 10),
            Some("invalid_sc".to_owned())
        );
        assert_eq!(oauth_text("bad\nline", 100), None);
        assert_eq!(oauth_text("quote\"", 100), None);
        assert_eq!(oauth_text("back\\slash", 100), None);
        assert_eq!(oauth_text("é", 100), None);
        assert_eq!(oauth_text("", 100), None);
    }
}
