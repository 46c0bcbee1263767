//! A DPoP request whose token is known (a validator answering at once, as certbound's do on a
//! cache hit) is settled in the service's `call`, its proof's jti recorded there when the store
//! answers at once; a store that answers later parks it. The outcome, the order of the checks
//! and what is counted are those of the parked path.

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use serde_json::json;
use tower::Layer as _;
use tower_service::Service as _;

use super::BoundToken;
use crate::challenge::DefaultRejection;
use crate::dpop::{
    Dpop, DpopKey, MemoryReplayStore, Replay, ReplayFuture, ReplayKey, ReplayStore, StoreError,
};
use crate::thumbprint::JwkThumbprint;
use crate::token::{PresentedToken, TokenFuture};
use crate::{AccessToken, AuthError, AuthErrorKind, BoundTokenLayer, ValidateToken};

const URL: &str = "https://api.example/whoami";

/// `good` is bound to the key `jkt`, `other` to another key; anything else is invalid.
fn claims(token: &str, jkt: &JwkThumbprint) -> Result<AccessToken, AuthError> {
    let jkt = match token {
        "good" => jkt.to_string(),
        "other" => JwkThumbprint::from_digest([7; 32]).to_string(),
        _ => return Err(AuthError::new(AuthErrorKind::InvalidToken)),
    };
    let claims = json!({ "sub": "alice", "scope": "read", "cnf": { "jkt": jkt } });
    AccessToken::from_claims(claims.as_object().cloned().unwrap_or_default())
}

/// Answers at once with a [`TokenFuture`], as certbound's validators do on a cache hit.
struct Cached(JwkThumbprint);

impl ValidateToken for Cached {
    type Future = TokenFuture;

    fn validate(&self, token: &str) -> TokenFuture {
        TokenFuture::ready(claims(token, &self.0))
    }
}

/// Answers with a future of its own: the layer parks the request to poll it.
struct Custom(JwkThumbprint);

impl ValidateToken for Custom {
    type Future = Ready<Result<AccessToken, AuthError>>;

    fn validate(&self, token: &str) -> Self::Future {
        ready(claims(token, &self.0))
    }

    fn validate_presented(&self, presented: PresentedToken<'_>) -> Self::Future {
        self.validate(presented.token())
    }
}

#[derive(Debug, Clone, Copy)]
enum Answers {
    /// At once, from a [`MemoryReplayStore`].
    AtOnce,
    /// The same answer, after one `Pending` (a store across the network).
    Later,
    /// A store error, at once.
    Down,
}

/// A replay store that counts what it is asked to record.
#[derive(Debug)]
struct Store {
    memory: MemoryReplayStore,
    answers: Answers,
    records: AtomicUsize,
}

impl Store {
    fn new(answers: Answers) -> Arc<Self> {
        Arc::new(Self {
            memory: MemoryReplayStore::new(),
            answers,
            records: AtomicUsize::new(0),
        })
    }

    fn records(&self) -> usize {
        self.records.load(Ordering::SeqCst)
    }
}

impl ReplayStore for Store {
    fn record(&self, key: &ReplayKey, ttl: Duration) -> ReplayFuture {
        self.records.fetch_add(1, Ordering::SeqCst);
        match self.answers {
            Answers::AtOnce => self.memory.record(key, ttl),
            Answers::Down => ReplayFuture::ready(Err(StoreError::new("down for the test"))),
            Answers::Later => {
                let answer = self.memory.record(key, ttl).take_ready();
                ReplayFuture::new(Later {
                    answer,
                    waited: false,
                })
            }
        }
    }
}

/// `Pending` once (waking its task), then the answer.
struct Later {
    answer: Option<Result<Replay, StoreError>>,
    waited: bool,
}

impl Future for Later {
    type Output = Result<Replay, StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if !self.waited {
            self.waited = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(
            self.answer
                .take()
                .unwrap_or(Err(StoreError::new("polled after completion"))),
        )
    }
}

/// A DPoP request for [`URL`] with `token` and `proof`.
fn request(token: &str, proof: &str) -> Request<()> {
    let mut request = Request::get(URL).body(()).unwrap();
    let headers = request.headers_mut();
    headers.insert("authorization", format!("DPoP {token}").parse().unwrap());
    headers.insert("dpop", proof.parse().unwrap());
    request
}

fn proof(key: &DpopKey, token: &str) -> String {
    key.proof("GET", URL).access_token(token).sign().unwrap()
}

type Inner = tower::util::ServiceFn<fn(Request<()>) -> Ready<Result<Response<String>, Infallible>>>;

fn served(_: Request<()>) -> Ready<Result<Response<String>, Infallible>> {
    ready(Ok(Response::new(String::from("served"))))
}

/// The service under test: `validator`, a DPoP layer on `store`, an inner service answering
/// `200`.
fn service<V: ValidateToken>(
    validator: V,
    store: &Arc<Store>,
) -> BoundToken<Inner, V, DefaultRejection> {
    let dpop = Dpop::new().replay_store(Arc::clone(store));
    let inner: Inner = tower::service_fn(served as fn(_) -> _);
    BoundTokenLayer::new(validator).dpop(dpop).layer(inner)
}

/// The response, polling the future until it is ready (nothing here waits for long), and how
/// many polls it took.
fn respond<F: Future<Output = Result<Response<String>, Infallible>>>(
    future: F,
) -> (Response<String>, usize) {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for polls in 1..10 {
        if let Poll::Ready(response) = future.as_mut().poll(&mut cx) {
            let Ok(response) = response;
            return (response, polls);
        }
    }
    panic!("the response future never completed");
}

fn kind(response: &Response<String>) -> Option<AuthErrorKind> {
    response
        .extensions()
        .get::<AuthError>()
        .map(AuthError::kind)
}

fn state<T: std::fmt::Debug>(future: &T) -> String {
    format!("{future:?}")
}

fn key() -> DpopKey {
    DpopKey::generate(jsonwebtoken::Algorithm::ES256).unwrap()
}

#[test]
fn a_fresh_proof_with_a_cached_token_is_settled_in_call_and_served() {
    let key = key();
    let store = Store::new(Answers::AtOnce);
    let mut service = service(Cached(key.thumbprint()), &store);
    let future = service.call(request("good", &proof(&key, "good")));
    assert!(state(&future).contains("calling"), "{}", state(&future));
    assert_eq!(store.records(), 1, "recorded in call");
    let (response, polls) = respond(future);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.body(), "served");
    assert_eq!(polls, 1);
}

#[test]
fn a_replayed_proof_with_a_cached_token_is_refused_in_call_as_an_invalid_dpop_proof() {
    let key = key();
    let store = Store::new(Answers::AtOnce);
    let mut service = service(Cached(key.thumbprint()), &store);
    let proof = proof(&key, "good");
    let (first, _) = respond(service.call(request("good", &proof)));
    assert_eq!(first.status(), StatusCode::OK);
    let again = service.call(request("good", &proof));
    assert!(state(&again).contains("rejected"), "{}", state(&again));
    let (again, _) = respond(again);
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(kind(&again), Some(AuthErrorKind::InvalidDpopProof));
    let challenge = again.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("DPoP "), "{challenge}");
    assert!(
        challenge.contains("error=\"invalid_dpop_proof\""),
        "{challenge}"
    );
    assert_eq!(store.records(), 2);
}

#[test]
fn a_store_that_cannot_answer_on_the_inline_path_is_a_503() {
    let key = key();
    let store = Store::new(Answers::Down);
    let mut service = service(Cached(key.thumbprint()), &store);
    let future = service.call(request("good", &proof(&key, "good")));
    assert!(state(&future).contains("rejected"), "{}", state(&future));
    let (response, _) = respond(future);
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(kind(&response), Some(AuthErrorKind::ReplayStoreUnavailable));
    assert_eq!(response.body(), "", "no part of the inner service's answer");
}

#[test]
fn a_store_that_answers_later_parks_the_request_until_it_does() {
    let key = key();
    let store = Store::new(Answers::Later);
    let mut service = service(Cached(key.thumbprint()), &store);
    let proof = proof(&key, "good");
    let future = service.call(request("good", &proof));
    assert!(state(&future).contains("recording"), "{}", state(&future));
    let (response, polls) = respond(future);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(polls, 2, "pending once, then served");
    let (again, polls) = respond(service.call(request("good", &proof)));
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(kind(&again), Some(AuthErrorKind::InvalidDpopProof));
    assert_eq!(polls, 2);
}

#[test]
fn a_request_refused_for_another_reason_does_not_burn_its_proofs_jti() {
    let key = key();
    // One jti: the same replay key whatever the proof is for.
    let signed = |token: &str| {
        key.proof("GET", URL)
            .access_token(token)
            .jti("one-jti")
            .sign()
            .unwrap()
    };
    for cached in [true, false] {
        let store = Store::new(Answers::AtOnce);
        let mut inline = service(Cached(key.thumbprint()), &store);
        let mut parked = service(Custom(key.thumbprint()), &store);
        let mut call = |request| match cached {
            true => respond(inline.call(request)).0,
            false => respond(parked.call(request)).0,
        };
        // The token is bound to another key than the proof's.
        let refused = call(request("other", &signed("other")));
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(kind(&refused), Some(AuthErrorKind::DpopKeyMismatch));
        let refused = call(request("unknown", &signed("unknown")));
        assert_eq!(kind(&refused), Some(AuthErrorKind::InvalidToken));
        assert_eq!(store.records(), 0, "cached {cached}");
        // The jti is still unused.
        let served = call(request("good", &signed("good")));
        assert_eq!(served.status(), StatusCode::OK, "cached {cached}");
        assert_eq!(store.records(), 1);
    }
}

#[test]
fn a_token_validated_by_a_future_of_its_own_still_has_its_proof_recorded_once() {
    let key = key();
    let store = Store::new(Answers::AtOnce);
    let mut service = service(Custom(key.thumbprint()), &store);
    let proof = proof(&key, "good");
    let future = service.call(request("good", &proof));
    assert!(state(&future).contains("validating"), "{}", state(&future));
    assert_eq!(respond(future).0.status(), StatusCode::OK);
    let (again, _) = respond(service.call(request("good", &proof)));
    assert_eq!(kind(&again), Some(AuthErrorKind::InvalidDpopProof));
    assert_eq!(store.records(), 2);
}

#[test]
fn a_proof_with_the_previous_steps_nonce_is_served_in_call_with_a_fresh_nonce() {
    use crate::dpop::DpopNonces;
    let key = key();
    let store = Store::new(Answers::AtOnce);
    // A step of 10^9 s: the current one until 2033, the previous one before 2001.
    let step = 1_000_000_000;
    let nonces = DpopNonces::new([7; 32])
        .unwrap()
        .step(Duration::from_secs(step));
    let dpop = Dpop::new()
        .replay_store(Arc::clone(&store))
        .require_nonce(nonces.clone());
    let inner: Inner = tower::service_fn(served as fn(_) -> _);
    let mut service = BoundTokenLayer::new(Cached(key.thumbprint()))
        .dpop(dpop)
        .layer(inner);
    let now = crate::support::time::unix_now();
    for (nonce, fresh_one) in [(nonces.issue(now - step), true), (nonces.issue(now), false)] {
        let proof = key
            .proof("GET", URL)
            .access_token("good")
            .nonce(&nonce)
            .sign()
            .unwrap();
        let future = service.call(request("good", &proof));
        assert!(state(&future).contains("calling"), "{}", state(&future));
        let (response, _) = respond(future);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers().contains_key("dpop-nonce"), fresh_one);
    }
}

/// Every counter a run of `requests` through `service` moved, as `name/labels → n`.
#[cfg(feature = "metrics")]
fn counted<V: ValidateToken>(
    validator: V,
    answers: Answers,
    requests: &[(&str, &str)],
) -> Vec<(String, u64)> {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder: &'static DebuggingRecorder = Box::leak(Box::new(DebuggingRecorder::new()));
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(recorder, || {
        let store = Store::new(answers);
        let mut service = service(validator, &store);
        for (token, proof) in requests {
            respond(service.call(request(token, proof)));
        }
    });
    let mut counts: Vec<(String, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let DebugValue::Counter(n) = value else {
                return None;
            };
            let labels: Vec<String> = key.key().labels().map(|l| l.value().to_owned()).collect();
            Some((format!("{}/{}", key.key().name(), labels.join("/")), n))
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    counts.sort();
    counts
}

#[cfg(feature = "metrics")]
#[test]
fn a_request_settled_in_call_is_counted_as_a_parked_one_is() {
    let key = key();
    let good = proof(&key, "good");
    let other = proof(&key, "other");
    let requests = [("good", good.as_str()), ("good", &good), ("other", &other)];
    for answers in [Answers::AtOnce, Answers::Down] {
        let inline = counted(Cached(key.thumbprint()), answers, &requests);
        let parked = counted(Custom(key.thumbprint()), answers, &requests);
        assert_eq!(inline, parked, "{answers:?}");
        assert!(
            inline
                .iter()
                .any(|(name, _)| name.starts_with("certbound_requests_total/rejected")),
            "{inline:?}"
        );
    }
}
