//! The integration tests, linked into one test binary: one module per area, and the shared
//! support in `common` and `authz_support`. (A file per area under `tests/` would be a binary of
//! its own, each one linking axum, tonic, reqwest and rcgen again.)
//!
//! The binary has no `required-features`: a module that needs crate features is compiled only
//! with them, so `cargo test` with any features builds and runs what it can. Every module needs
//! `common`, which needs `aws-lc-rs` (jsonwebtoken's provider) and `axum` (certbound's
//! extractors).

// A test binary exports nothing: `pub` in the support modules means shared between modules.
#![allow(unreachable_pub)]
// The tests sign and verify tokens as an authorization server and an independent oracle do:
// with jsonwebtoken's own functions, after `common::init` installed its process-wide provider
// (certbound itself passes its provider explicitly; see clippy.toml).
#![allow(clippy::disallowed_methods)]
// Without every feature some modules are compiled out, and support only they use is unused.
#![cfg_attr(
    not(all(
        feature = "axum-server",
        feature = "introspection",
        feature = "tonic",
        feature = "tracing"
    )),
    allow(dead_code, unused_imports)
)]

#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod authz_support;
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod common;
#[cfg(all(feature = "aws-lc-rs", feature = "axum", feature = "tonic"))]
#[path = "../../examples/grpc/whoami.rs"]
mod whoami;

#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod authz_client_auth;
// Revocation, rotation and registrations replaced while serving.
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod authz_reload;
// The calling side, against the example authorization server's routes in-process.
#[cfg(all(feature = "aws-lc-rs", feature = "axum", feature = "tonic"))]
mod client_layer;
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod client_resource_url;
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod client_rotation;
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod client_tokens;
// Runs examples/client.rs (features aws-lc-rs, client).
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod example_client;
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
#[path = "../../examples/support/oauth_server.rs"]
mod oauth_server;
// Runs examples/authorization_server.rs (features axum, aws-lc-rs, authorization-server).
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod authz_example;
#[cfg(all(feature = "aws-lc-rs", feature = "axum", feature = "axum-server"))]
mod axum_server;
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod crypto_providers;
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod dpop;
#[cfg(all(feature = "aws-lc-rs", feature = "axum", feature = "redis"))]
mod dpop_redis;
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod dpop_token_endpoint;
// Runs examples/resource_server.rs (features axum, aws-lc-rs, introspection).
#[cfg(all(feature = "aws-lc-rs", feature = "axum", feature = "introspection"))]
mod example_metrics;
#[cfg(all(feature = "aws-lc-rs", feature = "axum", feature = "introspection"))]
mod example_resource_server;
// examples/resource_server.rs: several issuers, introspection alongside, metadata, step-up.
#[cfg(all(feature = "aws-lc-rs", feature = "axum", feature = "introspection"))]
mod example_resource_server_issuers;
// Runs examples/tonic_server.rs (features tonic, aws-lc-rs).
#[cfg(all(feature = "aws-lc-rs", feature = "axum", feature = "tonic"))]
mod example_tonic_server;
// Runs examples/resource_server.rs and (with tonic) examples/tonic_server.rs with --dpop.
#[cfg(all(feature = "aws-lc-rs", feature = "axum", feature = "introspection"))]
mod dpop_examples;
// Fault drills against every upstream, the introspection endpoint included.
#[cfg(all(feature = "aws-lc-rs", feature = "axum", feature = "introspection"))]
mod drills;
#[cfg(all(feature = "aws-lc-rs", feature = "axum", feature = "introspection"))]
mod floods;
#[cfg(all(feature = "aws-lc-rs", feature = "axum", feature = "introspection"))]
mod garbage;
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod hostile_clients;
#[cfg(all(feature = "aws-lc-rs", feature = "axum", feature = "introspection"))]
mod introspection;
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod issuers;
// Runs examples/authorization_server.rs twice: two issuers behind one `Issuers`.
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod issuers_example_as;
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod jwks_remote;
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod jwt_cache;
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod lingering_close;
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod proxies;
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod rejections;
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod resource_metadata;
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod serve;
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod serve_panics;
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod step_up;
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod support_selftest;
// Runs examples/resource_server.rs and examples/tonic_server.rs with their TLS files swapped.
#[cfg(all(
    unix,
    feature = "aws-lc-rs",
    feature = "axum",
    feature = "introspection"
))]
mod example_reload;
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod tls_crl;
#[cfg(all(feature = "aws-lc-rs", feature = "axum"))]
mod tls_reload;
#[cfg(all(feature = "aws-lc-rs", feature = "axum", feature = "tonic"))]
mod tonic;
#[cfg(all(feature = "aws-lc-rs", feature = "axum", feature = "tracing"))]
mod tracing;
