//! Running an example binary as an operator would: built by cargo, files in a scratch directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
