//! The metrics listener (`listen.metrics`): plain HTTP/1.1 of its own, never the check
//! listener's (a probe must not be mistaken for a check, nor a check for a probe).
//!
//! - `GET /metrics`: Prometheus's text format, from `metrics-exporter-prometheus`'s recorder
//!   (installed by [`install`] before the engine is built, so that the library's series are
//!   recorded from the first check): the library's `certbound_*` series and this binary's
//!   `certbound_authz_*` ones.
//! - `GET /healthz`: `200` as soon as the process serves (liveness).
//! - `GET /readyz`: `200` when checks can be decided ([`Engine::ready`]: every issuer's keys
//!   loaded, the introspection endpoint and the DPoP replay store answering), else `503` with
//!   what is not ready (issuer URLs and parts in fixed words, never a secret).
//!
//! No token is needed and no peer is checked: bind it to an address only the scraper and the
//! kubelet reach.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::engine::Engine;
use crate::observe;

/// How often the recorder's histograms are folded (what the exporter's own listener would do).
const UPKEEP: Duration = Duration::from_secs(5);

/// The library's histograms (upstream calls, replay store), in seconds: the library's README.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// `certbound_authz_decision_duration_seconds`: 100 µs (a cached token) to 1 s (an issuer's
/// keys or an introspection call on the way).
const DECISION_BUCKETS: [f64; 13] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Installs the Prometheus recorder, process-wide, with histograms (not summaries) for every
/// duration. First thing, before the engine is built.
pub(crate) fn install() -> Result<PrometheusHandle, String> {
    let recorder = PrometheusBuilder::new()
        .set_buckets(&BUCKETS)
        .and_then(|builder| {
            builder.set_buckets_for_metric(
                Matcher::Full(observe::DECISION_SECONDS.to_owned()),
                &DECISION_BUCKETS,
            )
        })
        .map_err(|e| e.to_string())?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;
    Ok(handle)
}

/// Folds the recorder's histograms every few seconds, for the process's lifetime.
pub(crate) fn upkeep(handle: PrometheusHandle) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP);
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    });
}

type Answer = Response<Full<Bytes>>;

/// The service of the listener; `engine` is the one in use (a reload replaces it).
pub(crate) fn service(
    handle: PrometheusHandle,
    engine: Arc<ArcSwap<Engine>>,
) -> impl tower::Service<
    Request<hyper::body::Incoming>,
    Response = Answer,
    Error = Infallible,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    tower::service_fn(move |request: Request<hyper::body::Incoming>| {
        let handle = handle.clone();
        let engine = Arc::clone(&engine);
        async move { Ok::<_, Infallible>(answer(&handle, &engine, &request).await) }
    })
}

async fn answer<B>(
    handle: &PrometheusHandle,
    engine: &ArcSwap<Engine>,
    request: &Request<B>,
) -> Answer {
    let path = request.uri().path();
    if !matches!(path, "/metrics" | "/healthz" | "/readyz") {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut answer = text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        answer
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return answer;
    }
    match path {
        "/metrics" => {
            let mut answer = Response::new(Full::new(Bytes::from(handle.render())));
            answer.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            answer
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        _ => {
            // The engine in use now.
            let engine = engine.load_full();
            let readiness = engine.ready().await;
            if readiness.is_ready() {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, format!("{readiness}\n"))
            }
        }
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Answer {
    let mut answer = Response::new(Full::new(body.into()));
    *answer.status_mut() = status;
    answer.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    answer
}
