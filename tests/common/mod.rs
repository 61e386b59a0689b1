//! Shared helpers for tests that run JS peers from `compat-tests/`.
#![allow(dead_code)]

pub mod node;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

/// A running `node compat-tests/<script>` whose stdout is JSON lines.
pub struct JsPeer {
    pub child: Child,
    lines: tokio::io::Lines<BufReader<ChildStdout>>,
    script: String,
}

fn compat_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("compat-tests")
}

impl JsPeer {
    /// Spawns the script; fails the test with a clear message when node or node_modules are
    /// missing (never skips).
    pub fn spawn(script: &str, args: &[&str]) -> JsPeer {
        let dir = compat_dir();
        assert!(
            dir.join("node_modules/@hyperswarm/secret-stream").exists(),
            "compat-tests/node_modules is missing: run `npm ci` in compat-tests"
        );
        let mut child = Command::new("node")
            .arg(dir.join(script))
            .args(args)
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `node {script}` (is node installed?): {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        JsPeer {
            child,
            lines: BufReader::new(stdout).lines(),
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
