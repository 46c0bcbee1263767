//! What the layer counts (`certbound_requests_total`), with a recorder of the test's own.

use std::convert::Infallible;
use std::future::{ready, Ready};

use http::{Request, Response, StatusCode};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde_json::json;
use tower::{Layer as _, ServiceExt as _};

use crate::token::PresentedToken;
use crate::{AccessToken, AuthError, AuthErrorKind, BoundTokenLayer, ClientCertificate};
use crate::{RequireScopeLayer, ValidateToken};

fn certificate() -> ClientCertificate {
    ClientCertificate::from_der(b"client".to_vec())
}

/// Accepts "good" (scope `read`), bound to [`certificate`].
fn validator(presented: PresentedToken<'_>) -> Ready<Result<AccessToken, AuthError>> {
    let x5t = certificate().thumbprint().to_string();
    let claims = json!({ "sub": "alice", "scope": "read", "cnf": { "x5t#S256": x5t } });
    ready(match presented.token() {
        "good" => AccessToken::from_claims(claims.as_object().cloned().unwrap_or_default()),
        _ => Err(AuthError::new(AuthErrorKind::InvalidToken)),
    })
}

fn request(token: Option<&str>) -> Request<()> {
    let mut request = Request::new(());
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().unwrap();
        request.headers_mut().insert("authorization", value);
    }
    request.extensions_mut().insert(certificate());
    request
}

/// Sends each request (token, scope the inner layer requires) through a fresh stack, with a
/// recorder of its own, and returns the request counts as `(result, reason, scheme) → n`.
fn counted(requests: &[(Option<&str>, &str, StatusCode)]) -> Vec<(String, u64)> {
    // Its own allocation, never freed: no other recorder can ever have its address.
    let recorder: &'static DebuggingRecorder = Box::leak(Box::new(DebuggingRecorder::new()));
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            for (token, scope, status) in requests {
                let inner = tower::service_fn(|_: Request<()>| {
                    ready(Ok::<_, Infallible>(Response::new(String::new())))
                });
                let scoped = RequireScopeLayer::new([*scope]).unwrap().layer(inner);
                let service = BoundTokenLayer::new(validator).layer(scoped);
                let response = service.oneshot(request(*token)).await.unwrap();
                assert_eq!(response.status(), *status, "{token:?} {scope}");
            }
        });
    });
    let mut counts: Vec<(String, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "certbound_requests_total")
        .map(|(key, _, _, value)| {
            let labels: Vec<String> = key.key().labels().map(|l| l.value().to_owned()).collect();
            let DebugValue::Counter(n) = value else {
                panic!("a counter")
            };
            (labels.join("/"), n)
        })
        // The hot series are registered together, at zero.
        .filter(|(_, n)| *n > 0)
        .collect();
    counts.sort();
    counts
}

#[test]
fn a_request_a_scope_layer_inside_refuses_is_counted_once_as_rejected_with_its_reason() {
    let counts = counted(&[
        (Some("good"), "read", StatusCode::OK),
        (Some("good"), "write", StatusCode::FORBIDDEN),
        (Some("bad"), "read", StatusCode::UNAUTHORIZED),
        (None, "read", StatusCode::UNAUTHORIZED),
    ]);
    assert_eq!(
        counts,
        [
            ("accepted//bearer".to_owned(), 1),
            ("rejected/insufficient_scope/bearer".to_owned(), 1),
            ("rejected/invalid_token/bearer".to_owned(), 1),
            ("rejected/missing_token/none".to_owned(), 1),
        ]
    );
}

#[test]
fn each_recorder_sees_its_own_counts_though_handles_are_kept_per_thread() {
    let ok = (Some("good"), "read", StatusCode::OK);
    // One thread, one recorder after the other: the second is not handed the first's handle.
    assert_eq!(counted(&[ok]), [("accepted//bearer".to_owned(), 1)]);
    assert_eq!(counted(&[ok, ok]), [("accepted//bearer".to_owned(), 2)]);
}

#[tokio::test]
async fn a_validator_of_its_own_is_ready_by_default() {
    let layer = BoundTokenLayer::new(validator);
    assert!(layer.ready().await.is_ready());
    assert!(ValidateToken::ready(&validator).await.is_ready());
}
