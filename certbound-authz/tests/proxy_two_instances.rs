//! Two certbound-authz instances sharing a real `redis-server` (`tokens.replay_redis`), each
//! behind its own real nginx (`deploy/nginx-site.conf`): one DPoP proof sent through both at
//! once is allowed exactly once.

mod binary;
mod proxy_support;
mod support;

use binary::{Authz, JwksServer};
use proxy_support::redis::Redis;
use proxy_support::{authz_config, url, Kind, Pki, Proxy, Upstream, PUBLIC_URL};
use support::*;

#[tokio::test]
async fn one_proof_sent_through_two_nginx_and_two_instances_at_once_is_allowed_exactly_once() {
    let Some(nginx) = Kind::Nginx.binary() else {
        return;
    };
    let dir = TempDir::new();
    let Some(redis) = Redis::start(&dir).await else {
        return;
    };
    let jwks = JwksServer::start(&dir).await;
    let tokens = format!("replay_redis = \"redis://127.0.0.1:{}\"", redis.port);
    let config = dir.write("authz.toml", authz_config(Kind::Nginx, &jwks.url, &tokens));
    let upstream = Upstream::start().await;
    let pki = Pki::new();
    let (a, b) = (Authz::start(&config).await, Authz::start(&config).await);
    let (dir_a, dir_b) = (dir.0.join("a"), dir.0.join("b"));
    let proxy_a = Proxy::start(Kind::Nginx, &nginx, &dir_a, &pki, a.addr, upstream.addr);
    let proxy_b = Proxy::start(Kind::Nginx, &nginx, &dir_b, &pki, b.addr, upstream.addr);
    let (proxy_a, proxy_b) = tokio::join!(proxy_a, proxy_b);

    let key = dpop_key();
    let token = jwks.issuer.token("read", cnf_dpop(&key));
    let proof = proof(
        &key,
        "GET",
        &format!("{PUBLIC_URL}/api/orders"),
        &token,
        None,
    );
    let send = |proxy: &Proxy| {
        proxy_support::client(&pki, proxy.port, None)
            .get(url(proxy.port, "/api/orders"))
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", &proof)
            .send()
    };
    let (first, second) = tokio::join!(send(&proxy_a), send(&proxy_b));
    let mut statuses = [first.unwrap().status(), second.unwrap().status()];
    statuses.sort();
    assert_eq!(
        statuses,
        [reqwest::StatusCode::OK, reqwest::StatusCode::UNAUTHORIZED]
    );
}
