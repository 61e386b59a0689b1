//! A Rust database served on a loopback listener, read by JS: JS Hypercore (11.39.5 compat
//! core and 10.38.2) replicates the index from us and JS Hyperbee lists every entry (1.10.1 on
//! 10.38; 2.8.0 on 11, since Hyperbee 1.10.1 cannot open a Hypercore 11 core at all);
//! the entries (seq, key bytes, value bytes) must equal what our own bee reads.

mod replicate_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use replicate_support::{current_thread_runtime, params, Js};
use vitra::bee::RangeOptions;
use vitra::codec::Value;
use vitra::database::{Database, Location, Options};
use vitra::net::replicate::{Download, Replicator, ReplicatorConfig};

const KV: &str = include_str!("../examples/contracts/kv.js");

type Served = (u16, [u8; 32], u64, Vec<serde_json::Value>);

fn serve_database(stop: Arc<AtomicBool>, tx: std::sync::mpsc::Sender<Served>) {
    let rt = current_thread_runtime();
    rt.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut db = Database::create(Location::Dir(dir.path().to_path_buf()), KV, Options::default())
            .expect("create database");
        for (k, v) in [("alpha", Value::from(1)), ("beta", Value::from("two")), ("gamma", Value::from(true))] {
            db.call("put", &params(&[("key", k.into()), ("value", v)])).expect("call");
        }
        db.execute_pending().expect("execute");
        let entries: Vec<serde_json::Value> = db
            .index()
            .range(RangeOptions::default())
            .map(|e| {
                let e = e.expect("our bee reads its index");
                serde_json::json!({"seq": e.seq, "key": hex::encode(&e.key), "value": e.value.as_ref().map(hex::encode)})
            })
            .collect();
        let mut rep = Replicator::new(ReplicatorConfig::default()).expect("replicator");
        db.add_to_replicator(&mut rep, Download::Full);
        let addr = rep.listen("127.0.0.1:0").await.expect("listen");
        tx.send((addr.port(), db.key(), db.index_len(), entries)).expect("send");
        let started = std::time::Instant::now();
        while !stop.load(Ordering::Acquire) && started.elapsed() < Duration::from_secs(90) {
            db.run_replication(&mut rep, Some(Duration::from_millis(100)))
                .await
                .expect("serve");
        }
    });
}

async fn js_hyperbee_reads_served_database(version: &str) {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let server = {
        let stop = stop.clone();
        std::thread::spawn(move || serve_database(stop, tx))
    };
    let (port, key, length, ours) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("server ready");
    assert!(
        ours.len() >= 5,
        "the index holds the contract, participant, ack and kv entries"
    );
    let mut js = Js::spawn(
        "replicate_bee_reader.js",
        &[
            version,
            &port.to_string(),
            &hex::encode(key),
            &length.to_string(),
        ],
    );
    let got = js.wait_for("entries", 60).await;
    stop.store(true, Ordering::Release);
    assert_eq!(got["length"], length);
    assert_eq!(
        got["entries"],
        serde_json::Value::Array(ours),
        "JS Hyperbee read different entries"
    );
    server.join().expect("server thread");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_hyperbee_2_on_hypercore_11_reads_rust_database() {
    js_hyperbee_reads_served_database("11").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_hyperbee_1_10_on_hypercore_10_38_reads_rust_database() {
    js_hyperbee_reads_served_database("10-38").await;
}
