//! What operators script against, shared by `resource_server` and `tonic_server`:
//! `--metrics-listen ADDR` (a plain HTTP listener of its own, no token: `GET /metrics` in
//! Prometheus's text format, `GET /healthz`, `GET /readyz`), and `GET /readyz` on the main
//! listener too, open.
//!
//! `/healthz` is 200 as soon as the process serves. `/readyz` is 200 when the token layer can
//! decide requests ([`BoundTokenLayer::ready`]: every issuer's keys loaded, the introspection
//! endpoint answering, Redis answering with `--dpop-replay-redis`), else 503; on the metrics
//! listener its body says what is not ready (issuers and parts, no secrets), on the main one
//! only "not ready".
//!
//! The recorder is `metrics-exporter-prometheus`'s, without its own HTTP listener (this one
//! serves `/healthz` and `/readyz` beside `/metrics`), installed before the layer is built.

#![allow(dead_code)] // Each example uses a part.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{Method, Request, Response, StatusCode};
use axum::routing::{get, MethodRouter};
use axum::Router;
use certbound::{BoundTokenLayer, Readiness, ValidateToken};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use super::cli::Flags;

/// The flag this module reads.
pub(crate) const VALUE_FLAGS: [&str; 1] = ["metrics-listen"];

/// How often the recorder's histograms are folded (what `install` would do in its own task).
const UPKEEP: Duration = Duration::from_secs(5);

/// The upstreams' and the replay store's durations, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Asks whether the layer can serve.
pub(crate) type Check =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Readiness> + Send>> + Send + Sync>;

/// The readiness of `layer` (a clone is kept: cheap, shared settings).
pub(crate) fn check<V: ValidateToken>(layer: &BoundTokenLayer<V>) -> Check {
    let layer = layer.clone();
    Arc::new(move || {
        let layer = layer.clone();
        Box::pin(async move { layer.ready().await })
    })
}

/// `--metrics-listen`: the address as given, and what it resolved to.
#[derive(Debug)]
pub(crate) struct MetricsListen {
    arg: String,
    addrs: Vec<SocketAddr>,
}

impl MetricsListen {
    /// `--metrics-listen`, if given.
    pub(crate) fn from_flags(flags: &Flags) -> Result<Option<Self>, String> {
        use std::net::ToSocketAddrs as _;
        let Some(arg) = flags.once("metrics-listen")? else {
            return Ok(None);
        };
        let addrs = arg
            .to_socket_addrs()
            .map_err(|e| format!("--metrics-listen {arg}: {e}"))?
            .collect();
        Ok(Some(Self { arg, addrs }))
    }

    /// Installs the recorder, process-wide. First thing, before the TLS material is built and
    /// the layer records: a gauge set before (the served certificate's expiry) would be lost.
    pub(crate) fn install(&self) -> Result<PrometheusHandle, String> {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .map_err(|e| e.to_string())?
            .build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;
        Ok(handle)
    }

    /// Takes the port.
    pub(crate) async fn bind(&self) -> Result<TcpListener, String> {
        TcpListener::bind(&self.addrs[..])
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", self.arg))
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener`, in the background; prints
/// `metrics on http://ADDR`.
pub(crate) fn serve(listener: TcpListener, handle: PrometheusHandle, check: Check) {
    if let Ok(addr) = listener.local_addr() {
        println!("metrics on http://{addr}");
    }
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP);
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let text = handle.render();
                async move { ([("content-type", "text/plain; version=0.0.4")], text) }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", readyz(check, true));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("metrics listener: {e}");
        }
    });
}

/// `GET /readyz`: 200 "ready", or 503 with what is not ready (`detail`) or "not ready".
pub(crate) fn readyz(check: Check, detail: bool) -> MethodRouter {
    get(move || {
        let check = Arc::clone(&check);
        async move {
            let readiness = check().await;
            match (readiness.is_ready(), detail) {
                (true, _) => (StatusCode::OK, "ready\n".to_owned()),
                (false, true) => (StatusCode::SERVICE_UNAVAILABLE, format!("{readiness}\n")),
                (false, false) => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_owned()),
            }
        }
    })
}

/// Answers `GET /readyz` in front of a service of any body type (empty body, the status
/// says it): for a gRPC server, whose routes are all behind the token layer.
#[derive(Clone)]
pub(crate) struct ReadyzLayer(pub(crate) Check);

impl<S> tower_layer::Layer<S> for ReadyzLayer {
    type Service = Readyz<S>;

    fn layer(&self, inner: S) -> Readyz<S> {
        Readyz {
            inner,
            check: Arc::clone(&self.0),
        }
    }
}

/// See [`ReadyzLayer`].
#[derive(Clone)]
pub(crate) struct Readyz<S> {
    inner: S,
    check: Check,
}

impl<S, B, RB> tower_service::Service<Request<B>> for Readyz<S>
where
    S: tower_service::Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RB>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if request.method() != Method::GET || request.uri().path() != "/readyz" {
            return Box::pin(self.inner.call(request));
        }
        let check = Arc::clone(&self.check);
        Box::pin(async move {
            let status = if check().await.is_ready() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let mut response = Response::new(RB::default());
            *response.status_mut() = status;
            Ok(response)
        })
    }
}
