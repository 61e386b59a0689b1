//! The one way integration tests run the JS reference side: `node compat-tests/<script>`,
//! with optional stdin, stdout and stderr drained while it runs (no pipe deadlock), a bounded
//! time, and a failure message that says the JS side failed and how. A missing Node.js or
//! `compat-tests/node_modules` fails the test (CI installs them); nothing is skipped.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The `compat-tests/` directory of this checkout.
pub fn compat_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("compat-tests")
}

/// Runs `node compat-tests/<script> args...` with `stdin`, returns its stdout.
pub fn run(script: &str, args: &[&str], stdin: Option<Vec<u8>>, timeout: Duration) -> String {
    let dir = compat_dir();
    assert!(
        dir.join("node_modules").is_dir(),
        "compat-tests/node_modules is missing: run `npm ci` in {} (CI does this in .ci/run)",
        dir.display()
    );
    let mut child = Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .current_dir(&dir)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("JS side: cannot start `node` for {script} (is Node.js installed?): {e}")
        });
    let writer = stdin.and_then(|body| {
        let mut pipe = child.stdin.take()?;
        Some(std::thread::spawn(move || {
            let _ = pipe.write_all(&body);
        }))
    });
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("JS side: `node {script} {args:?}` did not finish within {timeout:?}");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("JS side: waiting for `node {script}` failed: {e}"),
        }
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    assert!(
        status.success(),
        "JS side failed: `node {script} {args:?}` exited with {status}\nstderr:\n{stderr}\nstdout:\n{stdout:.2000}"
    );
    stdout
}
