//! One test alone in a process of its own, for a test that needs process-wide state to itself
//! (a crypto provider installed before anything else, a process-wide counter).

use std::process::Stdio;

/// Set in the child process to the test it runs.
const ALONE: &str = "CERTBOUND_TEST_ALONE";

/// Whether the test `name` (its path in this binary, `module::function`) runs its body in this
/// process.
///
/// In a normal run of the test binary: runs the binary again with only `name` selected, in a
/// child process where nothing else ran, asserts that the test ran there and passed, and returns
/// false (the caller returns). In that child process: returns true.
pub async fn runs_alone(name: &str) -> bool {
    if std::env::var(ALONE).as_deref() == Ok(name) {
        return true;
    }
    let binary = std::env::current_exe().expect("path of the test binary");
    let output = tokio::process::Command::new(&binary)
        .args([name, "--exact", "--test-threads=1"])
        .env(ALONE, name)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {}: {e}", binary.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("test result: ok. 1 passed;"),
        "{name}, alone in a child process: {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    false
}
