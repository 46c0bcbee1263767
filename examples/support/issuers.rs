//! The JWT flags the example resource servers share (`--issuer`, repeatable, `--audience`,
//! `--jwks-url`, `--jwks-file`): checked for consistency, then turned into one
//! [`JwtValidator`] per issuer for a [`certbound::Issuers`] set.
//!
//! Included by `resource_server.rs` and `tonic_server.rs`.

use std::path::PathBuf;

use certbound::JwtValidator;
use rustls_pki_types::CertificateDer;

/// Where the issuers' keys come from.
#[derive(Debug)]
pub(crate) enum KeySource {
    /// RFC 8414 / OpenID discovery of each issuer (no `--jwks-url` nor `--jwks-file`).
    Discover,
    /// `--jwks-url`, for the one issuer.
    Url(String),
    /// `--jwks-file`, for the one issuer.
    File(PathBuf),
}

/// The trusted issuers, in the order given, and how their tokens are checked.
#[derive(Debug)]
pub(crate) struct JwtFlags {
    pub(crate) issuers: Vec<String>,
    pub(crate) audience: String,
    pub(crate) keys: KeySource,
}

impl JwtFlags {
    /// `None` without any `--issuer` (and then neither `--jwks-url` nor `--jwks-file` may be
    /// given). `Err` (a one-line message) for an issuer given twice, a missing `--audience`,
    /// both key flags, or a key flag with other than exactly one `--issuer`.
    pub(crate) fn new(
        issuers: Vec<String>,
        audience: Option<String>,
        jwks_url: Option<String>,
        jwks_file: Option<String>,
    ) -> Result<Option<JwtFlags>, String> {
        let keys = match (jwks_url, jwks_file) {
            (None, None) => KeySource::Discover,
            (Some(url), None) => KeySource::Url(url),
            (None, Some(path)) => KeySource::File(path.into()),
            (Some(_), Some(_)) => {
                return Err("give one of --jwks-url and --jwks-file, not both".into())
            }
        };
        if issuers.len() != 1 {
            let flag = match keys {
                KeySource::Discover => None,
                KeySource::Url(_) => Some("--jwks-url"),
                KeySource::File(_) => Some("--jwks-file"),
            };
            if let Some(flag) = flag {
                return Err(format!(
                    "{flag} is allowed only with exactly one --issuer (with several, keys come from each issuer's discovery)"
                ));
            }
        }
        if issuers.is_empty() {
            return Ok(None);
        }
        for (i, issuer) in issuers.iter().enumerate() {
            if issuers[..i].contains(issuer) {
                return Err(format!("--issuer {issuer} given twice"));
            }
        }
        let audience = audience.ok_or("missing --audience (see --help)")?;
        Ok(Some(JwtFlags {
            issuers,
            audience,
            keys,
        }))
    }

    /// One validator per issuer, in order. `roots`: extra trust anchors for https to the
    /// discovery and JWKS endpoints (`--upstream-ca`).
    pub(crate) fn validators(
        &self,
        roots: &[CertificateDer<'static>],
    ) -> Result<Vec<JwtValidator>, String> {
        self.issuers
            .iter()
            .map(|issuer| {
                let builder = JwtValidator::builder(issuer, &self.audience);
                let (mut builder, flag) = match &self.keys {
                    KeySource::File(path) => {
                        return builder
                            .jwks_file(path)
                            .build()
                            .map_err(|e| format!("--jwks-file: {e}"))
                    }
                    KeySource::Url(url) => (builder.jwks_url(url), "--jwks-url"),
                    KeySource::Discover => (builder.discover(), "--issuer"),
                };
                for ca in roots {
                    builder = builder.trust_root(ca.clone());
                }
                builder.build().map_err(|e| format!("{flag} {issuer}: {e}"))
            })
            .collect()
    }

    /// Whether the keys are fetched (discovery or `--jwks-url`), so worth a first fetch.
    pub(crate) fn remote(&self) -> bool {
        !matches!(self.keys, KeySource::File(_))
    }
}

/// Warms each validator's key cache, one issuer after the other; an issuer that is down now
/// only gets a warning (its tokens are refused with 503 until its keys can be fetched; the
/// others' keep flowing).
pub(crate) async fn prefetch(program: &str, validators: &[JwtValidator]) {
    for validator in validators {
        if let Err(e) = validator.prefetch().await {
            eprintln!(
                "{program}: warning: no keys for {} yet ({e}); will retry on demand",
                validator.issuer()
            );
        }
    }
}
