//! Two `certbound-authz` instances sharing a real `redis-server` (`replay_redis`): one DPoP
//! proof sent through both at once is allowed exactly once. Skipped with a message when
//! `redis-server` is not installed, unless `CERTBOUND_REQUIRE_REDIS=1` (`.ci/run`).

mod binary;
mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use binary::{Authz, JwksServer};
use support::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A `redis-server` on a free port, killed on drop.
struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    async fn start(dir: &TempDir) -> Option<Redis> {
        let found = std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("redis-server"))
                .find(|candidate| candidate.is_file())
        });
        let Some(binary) = found else {
            assert!(
                std::env::var("CERTBOUND_REQUIRE_REDIS").as_deref() != Ok("1"),
                "redis-server is not installed, and CERTBOUND_REQUIRE_REDIS=1"
            );
            eprintln!("SKIPPED: redis-server is not installed");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let redis = Redis { port, child };
        // Poll until it answers PING (every 10 ms, at most 10 s).
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        for _ in 0..1000 {
            tick.tick().await;
            if redis.ping().await {
                return Some(redis);
            }
        }
        panic!("redis-server did not answer PING on port {port}");
    }

    async fn ping(&self) -> bool {
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        if stream.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).await.is_ok() && &reply == b"+PONG\r\n"
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
