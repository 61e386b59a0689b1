//! Databases written by the real JS Vitra 0.1.3: we read the same state, reach the same
//! verification outcome (the same fraud code for `violation`), and re-executing their oplogs
//! with their own ack timestamps writes their index blocks byte for byte.

mod support;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use support::{blocks, copy_fixture, key, manifest};
use vitra::codec::from_json;
use vitra::database::{Database, Location, Options, Verdict};
use vitra::log::{Log, LogStore, MemoryStorage, Storage};
use vitra::proof::FraudProof;

const FIXTURES: &[&str] = &[
    "counter",
    "contract-update",
    "failed-op-last",
    "values-zoo",
    "violation",
];
const HONEST: &[&str] = &["counter", "contract-update", "failed-op-last", "values-zoo"];

#[test]
fn fixture_state_reads_back_as_js_vitra_reported_it() {
    for name in FIXTURES {
        let m = manifest(name);
        let dir = copy_fixture(name);
        let db = Database::load(
            dir.path(),
            &key(m["indexPubkey"].as_str().expect("key")),
            Options::default(),
        )
        .unwrap_or_else(|e| panic!("{name}: cannot load: {e}"));
        assert_eq!(
            db.index_len(),
            m["indexLength"].as_u64().expect("length"),
            "{name}: index length"
        );
        for (path, expected) in m["expectedState"].as_object().expect("expectedState") {
            let found = db.get(path).expect("get");
            if expected.get("$undefined").is_some() {
                assert_eq!(found, None, "{name}: {path} must not exist");
                continue;
            }
            let entry = found.unwrap_or_else(|| panic!("{name}: {path} missing"));
            assert_eq!(
                entry.seq,
                expected["seq"].as_u64().expect("seq"),
                "{name}: seq of {path}"
            );
            assert_eq!(
                entry.value,
                from_json(&expected["value"]),
                "{name}: value of {path}"
            );
            assert_eq!(
                entry.to_json()["name"],
                expected["name"],
                "{name}: name of {path}"
            );
        }
    }
}

#[test]
fn fixture_verification_matches_js_vitra() {
    for name in FIXTURES {
        let m = manifest(name);
        let dir = copy_fixture(name);
        let mut db = Database::load(
            dir.path(),
            &key(m["indexPubkey"].as_str().expect("key")),
            Options::default(),
        )
        .expect("load");
        let verdict = db
            .verify()
            .unwrap_or_else(|e| panic!("{name}: verify failed to run: {e}"));
        if m["verify"]["passed"].as_bool() == Some(true) {
            assert!(
                matches!(verdict, Verdict::Verified { .. }),
                "{name}: expected to verify, got {verdict:?}"
            );
        } else {
            let expected = m["verify"]["fraudProof"]["details"]["code"]
                .as_str()
                .expect("code");
            match verdict {
                Verdict::Fraud(proof) => match *proof {
                    FraudProof::Contract(p) => {
                        assert_eq!(p.details.code.as_str(), expected, "{name}: fraud code");
                        let js_entry = &m["verify"]["fraudProof"]["details"]["data"]["entry"];
                        assert_eq!(
                            &p.details.data["entry"], js_entry,
                            "{name}: the offending entry"
                        );
                    }
                    other => panic!("{name}: expected a contract fraud proof, got {other:?}"),
                },
                other => panic!("{name}: expected fraud, got {other:?}"),
            }
        }
    }
}

#[test]
fn re_executing_fixture_oplogs_writes_js_vitra_index_blocks() {
    for name in HONEST {
        let m = manifest(name);
        let b = blocks(name);
        let dir = copy_fixture(name);
        let store = LogStore::new(dir.path());
        // The genesis source (index block 1), not the current one: contracts can replace it.
        let genesis = Database::load(
            dir.path(),
            &key(m["indexPubkey"].as_str().expect("key")),
            Options::default(),
        )
        .expect("load")
        .history()
        .expect("history")
        .remove(0);
        let source = genesis.value.as_str().expect("a source string").to_owned();
        let oplogs: Vec<Log> = m["oplogPubkeys"]
            .as_array()
            .expect("oplogs")
            .iter()
            .map(|k| {
                store
                    .open(&key(k.as_str().expect("hex")), None)
                    .expect("open oplog")
            })
            .collect();
        // The fixture's own ack timestamps, in index order.
        let ts: VecDeque<f64> = m["indexHistory"]
            .as_array()
            .expect("history")
            .iter()
            .filter(|e| {
                let path = e["path"].as_str().unwrap_or_default();
                path.starts_with("/.sys/acks/") && path != "/.sys/acks/genesis"
            })
            .map(|e| e["value"]["ts"].as_f64().expect("ts"))
            .collect();
        let ts = Rc::new(RefCell::new(ts));
        let index = Log::create(Storage::Memory(MemoryStorage::default())).expect("index");
        let mut db = Database::create_with_logs(
            Location::Memory,
            None,
            index,
            oplogs,
            &source,
            Options::default(),
        )
        .expect("create");
        let clock = ts.clone();
        db.set_clock(move || clock.borrow_mut().pop_front().unwrap_or(0.0));
        db.execute_pending()
            .unwrap_or_else(|e| panic!("{name}: execute: {e}"));
        assert!(
            ts.borrow().is_empty(),
            "{name}: every recorded ack was reproduced"
        );

        let expected = b["index"].as_array().expect("index blocks");
        if db.index_len() != expected.len() as u64 {
            for e in db.history().expect("history") {
                eprintln!("{name} ours: {} {:?} {} {}", e.seq, e.kind, e.path, e.value);
            }
        }
        assert_eq!(
            db.index_len(),
            expected.len() as u64,
            "{name}: number of index blocks"
        );
        for (i, block) in expected.iter().enumerate() {
            let ours = hex::encode(
                db.index_log()
                    .get(i as u64)
                    .expect("read")
                    .expect("present"),
            );
            assert_eq!(
                ours,
                block["hex"].as_str().expect("hex"),
                "{name}: index block {i}"
            );
        }
    }
}
