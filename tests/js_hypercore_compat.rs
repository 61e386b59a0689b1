//! JS Hypercore 10.31.9 and 10.38.2 open logs this crate wrote (and append to them), and this
//! crate opens logs they wrote (and appends to them), both ways, with truncations.

#[path = "support/files.rs"]
mod files;
use files::copy_dir;

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use vitra::log::{Log, OpenOptions, SignatureScheme, Storage};

const VERSIONS: [&str; 2] = ["10-31", "10-38"];
const TIMEOUT: Duration = Duration::from_secs(60);

fn js(version: &str, cmd: &str, dir: &std::path::Path, spec: Option<&Value>) -> Value {
    let d = dir.to_string_lossy().to_string();
    let spec_s = spec.map(|s| s.to_string());
    let mut args = vec![version, cmd, d.as_str()];
    if let Some(s) = &spec_s {
        args.push(s.as_str());
    }
    let out = common::node::run_node("log-compat.js", &args, TIMEOUT);
    serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("JS side printed bad JSON ({e}): {out}"))
}

fn block(i: usize) -> Vec<u8> {
    // Sizes vary from 0 to ~300 bytes so byte offsets matter.
    (0..(i * 37) % 301).map(|j| (i * 7 + j) as u8).collect()
}

fn hexes(blocks: &[Vec<u8>]) -> Vec<String> {
    blocks.iter().map(hex::encode).collect()
}

fn assert_js_state(version: &str, state: &Value, log: &Log, expected: &[Vec<u8>]) {
    assert_eq!(
        state["key"],
        hex::encode(log.public_key()),
        "{version}: key"
    );
    assert_eq!(
        state["discoveryKey"],
        hex::encode(log.discovery_key()),
        "{version}: dk"
    );
    assert_eq!(state["length"], json!(expected.len()), "{version}: length");
    assert_eq!(state["fork"], json!(log.fork()), "{version}: fork");
    assert_eq!(
        state["byteLength"],
        json!(log.byte_len()),
        "{version}: byteLength"
    );
    assert_eq!(
        state["treeHash"],
        hex::encode(log.tree_hash(log.len()).unwrap())
    );
    assert_eq!(
        state["signatureValid"],
        json!(true),
        "{version}: JS rejects our signature"
    );
    assert_eq!(state["blocks"], json!(hexes(expected)), "{version}: blocks");
}

#[test]
fn js_reads_and_extends_a_rust_log() {
    for version in VERSIONS {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("core");
        let mut expected: Vec<Vec<u8>> = Vec::new();
        let public_key;
        {
            let mut log = Log::create(Storage::Disk(dir.clone())).unwrap();
            public_key = log.public_key();
            log.append(&block(0)).unwrap();
            let batch: Vec<Vec<u8>> = (1..20).map(block).collect();
            log.append_batch(&batch).unwrap();
            expected.push(block(0));
            expected.extend(batch);
            log.flush().unwrap(); // some state in tree/bitfield files, some only in the oplog
            let batch: Vec<Vec<u8>> = (20..33).map(block).collect();
            log.append_batch(&batch).unwrap();
            expected.extend(batch);
            log.truncate(27).unwrap();
            expected.truncate(27);
            let batch: Vec<Vec<u8>> = (100..105).map(block).collect();
            log.append_batch(&batch).unwrap();
            expected.extend(batch);
            let state = js(version, "read", &dir, None);
            assert_js_state(version, &state, &log, &expected);
            assert_eq!(
                state["writable"],
                json!(true),
                "{version}: JS sees no secret key"
            );
        }
        // JS appends and truncates; we reopen and read everything back.
        let js_blocks: Vec<Vec<u8>> = (200..210).map(block).collect();
        let spec = json!({"ops": [["append", hexes(&js_blocks)], ["truncate", 35], ["append", [hex::encode(b"js")]]]});
        let state = js(version, "append", &dir, Some(&spec));
        expected.extend(js_blocks);
        expected.truncate(35);
        expected.push(b"js".to_vec());
        let log = Log::open(Storage::Disk(dir.clone()), OpenOptions::default()).unwrap();
        assert_eq!(log.public_key(), public_key);
        assert!(log.writable());
        assert_eq!(
            log.fork(),
            2,
            "{version}: fork after our and JS's truncation"
        );
        assert_eq!(state["fork"], json!(2));
        assert_eq!(log.len(), expected.len() as u64);
        for (i, b) in expected.iter().enumerate() {
            assert_eq!(
                log.get(i as u64).unwrap().as_deref(),
                Some(b.as_slice()),
                "{version}: block {i}"
            );
        }
        let last = log.signed_heads().last().unwrap();
        assert_eq!(
            (last.length, last.fork, last.scheme),
            (36, 2, SignatureScheme::Compat)
        );
        assert!(last.verify(&log.public_key()));
    }
}

#[test]
fn rust_reads_and_extends_a_js_log() {
    for version in VERSIONS {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("core");
        let first: Vec<Vec<u8>> = (0..25).map(block).collect();
        let second: Vec<Vec<u8>> = (50..60).map(block).collect();
        let spec = json!({"ops": [
            ["append", hexes(&first[..1])],
            ["append", hexes(&first[1..])],
            ["truncate", 18],
            ["append", hexes(&second)]
        ]});
        let state = js(version, "write", &dir, Some(&spec));
        let mut expected: Vec<Vec<u8>> = first[..18].to_vec();
        expected.extend(second.clone());
        {
            let mut log = Log::open(Storage::Disk(dir.clone()), OpenOptions::default()).unwrap();
            assert_eq!(state["key"], hex::encode(log.public_key()), "{version}");
            // 10.38 writes manifest version 1 headers, 10.31 version 0.
            let manifest_version = log.header().manifest.as_ref().map(|m| m.version);
            let want = if version == "10-38" { 1 } else { 0 };
            assert_eq!(manifest_version, Some(want), "{version}: manifest version");
            assert_eq!(log.len(), expected.len() as u64, "{version}");
            assert_eq!(log.fork(), 1, "{version}");
            assert_eq!(
                state["treeHash"],
                hex::encode(log.tree_hash(log.len()).unwrap())
            );
            for (i, b) in expected.iter().enumerate() {
                assert_eq!(
                    log.get(i as u64).unwrap().as_deref(),
                    Some(b.as_slice()),
                    "{version}: block {i}"
                );
            }
            assert!(log.writable(), "{version}: secret key from the JS header");
            let more: Vec<Vec<u8>> = (300..340).map(block).collect();
            log.append_batch(&more).unwrap();
            expected.extend(more);
            log.truncate(40).unwrap();
            expected.truncate(40);
            log.append(b"rust").unwrap();
            expected.push(b"rust".to_vec());
            let state = js(version, "read", &dir, None);
            assert_js_state(version, &state, &log, &expected);
        }
    }
}

#[test]
fn js_reads_an_empty_and_a_fully_truncated_rust_log() {
    for version in VERSIONS {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("core");
        let mut log = Log::create(Storage::Disk(dir.clone())).unwrap();
        let state = js(version, "read", &dir, None);
        assert_eq!(state["length"], json!(0));
        assert_eq!(state["key"], hex::encode(log.public_key()));
        log.append_batch(&[b"a".to_vec(), b"b".to_vec()]).unwrap();
        log.truncate(0).unwrap();
        let state = js(version, "read", &dir, None);
        assert_eq!(
            (state["length"].clone(), state["fork"].clone()),
            (json!(0), json!(1))
        );
    }
}

/// A power cut after an append wrote its oplog entry but before its blocks reached the disk:
/// reopening drops that (never acknowledged) entry, and JS then reads exactly the appends
/// that returned, and can extend the log.
#[test]
fn js_reads_a_rust_log_after_a_power_cut_lost_unsynced_blocks() {
    for version in VERSIONS {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("core");
        let mut expected: Vec<Vec<u8>> = (0..12).map(block).collect();
        let acknowledged_bytes;
        {
            let mut log = Log::create(Storage::Disk(dir.clone())).unwrap();
            log.append_batch(&expected[..7]).unwrap();
            log.flush().unwrap();
            log.append_batch(&expected[7..]).unwrap();
            acknowledged_bytes = log.byte_len();
            // The append the power cut interrupted: its entry is in the oplog, its blocks
            // are lost (the data file ends where the last acknowledged append ended).
            log.append_batch(&[block(40), block(41)]).unwrap();
        }
        let data = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("data"))
            .unwrap();
        data.set_len(acknowledged_bytes).unwrap();
        drop(data);
        let log = Log::open(Storage::Disk(dir.clone()), OpenOptions::default()).unwrap();
        assert_eq!(log.len(), expected.len() as u64, "{version}: length");
        let state = js(version, "read", &dir, None);
        assert_js_state(version, &state, &log, &expected);
        drop(log);
        let spec = json!({"ops": [["append", [hex::encode(b"after")]]]});
        let state = js(version, "append", &dir, Some(&spec));
        expected.push(b"after".to_vec());
        let log = Log::open(Storage::Disk(dir.clone()), OpenOptions::default()).unwrap();
        assert_js_state(version, &state, &log, &expected);
        assert_eq!(log.get(12).unwrap().as_deref(), Some(b"after".as_slice()));
    }
}

#[test]
fn js_reads_a_js_vitra_core_that_rust_extended() {
    use vitra::log::LogStore;
    for version in VERSIONS {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/js-vitra/counter"),
            tmp.path(),
        );
        let store = LogStore::new(tmp.path());
        for dk in store.discovery_keys().unwrap() {
            let mut log = store.open_by_discovery_key(&dk).unwrap();
            let mut expected: Vec<Vec<u8>> = (0..log.len())
                .map(|i| log.get(i).unwrap().unwrap())
                .collect();
            log.append(b"rust was here").unwrap();
            expected.push(b"rust was here".to_vec());
            let dir = store.dir_for_discovery_key(&dk);
            let state = js(version, "read", &dir, None);
            assert_js_state(version, &state, &log, &expected);
        }
    }
}
