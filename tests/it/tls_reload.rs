//! Server TLS material replaced while serving (`ReloadableServerTls`): real files replaced by
//! atomic rename and by a Kubernetes `..data` symlink swap while a client holds a connection
//! open; new client CAs; corrupt and mismatched replacements refused with the old material kept.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use axum::routing::get;
use axum::Router;
use certbound::reload::ReloadEvent;
use certbound::tls::{ReloadableServerTls, ServerTls};
use rustls::AlertDescription;
use rustls_pki_types::CertificateDer;
use tokio::sync::watch;

/// A generous upper bound for things that must happen; never a measured duration.
const SAFETY: Duration = Duration::from_secs(20);
/// How often the watcher reads the files in these tests.
const POLL: Duration = Duration::from_millis(20);

fn app() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

/// The next reload outcome.
async fn next_event(events: &mut watch::Receiver<ReloadEvent>) -> ReloadEvent {
    tokio::time::timeout(SAFETY, events.changed())
        .await
        .expect("a reload in time")
        .expect("watcher running");
    events.borrow_and_update().clone()
}

/// Waits for the next reload that succeeded (files written one after the other can be seen
/// half-replaced first; such a reload is refused and the next change tried).
async fn next_success(events: &mut watch::Receiver<ReloadEvent>) {
    loop {
        if next_event(events).await.outcome.is_ok() {
            return;
        }
    }
}

/// Files of a server: certificate, key and client CA, in `dir`.
struct Files {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

impl Files {
    fn write(dir: &Path, pki: &Pki) -> Files {
        let paths = pki.write_pem_files(dir).expect("write PEM files");
        Files {
            cert: paths.server_cert,
            key: paths.server_key,
            ca: paths.ca_cert,
        }
    }

    fn server_tls(&self) -> ServerTls {
        ServerTls::from_pem_files(&self.cert, &self.key)
            .expect("server files")
            .client_ca_pem_file(&self.ca)
            .expect("client CA file")
    }
}

fn leaf_of_pem(pem: &str) -> CertificateDer<'static> {
    use rustls_pki_types::pem::PemObject as _;
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM certificate")
}

#[tokio::test]
async fn a_certificate_renewed_by_atomic_rename_is_served_to_new_handshakes_while_the_open_connection_keeps_working(
) {
    let dir = scratch("reload-rename");
    let pki = Pki::new("reload-rename-ca");
    let alice = pki.client_identity("alice");
    let files = Files::write(&dir, &pki);
    let tls = ReloadableServerTls::new(files.server_tls()).expect("reloadable");
    let watcher = tls.watch(POLL);
    let mut events = watcher.events();
    let server = TestServer::start(tls.clone(), app()).await;
    let roots = [pki.ca_der()];
    let old_leaf = pki.server_identity().0[0].clone();

    let (mut held, _) = expect_served(server.addr(), &roots, Some(&alice)).await;
    assert_eq!(held.server_leaf(), old_leaf);

    let (cert, key) = pki.renewed_server_identity_pem();
    replace_atomically(&files.key, &key);
    replace_atomically(&files.cert, &cert);
    next_success(&mut events).await;

    // The open connection goes on, with the certificate it started with.
    assert_eq!(held.get("/").await.expect("held connection").0, 200);
    assert_eq!(held.server_leaf(), old_leaf);
    // A new one gets the renewed certificate.
    let (fresh, _) = expect_served(server.addr(), &roots, Some(&alice)).await;
    assert_eq!(fresh.server_leaf(), leaf_of_pem(&cert));
    assert_ne!(fresh.server_leaf(), old_leaf);
}

#[cfg(unix)]
#[tokio::test]
async fn a_kubernetes_data_symlink_swap_is_taken_at_once_while_the_open_connection_keeps_working() {
    let dir = scratch("reload-kube");
    let pki = Pki::new("reload-kube-ca");
    let alice = pki.client_identity("alice");
    let (cert, key) = pki.server_identity_pem();
    let ca = pki.ca_pem();
    let mut secret = KubeSecretDir::new(
        &dir,
        &[
            ("tls.crt", cert.as_bytes()),
            ("tls.key", key.as_bytes()),
            ("ca.crt", ca.as_bytes()),
        ],
    );
    let tls = ReloadableServerTls::new(
        ServerTls::from_pem_files(secret.path("tls.crt"), secret.path("tls.key"))
            .expect("server files")
            .client_ca_pem_file(secret.path("ca.crt"))
            .expect("client CA"),
    )
    .expect("reloadable");
    let watcher = tls.watch(POLL);
    let mut events = watcher.events();
    let server = TestServer::start(&tls, app()).await;
    let roots = [pki.ca_der()];

    let (mut held, _) = expect_served(server.addr(), &roots, Some(&alice)).await;
    let old_leaf = held.server_leaf();

    let (new_cert, new_key) = pki.renewed_server_identity_pem();
    secret.update(&[
        ("tls.crt", new_cert.as_bytes()),
        ("tls.key", new_key.as_bytes()),
        ("ca.crt", ca.as_bytes()),
    ]);
    // One swap of `..data` changes the three files at once: the first reload takes them.
    let event = next_event(&mut events).await;
    assert!(event.outcome.is_ok(), "{:?}", event.outcome);
    assert_eq!(event.attempt, 1);

    assert_eq!(held.get("/").await.expect("held connection").0, 200);
    assert_eq!(held.server_leaf(), old_leaf);
    let (fresh, _) = expect_served(server.addr(), &roots, Some(&alice)).await;
    assert_eq!(fresh.server_leaf(), leaf_of_pem(&new_cert));
}

#[tokio::test]
async fn a_new_client_ca_is_accepted_and_the_old_ones_clients_are_refused_after_the_swap() {
    let dir = scratch("reload-ca");
    let old_ca = Pki::new("reload-old-ca");
    let new_ca = Pki::new("reload-new-ca");
    let alice = old_ca.client_identity("alice");
    let bob = new_ca.client_identity("bob");
    let files = Files::write(&dir, &old_ca);
    let tls = ReloadableServerTls::new(files.server_tls()).expect("reloadable");
    let watcher = tls.watch(POLL);
    let mut events = watcher.events();
    let server = TestServer::start(tls.clone(), app()).await;
    // The server's own certificate stays the old CA's.
    let roots = [old_ca.ca_der()];

    let (mut held, _) = expect_served(server.addr(), &roots, Some(&alice)).await;
    assert_eq!(
        expect_refused(server.addr(), &roots, Some(&bob)).await,
        AlertDescription::UnknownCA
    );

    replace_atomically(&files.ca, new_ca.ca_pem());
    next_success(&mut events).await;

    expect_served(server.addr(), &roots, Some(&bob)).await;
    assert_eq!(
        expect_refused(server.addr(), &roots, Some(&alice)).await,
        AlertDescription::UnknownCA
    );
    // Alice's connection, verified under the old CA, is not dropped.
    assert_eq!(held.get("/").await.expect("held connection").0, 200);
}

#[tokio::test]
async fn a_corrupt_file_and_a_mismatched_key_are_refused_with_the_old_material_kept_then_a_good_one_is_taken(
) {
    let dir = scratch("reload-bad");
    let pki = Pki::new("reload-bad-ca");
    let alice = pki.client_identity("alice");
    let files = Files::write(&dir, &pki);
    let tls = ReloadableServerTls::new(files.server_tls()).expect("reloadable");
    let watcher = tls.watch(POLL);
    let mut events = watcher.events();
    let server = TestServer::start(tls.clone(), app()).await;
    let roots = [pki.ca_der()];
    let old_leaf = pki.server_identity().0[0].clone();
    let in_use = tls.current();

    // Half a certificate, as a non-atomic writer leaves it.
    let (cert, key) = pki.renewed_server_identity_pem();
    replace_atomically(&files.cert, &cert[..cert.len() / 2]);
    let event = next_event(&mut events).await;
    let error = event.outcome.expect_err("a corrupt certificate is refused");
    assert!(error.to_string().contains("server-cert.pem"), "{error}");
    assert!(Arc::ptr_eq(&tls.current(), &in_use), "old material kept");
    let (conn, _) = expect_served(server.addr(), &roots, Some(&alice)).await;
    assert_eq!(conn.server_leaf(), old_leaf);

    // The renewed certificate, while the key file still holds the old key.
    replace_atomically(&files.cert, &cert);
    let event = next_event(&mut events).await;
    let error = event.outcome.expect_err("a mismatched key is refused");
    assert!(
        error.to_string().contains("not the server certificate's"),
        "{error}"
    );
    assert!(Arc::ptr_eq(&tls.current(), &in_use), "old material kept");
    let (conn, _) = expect_served(server.addr(), &roots, Some(&alice)).await;
    assert_eq!(conn.server_leaf(), old_leaf);

    // Its key arrives: taken.
    replace_atomically(&files.key, &key);
    let event = next_event(&mut events).await;
    assert!(event.outcome.is_ok(), "{:?}", event.outcome);
    let (conn, _) = expect_served(server.addr(), &roots, Some(&alice)).await;
    assert_eq!(conn.server_leaf(), leaf_of_pem(&cert));
}

#[tokio::test]
async fn a_client_ca_file_without_certificates_is_refused_and_the_old_roots_kept() {
    let dir = scratch("reload-empty-ca");
    let pki = Pki::new("reload-empty-ca");
    let alice = pki.client_identity("alice");
    let files = Files::write(&dir, &pki);
    let tls = ReloadableServerTls::new(files.server_tls()).expect("reloadable");
    let watcher = tls.watch(POLL);
    let mut events = watcher.events();
    let server = TestServer::start(tls.clone(), app()).await;
    let roots = [pki.ca_der()];

    replace_atomically(&files.ca, "");
    let event = next_event(&mut events).await;
    let error = event.outcome.expect_err("an empty CA file is refused");
    assert!(error.to_string().contains("no CERTIFICATE"), "{error}");
    // Still verifying clients against the old CA: Alice in, a self-signed client out.
    expect_served(server.addr(), &roots, Some(&alice)).await;
    let mallory = Pki::self_signed_client("mallory");
    assert_eq!(
        expect_refused(server.addr(), &roots, Some(&mallory)).await,
        AlertDescription::UnknownCA
    );
}

#[tokio::test]
async fn replace_builds_first_and_keeps_the_configuration_in_use_when_the_new_one_is_refused() {
    let pki = Pki::new("replace-ca");
    let other = Pki::new("replace-other-ca");
    let (chain, key) = pki.server_identity();
    let tls = ReloadableServerTls::new(
        ServerTls::new(chain.clone(), key.clone_key())
            .client_ca([pki.ca_der()])
            .expect("client CA"),
    )
    .expect("reloadable");
    let in_use = tls.current();

    // The other CA's server certificate with this key: refused.
    let (other_chain, _) = other.server_identity();
    let error = tls
        .replace(ServerTls::new(other_chain, key.clone_key()))
        .expect_err("mismatched key");
    assert!(
        error.to_string().contains("not the server certificate's"),
        "{error}"
    );
    // An empty client CA set: refused (no client could ever connect).
    let error = tls
        .replace(
            ServerTls::new(chain.clone(), key.clone_key())
                .client_ca(Vec::new())
                .expect("no roots to check"),
        )
        .expect_err("empty client CA set");
    assert!(error.to_string().contains("client CA"), "{error}");
    assert!(Arc::ptr_eq(&tls.current(), &in_use));

    // A good one is taken.
    tls.replace(
        ServerTls::new(chain, key)
            .client_ca([other.ca_der()])
            .expect("client CA"),
    )
    .expect("replaced");
    assert!(!Arc::ptr_eq(&tls.current(), &in_use));
    let server = TestServer::start(tls.clone(), app()).await;
    expect_served(
        server.addr(),
        &[pki.ca_der()],
        Some(&other.client_identity("carol")),
    )
    .await;
}

#[tokio::test]
async fn reload_now_reads_unchanged_files_again_and_the_watcher_stops_with_the_handle() {
    let dir = scratch("reload-now");
    let pki = Pki::new("reload-now-ca");
    let files = Files::write(&dir, &pki);
    let tls = ReloadableServerTls::new(files.server_tls()).expect("reloadable");
    // Interval zero: only on request (SIGHUP).
    let watcher = tls.watch(Duration::ZERO);
    let mut events = watcher.events();
    let before = tls.current();
    watcher.reload_now();
    let event = next_event(&mut events).await;
    assert!(event.outcome.is_ok(), "{:?}", event.outcome);
    assert!(
        !Arc::ptr_eq(&tls.current(), &before),
        "a fresh configuration"
    );

    drop(tls);
    watcher.reload_now();
    // The task ended: no more events, the sender is gone.
    tokio::time::timeout(SAFETY, async { while events.changed().await.is_ok() {} })
        .await
        .expect("the watcher ends once nobody holds the material");
}
