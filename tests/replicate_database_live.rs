//! Live database replication: a replica loaded from a served database keeps following it; when
//! the contract adds a participant oplog on the server, the replica finds it in the index,
//! replicates it, reads the new value and still verifies; a later one-shot `sync_with_peer`
//! over a fresh connection brings in a third participant.

mod replicate_support;

use std::sync::mpsc;
use std::time::Duration;

use replicate_support::{current_thread_runtime, load_database_from_peer, params};
use vitra::codec::Value;
use vitra::database::{Database, Location, Options, Verdict};
use vitra::log::Log;

const KV: &str = include_str!("../examples/contracts/kv.js");

/// With the current local oplog, invites a new participant oplog (executed); then, as that
/// participant, puts `key` = `value` (executed).
fn invite_participant_and_put(db: &mut Database, key: &str, value: i64) {
    let participant = db.create_oplog().expect("oplog");
    db.call(
        "invite",
        &params(&[("pubkey", hex::encode(participant).into())]),
    )
    .expect("invite");
    db.execute_pending().expect("execute");
    db.set_local_oplog(&participant).expect("switch");
    db.call(
        "put",
        &params(&[("key", key.into()), ("value", value.into())]),
    )
    .expect("put");
    db.execute_pending().expect("execute");
}

#[test]
fn replica_follows_a_participant_added_later() {
    let (ready_tx, ready_rx) = mpsc::channel::<(String, [u8; 32])>();
    let (go_tx, go_rx) = mpsc::channel::<&'static str>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let rt = current_thread_runtime();
        rt.block_on(async move {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut db = Database::create(Location::Dir(dir.path().into()), KV, Options::default())
                .expect("create");
            db.call("claim", &params(&[])).expect("claim");
            db.call("put", &params(&[("key", "a".into()), ("value", 1.into())]))
                .expect("put");
            db.execute_pending().expect("execute");
            let (mut rep, addr) = db.serve("127.0.0.1:0").await.expect("serve");
            ready_tx.send((addr.to_string(), db.key())).expect("send");
            let started = std::time::Instant::now();
            while started.elapsed() < Duration::from_secs(60) {
                db.run_replication(&mut rep, Some(Duration::from_millis(50)))
                    .await
                    .expect("serve");
                match go_rx.try_recv() {
                    Ok("add-third") => {
                        let first = db.participants()[0];
                        db.set_local_oplog(&first).expect("switch back");
                        invite_participant_and_put(&mut db, "c", 3);
                        done_tx.send(()).expect("done");
                    }
                    Ok("add") => invite_participant_and_put(&mut db, "b", 2),
                    Ok(_) | Err(mpsc::TryRecvError::Disconnected) => return,
                    Err(mpsc::TryRecvError::Empty) => {}
                }
            }
        });
    });
    let (addr, key) = ready_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("server ready");
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = current_thread_runtime();
    rt.block_on(async {
        let (mut db, mut rep) = load_database_from_peer(dir.path(), &key, &addr).await;
        assert_eq!(db.participants().len(), 1);
        assert_eq!(
            db.get("/values/a").expect("get").map(|e| e.value),
            Some(Value::from(1))
        );

        go_tx.send("add").expect("signal server");
        rep.run_until(&mut db, Duration::from_secs(30), |db, _| {
            db.participants().len() == 2
                && db.participants().iter().all(|k| {
                    db.oplog(k)
                        .is_some_and(|l| !l.is_empty() && (0..l.len()).all(|i| l.has(i)))
                })
                && db.get("/values/b").ok().flatten().is_some()
        })
        .await
        .unwrap_or_else(|e| panic!("the replica did not follow the new participant: {e}"));
        assert_eq!(
            db.get("/values/b").expect("get").map(|e| e.value),
            Some(Value::from(2))
        );
        let second = db.participants()[1];
        assert_eq!(db.oplog(&second).map(Log::len), Some(1));
        match db.verify().expect("verify runs") {
            Verdict::Verified { .. } => {}
            other => panic!("the live replica did not verify: {other:?}"),
        }

        // A one-shot sync over a fresh connection (what `vitra sync --peer` does).
        go_tx.send("add-third").expect("signal server");
        done_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server added a third participant");
        let proofs = db
            .sync_with_peer(&addr, true, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("sync_with_peer {addr}: {e}"));
        assert!(
            proofs.is_empty(),
            "an honest server yields no fraud proofs: {proofs:?}"
        );
        assert_eq!(db.participants().len(), 3);
        assert_eq!(
            db.get("/values/c").expect("get").map(|e| e.value),
            Some(Value::from(3))
        );
        assert!(matches!(
            db.verify().expect("verify"),
            Verdict::Verified { .. }
        ));
        go_tx.send("stop").expect("stop");
    });
    server.join().expect("server");
}
