//! Running an example binary as an operator would: built by cargo, files in a scratch directory.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// The crate features this test binary was built with.
fn test_features() -> String {
    let features = [
        ("aws-lc-rs", cfg!(feature = "aws-lc-rs")),
        ("rust-crypto", cfg!(feature = "rust-crypto")),
        ("axum", cfg!(feature = "axum")),
        ("axum-server", cfg!(feature = "axum-server")),
        ("tonic", cfg!(feature = "tonic")),
        ("introspection", cfg!(feature = "introspection")),
        (
            "authorization-server",
            cfg!(feature = "authorization-server"),
        ),
        ("tracing", cfg!(feature = "tracing")),
        ("redis", cfg!(feature = "redis")),
        ("client", cfg!(feature = "client")),
    ];
    let on: Vec<&str> = features.iter().filter(|f| f.1).map(|f| f.0).collect();
    on.join(",")
}

/// Builds `examples/<name>.rs` with the same profile and crate features as the test (so cargo
/// reuses what the test build compiled) and returns the executable's path as cargo reports it.
pub fn build_example(name: &str) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["build", "--example", name])
        .args(["--no-default-features", "--features", &test_features()])
        .args(["--message-format", "json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(&manifest);
    if !cfg!(debug_assertions) {
        cargo.arg("--release");
    }
    // Not the variables cargo set for running this test: build scripts that watch one (ring's
    // watches CARGO_MANIFEST_DIR) would see a change, and this build and the next `cargo test`
    // would each rebuild ring, rustls and what depends on them.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || matches!(
                &*key,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
            )
        {
            cargo.env_remove(&*key);
        }
    }
    let output = cargo.stderr(Stdio::inherit()).output().expect("run cargo");
    assert!(
        output.status.success(),
        "cargo build --example {name} failed"
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact")
        .filter(|msg| msg["target"]["name"] == name)
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reported no executable for the {name} example"))
}

/// A scratch directory, removed on drop.
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    pub fn new(name: &str) -> ScratchDir {
        let dir =
            std::env::temp_dir().join(format!("certbound-example-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        ScratchDir(dir)
    }

    /// Writes `name` into the directory and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write temp file");
        path.to_str().expect("UTF-8 temp path").to_owned()
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `binary` with `args` to completion (for flag checks).
pub fn run_to_exit(binary: &Path, args: &[&str]) -> Output {
    Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", binary.display()))
}

/// An example server, running as its own process. Killed on drop, so a failing test leaves no
/// process behind.
pub struct ExampleProcess {
    child: Child,
    /// Its stderr lines, when captured ([`ExampleProcess::spawn_capturing_stderr`]).
    stderr: Option<tokio::sync::mpsc::UnboundedReceiver<String>>,
    /// The lines of stdout after the start line.
    stdout: Option<mpsc::Receiver<String>>,
    /// `scheme://addr` from the start line.
    base: String,
    addr: SocketAddr,
}

impl ExampleProcess {
    /// Spawns `binary` with `args` (which include `--listen`; port 0 lets the OS choose) and
    /// returns once it printed its `listening on SCHEME://ADDR` line: the listener is bound by
    /// then, so connections are accepted. The wait runs off the test's runtime, which may be
    /// serving an endpoint the example contacts at start.
    pub async fn spawn(binary: &Path, args: &[&str]) -> ExampleProcess {
        Self::spawn_with(binary, args, false).await
    }

    /// Like [`ExampleProcess::spawn`], keeping the lines the example writes on stderr for
    /// [`ExampleProcess::next_stderr_line`].
    pub async fn spawn_capturing_stderr(binary: &Path, args: &[&str]) -> ExampleProcess {
        Self::spawn_with(binary, args, true).await
    }

    async fn spawn_with(binary: &Path, args: &[&str], capture: bool) -> ExampleProcess {
        let name = binary.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        let mut child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if capture {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let stderr = child.stderr.take().map(|pipe| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
            rx
        });
        let (tx, stdout) = mpsc::channel();
        let pipe = child.stdout.take().expect("stdout pipe");
        // Reads stdout to its end, so that the example never blocks on a full pipe; only the
        // first line is wanted.
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (first, stdout) = tokio::task::spawn_blocking(move || {
            (stdout.recv_timeout(Duration::from_secs(20)), stdout)
        })
        .await
        .expect("wait for the start line");
        let Ok(first) = first else {
            let _ = child.kill();
            panic!("{name} printed no start line: {:?}", child.wait());
        };
        let base = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected start line {first:?}"))
            .to_owned();
        let addr = base
            .split_once("://")
            .and_then(|(_, addr)| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in the start line {first:?}"));
        ExampleProcess {
            child,
            stderr,
            stdout: Some(stdout),
            base,
            addr,
        }
    }

    /// The next line the example writes on stderr (waits at most 20 s).
    pub async fn next_stderr_line(&mut self) -> String {
        let stderr = self.stderr.as_mut().expect("stderr captured");
        tokio::time::timeout(Duration::from_secs(20), stderr.recv())
            .await
            .expect("a stderr line in time")
            .expect("stderr open")
    }

    /// The next stderr line that contains `text`, skipping the others (waits at most 20 s for
    /// each line).
    pub async fn next_stderr_line_with(&mut self, text: &str) -> String {
        loop {
            let line = self.next_stderr_line().await;
            if line.contains(text) {
                return line;
            }
        }
    }

    /// The stderr lines written so far and not yet read.
    pub fn stderr_lines_so_far(&mut self) -> Vec<String> {
        let stderr = self.stderr.as_mut().expect("stderr captured");
        std::iter::from_fn(|| stderr.try_recv().ok()).collect()
    }

    /// Sends the signal `name` (`HUP`, …) to the process.
    #[cfg(unix)]
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// The next line the example prints on stdout after its start line (waits at most 20 s).
    pub async fn next_line(&mut self) -> String {
        let stdout = self.stdout.take().expect("stdout");
        let (line, stdout) = tokio::task::spawn_blocking(move || {
            (stdout.recv_timeout(Duration::from_secs(20)), stdout)
        })
        .await
        .expect("wait for a line");
        self.stdout = Some(stdout);
        line.expect("a line on stdout")
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `scheme://addr` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends SIGTERM and waits (at most 10 s) for the process to exit.
    #[cfg(unix)]
    pub async fn terminate(mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        for _ in 0..200 {
            tick.tick().await;
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
        }
        panic!("the example did not exit within 10 s of SIGTERM");
    }
}

impl Drop for ExampleProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
