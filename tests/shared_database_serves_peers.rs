//! A `SharedDatabase` replicates while it serves local callers: an executor listening for
//! peers is loaded, verified and followed live by a replica while threads call it; a
//! participant replica's operations reach it over the network and are processed, and the
//! participant sees the acks; a shared replica connected to the executor waits for its own
//! call's acks.

mod replicate_support;

use std::time::Duration;

use replicate_support::{current_thread_runtime, load_database_from_peer, params};
use vitra::codec::Value;
use vitra::database::{Database, Location, Options, SharedDatabase, Verdict};

const KV: &str = include_str!("../examples/contracts/kv.js");
const LONG: Duration = Duration::from_secs(30);

fn put(key: &str, value: i64) -> Value {
    params(&[("key", key.into()), ("value", value.into())])
}

/// A kv executor in `dir`, claimed by its own oplog, listening on a local port.
fn serving_executor(dir: &std::path::Path) -> (SharedDatabase, [u8; 32], String) {
    let location = Location::Dir(dir.to_path_buf());
    let db = SharedDatabase::open(move || Database::create(location, KV, Options::default()))
        .expect("open");
    let claim = db.call("claim", &params(&[])).expect("claim");
    db.when_processed(&claim, LONG).expect("claimed");
    let addr = db.listen("127.0.0.1:0").expect("listen");
    let key = db.with(|db| db.key()).expect("key");
    (db, key, addr.to_string())
}

#[test]
fn a_replica_loads_verifies_and_follows_a_shared_executor_while_threads_call_it() {
    let server_dir = tempfile::tempdir().expect("tmp");
    let (db, key, addr) = serving_executor(server_dir.path());
    std::thread::scope(|s| {
        for t in 0..4 {
            let db = &db;
            s.spawn(move || {
                for i in 0..10 {
                    let tx = db.call("put", &put(&format!("t{t}-{i}"), i)).expect("put");
                    db.when_processed(&tx, LONG).expect("processed");
                }
            });
        }
    });
    let replica_dir = tempfile::tempdir().expect("tmp");
    let rt = current_thread_runtime();
    rt.block_on(async {
        let (mut replica, mut rep) = load_database_from_peer(replica_dir.path(), &key, &addr).await;
        for t in 0..4 {
            assert_eq!(
                replica
                    .get(&format!("/values/t{t}-9"))
                    .expect("get")
                    .map(|e| e.value),
                Some(Value::from(9))
            );
        }
        match replica.verify().expect("verify runs") {
            Verdict::Verified { .. } => {}
            other => panic!("the replica of a shared executor did not verify: {other:?}"),
        }
        // Calls made now reach the connected replica without a new connection: the owner
        // announces its appends between groups.
        let late = db.call("put", &put("late", 42)).expect("put");
        db.when_processed(&late, LONG).expect("processed");
        rep.run_until(&mut replica, LONG, |db, _| {
            db.get("/values/late").ok().flatten().is_some()
        })
        .await
        .unwrap_or_else(|e| panic!("the replica did not follow the shared executor: {e}"));
        assert_eq!(
            replica.get("/values/late").expect("get").map(|e| e.value),
            Some(Value::from(42))
        );
    });
    db.close().expect("close");
}

#[test]
fn a_participants_operations_reach_the_shared_executor_over_the_network_and_are_acked() {
    let server_dir = tempfile::tempdir().expect("tmp");
    let (db, key, addr) = serving_executor(server_dir.path());
    let replica_dir = tempfile::tempdir().expect("tmp");
    let rt = current_thread_runtime();
    rt.block_on(async {
        let (mut replica, mut rep) = load_database_from_peer(replica_dir.path(), &key, &addr).await;
        let mine = replica.create_oplog().expect("oplog");
        replica.add_to_replicator(&mut rep, vitra::net::replicate::Download::Full);
        // The owner invites the participant; the replica learns it from the index.
        let invite = db
            .call("invite", &params(&[("pubkey", hex::encode(mine).into())]))
            .expect("invite");
        db.when_processed(&invite, LONG).expect("invited");
        rep.run_until(&mut replica, LONG, |db, _| {
            db.participants().contains(&mine)
        })
        .await
        .unwrap_or_else(|e| panic!("the replica never saw its invitation: {e}"));
        replica.set_local_oplog(&mine).expect("switch");
        let tx = replica.call("put", &put("remote", 7)).expect("put");
        let results = replica
            .when_processed_replicated(&mut rep, &tx, LONG)
            .await
            .unwrap_or_else(|e| panic!("the shared executor never processed the op: {e}"));
        assert!(results[0].success, "{:?}", results[0].error);
        assert_eq!(results[0].changes[0].path, "/values/remote");
    });
    // And the executor's own state has it.
    let value = db
        .with(|db| db.get("/values/remote").map(|e| e.map(|e| e.value)))
        .expect("owner")
        .expect("get");
    assert_eq!(value, Some(Value::from(7)));
    assert!(db.stats().expect("stats").executed >= 3);
    db.close().expect("close");
}

#[test]
fn a_shared_replica_connected_to_the_executor_waits_for_its_calls_acks() {
    let server_dir = tempfile::tempdir().expect("tmp");
    let (db, key, addr) = serving_executor(server_dir.path());
    let replica_dir = tempfile::tempdir().expect("tmp");
    // Load it once (a plain replica on disk), then share it and connect.
    let mine = {
        let rt = current_thread_runtime();
        rt.block_on(async {
            let (mut replica, _rep) =
                load_database_from_peer(replica_dir.path(), &key, &addr).await;
            replica.create_oplog().expect("oplog")
        })
    };
    let invite = db
        .call("invite", &params(&[("pubkey", hex::encode(mine).into())]))
        .expect("invite");
    db.when_processed(&invite, LONG).expect("invited");
    let path = replica_dir.path().to_path_buf();
    let replica = SharedDatabase::open(move || {
        let mut db = Database::load(&path, &key, Options::default())?;
        db.open_oplog(&mine)?;
        db.set_local_oplog(&mine)?;
        Ok(db)
    })
    .expect("open replica");
    replica.connect(&addr).expect("connect");
    let deadline = std::time::Instant::now() + LONG;
    while !replica
        .with(move |db| db.participants().contains(&mine))
        .expect("owner")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the shared replica never saw its invitation"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let tx = replica.call("put", &put("shared-replica", 5)).expect("put");
    let results = replica
        .when_processed(&tx, LONG)
        .expect("acked through replication");
    assert!(results[0].success, "{:?}", results[0].error);
    replica.close().expect("close replica");
    db.close().expect("close");
}
