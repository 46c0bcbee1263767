//! Certificate revocation lists at the handshake of `certbound::serve`: CRLs made at test time
//! with rcgen, real TLS clients, each policy and its default.

use std::time::Duration;

use crate::common::*;
use axum::routing::get;
use axum::Router;
use certbound::tls::{load_crls, ReloadableServerTls, ServerTls};
use rustls::AlertDescription;
use rustls_pki_types::CertificateRevocationListDer;

/// A generous upper bound for things that must happen; never a measured duration.
const SAFETY: Duration = Duration::from_secs(20);

fn app() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

/// `pki`'s server identity, its clients verified against `cas`, with `crls`.
fn with_crls(
    pki: &Pki,
    cas: &[&Pki],
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> ServerTls {
    let (chain, key) = pki.server_identity();
    ServerTls::new(chain, key)
        .client_ca(cas.iter().map(|ca| ca.ca_der()))
        .expect("client CA")
        .crl(crls)
}

#[tokio::test]
async fn a_revoked_client_certificate_is_refused_at_the_handshake_and_the_others_are_served() {
    let pki = Pki::new("crl-ca");
    let alice = pki.client_identity_serial("alice", 10);
    let bob = pki.client_identity_serial("bob", 11);
    let crl = pki.crl(&[10], 3600);
    let tls = with_crls(&pki, &[&pki], vec![crl.der().clone()])
        .build()
        .expect("server TLS");
    // A resource server's setting: a certificate is optional, a protected route answers 401
    // without one. A revoked certificate never gets that far: the TLS alert ends the connection
    // before any HTTP.
    let server = TestServer::start(tls, app()).await;
    let roots = [pki.ca_der()];

    assert_eq!(
        expect_refused(server.addr(), &roots, Some(&alice)).await,
        AlertDescription::CertificateRevoked
    );
    expect_served(server.addr(), &roots, Some(&bob)).await;
}

#[tokio::test]
async fn a_crl_added_while_serving_refuses_new_handshakes_of_the_certificates_it_revokes() {
    let dir = scratch("crl-reload");
    let pki = Pki::new("crl-reload-ca");
    let alice = pki.client_identity_serial("alice", 20);
    let bob = pki.client_identity_serial("bob", 21);
    let paths = pki.write_pem_files(&dir).expect("PEM files");
    // PEM first, revoking nobody.
    let crl_path = dir.join("clients.crl");
    std::fs::write(&crl_path, pki.crl(&[], 3600).pem().expect("PEM")).expect("write CRL");
    let tls = ReloadableServerTls::new(
        ServerTls::from_pem_files(&paths.server_cert, &paths.server_key)
            .expect("server files")
            .client_ca_pem_file(&paths.ca_cert)
            .expect("client CA")
            .crl_file(&crl_path)
            .expect("CRL"),
    )
    .expect("reloadable");
    let watcher = tls.watch(Duration::from_millis(20));
    let mut events = watcher.events();
    let server = TestServer::start(tls.clone(), app()).await;
    let roots = [pki.ca_der()];
    let (mut held, _) = expect_served(server.addr(), &roots, Some(&alice)).await;

    // Alice's certificate revoked: the new CRL, DER this time.
    replace_atomically(&crl_path, pki.crl(&[20], 3600).der());
    tokio::time::timeout(SAFETY, events.changed())
        .await
        .expect("a reload in time")
        .expect("watcher running");
    let outcome = events.borrow().outcome.clone();
    assert!(outcome.is_ok(), "{outcome:?}");

    assert_eq!(
        expect_refused(server.addr(), &roots, Some(&alice)).await,
        AlertDescription::CertificateRevoked
    );
    expect_served(server.addr(), &roots, Some(&bob)).await;
    // A connection verified before the revocation is not re-checked (as in nginx and Envoy):
    // revocation applies to handshakes.
    assert_eq!(held.get("/").await.expect("held connection").0, 200);
}

#[tokio::test]
async fn a_certificate_whose_issuer_has_no_crl_is_refused_unless_unknown_status_is_allowed() {
    let listed = Pki::new("crl-listed-ca");
    let unlisted = Pki::new("crl-unlisted-ca");
    let carol = unlisted.client_identity_serial("carol", 30);
    let bob = listed.client_identity_serial("bob", 31);
    let crl = listed.crl(&[], 3600).der().clone();
    let roots = [listed.ca_der()];

    let strict = with_crls(&listed, &[&listed, &unlisted], vec![crl.clone()])
        .build()
        .expect("server TLS");
    let server = TestServer::start(strict, app()).await;
    assert_eq!(
        expect_refused(server.addr(), &roots, Some(&carol)).await,
        AlertDescription::UnknownCA
    );
    expect_served(server.addr(), &roots, Some(&bob)).await;

    let lenient = with_crls(&listed, &[&listed, &unlisted], vec![crl])
        .allow_unknown_revocation_status()
        .build()
        .expect("server TLS");
    let server = TestServer::start(lenient, app()).await;
    expect_served(server.addr(), &roots, Some(&carol)).await;
}

#[tokio::test]
async fn a_crl_past_its_next_update_refuses_its_clients_unless_expired_crls_are_allowed() {
    let pki = Pki::new("crl-expired-ca");
    let alice = pki.client_identity_serial("alice", 40);
    let bob = pki.client_identity_serial("bob", 41);
    // nextUpdate a minute ago.
    let expired = pki.crl(&[40], -60).der().clone();
    let roots = [pki.ca_der()];

    let strict = with_crls(&pki, &[&pki], vec![expired.clone()])
        .build()
        .expect("server TLS");
    let server = TestServer::start(strict, app()).await;
    assert_eq!(
        expect_refused(server.addr(), &roots, Some(&bob)).await,
        AlertDescription::UnknownCA
    );

    let lenient = with_crls(&pki, &[&pki], vec![expired])
        .allow_expired_crl()
        .build()
        .expect("server TLS");
    let server = TestServer::start(lenient, app()).await;
    expect_served(server.addr(), &roots, Some(&bob)).await;
    // What it revokes stays revoked.
    assert_eq!(
        expect_refused(server.addr(), &roots, Some(&alice)).await,
        AlertDescription::CertificateRevoked
    );
}

#[tokio::test]
async fn a_revoked_intermediate_refuses_its_clients_unless_only_end_entities_are_checked() {
    let root = Pki::new("crl-root-ca");
    let intermediate = root.intermediate("crl-intermediate-ca", 50);
    let dave = intermediate.client_identity_serial("dave", 51);
    // The root revokes the intermediate; the intermediate revokes nobody.
    let crls = vec![
        root.crl(&[50], 3600).der().clone(),
        intermediate.crl(&[], 3600).der().clone(),
    ];
    let roots = [root.ca_der()];

    let whole_chain = with_crls(&root, &[&root], crls.clone())
        .build()
        .expect("server TLS");
    let server = TestServer::start(whole_chain, app()).await;
    assert_eq!(
        expect_refused(server.addr(), &roots, Some(&dave)).await,
        AlertDescription::CertificateRevoked
    );

    let end_entity = with_crls(&root, &[&root], crls)
        .crl_end_entity_only()
        .build()
        .expect("server TLS");
    let server = TestServer::start(end_entity, app()).await;
    expect_served(server.addr(), &roots, Some(&dave)).await;
}

#[test]
fn crls_without_client_ca_verification_are_a_configuration_error() {
    let pki = Pki::new("crl-config-ca");
    let crl = pki.crl(&[], 3600).der().clone();
    let (chain, key) = pki.server_identity();
    for (mode, tls) in [
        (
            "default",
            ServerTls::new(chain.clone(), key.clone_key()).crl([crl.clone()]),
        ),
        (
            "any certificate",
            ServerTls::new(chain.clone(), key.clone_key())
                .crl([crl.clone()])
                .any_client_certificate(),
        ),
        (
            "no client auth",
            ServerTls::new(chain.clone(), key.clone_key())
                .no_client_auth()
                .crl([crl.clone()]),
        ),
    ] {
        let error = tls.build().expect_err(mode);
        assert!(error.to_string().contains("client CA"), "{mode}: {error}");
    }
}

#[test]
fn crl_files_are_read_in_pem_with_several_blocks_and_in_der() {
    let dir = scratch("crl-files");
    let one = Pki::new("crl-files-one");
    let two = Pki::new("crl-files-two");
    let (a, b) = (one.crl(&[1], 3600), two.crl(&[2, 3], 3600));
    let pem = dir.join("both.pem");
    std::fs::write(&pem, a.pem().expect("PEM") + &b.pem().expect("PEM")).expect("write");
    assert_eq!(
        load_crls(&pem).expect("PEM CRLs"),
        vec![a.der().clone(), b.der().clone()]
    );
    let der = dir.join("one.crl");
    std::fs::write(&der, a.der()).expect("write");
    assert_eq!(load_crls(&der).expect("DER CRL"), vec![a.der().clone()]);
}
