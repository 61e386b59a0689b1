//! Proofs cross the implementations: JS Hypercore 10.31/10.38 verify and apply proofs this
//! crate created, and this crate verifies and applies proofs JS created, byte-identical on the
//! wire for the same request.

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use vitra::log::proof::{RequestBlock, RequestSeek, RequestUpgrade};
use vitra::log::{Log, MemoryStorage, OpenOptions, Proof, ProofRequest, Storage};

const VERSIONS: [&str; 2] = ["10-31", "10-38"];
const TIMEOUT: Duration = Duration::from_secs(60);

fn block(i: u64) -> Vec<u8> {
    format!("proof-block-{i}-{}", "y".repeat((i * 7 % 50) as usize)).into_bytes()
}

/// The requests a fresh replica would send, in order: a seek with an upgrade to the full
/// length, then blocks and a hash with the `nodes` counts the replica's state calls for (worked
/// out on a scratch Rust replica fed our own proofs).
fn requests(w: &Log) -> Vec<ProofRequest> {
    let mut scratch =
        Log::create_replica(Storage::Memory(MemoryStorage::new()), w.public_key()).unwrap();
    let mut out = vec![ProofRequest {
        seek: Some(RequestSeek {
            bytes: 500,
            padding: 0,
        }),
        upgrade: Some(RequestUpgrade {
            start: 0,
            length: 31,
        }),
        ..Default::default()
    }];
    scratch
        .verify_and_apply_proof(&w.create_proof(&out[0]).unwrap())
        .unwrap();
    for (is_block, index) in [(true, 3u64), (false, 9), (true, 20), (true, 5), (true, 30)] {
        let flat = if is_block { 2 * index } else { index };
        let rb = RequestBlock {
            index,
            nodes: scratch.missing_nodes(flat).unwrap(),
        };
        let req = if is_block {
            ProofRequest {
                block: Some(rb),
                ..Default::default()
            }
        } else {
            ProofRequest {
                hash: Some(rb),
                ..Default::default()
            }
        };
        scratch
            .verify_and_apply_proof(&w.create_proof(&req).unwrap())
            .unwrap();
        out.push(req);
    }
    out
}

#[test]
fn js_applies_rust_proofs_and_rust_applies_js_proofs_identically() {
    for version in VERSIONS {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("core");
        let mut w = Log::create(Storage::Disk(dir.clone())).unwrap();
        for chunk in (0..31u64).collect::<Vec<_>>().chunks(4) {
            let batch: Vec<Vec<u8>> = chunk.iter().map(|&i| block(i)).collect();
            w.append_batch(&batch).unwrap();
        }
        let reqs = requests(&w);
        let ours: Vec<Proof> = reqs.iter().map(|r| w.create_proof(r).unwrap()).collect();
        // JS answers the same requests from the same files.
        let dir_s = dir.to_string_lossy().to_string();
        let req_hex: Vec<String> = reqs
            .iter()
            .enumerate()
            .map(|(i, r)| hex::encode(r.encode(i as u64)))
            .collect();
        let mut args = vec![version, "prove", dir_s.as_str()];
        args.extend(req_hex.iter().map(|s| s.as_str()));
        let out = common::node::run_node("proof-compat.js", &args, TIMEOUT);
        let theirs: Vec<Vec<u8>> = out
            .lines()
            .map(|l| hex::decode(l.trim()).unwrap())
            .collect();
        assert_eq!(theirs.len(), ours.len(), "{version}");
        for (i, (t, o)) in theirs.iter().zip(&ours).enumerate() {
            assert_eq!(
                hex::encode(t),
                hex::encode(o.encode(i as u64)),
                "{version}: proof {i} differs"
            );
        }
        // Rust replica applies JS proofs.
        let mut r =
            Log::create_replica(Storage::Memory(MemoryStorage::new()), w.public_key()).unwrap();
        for (i, t) in theirs.iter().enumerate() {
            let (_, p) = Proof::decode(t).unwrap();
            r.verify_and_apply_proof(&p)
                .unwrap_or_else(|e| panic!("{version}: JS proof {i} rejected: {e}"));
        }
        assert_eq!(r.len(), 31);
        assert_eq!(r.get(3).unwrap(), Some(block(3)));
        assert_eq!(r.get(20).unwrap(), Some(block(20)));
        assert_eq!(r.get(5).unwrap(), Some(block(5)));
        assert_eq!(r.get(30).unwrap(), Some(block(30)));
        // JS replica applies ours.
        let key = hex::encode(w.public_key());
        let data_hex: Vec<String> = ours
            .iter()
            .enumerate()
            .map(|(i, p)| hex::encode(p.encode(i as u64)))
            .collect();
        let mut args = vec![version, "verify", key.as_str()];
        args.extend(data_hex.iter().map(|s| s.as_str()));
        let out = common::node::run_node("proof-compat.js", &args, TIMEOUT);
        let state: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(
            state["results"],
            json!([true, true, true, true, true, true]),
            "{version}: {state}"
        );
        assert_eq!(state["length"], json!(31));
        assert_eq!(state["treeHash"], hex::encode(w.tree_hash(31).unwrap()));
        assert_eq!(state["blocks"][3], hex::encode(block(3)));
        assert_eq!(state["blocks"][20], hex::encode(block(20)));
        drop(w);
        let w = Log::open(Storage::Disk(dir), OpenOptions::default()).unwrap();
        assert_eq!(w.len(), 31);
    }
}
