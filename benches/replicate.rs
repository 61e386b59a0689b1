//! Replication throughput over loopback TCP (secret stream, hypercore/alpha): 10,000 blocks of
//! 100 bytes, Rust → JS, JS → Rust and Rust → Rust, beside JS → JS (`compat-tests/
//! replicate_bench.js`) in the same run, for JS Hypercore 11 (compat) and 10.38. Times run from
//! dialing to the last block stored (JS readers use their default parallel `download()`).
//! Rust logs are in memory, plus one Rust -> Rust row with the replica on disk (the log engine
//! syncs every verified block to disk before recording it). Run: `cargo bench --bench replicate`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use vitra::log::{Log, MemoryStorage, Storage};
use vitra::net::replicate::{Download, Logs, Replicator, ReplicatorConfig};

const BLOCKS: u64 = 10_000;
const SIZE: usize = 100;

fn block(i: u64) -> Vec<u8> {
    let mut s = format!("block-{i}-").into_bytes();
    s.resize(SIZE, b'.');
    s
}

fn compat() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("compat-tests")
}

fn writer() -> Log {
    let mut log = Log::create(Storage::Memory(MemoryStorage::new())).expect("create");
    let blocks: Vec<Vec<u8>> = (0..BLOCKS).map(block).collect();
    for c in blocks.chunks(1000) {
        log.append_batch(c).expect("append");
    }
    log
}

fn report(what: &str, d: Duration) {
    let s = d.as_secs_f64();
    println!(
        "{what:<32} {BLOCKS} blocks x {SIZE} B in {:>8.1} ms: {:>9.0} blocks/s {:>6.2} MB/s",
        s * 1e3,
        BLOCKS as f64 / s,
        (BLOCKS as f64 * SIZE as f64) / s / 1e6
    );
}

struct Node {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

fn node(script: &str, args: &[&str]) -> Node {
    let mut child = Command::new("node")
        .arg(compat().join(script))
        .args(args)
        .current_dir(compat())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node (and compat-tests/node_modules) are needed for this bench");
    let stdin = child.stdin.take().expect("stdin");
    let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    Node {
        child,
        stdin,
        lines,
    }
}

async fn next_json(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) -> serde_json::Value {
    let line = tokio::time::timeout(Duration::from_secs(180), lines.next_line())
        .await
        .expect("JS side timed out")
        .expect("read")
        .expect("JS side exited");
    serde_json::from_str(&line).expect("JSON line")
}

async fn js_to_js(version: &str) -> Duration {
    let mut n = node(
        "replicate_bench.js",
        &[version, &BLOCKS.to_string(), &SIZE.to_string()],
    );
    let ev = next_json(&mut n.lines).await;
    assert_eq!(ev["event"], "done", "JS bench failed: {ev}");
    let _ = n.child.wait().await;
    Duration::from_secs_f64(ev["ms"].as_f64().expect("ms") / 1e3)
}

async fn rust_to_js(version: &str) -> Duration {
    let log = writer();
    let key = log.public_key();
    let mut set = Logs::new();
    set.insert(log);
    let mut rep = Replicator::new(ReplicatorConfig::default()).expect("replicator");
    rep.add_core_with(key, Download::HeadOnly);
    let addr = rep.listen("127.0.0.1:0").await.expect("listen");
    let mut n = node(
        "replicate_peer.js",
        &[
            version,
            "reader",
            "initiator",
            &addr.port().to_string(),
            &hex::encode(key),
        ],
    );
    n.stdin
        .write_all(format!("wait {BLOCKS}\n").as_bytes())
        .await
        .expect("stdin");
    loop {
        tokio::select! {
            line = n.lines.next_line() => {
                let line = line.expect("read").expect("JS side exited");
                let ev: serde_json::Value = serde_json::from_str(&line).expect("json");
                if ev["event"] == "have" {
                    return Duration::from_secs_f64(ev["ms"].as_f64().expect("ms") / 1e3);
                }
                assert!(ev["event"] != "fatal", "JS failed: {ev}");
            }
            Some(ev) = rep.next_event() => rep.handle(&mut set, ev),
        }
    }
}

async fn js_to_rust(version: &str) -> Duration {
    let mut rep = Replicator::new(ReplicatorConfig::default()).expect("replicator");
    let addr = rep.listen("127.0.0.1:0").await.expect("listen");
    let mut n = node(
        "replicate_peer.js",
        &[
            version,
            "writer",
            "initiator",
            &addr.port().to_string(),
            &BLOCKS.to_string(),
        ],
    );
    let ready = next_json(&mut n.lines).await;
    let start = Instant::now();
    let key: [u8; 32] = hex::decode(ready["key"].as_str().expect("key"))
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    let mut set = Logs::new();
    set.insert(Log::create_replica(Storage::Memory(MemoryStorage::new()), key).expect("replica"));
    rep.add_core_with(key, Download::Full);
    rep.run_until(&mut set, Duration::from_secs(180), |s, _| {
        s.get(&key)
            .is_some_and(|l| l.len() == BLOCKS && (0..BLOCKS).all(|i| l.has(i)))
    })
    .await
    .expect("JS -> Rust replication");
    start.elapsed()
}

async fn rust_to_rust() -> Duration {
    rust_to_rust_into(Storage::Memory(MemoryStorage::new())).await
}

async fn rust_to_rust_into(replica: Storage) -> Duration {
    rust_to_rust_with(replica, vitra::log::Durability::Synced).await
}

async fn rust_to_rust_with(replica: Storage, durability: vitra::log::Durability) -> Duration {
    let log = writer();
    let key = log.public_key();
    let mut sa = Logs::new();
    sa.insert(log);
    let mut a = Replicator::new(ReplicatorConfig::default()).expect("replicator");
    a.add_core_with(key, Download::HeadOnly);
    let addr = a.listen("127.0.0.1:0").await.expect("listen");
    let mut sb = Logs::new();
    let mut replica = Log::create_replica(replica, key).expect("replica");
    replica.set_durability(durability);
    sb.insert(replica);
    let mut b = Replicator::new(ReplicatorConfig::default()).expect("replicator");
    b.add_core_with(key, Download::Full);
    let start = Instant::now();
    b.connect(&addr.to_string()).await.expect("connect");
    let done = |sb: &Logs| {
        sb.get(&key)
            .is_some_and(|l| l.len() == BLOCKS && (0..BLOCKS).all(|i| l.has(i)))
    };
    while !done(&sb) {
        tokio::select! {
            Some(ev) = a.next_event() => a.handle(&mut sa, ev),
            Some(ev) = b.next_event() => b.handle(&mut sb, ev),
        }
    }
    start.elapsed()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        for version in ["11", "10-38"] {
            report(
                &format!("JS {version} -> JS {version}"),
                js_to_js(version).await,
            );
            report(&format!("Rust -> JS {version}"), rust_to_js(version).await);
            report(&format!("JS {version} -> Rust"), js_to_rust(version).await);
        }
        report("Rust -> Rust", rust_to_rust().await);
        let dir = tempfile::tempdir().expect("tempdir");
        report(
            "Rust -> Rust (replica on disk)",
            rust_to_rust_into(Storage::Disk(dir.path().join("replica"))).await,
        );
        report(
            "Rust -> Rust (disk, Buffered)",
            rust_to_rust_with(
                Storage::Disk(dir.path().join("buffered")),
                vitra::log::Durability::Buffered,
            )
            .await,
        );
    });
}
