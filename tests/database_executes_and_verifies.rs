//! End-to-end scenarios of the database: calls append operations, the executor writes acks
//! and changes, the monitor replays them, and each executor misbehaviour is caught with its
//! fraud code.

use std::time::Duration;
use vitra::codec::{Object, Value};
use vitra::database::{Database, Location, Options, Verdict};
use vitra::executor::ExecutorBehavior;
use vitra::proof::{FraudCode, FraudProof};

const COUNTER: &str = include_str!("../examples/contracts/counter.js");
const KV: &str = include_str!("../examples/contracts/kv.js");

fn params(pairs: &[(&str, Value)]) -> Value {
    Value::Object(pairs.iter().cloned().collect::<Object>())
}

fn memory_db(source: &str, behavior: ExecutorBehavior) -> Database {
    let options = Options {
        executor_behavior: behavior,
        ..Options::default()
    };
    Database::create(Location::Memory, source, options).expect("create")
}

fn assert_verified(db: &mut Database) {
    match db.verify().expect("verify runs") {
        Verdict::Verified { .. } => {}
        other => panic!("expected the database to verify, got {other:?}"),
    }
}

fn fraud_code(db: &mut Database) -> FraudCode {
    match db.verify().expect("verify runs") {
        Verdict::Fraud(proof) => match *proof {
            FraudProof::Contract(p) => p.details.code,
            other => panic!("expected a contract fraud proof, got {other:?}"),
        },
        other => panic!("expected a contract fraud proof, got {other:?}"),
    }
}

#[test]
fn counter_calls_are_executed_and_verify() {
    let mut db = memory_db(COUNTER, ExecutorBehavior::Normal);
    assert_eq!(db.methods().expect("methods"), ["get", "increment"]);
    let mut txs = Vec::new();
    for by in [1, 2, 10] {
        txs.push(
            db.call("increment", &params(&[("by", by.into())]))
                .expect("call"),
        );
    }
    assert!(!db.is_processed(&txs[0]).expect("acks"));
    let report = db.execute_pending().expect("execute");
    assert_eq!(report.processed, 3);
    assert_eq!(
        db.get("/counter").expect("get").map(|e| e.value),
        Some(Value::from(13))
    );
    assert_eq!(
        db.call("get", &params(&[])).expect("call").response,
        Value::from(13)
    );
    let results = db.fetch_results(&txs[2]).expect("results");
    let result = results[0].as_ref().expect("processed");
    assert!(result.success);
    assert_eq!(result.changes.len(), 1);
    assert_eq!(result.changes[0].value, Value::from(13));
    // a second run finds nothing new
    assert_eq!(db.execute_pending().expect("execute").processed, 0);
    assert_verified(&mut db);
}

#[test]
fn failed_and_zero_change_ops_verify_unlike_0_1_3() {
    let mut db = memory_db(KV, ExecutorBehavior::Normal);
    db.call("claim", &params(&[])).expect("claim");
    // a second claim is rejected by apply: a failed op with no changes
    db.call("claim", &params(&[])).expect("claim again");
    db.call("put", &params(&[("key", "a".into()), ("value", 1.into())]))
        .expect("put");
    db.call("del", &params(&[("key", "a".into())]))
        .expect("del");
    // deleting a missing key: an op whose change Hyperbee does not write
    db.call("del", &params(&[("key", "never".into())]))
        .expect("del missing");
    db.call(
        "put",
        &params(&[("key", "b".into()), ("value", Value::Null)]),
    )
    .expect("put null");
    let report = db.execute_pending().expect("execute");
    assert_eq!((report.processed, report.failed), (6, 1));
    let local = db.local_oplog().expect("local oplog");
    let failed = db
        .fetch_result(&local, 1)
        .expect("result")
        .expect("processed");
    assert!(!failed.success);
    assert_eq!(
        failed.error.as_deref(),
        Some("Error: The store already has an owner")
    );
    assert_eq!(db.get("/values/a").expect("get"), None);
    assert_verified(&mut db);
}

#[test]
fn a_skipping_executor_is_caught() {
    let mut db = memory_db(COUNTER, ExecutorBehavior::SkipOps);
    for _ in 0..3 {
        db.call("increment", &params(&[])).expect("call");
    }
    db.execute_pending().expect("execute");
    assert_eq!(fraud_code(&mut db), FraudCode::ProcessedOutOfOrderError);
}

#[test]
fn an_executor_processing_twice_is_caught() {
    let mut db = memory_db(COUNTER, ExecutorBehavior::ProcessOpMultipleTimes);
    db.call("increment", &params(&[])).expect("call");
    db.execute_pending().expect("execute");
    assert_eq!(fraud_code(&mut db), FraudCode::ProcessedOutOfOrderError);
}

#[test]
fn an_executor_writing_wrong_changes_is_caught() {
    // In place of the change the replay expects: a mismatch.
    let mut db = memory_db(COUNTER, ExecutorBehavior::WrongOpMutations);
    db.call("increment", &params(&[])).expect("call");
    db.execute_pending().expect("execute");
    assert_eq!(fraud_code(&mut db), FraudCode::ChangeMismatchError);
    // After an op that changes nothing: a change the monitor never expected.
    let mut db = memory_db(KV, ExecutorBehavior::WrongOpMutations);
    db.call("del", &params(&[("key", "never-existed".into())]))
        .expect("call");
    db.execute_pending().expect("execute");
    assert_eq!(
        fraud_code(&mut db),
        FraudCode::ChangeNotProducedByMonitorError
    );
}

#[test]
fn emitting_without_a_writable_oplog_is_refused() {
    use vitra::log::{KeyPair, Log, MemoryStorage, Storage};
    let index = Log::create(Storage::Memory(MemoryStorage::default())).expect("index log");
    let someone_else = KeyPair::generate().expect("key pair").public_key;
    let replica = Log::create_replica(Storage::Memory(MemoryStorage::default()), someone_else)
        .expect("replica");
    let mut db = Database::create_with_logs(
        Location::Memory,
        None,
        index,
        vec![replica],
        COUNTER,
        Options::default(),
    )
    .expect("create");
    assert_eq!(db.local_oplog(), None);
    assert_eq!(
        db.call("get", &params(&[])).expect("a read works").response,
        Value::from(0)
    );
    assert!(matches!(
        db.call("increment", &params(&[])),
        Err(vitra::database::DatabaseError::NotAWriter)
    ));
    let batch = db
        .call_batch(&[("get", params(&[])), ("increment", params(&[]))])
        .expect("nothing to append");
    assert_eq!(
        batch[0].as_ref().expect("a read works").response,
        Value::from(0)
    );
    assert!(matches!(
        batch[1],
        Err(vitra::database::DatabaseError::NotAWriter)
    ));
    assert!(matches!(
        db.call("apply", &params(&[])),
        Err(vitra::database::DatabaseError::Contract(
            vitra::contract::ContractError::ReservedMethod { .. }
        ))
    ));
}

#[test]
fn a_restarted_executor_neither_repeats_nor_skips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = {
        let mut db = Database::create(
            Location::Dir(dir.path().into()),
            COUNTER,
            Options::default(),
        )
        .expect("create");
        db.call("increment", &params(&[])).expect("call");
        db.call("increment", &params(&[])).expect("call");
        db.execute_pending().expect("execute");
        db.call("increment", &params(&[("by", 5.into())]))
            .expect("call not yet executed");
        db.key()
    };
    let mut db = Database::load(dir.path(), &key, Options::default()).expect("load");
    assert!(db.is_executor());
    assert_eq!(db.execute_pending().expect("execute").processed, 1);
    assert_eq!(
        db.get("/counter").expect("get").map(|e| e.value),
        Some(Value::from(7))
    );
    assert_verified(&mut db);
}

#[test]
fn inclusion_proofs_verify_and_a_forged_one_is_refused() {
    let mut db = memory_db(COUNTER, ExecutorBehavior::Normal);
    let tx = db.call("increment", &params(&[])).expect("call");
    let proof = tx.operations[0].proof.clone();
    assert_eq!(db.verify_inclusion_proof(&proof).expect("verifies"), None);
    let mut forged = proof.clone();
    forged.root_hash_at_block[0] ^= 1;
    assert!(db.verify_inclusion_proof(&forged).is_err());
    let json = tx.to_json(&db.fetch_results(&tx).expect("results"));
    let back = vitra::database::Transaction::from_json(&json).expect("parses");
    assert_eq!(back.operations[0].proof, proof);
    assert_eq!(back.id(), tx.id());
}

#[test]
fn participants_added_by_the_contract_are_executed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut db =
        Database::create(Location::Dir(dir.path().into()), KV, Options::default()).expect("create");
    db.call("claim", &params(&[])).expect("claim");
    let second = db.create_oplog().expect("new oplog");
    db.call("invite", &params(&[("pubkey", hex::encode(second).into())]))
        .expect("invite");
    db.execute_pending().expect("execute");
    assert!(db.participants().contains(&second));
    db.set_local_oplog(&second).expect("switch oplog");
    db.call(
        "put",
        &params(&[("key", "from-second".into()), ("value", true.into())]),
    )
    .expect("put");
    db.execute_pending().expect("execute");
    assert_eq!(
        db.get("/values/from-second").expect("get").map(|e| e.value),
        Some(Value::Bool(true))
    );
    db.set_local_oplog(&db.participants()[0].clone())
        .expect("switch back");
    db.call("expel", &params(&[("pubkey", hex::encode(second).into())]))
        .expect("expel");
    db.execute_pending().expect("execute");
    assert!(!db.participants().contains(&second));
    db.set_local_oplog(&second).expect("switch oplog");
    db.call(
        "put",
        &params(&[("key", "after-expel".into()), ("value", 1.into())]),
    )
    .expect("put");
    assert_eq!(
        db.execute_pending().expect("execute").processed,
        0,
        "ops of a removed oplog are not executed"
    );
    assert_verified(&mut db);
}

#[test]
fn failed_transactions_have_inclusion_proofs_too() {
    let mut db = memory_db(KV, ExecutorBehavior::Normal);
    db.call("claim", &params(&[])).expect("claim");
    let tx = db
        .call("claim", &params(&[]))
        .expect("a claim that will be rejected");
    db.execute_pending().expect("execute");
    let result = db
        .fetch_results(&tx)
        .expect("results")
        .remove(0)
        .expect("processed");
    assert!(!result.success);
    assert_eq!(
        db.verify_inclusion_proof(&tx.operations[0].proof)
            .expect("verifies"),
        None
    );
    let json = tx.to_json(&[Some(result)]);
    assert_eq!(json["isProcessed"], true);
    assert_eq!(json["operations"][0]["result"]["success"], false);
    assert_eq!(
        json["operations"][0]["result"]["error"],
        "Error: The store already has an owner"
    );
}

#[test]
fn a_truncated_oplog_yields_fork_evidence_against_an_earlier_proof() {
    use vitra::log::LogStore;
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, oplog, proof) = {
        let mut db = Database::create(
            Location::Dir(dir.path().into()),
            COUNTER,
            Options::default(),
        )
        .expect("create");
        let tx = db.call("increment", &params(&[])).expect("call");
        (
            db.key(),
            db.local_oplog().expect("oplog"),
            tx.operations[0].proof.clone(),
        )
    };
    {
        // The participant rewrites its history behind everyone's back.
        let mut log = LogStore::new(dir.path())
            .open(&oplog, None)
            .expect("open oplog");
        log.truncate(0).expect("truncate");
        log.append(b"a different operation").expect("append");
    }
    let db = Database::load(dir.path(), &key, Options::default()).expect("load");
    match db.verify_inclusion_proof(&proof).expect("checks") {
        Some(FraudProof::LogFork(fork)) => {
            assert_eq!(fork.log_pubkey, oplog);
            assert_eq!(fork.fork_number, 1);
            assert_eq!(fork.block_seq, 0);
        }
        other => panic!("expected fork evidence, got {other:?}"),
    }
}

#[test]
fn a_live_monitor_validates_new_entries_and_stops_at_the_first_violation() {
    use vitra::database::{LiveMonitor, MonitorProgress};
    let mut db = memory_db(COUNTER, ExecutorBehavior::Normal);
    let mut monitor = LiveMonitor::new();
    match monitor.check(&db).expect("check") {
        MonitorProgress::Validated(entries) => assert_eq!(entries.len(), 3, "the genesis entries"),
        other => panic!("{other:?}"),
    }
    db.call("increment", &params(&[])).expect("call");
    db.execute_pending().expect("execute");
    match monitor.check(&db).expect("check") {
        MonitorProgress::Validated(entries) => {
            assert_eq!(entries.len(), 2, "an ack and its change")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(monitor.verified_length(), 5);

    let mut cheat = memory_db(COUNTER, ExecutorBehavior::SkipOps);
    let mut monitor = LiveMonitor::new();
    for _ in 0..2 {
        cheat.call("increment", &params(&[])).expect("call");
    }
    cheat.execute_pending().expect("execute");
    assert!(matches!(
        monitor.check(&cheat).expect("check"),
        MonitorProgress::Validated(_)
    ));
    cheat.call("increment", &params(&[])).expect("call");
    cheat.execute_pending().expect("execute");
    for _ in 0..2 {
        match monitor.check(&cheat).expect("check") {
            MonitorProgress::Violation(proof) => match *proof {
                FraudProof::Contract(p) => {
                    assert_eq!(p.details.code, FraudCode::ProcessedOutOfOrderError)
                }
                other => panic!("{other:?}"),
            },
            other => panic!("expected the violation, got {other:?}"),
        }
    }
}

#[test]
fn buffered_appends_reopen_intact_after_the_process_lets_go() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = Options {
        durability: vitra::log::Durability::Buffered,
        ..Options::default()
    };
    let key = {
        let mut db = Database::create(Location::Dir(dir.path().into()), COUNTER, options.clone())
            .expect("create");
        for _ in 0..20 {
            db.call("increment", &params(&[])).expect("call");
        }
        db.execute_pending().expect("execute");
        db.key()
    };
    let mut db = Database::load(dir.path(), &key, options).expect("load");
    assert_eq!(
        db.get("/counter").expect("get").map(|e| e.value),
        Some(Value::from(20))
    );
    assert_verified(&mut db);
}

#[test]
fn malformed_ops_and_runaway_contracts_fail_their_op_and_the_rest_goes_on() {
    use vitra::log::LogStore;
    const RUNAWAY: &str = r#"
        export function op ({ kind }, emit) { emit({ op: kind }) }
        export const apply = {
          LOOP (tx) { for (;;) {} },
          PUT (tx) { tx.put('/ok', true) }
        }
    "#;
    let dir = tempfile::tempdir().expect("tempdir");
    let options = Options {
        limits: vitra::contract::Limits {
            time_budget: std::time::Duration::from_millis(50),
            ..Default::default()
        },
        ..Options::default()
    };
    let (key, oplog) = {
        let mut db = Database::create(Location::Dir(dir.path().into()), RUNAWAY, options.clone())
            .expect("create");
        db.call("op", &params(&[("kind", "LOOP".into())]))
            .expect("call");
        (db.key(), db.local_oplog().expect("oplog"))
    };
    {
        // Bytes that are not msgpack land in the oplog (a buggy or hostile writer).
        let mut log = LogStore::new(dir.path())
            .open(&oplog, None)
            .expect("open oplog");
        log.append(&[0xc1, 0xff, 0x00]).expect("append garbage");
    }
    let mut db = Database::load(dir.path(), &key, options).expect("load");
    db.call("op", &params(&[("kind", "PUT".into())]))
        .expect("call");
    let report = db.execute_pending().expect("execute");
    assert_eq!((report.processed, report.failed), (3, 2));
    let runaway = db
        .fetch_result(&oplog, 0)
        .expect("result")
        .expect("processed");
    assert!(
        runaway
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("time budget"),
        "{runaway:?}"
    );
    assert!(
        !db.fetch_result(&oplog, 1)
            .expect("result")
            .expect("processed")
            .success
    );
    assert_eq!(
        db.get("/ok").expect("get").map(|e| e.value),
        Some(Value::Bool(true))
    );
    assert_verified(&mut db);
}

#[test]
fn batched_calls_share_one_append_and_each_keeps_its_proofs() {
    let mut db = memory_db(KV, ExecutorBehavior::Normal);
    let local = db.local_oplog().expect("local oplog");
    let heads_before = db.oplog(&local).expect("oplog").signed_heads().len();
    let calls = [
        ("claim", params(&[])),
        ("put", params(&[("key", "a".into()), ("value", 1.into())])),
        // Refused by the method itself: no operation, an error for this call only.
        ("put", params(&[("key", 5.into()), ("value", 2.into())])),
        ("get", params(&[("key", "a".into())])),
        ("put", params(&[("key", "b".into()), ("value", 3.into())])),
    ];
    let calls: Vec<(&str, Value)> = calls.iter().map(|(m, p)| (*m, p.clone())).collect();
    let results = db.call_batch(&calls).expect("batch appended");
    assert_eq!(results.len(), 5);
    assert!(matches!(
        results[2],
        Err(vitra::database::DatabaseError::Contract(_))
    ));
    let txs: Vec<_> = results
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, r)| r.expect("call"))
        .collect();
    let seqs: Vec<u64> = txs
        .iter()
        .flat_map(|tx| tx.operations.iter().map(|op| op.seq))
        .collect();
    assert_eq!(seqs, [0, 1, 2], "claim, put a, put b in call order");
    assert!(txs[2].operations.is_empty(), "get emits nothing");
    let oplog = db.oplog(&local).expect("oplog");
    assert_eq!(oplog.len(), 3);
    assert_eq!(
        oplog.signed_heads().len(),
        heads_before + 1,
        "one append, one signed head for the whole batch"
    );
    for op in txs.iter().flat_map(|tx| &tx.operations) {
        assert_eq!(
            db.verify_inclusion_proof(&op.proof).expect("proof checks"),
            None,
            "proof of op {}",
            op.seq
        );
    }
    let results = db
        .when_processed(&txs[3], Duration::from_secs(30))
        .expect("processed");
    assert!(results[0].success);
    assert_eq!(
        db.get("/values/b").expect("get").map(|e| e.value),
        Some(Value::from(3))
    );
    assert!(db.is_processed(&txs[1]).expect("acks"));
    assert_verified(&mut db);
}
