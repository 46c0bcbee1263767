//! The authorization server's material replaced while serving: CRLs for `tls_client_auth`
//! (and their policies), trust anchors rotated, client registrations read again from their
//! file. Over real mutual TLS at a token endpoint, with certificates and CRLs made by rcgen and
//! real files replaced by atomic rename.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::authz_support::*;
use crate::common::*;
use certbound::authorization_server::{ClientAuthenticator, ReloadableClients};
use certbound::reload::{ReloadEvent, Watcher};
use certbound::ConfigError;
use rustls_pki_types::CertificateDer;
use serde_json::{json, Value};
use tokio::sync::watch;

/// How often the watchers of these tests read their files.
const POLL: Duration = Duration::from_millis(50);

fn tls_client(id: &str, cn: &str) -> Value {
    json!({"client_id": id, "token_endpoint_auth_method": "tls_client_auth",
           "tls_client_auth_subject_dn": format!("CN={cn}")})
}

/// Replaces `path` by an atomic rename of a file written beside it.
fn replace(path: &Path, contents: impl AsRef<[u8]>) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// The outcome of the watcher's next reload (at most 20 s away).
async fn next_reload(events: &mut watch::Receiver<ReloadEvent>) -> Result<(), Arc<ConfigError>> {
    tokio::time::timeout(Duration::from_secs(20), events.changed())
        .await
        .expect("a reload within 20 s")
        .expect("the watcher runs");
    events.borrow_and_update().outcome.clone()
}

/// A token endpoint for `clients` (registrations) with `authenticator`.
async fn endpoint(
    pki: &Pki,
    clients: Vec<Value>,
    authenticator: ClientAuthenticator,
) -> TestServer {
    start_token_endpoint(pki, Value::Array(clients), authenticator).await
}

#[tokio::test]
async fn a_revoked_tls_client_auth_certificate_is_refused_at_the_token_endpoint_and_the_others_are_served(
) {
    let pki = Pki::new("authz-crl-server-ca");
    let ca = TestCa::new("authz-crl-client-ca");
    let good = ca.issue_serial(10, "good");
    let revoked = ca.issue_serial(11, "revoked");
    let dir = ScratchDir::new("authz-crl");
    let ca_path = dir.write("ca.pem", ca.pem());
    // PEM, and a second file in DER: both are read.
    let crl_pem = dir.write("ca.crl.pem", ca.crl(&[11]).pem().unwrap());
    let crl_der = dir.write("other.crl", ca.crl(&[99]).der().as_ref());
    let authenticator = ClientAuthenticator::builder()
        .client_ca_pem_file(&ca_path)
        .unwrap()
        .crl_file(&crl_pem)
        .unwrap()
        .crl_file(&crl_der)
        .unwrap()
        .build()
        .unwrap();
    let server = endpoint(
        &pki,
        vec![tls_client("good", "good"), tls_client("revoked", "revoked")],
        authenticator,
    )
    .await;

    assert_authenticated(
        token_as(&server, &pki, Some(&good), "good").await,
        "good",
        "not on the CRL",
    );
    assert_invalid_client(
        token_as(&server, &pki, Some(&revoked), "revoked").await,
        "on the CRL",
    );
}

#[tokio::test]
async fn a_crl_replaced_while_serving_takes_effect_and_a_broken_one_keeps_the_crl_in_use() {
    let pki = Pki::new("authz-crl-reload-server-ca");
    let ca = TestCa::new("authz-crl-reload-client-ca");
    let alice = ca.issue_serial(20, "alice");
    let bob = ca.issue_serial(21, "bob");
    let dir = ScratchDir::new("authz-crl-reload");
    let ca_path = dir.write("ca.pem", ca.pem());
    let crl_path = dir.write("ca.crl", ca.crl(&[]).pem().unwrap());
    let authenticator = ClientAuthenticator::builder()
        .client_ca_pem_file(&ca_path)
        .unwrap()
        .crl_file(&crl_path)
        .unwrap()
        .build()
        .unwrap();
    let watcher: Watcher = authenticator.watch(POLL);
    let mut events = watcher.events();
    let server = endpoint(
        &pki,
        vec![tls_client("alice", "alice"), tls_client("bob", "bob")],
        authenticator,
    )
    .await;
    assert_authenticated(
        token_as(&server, &pki, Some(&alice), "alice").await,
        "alice",
        "empty CRL",
    );

    // Alice's certificate revoked: the new CRL, in DER this time, renamed into place.
    replace(Path::new(&crl_path), ca.crl(&[20]).der().as_ref());
    next_reload(&mut events)
        .await
        .expect("the new CRL is taken");
    assert_invalid_client(
        token_as(&server, &pki, Some(&alice), "alice").await,
        "revoked while serving",
    );
    assert_authenticated(
        token_as(&server, &pki, Some(&bob), "bob").await,
        "bob",
        "not revoked",
    );

    // Half-written files: refused, the CRL in use stays (alice still refused, bob served).
    let pem = ca.crl(&[]).pem().unwrap();
    for broken in [&pem[..pem.len() / 2], "not a CRL", ""] {
        replace(Path::new(&crl_path), broken);
        assert!(next_reload(&mut events).await.is_err(), "{broken:?}");
        assert_invalid_client(
            token_as(&server, &pki, Some(&alice), "alice").await,
            "after a refused CRL",
        );
        assert_authenticated(
            token_as(&server, &pki, Some(&bob), "bob").await,
            "bob",
            "after a refused CRL",
        );
    }
}

/// Whether `identity` (registered under its CN) gets a token from an endpoint whose
/// authenticator `build` makes.
async fn served(
    pki: &Pki,
    identity: &ClientIdentity,
    cn: &str,
    authenticator: ClientAuthenticator,
) -> bool {
    let server = endpoint(pki, vec![tls_client(cn, cn)], authenticator).await;
    let (status, body) = token_as(&server, pki, Some(identity), cn).await;
    match status {
        200 => true,
        401 => {
            assert_invalid_client((status, body), cn);
            false
        }
        _ => panic!("{status} {body}"),
    }
}

#[tokio::test]
async fn the_revocation_policies_are_strict_by_default_and_each_relaxation_is_named() {
    let pki = Pki::new("authz-crl-policy-server-ca");
    let covered = TestCa::new("authz-crl-policy-covered");
    let uncovered = TestCa::new("authz-crl-policy-uncovered");
    let of_covered = covered.issue_serial(30, "of-covered");
    let of_uncovered = uncovered.issue_serial(31, "of-uncovered");
    let builder = || {
        ClientAuthenticator::builder()
            .client_ca([covered.der(), uncovered.der()])
            .unwrap()
    };

    // A CA without a CRL: its clients' revocation status is unknown.
    let current = covered.crl(&[]).der().clone();
    let strict = builder().crl([current.clone()]).build().unwrap();
    assert!(served(&pki, &of_covered, "of-covered", strict.clone()).await);
    assert!(
        !served(&pki, &of_uncovered, "of-uncovered", strict).await,
        "unknown status refused by default"
    );
    let lenient = builder()
        .crl([current])
        .allow_unknown_revocation_status()
        .build()
        .unwrap();
    assert!(served(&pki, &of_uncovered, "of-uncovered", lenient).await);

    // A CRL past its nextUpdate.
    let expired = covered.expired_crl(&[]).der().clone();
    let strict = builder()
        .crl([expired.clone()])
        .allow_unknown_revocation_status();
    assert!(
        !served(&pki, &of_covered, "of-covered", strict.build().unwrap()).await,
        "an expired CRL refused by default"
    );
    let lenient = builder()
        .crl([expired])
        .allow_unknown_revocation_status()
        .allow_expired_crl();
    assert!(served(&pki, &of_covered, "of-covered", lenient.build().unwrap()).await);

    // A revoked intermediate: the whole chain is checked by default.
    let root = TestCa::new("authz-crl-policy-root");
    let intermediate = root.intermediate("authz-crl-policy-intermediate", 40);
    let leaf = intermediate.issue_serial(41, "leaf");
    assert_eq!(
        leaf.chain.len(),
        2,
        "the leaf is sent with its intermediate"
    );
    let crls = [
        root.crl(&[40]).der().clone(),
        intermediate.crl(&[]).der().clone(),
    ];
    let chain_builder = || {
        ClientAuthenticator::builder()
            .client_ca([root.der()])
            .unwrap()
            .crl(crls.clone())
    };
    assert!(
        !served(&pki, &leaf, "leaf", chain_builder().build().unwrap()).await,
        "a revoked intermediate refuses its leaves by default"
    );
    let end_entity = chain_builder().crl_end_entity_only().build().unwrap();
    assert!(served(&pki, &leaf, "leaf", end_entity).await);
    // And a revoked leaf is refused either way.
    let revoked_leaf = intermediate.issue_serial(42, "leaf");
    let crls = [intermediate.crl(&[42]).der().clone()];
    let end_entity = ClientAuthenticator::builder()
        .client_ca([root.der()])
        .unwrap()
        .crl(crls)
        .crl_end_entity_only()
        .build()
        .unwrap();
    assert!(!served(&pki, &revoked_leaf, "leaf", end_entity).await);
}

#[test]
fn crls_without_trust_anchors_and_unparsable_crls_are_refused_at_build() {
    let ca = TestCa::new("authz-crl-build");
    let crl = ca.crl(&[]).der().clone();
    let err = ClientAuthenticator::builder()
        .crl([crl])
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("crl"), "{err}");
    let err = ClientAuthenticator::builder()
        .client_ca([ca.der()])
        .unwrap()
        .crl([b"\x30\x03\x02\x01\x01".to_vec().into()])
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("client CA"), "{err}");

    let dir = ScratchDir::new("authz-crl-build");
    let not_pem = dir.write(
        "x.crl",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    assert!(ClientAuthenticator::builder().crl_file(&not_pem).is_err());
    assert!(ClientAuthenticator::builder()
        .crl_file(dir.0.join("missing.crl"))
        .is_err());
}

#[tokio::test]
async fn trust_anchors_rotated_while_serving_accept_the_new_ca_and_refuse_the_old() {
    let pki = Pki::new("authz-rotate-server-ca");
    let old = TestCa::new("authz-rotate-old");
    let new = TestCa::new("authz-rotate-new");
    let of_old = old.issue_serial(1, "svc");
    let of_new = new.issue_serial(1, "svc");
    let dir = ScratchDir::new("authz-rotate");
    let ca_path = dir.write("clients-ca.pem", old.pem());
    let authenticator = ClientAuthenticator::builder()
        .client_ca_pem_file(&ca_path)
        .unwrap()
        .build()
        .unwrap();
    let watcher = authenticator.watch(POLL);
    let mut events = watcher.events();
    let server = endpoint(&pki, vec![tls_client("svc", "svc")], authenticator.clone()).await;
    assert_authenticated(
        token_as(&server, &pki, Some(&of_old), "svc").await,
        "svc",
        "old CA",
    );
    assert_invalid_client(
        token_as(&server, &pki, Some(&of_new), "svc").await,
        "new CA before the swap",
    );

    replace(Path::new(&ca_path), new.pem());
    next_reload(&mut events).await.expect("the new CA is taken");
    assert_authenticated(
        token_as(&server, &pki, Some(&of_new), "svc").await,
        "svc",
        "new CA after the swap",
    );
    assert_invalid_client(
        token_as(&server, &pki, Some(&of_old), "svc").await,
        "old CA after the swap",
    );

    // No certificate in the file (an empty CA set), or half a PEM block: refused, the new
    // CA stays.
    let pem = new.pem();
    for broken in ["", &pem[..pem.len() / 2]] {
        replace(Path::new(&ca_path), broken);
        assert!(next_reload(&mut events).await.is_err(), "{broken:?}");
        assert_authenticated(
            token_as(&server, &pki, Some(&of_new), "svc").await,
            "svc",
            "after a refused CA file",
        );
    }

    // replace_trust: the application's own material; an empty set refused.
    let err = authenticator
        .replace_trust(Vec::<CertificateDer<'static>>::new(), [])
        .expect_err("no roots");
    assert!(err.to_string().contains("empty CA set"), "{err}");
    assert_authenticated(
        token_as(&server, &pki, Some(&of_new), "svc").await,
        "svc",
        "after a refused replace_trust",
    );
    authenticator
        .replace_trust([old.der()], [old.crl(&[1]).der().clone()])
        .expect("old CA, its CRL revoking svc");
    assert_invalid_client(
        token_as(&server, &pki, Some(&of_old), "svc").await,
        "revoked by the replaced CRL",
    );
    assert_invalid_client(
        token_as(&server, &pki, Some(&of_new), "svc").await,
        "new CA no longer trusted",
    );
}

#[tokio::test]
async fn a_client_registered_in_the_file_while_serving_gets_a_token_and_a_broken_file_keeps_the_registrations(
) {
    let pki = Pki::new("authz-clients-reload-server-ca");
    let ca = TestCa::new("authz-clients-reload-client-ca");
    let first = ca.issue_serial(1, "first");
    let second = ca.issue_serial(2, "second");
    let dir = ScratchDir::new("authz-clients-reload");
    let path = dir.write(
        "clients.json",
        json!([tls_client("first", "first")]).to_string(),
    );
    let clients = ReloadableClients::from_json_file(&path).unwrap();
    let watcher = clients.watch(POLL);
    let mut events = watcher.events();
    let authenticator = ClientAuthenticator::builder()
        .client_ca([ca.der()])
        .unwrap()
        .build()
        .unwrap();
    let server = TestServer::start(
        any_certificate_tls(&pki),
        token_app(clients.clone(), authenticator),
    )
    .await;
    assert_authenticated(
        token_as(&server, &pki, Some(&first), "first").await,
        "first",
        "registered at start",
    );
    assert_invalid_client(
        token_as(&server, &pki, Some(&second), "second").await,
        "not registered yet",
    );

    let both = json!([tls_client("first", "first"), tls_client("second", "second")]);
    replace(Path::new(&path), both.to_string());
    next_reload(&mut events)
        .await
        .expect("the new file is taken");
    assert_authenticated(
        token_as(&server, &pki, Some(&second), "second").await,
        "second",
        "registered while serving",
    );

    let text = both.to_string();
    for broken in [
        text[..text.len() / 2].to_owned(),
        json!([tls_client("first", "first"), tls_client("first", "second")]).to_string(),
        json!([{"client_id": "first", "token_endpoint_auth_method": "tls_client_auth"}])
            .to_string(),
    ] {
        replace(Path::new(&path), &broken);
        assert!(next_reload(&mut events).await.is_err(), "{broken}");
        for (id, identity) in [("first", &first), ("second", &second)] {
            assert_authenticated(
                token_as(&server, &pki, Some(identity), id).await,
                id,
                "after a refused file",
            );
        }
    }

    // Removed from the file: refused from then on.
    replace(
        Path::new(&path),
        json!([tls_client("second", "second")]).to_string(),
    );
    next_reload(&mut events)
        .await
        .expect("the new file is taken");
    assert_invalid_client(
        token_as(&server, &pki, Some(&first), "first").await,
        "removed while serving",
    );
    assert_eq!(clients.current().len(), 1);
}
