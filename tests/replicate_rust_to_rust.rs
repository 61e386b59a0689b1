//! Rust ↔ Rust replication over loopback TCP: a log with live appends (full and sparse
//! download), a proof with a forged signature that is refused before anything is stored, and a
//! whole database (index + participant oplogs found through the index) served by a listener
//! and loaded from its address into a directory, where it verifies.

mod replicate_support;

use std::time::Duration;

use replicate_support::{
    block, current_thread_runtime, empty_replica, expected_sha, has_all_blocks, latest_head,
    load_database_from_peer, log_sha, params, serve_log, split_of, writer_log, RustPair,
};
use vitra::codec::Value;
use vitra::database::{Database, Location, Options, Verdict};
use vitra::log::Log;
use vitra::net::replicate::{Download, LogSet, Logs, Replicator, ReplicatorConfig};

const COUNTER: &str = include_str!("../examples/contracts/counter.js");

#[tokio::test]
async fn rust_log_replicates_to_rust_with_live_appends() {
    let log = writer_log(3000);
    let key = log.public_key();
    let mut p = RustPair::new(log, empty_replica(key), Download::Full).await;
    p.connect().await;

    let full = |n: u64| move |_: &Logs, sb: &Logs| has_all_blocks(sb, &key, n);
    p.drive_until(60, full(3000)).await;
    assert_eq!(
        log_sha(p.sb.get(&key).expect("log"), 3000),
        expected_sha(3000)
    );

    // Live appends on the writer, one at a time and as a batch.
    p.sa.get_mut(&key)
        .expect("log")
        .append(&block(3000))
        .expect("append");
    p.a.local_changed(&p.sa, &key);
    p.drive_until(30, full(3001)).await;
    p.sa.get_mut(&key)
        .expect("log")
        .append_batch(&[block(3001), block(3002)])
        .expect("append");
    p.a.local_changed(&p.sa, &key);
    p.drive_until(30, full(3003)).await;
    let replica = p.sb.get(&key).expect("log");
    assert_eq!(log_sha(replica, 3003), expected_sha(3003));
    assert_eq!(replica.signed_heads().last().map(|h| h.length), Some(3003));
    assert!(!replica.writable());
    assert!(p.b.take_notices().is_empty());
}

#[tokio::test]
async fn sparse_replica_downloads_only_wanted_blocks() {
    let log = writer_log(500);
    let key = log.public_key();
    let sparse = Download::Sparse([7u64, 250, 499].into_iter().collect());
    let mut p = RustPair::new(log, empty_replica(key), sparse).await;
    p.connect().await;
    p.drive_until(30, |_, sb| {
        sb.get(&key)
            .is_some_and(|l| l.len() == 500 && [7, 250, 499].iter().all(|&i| l.has(i)))
    })
    .await;
    let (b, sb) = (&mut p.b, &p.sb);
    let replica = sb.get(&key).expect("log");
    for i in [7u64, 250, 499] {
        assert_eq!(replica.get(i).expect("read"), Some(block(i)));
    }
    let stored = (0..500).filter(|&i| replica.has(i)).count();
    assert_eq!(
        stored, 3,
        "a sparse replica stores only the blocks it asked for"
    );
    b.want_blocks(sb, &key, [100]);
    p.drive_until(30, |_, sb| sb.get(&key).is_some_and(|l| l.has(100)))
        .await;
    assert_eq!(
        p.sb.get(&key).expect("log").get(100).expect("read"),
        Some(block(100))
    );
}

#[test]
fn rust_database_served_on_an_address_is_loaded_and_verifies() {
    let (tx, rx) = std::sync::mpsc::channel::<(String, [u8; 32], Value)>();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_server = stop.clone();
    let server_dir = tempfile::tempdir().expect("tempdir");
    let server_path = server_dir.path().to_path_buf();
    let server = std::thread::spawn(move || {
        let rt = current_thread_runtime();
        rt.block_on(async move {
            let mut db = Database::create(Location::Dir(server_path), COUNTER, Options::default())
                .expect("create database");
            for by in [1, 2, 39] {
                db.call("increment", &params(&[("by", by.into())]))
                    .expect("call");
            }
            db.execute_pending().expect("execute");
            let counter = db.get("/counter").expect("get").expect("counter").value;
            let mut rep = Replicator::new(ReplicatorConfig::default()).expect("replicator");
            db.add_to_replicator(&mut rep, Download::Full);
            let addr = rep.listen("127.0.0.1:0").await.expect("listen");
            tx.send((addr.to_string(), db.key(), counter))
                .expect("send");
            let started = std::time::Instant::now();
            while !stop_server.load(std::sync::atomic::Ordering::Acquire)
                && started.elapsed() < Duration::from_secs(60)
            {
                db.run_replication(&mut rep, Some(Duration::from_millis(100)))
                    .await
                    .expect("serve");
            }
        });
    });
    let (addr, key, counter) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server ready");
    assert_eq!(counter, Value::from(42));

    let client_dir = tempfile::tempdir().expect("tempdir");
    let rt = current_thread_runtime();
    let (mut db, _) = rt.block_on(load_database_from_peer(client_dir.path(), &key, &addr));
    assert_eq!(
        db.participants().len(),
        1,
        "the participant oplog was found through the index"
    );
    let oplog = db.participants()[0];
    assert_eq!(
        db.oplog(&oplog).map(Log::len),
        Some(3),
        "three operations replicated"
    );
    assert!(!db.is_executor());
    assert_eq!(
        db.get("/counter").expect("get").map(|e| e.value),
        Some(Value::from(42))
    );
    match db.verify().expect("verify runs") {
        Verdict::Verified { .. } => {}
        other => panic!("the replica did not verify: {other:?}"),
    }
    // sync_latest: the index in full, the oplogs' signed heads only.
    let latest_dir = tempfile::tempdir().expect("tempdir");
    let mut latest =
        Database::open_replica(latest_dir.path(), &key, Options::default()).expect("open replica");
    let proofs = rt
        .block_on(latest.sync_with_peer(&addr, false, Duration::from_secs(30)))
        .unwrap_or_else(|e| panic!("sync_latest from {addr}: {e}"));
    assert!(proofs.is_empty());
    assert_eq!(
        latest.get("/counter").expect("get").map(|e| e.value),
        Some(Value::from(42))
    );
    let op_log = latest.oplog(&oplog).expect("oplog opened");
    assert_eq!(op_log.len(), 3, "the oplog's signed head is known");
    assert!(
        (0..3).all(|i| !op_log.has(i)),
        "but its blocks were not downloaded"
    );
    assert!(
        !matches!(latest.verify(), Ok(Verdict::Verified { .. })),
        "without the oplog blocks the database cannot be verified"
    );

    drop(db);
    // It reopens from its directory without the network.
    let mut again = Database::load(client_dir.path(), &key, Options::default()).expect("reload");
    assert!(matches!(
        again.verify().expect("verify"),
        Verdict::Verified { .. }
    ));
    assert_eq!(LogSet::keys(&again).len(), 2);
    stop.store(true, std::sync::atomic::Ordering::Release);
    server.join().expect("server thread");
}

/// The writer's key signs two different trees at the same fork and length (a split log): a
/// replica that verified one, meeting a peer serving the other, keeps its data, refuses the
/// peer and holds both signed heads as a block-rewrite fraud proof.
#[tokio::test]
async fn split_log_yields_block_rewrite_evidence() {
    let honest = writer_log(10);
    let key = honest.public_key();
    let split = split_of(&honest, 10);
    let (mut sc, mut c, addr_c) = serve_log(split).await;

    let mut p = RustPair::new(honest, empty_replica(key), Download::Full).await;
    p.connect().await;
    p.drive_until(30, |_, sb| has_all_blocks(sb, &key, 10))
        .await;
    let RustPair {
        mut a,
        mut sa,
        mut b,
        mut sb,
        ..
    } = p;
    let ours = latest_head(&sb, &key);

    b.connect(&addr_c.to_string()).await.expect("connect c");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while b.evidence().is_empty() {
        tokio::select! {
            Some(ev) = a.next_event() => a.handle(&mut sa, ev),
            Some(ev) = b.next_event() => b.handle(&mut sb, ev),
            Some(ev) = c.next_event() => c.handle(&mut sc, ev),
            _ = tokio::time::sleep_until(deadline) => panic!("no split evidence; notices {:?}", b.take_notices()),
        }
    }
    let ev = b.evidence()[0].clone();
    assert!(!ev.is_fork());
    assert_eq!(ev.ours, ours);
    assert_eq!((ev.theirs.fork, ev.theirs.length), (0, 10));
    assert_ne!(ev.theirs.tree_hash, ours.tree_hash);
    assert!(
        ev.theirs.verify(&key) && ev.ours.verify(&key),
        "both heads are signed by the key"
    );
    let split = ev
        .to_split_proof()
        .expect("a split is a block-rewrite proof");
    assert_eq!(split.given_inclusion_proof.block_seq, 9);
    assert_eq!(
        split.violating_inclusion_proof.root_hash_at_block,
        ev.theirs.tree_hash
    );
    let log = sb.get(&key).expect("log");
    assert_eq!(
        log_sha(log, 10),
        expected_sha(10),
        "the replica keeps the data it verified"
    );
}
