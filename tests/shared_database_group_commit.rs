//! `SharedDatabase`: calls from many threads at once are committed in groups (one append for
//! the calls that queued up while the disk was busy), each still answered with its own
//! operations and proofs only once they are stored; a failing call fails alone; waits for
//! processing end with the executor's results or a typed reason; closing keeps every
//! answered call on disk, processed.

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::time::Duration;

use vitra::codec::{Object, Value};
use vitra::database::{
    Database, DatabaseError, Location, Options, SharedDatabase, Transaction, Verdict, WaitEnd,
};

const KV: &str = include_str!("../examples/contracts/kv.js");
const LONG: Duration = Duration::from_secs(30);

fn params(pairs: &[(&str, Value)]) -> Value {
    Value::Object(pairs.iter().cloned().collect::<Object>())
}

fn put(key: &str, value: i64) -> Value {
    params(&[("key", key.into()), ("value", value.into())])
}

/// A kv database in `dir`, claimed by its own oplog so its puts are accepted.
fn open_kv(dir: &std::path::Path) -> SharedDatabase {
    let location = Location::Dir(dir.to_path_buf());
    let db = SharedDatabase::open(move || Database::create(location, KV, Options::default()))
        .expect("open");
    let claim = db.call("claim", &params(&[])).expect("claim");
    db.when_processed(&claim, LONG).expect("claimed");
    db
}

#[test]
fn calls_queued_while_the_owner_is_busy_are_committed_in_one_group_each_with_its_proofs() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = open_kv(dir.path());
    let callers = 8;
    // Callers about to send their call.
    let sending = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let txs: Vec<Transaction> = std::thread::scope(|s| {
        // The owner is held until the eight callers are sending, then a moment more.
        let (started, started_rx) = mpsc::channel();
        let counted = sending.clone();
        s.spawn(|| {
            db.with(move |_| {
                let _ = started.send(());
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while counted.load(std::sync::atomic::Ordering::SeqCst) < callers as usize
                    && std::time::Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                std::thread::sleep(Duration::from_millis(200));
            })
            .expect("job")
        });
        started_rx.recv().expect("owner busy");
        let workers: Vec<_> = (0..callers)
            .map(|i| {
                let (db, sending) = (&db, sending.clone());
                s.spawn(move || {
                    sending.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    db.call("put", &put(&format!("k{i}"), i)).expect("put")
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("caller"))
            .collect()
    });
    let stats = db.stats().expect("stats");
    assert_eq!(stats.calls, 1 + callers as u64, "the claim and the puts");
    assert!(
        stats.largest_group >= 2 && stats.groups < stats.calls,
        "calls that queued up together were committed one by one: {stats:?}"
    );
    // One block each, no two calls given the same block, every proof good.
    let seqs: BTreeSet<u64> = txs.iter().map(|tx| tx.operations[0].seq).collect();
    assert_eq!(seqs.len(), callers as usize);
    assert_eq!(
        seqs,
        (1..=callers as u64).collect(),
        "blocks 1.. after the claim"
    );
    for tx in &txs {
        assert_eq!(tx.operations.len(), 1);
        let proof = tx.operations[0].proof.clone();
        let fraud = db
            .with(move |db| db.verify_inclusion_proof(&proof).map(|f| f.is_some()))
            .expect("owner")
            .expect("verify");
        assert!(!fraud, "a proof from a group commit does not verify");
    }
    for (i, tx) in txs.iter().enumerate() {
        let results = db.when_processed(tx, LONG).expect("processed");
        assert!(results[0].success, "{:?}", results[0].error);
        let key = format!("/values/k{i}");
        let value = db
            .with(move |db| db.get(&key).map(|e| e.map(|e| e.value)))
            .expect("owner")
            .expect("get");
        assert_eq!(value, Some(Value::from(i as i64)));
    }
    db.close().expect("close");
}

#[test]
fn a_failing_call_gets_its_own_error_and_the_rest_of_its_group_commits() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = open_kv(dir.path());
    let (good, bad) = std::thread::scope(|s| {
        let busy = s.spawn(|| {
            db.with(|_| std::thread::sleep(Duration::from_millis(300)))
                .expect("job")
        });
        std::thread::sleep(Duration::from_millis(50));
        let good: Vec<_> = (0..3)
            .map(|i| {
                let db = &db;
                s.spawn(move || db.call("put", &put(&format!("g{i}"), i)))
            })
            .collect();
        // A key that is not a string: the contract's own `equal` refuses it.
        let bad = {
            let db = &db;
            s.spawn(move || db.call("put", &params(&[("key", 7.into()), ("value", 1.into())])))
        };
        busy.join().expect("busy");
        (
            good.into_iter()
                .map(|w| w.join().expect("caller"))
                .collect::<Vec<_>>(),
            bad.join().expect("caller"),
        )
    });
    match bad {
        Err(DatabaseError::Contract(e)) => {
            assert!(e.to_string().contains("key must be a string"), "{e}")
        }
        other => panic!("the failing call was not refused with its contract error: {other:?}"),
    }
    let good: Vec<Transaction> = good.into_iter().map(|r| r.expect("good call")).collect();
    for tx in &good {
        db.when_processed(tx, LONG).expect("processed");
    }
    let length = db
        .with(|db| db.oplog(&db.local_oplog().expect("local")).map(|l| l.len()))
        .expect("owner")
        .expect("oplog");
    assert_eq!(
        length, 4,
        "the claim and the three good puts, nothing of the bad one"
    );
    db.close().expect("close");
}

#[test]
fn a_wait_ends_with_the_results_or_says_why_it_cannot() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = open_kv(dir.path());
    let tx = db.call("put", &put("a", 1)).expect("put");
    let results = db.when_processed(&tx, LONG).expect("processed");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].changes[0].path, "/values/a");
    // An operation the log does not have: the executor has nothing it could process.
    let mut missing = tx.clone();
    missing.operations[0].seq = 1_000;
    match db.when_processed(&missing, LONG) {
        Err(DatabaseError::NotProcessed {
            why: WaitEnd::ExecutorIdle,
            unprocessed: 1,
            ..
        }) => {}
        other => panic!("expected ExecutorIdle, got {other:?}"),
    }
    db.close().expect("close");
}

#[test]
fn every_answered_call_is_on_disk_and_processed_after_close() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = open_kv(dir.path());
    let key = db.with(|db| db.key()).expect("key");
    let answered: Vec<Transaction> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..16)
            .map(|i| {
                let db = &db;
                s.spawn(move || db.call("put", &put(&format!("c{i}"), i)).expect("put"))
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("caller"))
            .collect()
    });
    db.close().expect("close");
    // Reopened from disk: every answered call is there, and the owner processed them
    // before it let go.
    let mut db = Database::load(dir.path(), &key, Options::default()).expect("load");
    for (i, tx) in answered.iter().enumerate() {
        assert!(db.is_processed(tx).expect("acks"), "call {i} was lost");
        assert_eq!(
            db.get(&format!("/values/c{i}"))
                .expect("get")
                .map(|e| e.value),
            Some(Value::from(i as i64))
        );
    }
    assert!(matches!(
        db.verify().expect("verify"),
        Verdict::Verified { .. }
    ));
}

#[test]
fn opening_reports_the_databases_own_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().to_path_buf();
    match SharedDatabase::open(move || Database::load(&path, &[7u8; 32], Options::default())) {
        Err(DatabaseError::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
    let db = open_kv(dir.path());
    assert_eq!(db.stats().expect("stats").calls, 1);
    db.close().expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_tasks_calling_at_once_share_groups_and_see_their_results() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = std::sync::Arc::new(open_kv(dir.path()));
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                let tx = db
                    .call_async("put", &put(&format!("t{i}"), i))
                    .await
                    .expect("put");
                let results = db.when_processed_async(&tx, LONG).await.expect("processed");
                (tx.operations[0].seq, results[0].changes[0].path.clone())
            })
        })
        .collect();
    let mut seqs = BTreeSet::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let (seq, path) = task.await.expect("task");
        assert_eq!(path, format!("/values/t{i}"));
        assert!(seqs.insert(seq), "block {seq} given to two calls");
    }
    let stats = db.stats().expect("stats");
    assert_eq!(stats.calls, 101);
    assert!(
        stats.groups < stats.calls,
        "100 tasks calling at once were committed one by one: {stats:?}"
    );
    let length = db
        .with_async(|db| db.oplog(&db.local_oplog().expect("local")).map(|l| l.len()))
        .await
        .expect("owner")
        .expect("oplog");
    assert_eq!(length, 101);
}

#[test]
fn a_panicking_job_stops_the_owner_and_every_later_request_is_told_so() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = open_kv(dir.path());
    let key = db.with(|db| db.key()).expect("key");
    let before = db.call("put", &put("before", 1)).expect("put");
    match db.with(|_| -> u8 { panic!("a bug in the caller's job") }) {
        Err(DatabaseError::OwnerStopped { .. }) => {}
        other => panic!("expected OwnerStopped, got {other:?}"),
    }
    match db.call("put", &put("after", 1)) {
        Err(DatabaseError::OwnerStopped { reason }) => {
            assert!(
                reason.contains("gone") || reason.contains("stopped"),
                "{reason}"
            )
        }
        other => panic!("expected OwnerStopped, got {other:?}"),
    }
    assert!(matches!(
        db.close(),
        Err(DatabaseError::OwnerStopped { .. })
    ));
    // What was answered before the panic is on disk, and the database still verifies.
    let mut reopened = Database::load(dir.path(), &key, Options::default()).expect("load");
    reopened
        .when_processed(&before, LONG)
        .expect("processed after reopening");
    assert!(matches!(
        reopened.verify().expect("verify"),
        Verdict::Verified { .. }
    ));
}
