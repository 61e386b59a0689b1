//! One log replicated between our engine and real JS Hypercores (11.39.5 compat cores and
//! 10.38.2) over loopback TCP, both directions: 10,000 blocks with JS's default parallel
//! `download()` (many requests in flight), then a live append on the writer's side that the
//! reader follows (sync, signed upgrade, block). Block bytes are compared by SHA-256 on the
//! reading side.

mod replicate_support;

use std::time::Duration;

use replicate_support::{
    block, empty_replica, expected_sha, has_all_blocks, js_writer_session, key_of, log_sha,
    logs_of, serve_log, writer_log, Js, JsWriterSession,
};
use vitra::net::replicate::{Download, Replicator, ReplicatorConfig};

const BLOCKS: u64 = 10_000;

async fn rust_writer_js_reader(version: &str) {
    let log = writer_log(BLOCKS);
    let key = log.public_key();
    let (mut set, mut rep, addr) = serve_log(log).await;

    let mut js = Js::spawn_reader(version, addr, &key);
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
    let JsWriterSession {
        mut js,
        mut rep,
        mut set,
        key,
    } = js_writer_session(version, BLOCKS).await;

    rep.run_until(&mut set, Duration::from_secs(120), |set, _| {
        has_all_blocks(set, &key, BLOCKS)
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
    let mut set = logs_of(empty_replica(key));
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
