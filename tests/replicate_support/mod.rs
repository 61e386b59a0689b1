//! Shared helpers of the replication tests: a JS peer driven over stdin/stdout while the Rust
//! replicator runs, and the block contents both sides use.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use vitra::net::replicate::{LogSet, Replicator};

/// Block `i` as `compat-tests/replicate_peer.js` writes it (100 bytes).
pub fn block(i: u64) -> Vec<u8> {
    let mut s = format!("block-{i}-").into_bytes();
    s.resize(100, b'.');
    s
}

/// SHA-256 of blocks `0..n` of a log, concatenated (as the JS peer reports it).
pub fn log_sha(log: &vitra::log::Log, n: u64) -> String {
    let mut h = Sha256::new();
    for i in 0..n {
        let b = log
            .get(i)
            .unwrap_or_else(|e| panic!("Rust side: reading block {i}: {e}"))
            .unwrap_or_else(|| panic!("Rust side: block {i} missing"));
        h.update(&b);
    }
    hex::encode(h.finalize())
}

/// SHA-256 of `block(0..n)`.
pub fn expected_sha(n: u64) -> String {
    let mut h = Sha256::new();
    for i in 0..n {
        h.update(block(i));
    }
    hex::encode(h.finalize())
}

/// A running `node compat-tests/<script>` with JSON-lines stdout and a command stdin.
pub struct Js {
    pub child: Child,
    stdin: ChildStdin,
    lines: tokio::io::Lines<BufReader<ChildStdout>>,
    script: String,
}

impl Js {
    /// Spawns the script; fails the test clearly when node or node_modules are missing.
    pub fn spawn(script: &str, args: &[&str]) -> Js {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("compat-tests");
        assert!(
            dir.join("node_modules/hypercore").exists()
                && dir.join("node_modules/hypercore-10-38").exists(),
            "compat-tests/node_modules is missing: run `npm ci` in compat-tests"
        );
        let mut child = Command::new("node")
            .arg(dir.join(script))
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `node {script}` (is node installed?): {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take().expect("piped stdin");
        Js {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            script: script.to_string(),
        }
    }

    /// Sends one command line.
    pub async fn command(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap_or_else(|e| panic!("JS side ({}) stdin closed: {e}", self.script));
        self.stdin.flush().await.expect("flush stdin");
    }

    fn parse(&self, line: Option<String>) -> serde_json::Value {
        let line = line.unwrap_or_else(|| panic!("JS side ({}) exited", self.script));
        let ev: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("JS side ({}) printed non-JSON {line:?}: {e}", self.script));
        if ev["event"] == "fatal" || ev["event"] == "timeout" {
            panic!("JS side ({}) failed: {ev}", self.script);
        }
        ev
    }

    /// Waits for event `name` without running a replicator.
    pub async fn wait_for(&mut self, name: &str, secs: u64) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.next_line())
                .await
                .unwrap_or_else(|_| {
                    panic!("JS side ({}) sent no {name} within {secs}s", self.script)
                })
                .expect("read JS stdout");
            let ev = self.parse(line);
            if ev["event"] == name {
                return ev;
            }
        }
    }

    /// Runs `rep` over `set` until the JS peer prints event `name` (bounded).
    pub async fn drive_until<S: LogSet>(
        &mut self,
        rep: &mut Replicator,
        set: &mut S,
        name: &str,
        secs: u64,
    ) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            tokio::select! {
                line = self.lines.next_line() => {
                    let ev = self.parse(line.expect("read JS stdout"));
                    if ev["event"] == name {
                        return ev;
                    }
                }
                ev = rep.next_event() => {
                    if let Some(ev) = ev {
                        rep.handle(set, ev);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    panic!("JS side ({}) sent no {name} within {secs}s; Rust side notices: {:?}", self.script, rep.take_notices());
                }
            }
        }
    }
}

/// The key a `ready` event carries.
pub fn key_of(ev: &serde_json::Value) -> [u8; 32] {
    let bytes = hex::decode(ev["key"].as_str().expect("key in ready event")).expect("hex key");
    bytes.try_into().expect("32-byte key")
}
