//! [`ClientAuthenticator`]: checks a presented certificate against a client's registration.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use x509_parser::prelude::FromDer as _;

use super::client::{AuthenticatedClient, Method, RegisteredClient};
use super::error::{ClientAuthError, ClientAuthErrorKind};
use super::jwks_uri::{JwksUriCache, JwksUriError};
use super::trust::ClientTrust;
use crate::certificate::ClientCertificate;
use crate::error::ConfigError;
use crate::metrics::{self, CertificateRefusal};
use crate::reload::{self, Watcher};

/// Authenticates a client by the certificate it presented (RFC 8705 §2), by its registered
/// method:
///
/// - `tls_client_auth`: the chain is validated against the configured trust anchors with
///   rustls' own WebPKI verifier (RFC 5280 path validation, validity dates, the clientAuth
///   extended key usage, and revocation when CRLs are configured: see
///   [`crl`](super::ClientAuthenticatorBuilder::crl)), then the registered subject value is matched.
///   Without trust anchors no `tls_client_auth` client can authenticate.
/// - `self_signed_tls_client_auth`: the certificate must be in the client's JWKS (by value or
///   from its `jwks_uri`, cached, fetched again on a miss); no chain validation.
///
/// This is what [`MtlsClientAuthLayer`](super::MtlsClientAuthLayer) runs; call it directly to
/// authenticate clients outside an HTTP token endpoint. Cheap to clone; the clones share the
/// trust anchors, so a [`replace_trust`](Self::replace_trust) or a [`watch`](Self::watch)ed
/// reload applies to all of them.
///
/// # Rotating trust anchors and CRLs
/// The `tls_client_auth` chain verifier can be replaced while serving: the next
/// authentication uses the new one; one that is running finishes with the old one. Either
/// [`replace_trust`](Self::replace_trust) with material the application got elsewhere, or
/// [`reload_trust`](Self::reload_trust) / [`watch`](Self::watch) to read again the files the
/// builder was given ([`client_ca_pem_file`](super::ClientAuthenticatorBuilder::client_ca_pem_file),
/// [`crl_file`](super::ClientAuthenticatorBuilder::crl_file)). A replacement that cannot be used (an
/// unreadable or unparsable file, an empty CA set, a CRL rustls refuses) is refused and the
/// verifier in use is kept.
///
/// ```no_run
/// # async fn run() -> Result<(), certbound::ConfigError> {
/// use std::time::Duration;
/// use certbound::authorization_server::ClientAuthenticator;
///
/// let authenticator = ClientAuthenticator::builder()
///     .client_ca_pem_file("clients-ca.pem")?
///     .crl_file("clients-ca.crl")?
///     .build()?;
/// // Reads both files every 5 s and takes them when they changed; stops when dropped.
/// let watcher = authenticator.watch(Duration::from_secs(5));
/// # drop(watcher); Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClientAuthenticator(Arc<Inner>);

pub(super) struct Inner {
    pub(super) trust: Arc<ClientTrust>,
    pub(super) jwks_uris: Arc<JwksUriCache>,
}

impl fmt::Debug for ClientAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuthenticator")
            .field("trust", &self.0.trust)
            .finish_non_exhaustive()
    }
}

impl ClientAuthenticator {
    pub(super) fn from_inner(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// Puts these trust anchors and CRLs in use for `tls_client_auth` clients, in place of
    /// the current ones (the builder's revocation policies apply). With files configured, the
    /// next [`reload_trust`](Self::reload_trust) (or watched change) replaces them in turn
    /// with the files' contents and the builder's in-memory material.
    ///
    /// Counted in `certbound_tls_reloads_total` (feature `metrics`).
    ///
    /// # Errors
    /// No roots (an empty CA set is refused), a root rustls refuses as a trust anchor, or an
    /// unparsable CRL; the trust anchors in use are kept.
    pub fn replace_trust(
        &self,
        roots: impl IntoIterator<Item = CertificateDer<'static>>,
        crls: impl IntoIterator<Item = CertificateRevocationListDer<'static>>,
    ) -> Result<(), ConfigError> {
        let roots = roots.into_iter().collect();
        self.0.trust.replace(roots, crls.into_iter().collect())
    }

    /// Reads the client CA and CRL files given to the builder again and puts them in use,
    /// with the in-memory [`client_ca`](super::ClientAuthenticatorBuilder::client_ca) and
    /// [`crl`](super::ClientAuthenticatorBuilder::crl) values. Counted in
    /// `certbound_tls_reloads_total` (feature `metrics`).
    ///
    /// # Errors
    /// A file cannot be read or parsed, the CA set is empty, or rustls refuses a root or a
    /// CRL; the trust anchors in use are kept.
    pub fn reload_trust(&self) -> Result<(), ConfigError> {
        self.0.trust.reload_files()
    }

    /// Watches the builder's client CA and CRL files: every `interval` their contents are
    /// read, and when they changed (an edit, an atomic rename, a Kubernetes `..data` symlink
    /// swap) [`reload_trust`](Self::reload_trust) runs. `interval` zero: only on
    /// [`Watcher::reload_now`] (wire it to `SIGHUP`). See [`crate::reload`] for the outcomes.
    ///
    /// The watcher stops when dropped, or once every clone of this authenticator is gone.
    /// Without files it never sees a change. Must be called within a tokio runtime.
    pub fn watch(&self, interval: Duration) -> Watcher {
        reload::spawn(&self.0.trust, interval)
    }

    /// Checks `certificate` against `client`'s registration.
    ///
    /// # Errors
    /// [`ClientAuthErrorKind::InvalidClient`] when the client is not registered for a
    /// mutual-TLS method, or the certificate does not authenticate it (untrusted, expired or
    /// not yet valid chain; another subject; not in the JWKS; a `jwks_uri` the SSRF guard
    /// refuses, see
    /// [`allow_private_jwks_uri`](super::ClientAuthenticatorBuilder::allow_private_jwks_uri));
    /// [`ClientAuthErrorKind::JwksUriUnavailable`] when the client's `jwks_uri` cannot be
    /// fetched and none of its keys are cached.
    pub async fn authenticate(
        &self,
        client: &RegisteredClient,
        certificate: &ClientCertificate,
    ) -> Result<AuthenticatedClient, ClientAuthError> {
        let fail = |detail| {
            Err(ClientAuthError::new(
                ClientAuthErrorKind::InvalidClient,
                detail,
            ))
        };
        // A certificate known only by its thumbprint (a proxy forwarded just a hash) cannot be
        // matched against a registration.
        let Some(leaf) = certificate.leaf() else {
            return fail("only the certificate's thumbprint is known");
        };
        let leaf = leaf.as_ref();
        match client.method() {
            Method::Other => return fail("client is not registered for mutual-TLS authentication"),
            Method::Tls(subject) => {
                let Some(verifier) = self.0.trust.current() else {
                    return fail("no trust anchors for tls_client_auth");
                };
                let chain = certificate.chain();
                if let Err(e) =
                    verifier
                        .0
                        .verify_client_cert(&chain[0], &chain[1..], UnixTime::now())
                {
                    let refusal = CertificateRefusal::of(&e);
                    if let Some(reason) = refusal {
                        metrics::client_certificate_refused(reason);
                    }
                    return fail(match refusal {
                        Some(CertificateRefusal::Revoked) => "client certificate revoked",
                        Some(CertificateRefusal::RevocationUnknown) => {
                            "client certificate's revocation status unknown"
                        }
                        _ => "certificate chain not valid for client authentication",
                    });
                }
                let Some(cert) = parse(leaf) else {
                    return fail("unparsable certificate");
                };
                if !subject.matches(&cert) {
                    return fail("certificate subject is not the registered one");
                }
            }
            Method::SelfSignedStatic(keys) => {
                let Some(cert) = parse(leaf) else {
                    return fail("unparsable certificate");
                };
                if !keys.matches(leaf, &cert) {
                    return fail("certificate not in the client's jwks");
                }
            }
            Method::SelfSignedUri(uri) => {
                if parse(leaf).is_none() {
                    return fail("unparsable certificate");
                }
                let matched = self
                    .0
                    .jwks_uris
                    .matches(uri, |keys| {
                        parse(leaf).is_some_and(|cert| keys.matches(leaf, &cert))
                    })
                    .await;
                match matched {
                    Ok(true) => {}
                    Ok(false) => return fail("certificate not in the client's jwks_uri"),
                    Err(JwksUriError::Refused) => {
                        return fail(
                            "client's jwks_uri is a loopback, private or link-local address",
                        )
                    }
                    Err(JwksUriError::Unavailable) => {
                        return Err(ClientAuthError::new(
                            ClientAuthErrorKind::JwksUriUnavailable,
                            "client's jwks_uri unavailable and no keys cached",
                        ))
                    }
                }
            }
        }
        Ok(AuthenticatedClient::new(
            client.clone(),
            certificate.clone(),
        ))
    }
}

/// Parses a whole DER certificate (no trailing data).
fn parse(der: &[u8]) -> Option<x509_parser::certificate::X509Certificate<'_>> {
    match x509_parser::certificate::X509Certificate::from_der(der) {
        Ok(([], cert)) => Some(cert),
        _ => None,
    }
}
