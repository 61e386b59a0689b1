//! Shared helpers for tests that run JS peers from `compat-tests/`.
#![allow(dead_code)]

pub mod node;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdout, Command};
use vitra::net::{Connection, ConnectionConfig, KeyPair};

/// A running `node compat-tests/<script>` whose stdout is JSON lines.
pub struct JsPeer {
    pub child: Child,
    lines: tokio::io::Lines<BufReader<ChildStdout>>,
    script: String,
}

/// `compat-tests/` of this crate: the JS peers and their `node_modules`.
pub fn compat_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("compat-tests")
}

/// Starts `node compat-tests/<script> args...` in `compat-tests/` with stdout piped (and stdin
/// piped when `piped_stdin`), stderr inherited, killed on drop. Fails the test with a clear
/// message when node or one of the npm `packages` is missing (never skips). Returns the child
/// (stdout already taken) and its stdout lines.
pub fn spawn_compat_script(
    script: &str,
    args: &[&str],
    packages: &[&str],
    piped_stdin: bool,
) -> (Child, tokio::io::Lines<BufReader<ChildStdout>>) {
    let dir = compat_dir();
    for package in packages {
        assert!(
            dir.join("node_modules").join(package).exists(),
            "compat-tests/node_modules is missing {package}: run `npm ci` in compat-tests"
        );
    }
    let mut command = Command::new("node");
    command
        .arg(dir.join(script))
        .args(args)
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if piped_stdin {
        command.stdin(Stdio::piped());
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `node {script}` (is node installed?): {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    (child, BufReader::new(stdout).lines())
}

/// A loopback TCP listener for a JS peer to dial, and its port as text (a script argument).
pub async fn loopback_listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let port = listener.local_addr().expect("addr").port().to_string();
    (listener, port)
}

/// Accepts the JS peer's TCP connection on `listener` (within 10 s) and runs the secret-stream
/// handshake over it, as initiator when `js_role` is "responder"; `peer` names the JS side in
/// the failure message.
pub async fn accept_js_connection(listener: &TcpListener, js_role: &str, peer: &str) -> Connection {
    let (tcp, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("JS side never connected")
        .expect("accept");
    Connection::connect(
        tcp,
        js_role == "responder",
        &KeyPair::generate().expect("key pair"),
        ConnectionConfig::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("Rust side: handshake with {peer} failed: {e}"))
}

impl JsPeer {
    /// Spawns the script; fails the test with a clear message when node or node_modules are
    /// missing (never skips).
    pub fn spawn(script: &str, args: &[&str]) -> JsPeer {
        let (child, lines) =
            spawn_compat_script(script, args, &["@hyperswarm/secret-stream"], false);
        JsPeer {
            child,
            lines,
            script: script.to_string(),
        }
    }

    /// The next JSON line the JS peer printed, within `secs` seconds.
    pub async fn next_event(&mut self, secs: u64) -> serde_json::Value {
        let line = tokio::time::timeout(Duration::from_secs(secs), self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("JS side ({}) printed nothing for {secs}s", self.script))
            .unwrap_or_else(|e| panic!("reading JS side ({}) output: {e}", self.script))
            .unwrap_or_else(|| panic!("JS side ({}) exited without output", self.script));
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("JS side ({}) printed non-JSON {line:?}: {e}", self.script))
    }

    /// Waits for an event named `name`, returning it (other events are skipped).
    pub async fn wait_for(&mut self, name: &str, secs: u64) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let ev = self.next_event(left.as_secs().max(1)).await;
            if ev["event"] == name {
                return ev;
            }
            if ev["event"] == "fatal" {
                panic!("JS side ({}) failed: {ev}", self.script);
            }
        }
    }

    /// Waits for the process to exit (bounded) and returns its exit code.
    pub async fn exit_code(&mut self, secs: u64) -> Option<i32> {
        let status = tokio::time::timeout(Duration::from_secs(secs), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("JS side ({}) did not exit within {secs}s", self.script))
            .expect("wait for node");
        status.code()
    }
}
