//! Rejections are traced at debug level under the `certbound` target, without token material;
//! a configuration problem the client cannot fix is a warning.
//!
//! The test runs alone in a process of its own ([`runs_alone`]): tracing caches per call site
//! whether anyone listens, process-wide, and the other tests of this binary hit the same call
//! sites at the same time without a subscriber, so the scoped subscriber here could miss events.

use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::common::{
    assert_no_token_material, ca_verified_tls, claims_bound_to, claims_unbound, get_with_token,
    https_client, runs_alone, static_validator, whoami_app, Introspection, IntrospectionServer,
    Pki, TestKey, TestServer,
};
use certbound::{BoundTokenLayer, IntrospectionValidator};

/// A writer that appends everything the subscriber formats to a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// A debug-level subscriber writing here, for the current thread.
    fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish()
    }
}

// Current-thread runtime: the server task runs on this thread, under the default subscriber.
#[tokio::test(flavor = "current_thread")]
async fn rejections_are_traced_without_token_material() {
    if !runs_alone("tracing::rejections_are_traced_without_token_material").await {
        return;
    }
    let captured = Captured::default();
    let _guard = tracing::subscriber::set_default(captured.subscriber());

    let pki = Pki::new("tracing CA");
    let key = TestKey::es256("k1");
    let server = TestServer::start(
        ca_verified_tls(&pki),
        whoami_app(BoundTokenLayer::new(static_validator(&[&key]))),
    )
    .await;
    let alice = pki.client_identity("alice");
    let mallory = pki.client_identity("mallory");
    let stolen = key.sign(&claims_bound_to(&alice.x5t_s256()));
    let unbound = key.sign(&claims_unbound());
    let url = server.url("/whoami");

    let response =
        get_with_token(&https_client(&pki.ca_der(), Some(&mallory)), &url, &stolen).await;
    assert_eq!(response.status(), 401);
    let response = get_with_token(&https_client(&pki.ca_der(), Some(&alice)), &url, &unbound).await;
    assert_eq!(response.status(), 401);

    let logs = captured.text();
    assert!(logs.contains("request rejected"), "{logs}");
    assert!(logs.contains("CertificateMismatch"), "{logs}");
    assert!(logs.contains("UnboundToken"), "{logs}");
    assert!(logs.contains("DEBUG"), "rejections are debug-level: {logs}");
    assert!(
        !logs.contains(" INFO ") && !logs.contains(" WARN "),
        "{logs}"
    );
    for token in [&stolen, &unbound] {
        assert_no_token_material(&logs, token);
    }
}

/// The endpoint refusing the resource server's own credentials is a 503 for the client and a
/// warning for the operator (it will not heal by itself).
#[tokio::test(flavor = "current_thread")]
async fn refused_introspection_credentials_are_a_warning() {
    if !runs_alone("tracing::refused_introspection_credentials_are_a_warning").await {
        return;
    }
    let captured = Captured::default();
    let _guard = tracing::subscriber::set_default(captured.subscriber());

    let as_server = IntrospectionServer::start(Introspection::basic("rs", "rs-secret")).await;
    let validator = IntrospectionValidator::endpoint(as_server.url())
        .client_secret_basic("rs", "wrong-secret")
        .trust_root(as_server.ca_der())
        .build()
        .expect("validator");
    let pki = Pki::new("tracing CA");
    let alice = pki.client_identity("alice");
    let server = TestServer::start(
        ca_verified_tls(&pki),
        whoami_app(BoundTokenLayer::new(validator)),
    )
    .await;
    let token = "opaque-token-for-the-warning";
    let response = get_with_token(
        &https_client(&pki.ca_der(), Some(&alice)),
        &server.url("/whoami"),
        token,
    )
    .await;
    assert_eq!(response.status(), 503);

    let logs = captured.text();
    assert!(logs.contains(" WARN "), "{logs}");
    assert!(
        logs.contains("refused the resource server's credentials"),
        "{logs}"
    );
    assert!(logs.contains("status=401"), "{logs}");
    assert!(logs.contains("client_secret_basic"), "{logs}");
    assert_no_token_material(&logs, token);
}

/// The calling side at debug level, every target included (reqwest, hyper, rustls, h2): the
/// tokens it gets and the proofs it signs appear nowhere.
#[tokio::test(flavor = "current_thread")]
async fn the_calling_side_traces_no_token_or_proof() {
    use crate::client_tokens::{self_signed, Authority};
    use certbound::client::TokenLayer;
    use certbound::dpop::{Dpop, DpopKey, DpopNonces};
    use tower::{Layer as _, ServiceExt as _};

    if !runs_alone("tracing::the_calling_side_traces_no_token_or_proof").await {
        return;
    }
    let captured = Captured::default();
    let _guard = tracing::subscriber::set_default(captured.subscriber());

    let (_test, identity, registration) = self_signed("traced");
    let authority = Authority::start(serde_json::json!([registration]), 300, None).await;
    let nonces = DpopNonces::new([1u8; 32]).expect("secret");
    let layer = BoundTokenLayer::new(authority.validator()).dpop(Dpop::new().require_nonce(nonces));
    let api = TestServer::start(
        crate::common::any_certificate_tls(&authority.pki),
        whoami_app(layer),
    )
    .await;
    let tokens = authority
        .source("traced", &identity)
        .dpop(DpopKey::generate(certbound::Algorithm::ES256).expect("key"))
        .build()
        .expect("source");
    let http = identity
        .reqwest_builder(&[authority.pki.ca_der()], false)
        .expect("client")
        .build()
        .expect("client");
    let proofs = Arc::new(Mutex::new(Vec::<String>::new()));
    let recorder = Arc::clone(&proofs);
    let client = TokenLayer::new(tokens.clone()).layer(tower::service_fn(
        move |request: http::Request<reqwest::Body>| {
            if let Some(proof) = request.headers().get("dpop") {
                recorder
                    .lock()
                    .unwrap()
                    .push(proof.to_str().unwrap().to_owned());
            }
            let http = http.clone();
            async move {
                let request = reqwest::Request::try_from(request)?;
                Ok::<_, reqwest::Error>(http::Response::from(http.execute(request).await?))
            }
        },
    ));
    let mut seen_tokens = Vec::new();
    for _ in 0..2 {
        let request = http::Request::post(api.url("/whoami"))
            .body(reqwest::Body::from("{}"))
            .expect("request");
        let response = client.clone().oneshot(request).await.expect("call");
        assert_eq!(response.status(), 200);
        let token = tokens.token().await.expect("token");
        seen_tokens.push(token.secret().to_owned());
        // As if the resource server had refused it: another token for the next round.
        tokens.replace(&token).await.expect("token");
    }

    let logs = captured.text();
    assert!(
        logs.contains("use_dpop_nonce") || logs.contains("UseDpopNonce"),
        "{logs}"
    );
    let proofs = proofs.lock().unwrap().clone();
    assert_eq!(proofs.len(), 3, "one nonce retry, then the nonce is known");
    for secret in seen_tokens.iter().chain(&proofs) {
        assert_no_token_material(&logs, secret);
    }
}
