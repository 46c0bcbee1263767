//! Two `certbound-authz` instances sharing a real `redis-server` (`replay_redis`): one DPoP
//! proof sent through both at once is allowed exactly once. Skipped with a message when
//! `redis-server` is not installed, unless `CERTBOUND_REQUIRE_REDIS=1` (`.ci/run`).

mod binary;
#[path = "proxy_support/redis.rs"]
mod redis;
mod support;

use binary::{Authz, JwksServer};
use redis::Redis;
use support::*;

#[tokio::test]
async fn one_proof_through_two_instances_at_once_is_allowed_exactly_once() {
    let dir = TempDir::new();
    let Some(redis) = Redis::start(&dir).await else {
        return;
    };
    let jwks = JwksServer::start(&dir).await;
    let tokens = format!("replay_redis = \"redis://127.0.0.1:{}\"", redis.port);
    let config = binary::config("traefik", "127.0.0.1/32", &jwks.url, &tokens);
    let file = dir.write("authz.toml", config);
    let (a, b) = (Authz::start(&file).await, Authz::start(&file).await);

    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = reqwest::Client::new();
    let key = dpop_key();
    let token = jwks.issuer.token("read", cnf_dpop(&key));
    let proof = proof(&key, "GET", "https://api.example.com/orders", &token, None);
    let send = |authz: &Authz| {
        client
            .get(authz.url("/"))
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "api.example.com")
            .header("x-forwarded-uri", "/orders")
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", &proof)
            .send()
    };
    let (first, second) = tokio::join!(send(&a), send(&b));
    let mut statuses = [first.unwrap().status(), second.unwrap().status()];
    statuses.sort();
    assert_eq!(
        statuses,
        [reqwest::StatusCode::OK, reqwest::StatusCode::UNAUTHORIZED]
    );
}
