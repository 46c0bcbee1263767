//! The chain verifier of `tls_client_auth` clients: trust anchors, CRLs and the revocation
//! policies, swapped while serving (an [`ArcSwapOption`]: a lookup is a lock-free load).
//!
//! The material comes from two places: what the builder was given in memory (kept as is) and
//! the files it was given (client CA PEM files, CRL files), read again on every reload. A
//! reload or a replacement that fails (an unreadable or unparsable file, an empty CA set, a CRL
//! rustls refuses) leaves the verifier in use untouched.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls::server::danger::ClientCertVerifier;
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};

use crate::error::ConfigError;
use crate::metrics;
use crate::reload::Reload;
use crate::support::crypto::rustls_provider;
use crate::tls::webpki_client_verifier;
pub(super) use crate::tls::{load_crls, RevocationPolicy};

/// The builder's trust material: in memory, and the files to read again on reload.
#[derive(Default)]
pub(super) struct TrustSources {
    pub(super) roots: Vec<CertificateDer<'static>>,
    pub(super) ca_files: Vec<PathBuf>,
    pub(super) crls: Vec<CertificateRevocationListDer<'static>>,
    pub(super) crl_files: Vec<PathBuf>,
}

/// The verifier in use and how to make the next one.
pub(super) struct ClientTrust {
    current: ArcSwapOption<Verifier>,
    sources: TrustSources,
    policy: RevocationPolicy,
}

/// One built verifier (a sized wrapper: `ArcSwap` holds an `Arc` of a sized type).
pub(super) struct Verifier(pub(super) Arc<dyn ClientCertVerifier>);

impl fmt::Debug for ClientTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTrust")
            .field("trust_anchors", &self.current.load().is_some())
            .field("ca_files", &self.sources.ca_files)
            .field("crl_files", &self.sources.crl_files)
            .field("policy", &self.policy)
            .finish()
    }
}

impl ClientTrust {
    /// Starts with the builder's material (`file_roots` and `file_crls`: the files' contents as
    /// the builder read them). No roots at all: no verifier, unless CRLs were given (refused:
    /// CRLs without trust anchors would silently check nothing).
    pub(super) fn new(
        sources: TrustSources,
        file_roots: Vec<CertificateDer<'static>>,
        file_crls: Vec<CertificateRevocationListDer<'static>>,
        policy: RevocationPolicy,
    ) -> Result<Self, ConfigError> {
        let roots: Vec<_> = sources.roots.iter().cloned().chain(file_roots).collect();
        let crls: Vec<_> = sources.crls.iter().cloned().chain(file_crls).collect();
        let current = if roots.is_empty() {
            if !crls.is_empty() {
                return Err(ConfigError::invalid(
                    "crl",
                    "CRLs without client_ca trust anchors check nothing",
                ));
            }
            None
        } else {
            Some(Arc::new(build_verifier(&roots, &crls, policy)?))
        };
        Ok(Self {
            current: ArcSwapOption::new(current),
            sources,
            policy,
        })
    }

    /// The verifier in use, `None` without trust anchors.
    pub(super) fn current(&self) -> Option<Arc<Verifier>> {
        self.current.load_full()
    }

    /// Puts a verifier of exactly these roots and CRLs in use (the builder's policies).
    pub(super) fn replace(
        &self,
        roots: Vec<CertificateDer<'static>>,
        crls: Vec<CertificateRevocationListDer<'static>>,
    ) -> Result<(), ConfigError> {
        let outcome = build_verifier(&roots, &crls, self.policy);
        self.install(outcome)
    }

    /// Reads the files again and puts a verifier of them and the in-memory material in use.
    pub(super) fn reload_files(&self) -> Result<(), ConfigError> {
        let outcome = self
            .read_sources()
            .and_then(|(roots, crls)| build_verifier(&roots, &crls, self.policy));
        self.install(outcome)
    }

    fn install(&self, outcome: Result<Verifier, ConfigError>) -> Result<(), ConfigError> {
        metrics::tls_reload(outcome.is_ok());
        self.current.store(Some(Arc::new(outcome?)));
        Ok(())
    }

    fn read_sources(
        &self,
    ) -> Result<
        (
            Vec<CertificateDer<'static>>,
            Vec<CertificateRevocationListDer<'static>>,
        ),
        ConfigError,
    > {
        let mut roots = self.sources.roots.clone();
        for path in &self.sources.ca_files {
            roots.extend(crate::tls::load_certs(path)?);
        }
        let mut crls = self.sources.crls.clone();
        for path in &self.sources.crl_files {
            crls.extend(load_crls(path)?);
        }
        Ok((roots, crls))
    }
}

impl Reload for ClientTrust {
    fn paths(&self) -> Vec<PathBuf> {
        let files = self.sources.ca_files.iter();
        files.chain(&self.sources.crl_files).cloned().collect()
    }

    fn reload(&self) -> Result<(), ConfigError> {
        self.reload_files()
    }

    fn what(&self) -> &'static str {
        "client trust anchors and CRLs"
    }
}

/// A WebPKI client-certificate verifier of `roots` and `crls` with `policy`, built as the
/// server side builds its own ([`ServerTls`](crate::tls::ServerTls)).
///
/// # Errors
/// No roots (an empty CA set is refused), a root or a CRL rustls refuses.
fn build_verifier(
    roots: &[CertificateDer<'static>],
    crls: &[CertificateRevocationListDer<'static>],
    policy: RevocationPolicy,
) -> Result<Verifier, ConfigError> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone())?;
    }
    let verifier =
        webpki_client_verifier(store, crls.to_vec(), policy, false, &rustls_provider()?)?;
    Ok(Verifier(verifier))
}
