//! Shared helpers of the replication tests (and `benches/replicate.rs`): a JS peer driven over
//! stdin/stdout while the Rust replicator runs, the block contents both sides use, and the
//! setup of Rust writers, replicas and replicator pairs over loopback TCP.
#![allow(dead_code)]

#[path = "../common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use vitra::log::{Log, MemoryStorage, Storage};
use vitra::net::replicate::{Download, LogSet, Logs, Replicator, ReplicatorConfig};

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
        let (mut child, lines) =
            common::spawn_compat_script(script, args, &["hypercore", "hypercore-10-38"], true);
        let stdin = child.stdin.take().expect("piped stdin");
        Js {
            child,
            stdin,
            lines,
            script: script.to_string(),
        }
    }

    /// `replicate_peer.js <version> reader initiator`: a JS Hypercore (`version` "11" or
    /// "10-38") dialing `addr` to read the log `key` with its default parallel `download()`.
    pub fn spawn_reader(version: &str, addr: SocketAddr, key: &[u8; 32]) -> Js {
        Js::spawn(
            "replicate_peer.js",
            &[
                version,
                "reader",
                "initiator",
                &addr.port().to_string(),
                &hex::encode(key),
            ],
        )
    }

    /// `replicate_peer.js <version> writer initiator`: a JS Hypercore (`version` "11" or
    /// "10-38") writing `blocks` blocks ([`block`]) and dialing `addr`.
    pub fn spawn_writer(version: &str, addr: SocketAddr, blocks: u64) -> Js {
        Js::spawn(
            "replicate_peer.js",
            &[
                version,
                "writer",
                "initiator",
                &addr.port().to_string(),
                &blocks.to_string(),
            ],
        )
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

/// A writable in-memory log holding `block(0..n)`, appended in batches of 1000 blocks.
pub fn writer_log(n: u64) -> Log {
    let mut log = Log::create(Storage::Memory(MemoryStorage::new())).expect("create log");
    let blocks: Vec<Vec<u8>> = (0..n).map(block).collect();
    for chunk in blocks.chunks(1000) {
        log.append_batch(chunk).expect("append");
    }
    log
}

/// An empty in-memory replica of the log whose public key is `key`.
pub fn empty_replica(key: [u8; 32]) -> Log {
    Log::create_replica(Storage::Memory(MemoryStorage::new()), key).expect("replica")
}

/// A log set holding just `log`.
pub fn logs_of(log: Log) -> Logs {
    let mut set = Logs::new();
    set.insert(log);
    set
}

/// Whether `set` holds the log `key` at length `n` with every block `0..n` stored.
pub fn has_all_blocks(set: &Logs, key: &[u8; 32], n: u64) -> bool {
    set.get(key)
        .is_some_and(|l| l.len() == n && (0..n).all(|i| l.has(i)))
}

/// A replicator serving `log` (downloading nothing but signed heads) on a loopback port: the
/// log set holding `log`, the replicator and the address it listens on.
pub async fn serve_log(log: Log) -> (Logs, Replicator, SocketAddr) {
    let key = log.public_key();
    let set = logs_of(log);
    let mut rep = Replicator::new(ReplicatorConfig::default()).expect("replicator");
    rep.add_core_with(key, Download::HeadOnly);
    let addr = rep.listen("127.0.0.1:0").await.expect("listen");
    (set, rep, addr)
}

/// A JS writer dialing a Rust replicator that listens on loopback and fully downloads the
/// writer's log into an empty in-memory replica (see [`js_writer_session`]).
pub struct JsWriterSession {
    /// The JS writer (`replicate_peer.js`), past its `ready` event.
    pub js: Js,
    /// Our replicator, listening, with the writer's log added for full download.
    pub rep: Replicator,
    /// Our log set: the empty replica of the writer's log.
    pub set: Logs,
    /// The writer's log key.
    pub key: [u8; 32],
}

/// Starts a JS Hypercore writer (`version` "11" or "10-38") of `blocks` blocks dialing a fresh
/// listening replicator, waits for its key and sets our replicator to fully download it.
pub async fn js_writer_session(version: &str, blocks: u64) -> JsWriterSession {
    let mut rep = Replicator::new(ReplicatorConfig::default()).expect("replicator");
    let addr = rep.listen("127.0.0.1:0").await.expect("listen");
    let mut js = Js::spawn_writer(version, addr, blocks);
    let key = key_of(&js.wait_for("ready", 60).await);
    let set = logs_of(empty_replica(key));
    rep.add_core_with(key, Download::Full);
    JsWriterSession { js, rep, set, key }
}

/// Two Rust replicators run in one task over loopback TCP: `a` serves a log, `b` downloads it.
pub struct RustPair {
    /// The serving replicator.
    pub a: Replicator,
    /// `a`'s log set (the writer's log).
    pub sa: Logs,
    /// The downloading replicator.
    pub b: Replicator,
    /// `b`'s log set (the replica).
    pub sb: Logs,
    /// The log's key.
    pub key: [u8; 32],
    /// Where `a` listens.
    pub addr: SocketAddr,
}

impl RustPair {
    /// `a` serves `log` on a loopback port; `b` holds `replica` and downloads `download` of
    /// it. `b` has not dialed `a` yet ([`RustPair::connect`]).
    pub async fn new(log: Log, replica: Log, download: Download) -> RustPair {
        let key = log.public_key();
        let (sa, a, addr) = serve_log(log).await;
        let sb = logs_of(replica);
        let mut b = Replicator::new(ReplicatorConfig::default()).expect("replicator");
        b.add_core_with(key, download);
        RustPair {
            a,
            sa,
            b,
            sb,
            key,
            addr,
        }
    }

    /// `b` dials `a`.
    pub async fn connect(&mut self) {
        self.b
            .connect(&self.addr.to_string())
            .await
            .expect("connect");
    }

    /// Runs both replicators until `done(sa, sb)` holds; panics after `secs` seconds with both
    /// sides' notices.
    pub async fn drive_until(&mut self, secs: u64, mut done: impl FnMut(&Logs, &Logs) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while !done(&self.sa, &self.sb) {
            tokio::select! {
                Some(ev) = self.a.next_event() => self.a.handle(&mut self.sa, ev),
                Some(ev) = self.b.next_event() => self.b.handle(&mut self.sb, ev),
                _ = tokio::time::sleep_until(deadline) => panic!(
                    "replication did not finish in {secs}s; notices: {:?} / {:?}",
                    self.a.take_notices(), self.b.take_notices()
                ),
            }
        }
    }
}

/// A writable in-memory log with `log`'s key pair holding `n` blocks `other-<i>` instead of its
/// own: the key signed a second history (a split log).
pub fn split_of(log: &Log, n: u64) -> Log {
    let mut split = Log::create_with_key_pair(
        Storage::Memory(MemoryStorage::new()),
        log.key_pair().clone(),
    )
    .expect("split writer");
    let other: Vec<Vec<u8>> = (0..n).map(|i| format!("other-{i}").into_bytes()).collect();
    split.append_batch(&other).expect("append");
    split
}

/// The last signed head the log `key` in `set` verified.
pub fn latest_head(set: &Logs, key: &[u8; 32]) -> vitra::log::SignedHead {
    set.get(key)
        .expect("log")
        .signed_heads()
        .last()
        .cloned()
        .expect("head")
}

/// Contract call parameters: an object of `pairs`.
pub fn params(pairs: &[(&str, vitra::codec::Value)]) -> vitra::codec::Value {
    vitra::codec::Value::Object(pairs.iter().cloned().collect::<vitra::codec::Object>())
}

/// A single-threaded tokio runtime with I/O and timers (for a test's server or client side).
pub fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Loads the database `key` a peer serves at `addr` into `dir` through a fresh replicator
/// (bounded at 30 s), returning the database and the replicator (still connected).
pub async fn load_database_from_peer(
    dir: &std::path::Path,
    key: &[u8; 32],
    addr: &str,
) -> (vitra::database::Database, Replicator) {
    let mut rep = Replicator::new(ReplicatorConfig::default()).expect("replicator");
    let db = vitra::database::Database::load_from_peer(
        dir,
        key,
        addr,
        vitra::database::Options::default(),
        &mut rep,
        Duration::from_secs(30),
    )
    .await
    .unwrap_or_else(|e| panic!("Rust client could not load the database from {addr}: {e}"));
    (db, rep)
}
