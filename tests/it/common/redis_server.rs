//! A real `redis-server` (Debian package `redis-server`) on a free 127.0.0.1 port, without
//! persistence, that a test can stop, start again on the same port, pause and resume.
//!
//! When `redis-server` is not installed the tests that need it are skipped with a message,
//! unless `CERTBOUND_REQUIRE_REDIS=1` (set by `.ci/run`, which installs it), where it is a
//! failure.
//!
//! [`RedisServer::command`] speaks RESP over a plain socket: the tests' independent oracle for
//! what certbound's store wrote, without redis-rs.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use super::{free_port, ScratchDir};

/// `redis-server` on the `PATH`, if any.
fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
}

/// A `redis-server` process (or a port reserved for one); killed on drop.
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    dir: ScratchDir,
    child: Option<Child>,
}

impl RedisServer {
    /// A server on a free port, answering `PING`; `None` (the test is skipped) when
    /// `redis-server` is not installed.
    pub async fn start() -> Option<RedisServer> {
        let mut server = Self::not_started()?;
        server.restart().await;
        Some(server)
    }

    /// A free port and no server yet ([`restart`](Self::restart) starts it): for a test of
    /// what happens before Redis is up. `None` when `redis-server` is not installed.
    pub fn not_started() -> Option<RedisServer> {
        let Some(binary) = binary() else {
            assert!(
                std::env::var("CERTBOUND_REQUIRE_REDIS").as_deref() != Ok("1"),
                "redis-server is not installed, and CERTBOUND_REQUIRE_REDIS=1"
            );
            eprintln!("SKIPPED: redis-server is not installed (apt-get install redis-server; .ci/run does)");
            return None;
        };
        let port = free_port();
        Some(RedisServer {
            binary,
            port,
            dir: ScratchDir::new(&format!("redis-{port}")),
            child: None,
        })
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (as a crash would: no shutdown, connections reset). The port stays
    /// reserved for [`restart`](Self::restart).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port, empty, and returns once it answers `PING`.
    pub async fn restart(&mut self) {
        self.stop();
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir.0)
            .arg("--logfile")
            .arg(self.dir.0.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.binary.display()));
        self.child = Some(child);

        // Poll until it answers (every 10 ms, at most 10 s).
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        for _ in 0..1000 {
            tick.tick().await;
            let child = self.child.as_mut().expect("started");
            if let Some(status) = child.try_wait().expect("try_wait") {
                let log = std::fs::read_to_string(self.dir.0.join("redis.log")).unwrap_or_default();
                panic!("redis-server exited at start ({status}): {log}");
            }
            if self
                .try_command(&["PING"])
                .await
                .is_ok_and(|r| r == "+PONG")
            {
                return;
            }
        }
        panic!(
            "redis-server did not answer PING on port {} within 10 s",
            self.port
        );
    }

    /// Freezes the server (`SIGSTOP`): connections stay open, nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a [`pause`](Self::pause)d server run again (`SIGCONT`).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("server running").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Runs one command on a new connection and returns the reply's first line as sent
    /// (`+OK`, `:42`, `$-1`...), or for a bulk string its contents.
    pub async fn command(&self, args: &[&str]) -> String {
        self.try_command(args)
            .await
            .unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }

    async fn try_command(&self, args: &[&str]) -> std::io::Result<String> {
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        let mut stream = BufReader::new(TcpStream::connect(("127.0.0.1", self.port)).await?);
        stream.get_mut().write_all(request.as_bytes()).await?;
        let mut line = String::new();
        stream.read_line(&mut line).await?;
        let line = line.trim_end().to_owned();
        match line.strip_prefix('$').map(str::parse::<usize>) {
            Some(Ok(len)) => {
                let mut bulk = vec![0; len + 2];
                stream.read_exact(&mut bulk).await?;
                bulk.truncate(len);
                Ok(String::from_utf8_lossy(&bulk).into_owned())
            }
            _ => Ok(line),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // A paused process dies of SIGKILL too.
        self.stop();
    }
}
