//! `Database::when_processed`: the executor processes a call's operations and hands back their
//! results (a rejected operation included), a zero timeout and an operation the executor cannot
//! reach end with a typed error, and a replica waits for the executor over the network
//! (`when_processed_replicated`) after being told plainly it cannot process anything itself.

use std::cell::Cell;
use std::time::Duration;

use vitra::codec::{Object, Value};
use vitra::database::{Database, DatabaseError, Location, Options, Transaction, WaitEnd};
use vitra::net::replicate::{ReplicateError, Replicator, ReplicatorConfig};

const KV: &str = include_str!("../examples/contracts/kv.js");
const LONG: Duration = Duration::from_secs(30);

fn params(pairs: &[(&str, Value)]) -> Value {
    Value::Object(pairs.iter().cloned().collect::<Object>())
}

fn put(db: &mut Database, key: &str, value: i64) -> Transaction {
    db.call(
        "put",
        &params(&[("key", key.into()), ("value", value.into())]),
    )
    .expect("put")
}

#[test]
fn the_executor_processes_a_call_and_returns_its_results() {
    let mut db = Database::create(Location::Memory, KV, Options::default()).expect("create");
    db.call("claim", &params(&[])).expect("claim");
    put(&mut db, "a", 1);
    let tx = put(&mut db, "b", 2);
    assert!(!db.is_processed(&tx).expect("acks"));
    let results = db.when_processed(&tx, LONG).expect("processed");
    assert_eq!(results.len(), 1);
    assert!(results[0].success, "{:?}", results[0].error);
    assert_eq!(results[0].changes.len(), 1);
    assert_eq!(results[0].changes[0].path, "/values/b");
    assert_eq!(results[0].changes[0].value, Value::from(2));
    assert_eq!(
        db.get("/values/a").expect("get").map(|e| e.value),
        Some(Value::from(1))
    );
    // Already processed: answered from the index, nothing left to run.
    assert_eq!(
        db.when_processed(&tx, Duration::ZERO).expect("again"),
        results
    );
    // A call that emitted nothing is processed at once.
    let read = db
        .call("get", &params(&[("key", "b".into())]))
        .expect("get");
    assert_eq!(read.response, Value::from(2));
    assert!(db
        .when_processed(&read, Duration::ZERO)
        .expect("no ops")
        .is_empty());
}

#[test]
fn a_rejected_operation_is_processed_with_its_error() {
    let mut db = Database::create(Location::Memory, KV, Options::default()).expect("create");
    db.call("claim", &params(&[])).expect("claim");
    let again = db.call("claim", &params(&[])).expect("claim again");
    let results = db.when_processed(&again, LONG).expect("processed");
    assert_eq!(results.len(), 1);
    assert!(!results[0].success);
    assert_eq!(
        results[0].error.as_deref(),
        Some("Error: The store already has an owner")
    );
    assert!(results[0].changes.is_empty());
}

#[test]
fn a_zero_timeout_and_an_unreachable_operation_end_with_typed_errors() {
    let mut db = Database::create(Location::Memory, KV, Options::default()).expect("create");
    db.call("claim", &params(&[])).expect("claim");
    let tx = put(&mut db, "a", 1);
    match db.when_processed(&tx, Duration::ZERO) {
        Err(DatabaseError::NotProcessed {
            why: WaitEnd::TimedOut,
            unprocessed: 1,
            total: 1,
            transaction,
            ..
        }) => assert_eq!(transaction, tx.id()),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        !db.is_processed(&tx).expect("acks"),
        "a zero timeout runs nothing"
    );
    // An oplog that is not a participant: the executor never processes its operations.
    let outsider = db.create_oplog().expect("oplog");
    db.set_local_oplog(&outsider).expect("switch");
    let stranded = db.call("claim", &params(&[])).expect("claim");
    match db.when_processed(&stranded, LONG) {
        Err(DatabaseError::NotProcessed {
            why: WaitEnd::ExecutorIdle,
            unprocessed: 1,
            ..
        }) => {}
        other => panic!("expected an idle executor, got {other:?}"),
    }
    // The earlier put was processed on the way.
    assert!(db.is_processed(&tx).expect("acks"));
}

#[tokio::test]
async fn a_replica_waits_for_the_executor_over_the_network() {
    // Executor and replica run on this one thread, each future owning its database.
    let server_dir = tempfile::tempdir().expect("tempdir");
    let mut server = Database::create(
        Location::Dir(server_dir.path().into()),
        KV,
        Options::default(),
    )
    .expect("create");
    server.call("claim", &params(&[])).expect("claim");
    server.execute_pending().expect("execute");
    // Called, not processed yet: the replica is handed the transaction.
    let tx = put(&mut server, "late", 7);
    let key = server.key();
    let (mut server_rep, addr) = server.serve("127.0.0.1:0").await.expect("serve");
    let addr = addr.to_string();
    let execute = Cell::new(false);
    let finished = Cell::new(false);
    let executor = async {
        while !finished.get() {
            server
                .run_replication(&mut server_rep, Some(Duration::from_millis(50)))
                .await
                .expect("serve");
            if execute.get() {
                server.execute_pending().expect("execute");
            }
        }
    };
    let replica_dir = tempfile::tempdir().expect("tempdir");
    let replica = async {
        let mut rep = Replicator::new(ReplicatorConfig::default()).expect("replicator");
        let mut db = Database::load_from_peer(
            replica_dir.path(),
            &key,
            &addr,
            Options::default(),
            &mut rep,
            LONG,
        )
        .await
        .unwrap_or_else(|e| panic!("load from {addr}: {e}"));
        assert!(!db.is_executor());
        match db.when_processed(&tx, LONG) {
            Err(DatabaseError::NotProcessed {
                why: WaitEnd::NotTheExecutor,
                ..
            }) => {}
            other => panic!("a replica cannot process by itself, got {other:?}"),
        }
        match db
            .when_processed_replicated(&mut rep, &tx, Duration::from_millis(600))
            .await
        {
            Err(ReplicateError::Timeout { state, .. }) => {
                assert!(state.contains(&tx.id()), "{state}")
            }
            other => panic!("expected a timeout while the executor waits, got {other:?}"),
        }
        execute.set(true);
        let results = db.when_processed_replicated(&mut rep, &tx, LONG).await;
        finished.set(true);
        let results = results.unwrap_or_else(|e| panic!("the executor's ack never arrived: {e}"));
        assert_eq!(results.len(), 1);
        assert!(results[0].success);
        assert_eq!(results[0].changes[0].value, Value::from(7));
        assert_eq!(
            db.get("/values/late").expect("get").map(|e| e.value),
            Some(Value::from(7))
        );
    };
    tokio::join!(executor, replica);
}
