//! `certbound.example.v1.Whoami` (see `whoami.proto` next to this file), written by hand: prost
//! message types, the tonic service, and a client. What `tonic-prost-build` would generate, minus
//! the need for `protoc` and a build script.
//!
//! Shared by `examples/tonic_server.rs` (the server) and the tests (both sides).

// Each user needs a different part; the items are `pub` for the test crate that includes it too.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use certbound::tonic::AccessTokenExt as _;
use http::uri::PathAndQuery;
use tonic::body::Body;
use tonic::client::GrpcService;
use tonic::server::{Grpc, NamedService, ServerStreamingService, UnaryService};
use tonic::service::interceptor::{InterceptedService, Interceptor};
use tonic::transport::Channel;
use tonic::{GrpcMethod, Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;
use tower_service::Service;

/// The gRPC service name.
pub const SERVICE: &str = "certbound.example.v1.Whoami";
const WHOAMI: &str = "/certbound.example.v1.Whoami/Whoami";
const COUNT: &str = "/certbound.example.v1.Whoami/Count";
/// Most replies one `Count` call streams.
pub const MAX_COUNT: u32 = 1000;

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct WhoamiRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WhoamiReply {
    #[prost(string, tag = "1")]
    pub sub: String,
    #[prost(string, tag = "2")]
    pub client_id: String,
    #[prost(string, repeated, tag = "3")]
    pub scope: Vec<String>,
    #[prost(string, tag = "4")]
    pub x5t_s256: String,
    #[prost(string, tag = "5")]
    pub jkt: String,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct CountRequest {
    #[prost(uint32, tag = "1")]
    pub count: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CountReply {
    #[prost(uint32, tag = "1")]
    pub n: u32,
    #[prost(string, tag = "2")]
    pub sub: String,
}

/// The service. Put a `BoundTokenLayer` in front of it: every method reads the validated token.
#[derive(Debug, Clone, Copy, Default)]
pub struct WhoamiServer;

impl NamedService for WhoamiServer {
    const NAME: &'static str = SERVICE;
}

type StdError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<B> Service<http::Request<B>> for WhoamiServer
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match request.uri().path() {
            WHOAMI => Box::pin(async move {
                let mut grpc = Grpc::new(ProstCodec::<WhoamiReply, WhoamiRequest>::default());
                Ok(grpc.unary(Whoami, request).await)
            }),
            COUNT => Box::pin(async move {
                let mut grpc = Grpc::new(ProstCodec::<CountReply, CountRequest>::default());
                Ok(grpc.server_streaming(Count, request).await)
            }),
            _ => Box::pin(ready(Ok(
                Status::unimplemented("no such method").into_http()
            ))),
        }
    }
}

/// `Whoami`: what the validated, sender-constrained token says about the caller.
struct Whoami;

impl UnaryService<WhoamiRequest> for Whoami {
    type Response = WhoamiReply;
    type Future = Ready<Result<Response<WhoamiReply>, Status>>;

    fn call(&mut self, request: Request<WhoamiRequest>) -> Self::Future {
        ready(request.access_token().map(|token| {
            Response::new(WhoamiReply {
                sub: token.subject().unwrap_or_default().to_owned(),
                client_id: token.client_id().unwrap_or_default().to_owned(),
                scope: token.scopes().to_vec(),
                x5t_s256: token
                    .thumbprint()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                jkt: token
                    .dpop_thumbprint()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            })
        }))
    }
}

/// `Count`: `count` replies, streamed.
struct Count;

type CountStream = tokio_stream::Iter<std::vec::IntoIter<Result<CountReply, Status>>>;

impl ServerStreamingService<CountRequest> for Count {
    type Response = CountReply;
    type ResponseStream = CountStream;
    type Future = Ready<Result<Response<CountStream>, Status>>;

    fn call(&mut self, request: Request<CountRequest>) -> Self::Future {
        ready(count(&request))
    }
}

fn count(request: &Request<CountRequest>) -> Result<Response<CountStream>, Status> {
    let sub = request.access_token()?.subject().unwrap_or_default();
    let count = request.get_ref().count;
    if count > MAX_COUNT {
        return Err(Status::invalid_argument(format!(
            "count is at most {MAX_COUNT}"
        )));
    }
    let replies: Vec<_> = (1..=count)
        .map(|n| {
            Ok(CountReply {
                n,
                sub: sub.to_owned(),
            })
        })
        .collect();
    Ok(Response::new(tokio_stream::iter(replies)))
}

/// A client of the service, over a tonic `Channel` (`T`), or over a channel wrapped in an
/// interceptor ([`with_interceptor`](Self::with_interceptor)) that adds metadata to every call.
#[derive(Debug, Clone)]
pub struct WhoamiClient<T = Channel> {
    inner: tonic::client::Grpc<T>,
}

impl WhoamiClient {
    pub fn new(channel: Channel) -> Self {
        Self {
            inner: tonic::client::Grpc::new(channel),
        }
    }

    /// A client whose calls go through `interceptor` first. Each call's request carries its
    /// [`GrpcMethod`] extension (as in `tonic-prost-build`'s clients), so that the interceptor
    /// knows the method: a DPoP proof is made for the method's URL.
    pub fn with_interceptor<F: Interceptor>(
        channel: Channel,
        interceptor: F,
    ) -> WhoamiClient<InterceptedService<Channel, F>> {
        WhoamiClient {
            inner: tonic::client::Grpc::new(InterceptedService::new(channel, interceptor)),
        }
    }
}

impl<T> WhoamiClient<T> {
    /// A client over any gRPC service: a channel behind tower layers (certbound's outgoing
    /// `client::TokenLayer`, say).
    pub fn over(service: T) -> Self {
        Self {
            inner: tonic::client::Grpc::new(service),
        }
    }
}

impl<T> WhoamiClient<T>
where
    T: GrpcService<Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<StdError> + Send,
{
    async fn ready(&mut self) -> Result<(), Status> {
        self.inner
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("service not ready: {}", e.into())))
    }

    pub async fn whoami(
        &mut self,
        mut request: Request<WhoamiRequest>,
    ) -> Result<Response<WhoamiReply>, Status> {
        self.ready().await?;
        request
            .extensions_mut()
            .insert(GrpcMethod::new(SERVICE, "Whoami"));
        let codec = ProstCodec::<WhoamiRequest, WhoamiReply>::default();
        self.inner
            .unary(request, PathAndQuery::from_static(WHOAMI), codec)
            .await
    }

    pub async fn count(
        &mut self,
        mut request: Request<CountRequest>,
    ) -> Result<Response<Streaming<CountReply>>, Status> {
        self.ready().await?;
        request
            .extensions_mut()
            .insert(GrpcMethod::new(SERVICE, "Count"));
        let codec = ProstCodec::<CountRequest, CountReply>::default();
        self.inner
            .server_streaming(request, PathAndQuery::from_static(COUNT), codec)
            .await
    }
}
