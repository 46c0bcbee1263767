//! The chain verifier of `tls_client_auth` clients: trust anchors, CRLs and the revocation
//! policies, swapped while serving (an [`ArcSwapOption`]: a lookup is a lock-free load).
//!
//! The material comes from two places: what the builder was given in memory (kept as is) and
//! the files it was given (client CA PEM files, CRL files), read again on every reload. A
//! reload or a replacement that fails (an unreadable or unparsable file, an empty CA set, a CRL
//! rustls refuses) leaves the verifier in use untouched.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};

use crate::error::ConfigError;
use crate::metrics;
use crate::reload::Reload;
use crate::support::crypto::rustls_provider;

/// How CRLs are applied; the defaults are the strict choices.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RevocationPolicy {
    /// Only the end-entity certificate is checked (default: the whole chain but the root).
    pub(super) end_entity_only: bool,
    /// A certificate whose issuer has no CRL is accepted (default: refused).
    pub(super) allow_unknown_status: bool,
    /// A CRL past its `nextUpdate` still counts (default: the certificates it covers are
    /// refused).
    pub(super) allow_expired_crl: bool,
}

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

/// A WebPKI client-certificate verifier of `roots` and `crls` with `policy`.
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
    if store.is_empty() {
        return Err(ConfigError::invalid(
            "client_ca",
            "no trust anchors (an empty CA set is refused)",
        ));
    }
    let mut builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(store), rustls_provider()?)
            .with_crls(crls.iter().cloned());
    if policy.end_entity_only {
        builder = builder.only_check_end_entity_revocation();
    }
    if policy.allow_unknown_status {
        builder = builder.allow_unknown_revocation_status();
    }
    if !policy.allow_expired_crl {
        builder = builder.enforce_revocation_expiration();
    }
    let verifier = builder.build().map_err(|e| {
        ConfigError::invalid_because("client_ca", "no usable client verifier (CA or CRL)", e)
    })?;
    Ok(Verifier(verifier))
}

/// Reads every CRL in a file: PEM (`X509 CRL` blocks, one or more) or one DER CRL.
///
/// # Errors
/// The file cannot be read, is PEM without a CRL block, or is malformed PEM. (A DER file is
/// parsed when the verifier is built.)
pub(super) fn load_crls(
    path: impl AsRef<Path>,
) -> Result<Vec<CertificateRevocationListDer<'static>>, ConfigError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
    let pem_error = |reason| ConfigError::Pem {
        path: path.to_owned(),
        reason,
    };
    if bytes.starts_with(&[0x30]) {
        return Ok(vec![CertificateRevocationListDer::from(bytes)]);
    }
    let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| pem_error("malformed PEM"))?;
    if crls.is_empty() {
        return Err(pem_error("no X509 CRL block found (nor a DER CRL)"));
    }
    Ok(crls)
}
