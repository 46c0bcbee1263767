//! A `redis-server` of a test's own (`tokens.replay_redis`), on a free port.
#![allow(unreachable_pub)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::TempDir;

/// A `redis-server` on a free port, killed on drop.
pub struct Redis {
    pub port: u16,
    child: Child,
}

impl Redis {
    /// `None` (with a notice) when redis-server is not installed and not required.
    pub async fn start(dir: &TempDir) -> Option<Redis> {
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
