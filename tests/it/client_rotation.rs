//! The calling side's certificate renewed while it runs: `ReloadableClientIdentity` watching
//! real files replaced by rename, a `TokenSource` against the example authorization server's
//! routes and `ReqwestClient::per_identity` calling a resource server that checks the binding,
//! all over real mutual TLS.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use certbound::client::{
    CallError, ClientIdentity as Identity, ReloadableClientIdentity, ReqwestClient, TokenSource,
};
use certbound::reload::{ReloadEvent, Watcher};
use certbound::BoundTokenLayer;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::client_tokens::{self_signed, Authority};
use crate::common::*;

/// Writes `contents` beside `path` and renames it into place, as cert-manager or a deployment
/// tool does.
fn install(path: &Path, contents: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, contents).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// The next reload outcome, or a failed test after 10 s.
async fn next(events: &mut watch::Receiver<ReloadEvent>) -> ReloadEvent {
    tokio::time::timeout(Duration::from_secs(10), events.changed())
        .await
        .expect("a reload within 10 s")
        .expect("watcher running");
    events.borrow_and_update().clone()
}

/// Waits until the identity in use has `thumbprint` (the two files may be seen half-renewed in
/// between: that reload is refused, and the next one taken).
async fn renewed_to(
    identity: &ReloadableClientIdentity,
    events: &mut watch::Receiver<ReloadEvent>,
    thumbprint: &str,
) {
    while identity.current().thumbprint().to_string() != thumbprint {
        next(events).await;
    }
}

/// A client registered for `self_signed_tls_client_auth` with two certificates (the one in
/// use and its renewal), its files in a scratch directory, and the parts that use them.
struct Setup {
    authority: Authority,
    api: TestServer,
    old: crate::common::ClientIdentity,
    new: crate::common::ClientIdentity,
    cert: PathBuf,
    key: PathBuf,
    identity: ReloadableClientIdentity,
    watcher: Watcher,
    tokens: TokenSource,
    /// `401`s of the resource server so far.
    refusals: Arc<AtomicUsize>,
    _dir: ScratchDir,
}

impl Setup {
    /// `name`: the scratch directory's, distinct per test.
    async fn start(name: &str) -> Setup {
        let (old, _, registration) = self_signed("rotating");
        let (new, _, renewed) = self_signed("rotating");
        let mut registration = registration;
        let mut keys = registration["jwks"]["keys"]
            .as_array()
            .expect("keys")
            .clone();
        keys.extend(renewed["jwks"]["keys"].as_array().expect("keys").clone());
        registration["jwks"]["keys"] = Value::Array(keys);
        let authority = Authority::start(json!([registration]), 300, None).await;
        // The resource server, counting its refusals: a token sent over a connection that
        // presented another certificate than the one it is bound to would be one (and the
        // client's retry with another token would hide it from the caller).
        let refusals = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&refusals);
        let layer = BoundTokenLayer::new(authority.validator());
        let app = whoami_app(layer).layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let counter = Arc::clone(&counter);
                async move {
                    let response = next.run(request).await;
                    if response.status() == 401 {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    response
                }
            },
        ));
        let api = TestServer::start(any_certificate_tls(&authority.pki), app).await;
        let dir = ScratchDir::new(name);
        let (cert, key) = (dir.0.join("client.pem"), dir.0.join("client.key"));
        install(&cert, &old.cert_pem);
        install(&key, &old.key_pem);
        let identity = ReloadableClientIdentity::from_pem_files(&cert, &key).expect("identity");
        let watcher = identity.watch(Duration::from_millis(50));
        let tokens = TokenSource::builder("rotating", identity.clone())
            .issuer(&authority.issuer)
            .trust_root(authority.pki.ca_der())
            .only_trust_roots()
            .build()
            .expect("source");
        Setup {
            authority,
            api,
            old,
            new,
            cert,
            key,
            identity,
            watcher,
            tokens,
            refusals,
            _dir: dir,
        }
    }

    /// A client that makes a reqwest client per identity, trusting the test CA.
    fn client(&self) -> ReqwestClient {
        let ca = self.authority.pki.ca_der();
        ReqwestClient::per_identity(self.tokens.clone(), move |identity| {
            Ok(identity
                .reqwest_builder(std::slice::from_ref(&ca), false)?
                .pool_max_idle_per_host(1)
                .build()?)
        })
        .expect("client")
    }

    /// `GET /whoami`: the token's binding and the certificate the connection presented, as the
    /// resource server saw them (it refuses a token not bound to the connection's certificate).
    async fn whoami(&self, client: &ReqwestClient) -> (String, String) {
        let request = client
            .http()
            .get(self.api.url("/whoami"))
            .build()
            .expect("request");
        let response = client.execute(request).await.expect("call");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("JSON");
        (
            body["thumbprint"].as_str().expect("bound").to_owned(),
            body["connection"]["thumbprint"]
                .as_str()
                .expect("presented")
                .to_owned(),
        )
    }
}

#[tokio::test]
async fn a_renewed_certificate_brings_a_new_token_bound_to_it_over_connections_presenting_it() {
    let setup = Setup::start("rotation-renewed").await;
    let client = setup.client();
    let (old, new) = (setup.old.x5t_s256(), setup.new.x5t_s256());
    assert_eq!(setup.whoami(&client).await, (old.clone(), old.clone()));
    assert_eq!(setup.whoami(&client).await, (old.clone(), old.clone()));
    assert_eq!(setup.authority.requests(), 1, "the token is cached");
    let before = setup.tokens.token().await.expect("token");
    assert_eq!(before.client_thumbprint().to_string(), old);

    install(&setup.cert, &setup.new.cert_pem);
    install(&setup.key, &setup.new.key_pem);
    let mut events = setup.watcher.events();
    renewed_to(&setup.identity, &mut events, &new).await;

    // The token of the old certificate is no longer handed out: one new token, bound to the
    // new certificate, sent over a connection that presents it.
    assert_eq!(setup.whoami(&client).await, (new.clone(), new.clone()));
    assert_eq!(setup.whoami(&client).await, (new.clone(), new.clone()));
    assert_eq!(setup.authority.requests(), 2);
    let after = setup.tokens.token().await.expect("token");
    assert_ne!(after.secret(), before.secret());
    assert_eq!(after.client_thumbprint().to_string(), new);
    assert_eq!(setup.tokens.identity().thumbprint().to_string(), new);
    assert_eq!(
        setup.refusals.load(Ordering::SeqCst),
        0,
        "no token on a connection of another certificate"
    );
}

#[tokio::test]
async fn a_mismatched_or_unparsable_renewal_is_refused_and_the_old_identity_keeps_working() {
    let setup = Setup::start("rotation-refused").await;
    let client = setup.client();
    let old = setup.old.x5t_s256();
    assert_eq!(setup.whoami(&client).await, (old.clone(), old.clone()));
    let mut events = setup.watcher.events();

    // The new certificate with the old key: refused whole.
    install(&setup.cert, &setup.new.cert_pem);
    let event = next(&mut events).await;
    let error = event.outcome.expect_err("mismatched key refused");
    assert!(
        error.to_string().contains("not the client certificate's"),
        "{error}"
    );
    assert_eq!(setup.identity.current().thumbprint().to_string(), old);
    assert_eq!(setup.whoami(&client).await, (old.clone(), old.clone()));

    // A half-written certificate file.
    install(
        &setup.cert,
        &setup.new.cert_pem[..setup.new.cert_pem.len() / 2],
    );
    let event = next(&mut events).await;
    assert!(event.outcome.is_err(), "{event:?}");
    assert_eq!(setup.whoami(&client).await, (old.clone(), old.clone()));
    assert_eq!(setup.authority.requests(), 1, "the old token still in use");

    // Then the whole renewal is taken.
    install(&setup.cert, &setup.new.cert_pem);
    install(&setup.key, &setup.new.key_pem);
    let new = setup.new.x5t_s256();
    renewed_to(&setup.identity, &mut events, &new).await;
    assert_eq!(setup.whoami(&client).await, (new.clone(), new));
    assert_eq!(setup.refusals.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_client_made_for_the_old_certificate_sends_nothing_after_a_renewal() {
    let setup = Setup::start("rotation-fixed").await;
    let fixed = ReqwestClient::new(
        setup.authority.api_client(&setup.identity.current()),
        setup.tokens.clone(),
    );
    let old = setup.old.x5t_s256();
    assert_eq!(setup.whoami(&fixed).await, (old.clone(), old));
    let renewed = Identity::from_pem(setup.new.cert_pem.as_bytes(), setup.new.key_pem.as_bytes())
        .expect("identity");
    setup.identity.replace(renewed);
    let request = fixed
        .http()
        .get(setup.api.url("/whoami"))
        .build()
        .expect("request");
    let error = fixed.execute(request).await.expect_err("refused locally");
    assert_eq!(setup.refusals.load(Ordering::SeqCst), 0, "nothing sent");
    assert!(
        matches!(
            error.downcast_ref::<CallError>(),
            Some(CallError::IdentityRenewed)
        ),
        "{error}"
    );
}
