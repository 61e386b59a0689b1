//! The contracts of the JS Vitra 0.1.3 fixtures, driven through the calls recorded in each
//! fixture's manifest: method responses, emitted ops, `process` metadata, and the changes
//! (or ack errors) of every op must be what JS Vitra produced, and the index we build from
//! them must end in the fixture's state (seq numbers and shallow listings included).

use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use vitra::codec::{from_json, to_json, Object, Value};
use vitra::contract::{
    ApplyOutcome, Change, Contract, ContractHost, Limits, ListOptions, MemoryHost,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/js-vitra")
}

fn json_text(v: &Json) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Same value, same key order, same JSON spelling.
fn assert_same(ours: &Value, theirs: &Json, what: &str) {
    assert_eq!(
        json_text(&to_json(ours)),
        json_text(theirs),
        "{what}: ours (left) differs from JS Vitra's (right)"
    );
}

fn seq15(seq: u64) -> String {
    format!("{seq:015}")
}

struct Replay {
    host: MemoryHost,
    contract: Contract,
}

impl Replay {
    fn genesis(manifest: &Json, source: &str) -> Replay {
        let writer = manifest["executorOplogPubkey"].as_str().unwrap();
        let mut host = MemoryHost::new().with_local_writer(writer);
        host.put("/.sys/contract/source", Value::from(source));
        for key in manifest["oplogPubkeys"].as_array().unwrap() {
            let key = key.as_str().unwrap();
            host.add_oplog(key);
            host.put(
                &format!("/.sys/inputs/{key}"),
                Value::Object(
                    Object::new()
                        .with("pubkey", Value::Bytes(hex::decode(key).unwrap()))
                        .with("active", true),
                ),
            );
        }
        host.put("/.sys/acks/genesis", Value::Object(Object::new()));
        let contract =
            Contract::load(source, Limits::default(), &host).expect("fixture contract loads");
        Replay { host, contract }
    }

    fn run_call(&mut self, name: &str, call: &Json) {
        let method = call["method"].as_str().unwrap();
        if method == "(db.index.dangerousBatch)" {
            for entry in call["batch"].as_array().unwrap() {
                let path = entry["path"].as_str().unwrap();
                match entry["type"].as_str() {
                    Some("put") => self.host.put(path, from_json(&entry["value"])),
                    _ => self.host.del(path),
                };
            }
            return;
        }
        let params = from_json(&call["params"]);
        let what = format!("{name}: {method}({})", call["params"]);
        if let Some(err) = call.get("error") {
            let e = self
                .contract
                .call(method, &params, &self.host)
                .expect_err(&what);
            assert_eq!(format!("Error: {e}"), err.as_str().unwrap(), "{what}");
            return;
        }
        let out = self
            .contract
            .call(method, &params, &self.host)
            .expect(&what);
        assert_same(
            &out.response,
            &call["response"],
            &format!("{what} response"),
        );
        let ops = call["ops"].as_array().unwrap();
        assert_eq!(out.ops.len(), ops.len(), "{what}: number of emitted ops");
        let results = call["results"].as_array().cloned().unwrap_or_default();
        for ((op, recorded), result) in out.ops.iter().zip(ops).zip(&results) {
            assert_same(op, &recorded["value"], &format!("{what} emitted op"));
            let origin = recorded["oplog"].as_str().unwrap();
            let seq = recorded["seq"].as_u64().unwrap();
            let first = self.host.append_ops(origin, [op.clone()]);
            assert_eq!(first, seq, "{what}: op seq");
            self.execute(&what, origin, seq, op, result);
        }
    }

    /// What the executor does with one op, checked against the recorded result.
    fn execute(&mut self, what: &str, origin: &str, seq: u64, op: &Value, result: &Json) {
        let metadata = self.contract.process(op, &self.host).expect("process runs");
        assert_same(&metadata, &result["metadata"], &format!("{what} metadata"));
        let ts = result["ts"].as_f64().unwrap();
        let mut ack = Object::new()
            .with("success", Value::Undefined)
            .with("error", Value::Undefined)
            .with("origin", origin)
            .with("seq", Value::Number(seq as f64))
            .with("ts", Value::Number(ts))
            .with("metadata", metadata)
            .with("numChanges", 0);
        let outcome = self
            .contract
            .apply(op, &Value::Object(ack.clone()), &self.host)
            .expect("apply runs");
        let changes = match outcome {
            ApplyOutcome::Applied { changes } => {
                assert_eq!(
                    result["success"],
                    Json::Bool(true),
                    "{what}: JS Vitra failed this op"
                );
                ack.insert("success", Value::Bool(true));
                ack.insert("numChanges", Value::Number(changes.len() as f64));
                changes
            }
            ApplyOutcome::Rejected { error } => {
                assert_eq!(
                    result["success"],
                    Json::Bool(false),
                    "{what}: rejected with {error}"
                );
                assert_eq!(
                    Some(error.as_str()),
                    result["error"].as_str(),
                    "{what}: ack error"
                );
                ack.insert("success", Value::Bool(false));
                ack.insert("error", Value::String(error));
                Vec::new()
            }
        };
        let recorded = result["changes"].as_array().unwrap();
        assert_eq!(changes.len(), recorded.len(), "{what}: number of changes");
        let ack_seq = self.host.put(
            &format!("/.sys/acks/{origin}/{}", seq15(seq)),
            Value::Object(ack),
        );
        for (i, (ours, theirs)) in changes.iter().zip(recorded).enumerate() {
            assert_eq!(
                ours.path(),
                theirs["path"].as_str().unwrap(),
                "{what}: change path"
            );
            assert_eq!(
                theirs["seq"].as_u64(),
                Some(ack_seq + 1 + i as u64),
                "{what}: change seq"
            );
            match ours {
                Change::Put { value, .. } => {
                    assert_eq!(theirs["type"], "put", "{what}: change type");
                    assert_same(value, &theirs["value"], &format!("{what} change value"));
                }
                Change::Delete { .. } => assert_eq!(theirs["type"], "del", "{what}: change type"),
            }
        }
        self.host.apply_changes(&changes);
        if let Some(Change::Put { value, .. }) =
            changes.iter().find(|c| c.path() == "/.sys/contract/source")
        {
            let source = value.as_str().unwrap();
            self.contract =
                Contract::load(source, Limits::default(), &self.host).expect("new source loads");
        }
    }

    fn check_final_state(&self, name: &str, manifest: &Json) {
        assert_eq!(
            self.host.version(),
            manifest["indexLength"].as_u64().unwrap(),
            "{name}: index length"
        );
        for (prefix, entries) in manifest["indexList"].as_object().unwrap() {
            let ours = self.host.list(prefix, &ListOptions::default()).unwrap();
            let ours = Value::Array(ours.iter().map(|e| e.to_value()).collect());
            assert_same(&ours, entries, &format!("{name}: list {prefix}"));
        }
        for (path, entry) in manifest["expectedState"].as_object().unwrap() {
            let ours = self.host.get(path).unwrap().map(|e| e.to_value());
            assert_same(
                &ours.unwrap_or(Value::Undefined),
                entry,
                &format!("{name}: get {path}"),
            );
        }
    }
}

fn replay(name: &str) {
    let dir = fixtures().join(name);
    let manifest: Json =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let source_path = dir.join(manifest["contractSourcePath"].as_str().unwrap());
    let source = std::fs::read_to_string(&source_path).unwrap();
    let mut r = Replay::genesis(&manifest, &source);
    for call in manifest["calls"].as_array().unwrap() {
        r.run_call(name, call);
    }
    r.check_final_state(name, &manifest);
}

#[test]
fn counter_fixture_replays() {
    replay("counter");
}

#[test]
fn failed_op_fixture_replays_with_process_metadata_and_ack_error() {
    replay("failed-op-last");
}

#[test]
fn contract_update_fixture_replays_across_set_contract_source() {
    replay("contract-update");
}

#[test]
fn values_zoo_fixture_replays_every_value_kind() {
    replay("values-zoo");
}

#[test]
fn violation_fixture_replays_up_to_the_forced_batch() {
    replay("violation");
}

#[test]
fn every_fixture_contract_lists_its_methods() {
    let expect: &[(&str, &[&str])] = &[
        ("counter.js", &["get", "increment"]),
        ("failed-op.js", &["fail", "get", "succeed"]),
        ("contract-v1.js", &["get", "put", "setSource"]),
        ("contract-v2.js", &["getValue", "put", "putValue"]),
        ("zoo.js", &["read", "store"]),
    ];
    let host = MemoryHost::new();
    for (file, methods) in expect {
        let src = std::fs::read_to_string(fixtures().join("contracts").join(file)).unwrap();
        let c = Contract::load(&src, Limits::default(), &host).unwrap();
        assert_eq!(c.methods(), *methods, "{file}");
        assert!(c.has_apply(), "{file}");
        let shown: Vec<String> = c.signatures().iter().map(|s| s.to_string()).collect();
        let want: &[&str] = match *file {
            "counter.js" => &["get", "increment"],
            "failed-op.js" => &["fail {reason}", "get {path}", "succeed {value}"],
            "contract-v1.js" => &["get {path}", "put {path, value}", "setSource {code}"],
            "contract-v2.js" => &[
                "getValue {path}",
                "put {path, value}",
                "putValue {path, value}",
            ],
            _ => &["read {name}", "store {name, value}"],
        };
        assert_eq!(shown, want, "{file}: vitra methods");
        assert_eq!(c.has_process(), *file == "failed-op.js", "{file}");
    }
}
