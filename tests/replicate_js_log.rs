//! One log replicated between our engine and real JS Hypercores (11.39.5 compat cores and
//! 10.38.2) over loopback TCP, both directions: 10,000 blocks with JS's default parallel
//! `download()` (many requests in flight), then a live append on the writer's side that the
//! reader follows (sync, signed upgrade, block). Block bytes are compared by SHA-256 on the
//! reading side.

mod replicate_support;

use std::time::Duration;

use replicate_support::{block, expected_sha, key_of, log_sha, Js};
use vitra::log::{Log, MemoryStorage, Storage};
use vitra::net::replicate::{Download, Logs, Replicator, ReplicatorConfig};

const BLOCKS: u64 = 10_000;

async fn rust_writer_js_reader(version: &str) {
    let mut log = Log::create(Storage::Memory(MemoryStorage::new())).expect("create log");
    let blocks: Vec<Vec<u8>> = (0..BLOCKS).map(block).collect();
    for chunk in blocks.chunks(1000) {
        log.append_batch(chunk).expect("append");
    }
    let key = log.public_key();
    let mut set = Logs::new();
    set.insert(log);
    let mut rep = Replicator::new(ReplicatorConfig::default()).expect("replicator");
    rep.add_core_with(key, Download::HeadOnly);
    let addr = rep.listen("127.0.0.1:0").await.expect("listen");

    let mut js = Js::spawn(
        "replicate_peer.js",
        &[
            version,
            "reader",
            "initiator",
            &addr.port().to_string(),
            &hex::encode(key),
        ],
    );
    js.command(&format!("wait {BLOCKS}")).await;
    let have = js.drive_until(&mut rep, &mut set, "have", 120).await;
    assert_eq!(have["length"], BLOCKS, "JS reader length");
    assert_eq!(
        have["sha256"],
        expected_sha(BLOCKS),
        "JS read different block bytes"
    );

    // Live: we append, JS follows.
    let log = set.get_mut(&key).expect("log");
    log.append(&block(BLOCKS)).expect("live append");
    rep.local_changed(&set, &key);
    js.command(&format!("wait {}", BLOCKS + 1)).await;
    let have = js.drive_until(&mut rep, &mut set, "have", 60).await;
    assert_eq!(have["length"], BLOCKS + 1);
    assert_eq!(have["sha256"], expected_sha(BLOCKS + 1));
    let failures = rep.take_notices();
    assert!(
        failures.is_empty(),
        "Rust side reported peer failures: {failures:?}"
    );
}

async fn js_writer_rust_reader(version: &str) {
    let mut rep = Replicator::new(ReplicatorConfig::default()).expect("replicator");
    let addr = rep.listen("127.0.0.1:0").await.expect("listen");
    let mut js = Js::spawn(
        "replicate_peer.js",
        &[
            version,
            "writer",
            "initiator",
            &addr.port().to_string(),
            &BLOCKS.to_string(),
        ],
    );
    let ready = js.wait_for("ready", 60).await;
    let key = key_of(&ready);
    let mut set = Logs::new();
    set.insert(Log::create_replica(Storage::Memory(MemoryStorage::new()), key).expect("replica"));
    rep.add_core_with(key, Download::Full);

    rep.run_until(&mut set, Duration::from_secs(120), |set, _| {
        set.get(&key)
            .is_some_and(|l| l.len() == BLOCKS && (0..BLOCKS).all(|i| l.has(i)))
    })
    .await
    .unwrap_or_else(|e| panic!("Rust reader did not get {BLOCKS} blocks from JS: {e}"));
    let log = set.get(&key).expect("log");
    assert_eq!(
        log_sha(log, BLOCKS),
        expected_sha(BLOCKS),
        "Rust stored different bytes"
    );

    // Live: JS appends, we follow.
    js.command("append").await;
    rep.run_until(&mut set, Duration::from_secs(60), |set, _| {
        set.get(&key)
            .is_some_and(|l| l.len() == BLOCKS + 1 && l.has(BLOCKS))
    })
    .await
    .unwrap_or_else(|e| panic!("Rust reader did not follow JS's live append: {e}"));
    let log = set.get(&key).expect("log");
    assert_eq!(
        log.get(BLOCKS).expect("read").expect("stored"),
        block(BLOCKS)
    );
    assert_eq!(log_sha(log, BLOCKS + 1), expected_sha(BLOCKS + 1));
    let failures = rep.take_notices();
    assert!(
        failures.is_empty(),
        "Rust side reported peer failures: {failures:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_read_by_js_hypercore_11() {
    rust_writer_js_reader("11").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_read_by_js_hypercore_10_38() {
    rust_writer_js_reader("10-38").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_hypercore_11_log_read_by_rust() {
    js_writer_rust_reader("11").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_hypercore_10_38_log_read_by_rust() {
    js_writer_rust_reader("10-38").await;
}

/// We dial a listening JS Hypercore 11 writer (we are the secret-stream initiator) and read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_dials_a_listening_js_hypercore_11_writer() {
    let mut js = Js::spawn(
        "replicate_peer.js",
        &["11", "writer", "listen", "0", "1000"],
    );
    let ready = js.wait_for("ready", 60).await;
    let key = key_of(&ready);
    let port = ready["port"].as_u64().expect("port");
    let mut set = Logs::new();
    set.insert(Log::create_replica(Storage::Memory(MemoryStorage::new()), key).expect("replica"));
    let mut rep = Replicator::new(ReplicatorConfig::default()).expect("replicator");
    rep.add_core_with(key, Download::Full);
    rep.connect(&format!("127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| panic!("Rust side could not dial the JS listener: {e}"));
    rep.sync(&mut set, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("Rust reader did not sync from the JS listener: {e}"));
    let log = set.get(&key).expect("log");
    assert_eq!(log.len(), 1000);
    assert_eq!(log_sha(log, 1000), expected_sha(1000));
}
