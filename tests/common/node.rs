//! Runs the JS compat scripts with a bounded timeout; a missing node or node_modules fails the
//! test with a clear message.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn compat_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("compat-tests")
}

/// Runs `node compat-tests/<script> args...`, returns stdout; panics naming the JS side's failure.
pub fn run_node(script: &str, args: &[&str], timeout: Duration) -> String {
    let dir = compat_dir();
    assert!(
        dir.join("node_modules").join("hypercore-10-38").exists(),
        "compat-tests/node_modules missing: run `npm ci` in compat-tests (JS side unavailable)"
    );
    let mut child = Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("JS side: cannot start `node` ({e}); is Node.js installed?"));
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("JS side: `node {script} {args:?}` timed out after {timeout:?}");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("JS side: waiting for node failed: {e}"),
        }
    }
    let out = child.wait_with_output().expect("node output");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "JS side failed: `node {script} {args:?}` exited {:?}\nstderr:\n{}\nstdout:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr),
        stdout
    );
    stdout
}
