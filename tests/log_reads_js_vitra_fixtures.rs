//! Every block of every JS Vitra 0.1.3 fixture reads back equal to its `blocks.json`, the
//! cores' key pairs derive from `profiles/default`, and every recorded inclusion proof
//! (`rootHashAtBlock`, `rootHashSignature` for `blockSeq`) verifies against our tree.

#[path = "support/files.rs"]
mod files;
use files::copy_dir;

use std::path::{Path, PathBuf};

use serde_json::Value;
use vitra::log::{LogStore, SignatureScheme};

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/js-vitra");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("manifest.json").exists())
        .collect();
    out.sort();
    assert!(out.len() >= 5, "fixtures missing in {}", root.display());
    out
}

fn key(hex_str: &str) -> [u8; 32] {
    hex::decode(hex_str).unwrap().try_into().unwrap()
}

fn collect_proofs<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            if m.contains_key("vitraBlockInclusionProof") {
                out.push(v);
            }
            m.values().for_each(|x| collect_proofs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_proofs(x, out)),
        _ => {}
    }
}

#[test]
fn every_fixture_block_reads_back_byte_exact_and_keys_derive_from_profile() {
    for dir in fixtures() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(&dir, tmp.path());
        let store = LogStore::new(tmp.path());
        let blocks: Value =
            serde_json::from_slice(&std::fs::read(dir.join("blocks.json")).unwrap()).unwrap();
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        let mut logs = vec![(
            manifest["indexPubkey"].as_str().unwrap().to_string(),
            blocks["index"].as_array().unwrap().clone(),
        )];
        for (k, v) in blocks["oplogs"].as_object().unwrap() {
            logs.push((k.clone(), v.as_array().unwrap().clone()));
        }
        for (pk, expected) in logs {
            let log = store
                .open(&key(&pk), None)
                .unwrap_or_else(|e| panic!("{name}: open {pk}: {e}"));
            assert!(
                log.writable(),
                "{name}: key pair of {pk} not derived from profile"
            );
            assert_eq!(log.len(), expected.len() as u64, "{name}: length of {pk}");
            for b in &expected {
                let seq = b["seq"].as_u64().unwrap();
                let want = hex::decode(b["hex"].as_str().unwrap()).unwrap();
                let got = log.get(seq).unwrap();
                assert_eq!(
                    got.as_deref(),
                    Some(want.as_slice()),
                    "{name}: {pk} block {seq}"
                );
            }
            assert_eq!(log.get(expected.len() as u64).unwrap(), None);
            // The current head was signed with the pre-release scheme.
            let last = log.signed_heads().last().expect("a signed head");
            assert_eq!(last.length, log.len());
            assert_eq!(last.scheme, SignatureScheme::Legacy, "{name}: {pk}");
        }
    }
}

#[test]
fn every_recorded_inclusion_proof_verifies() {
    let mut checked = 0;
    for dir in fixtures() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(&dir, tmp.path());
        let store = LogStore::new(tmp.path());
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        let mut proofs = Vec::new();
        collect_proofs(&manifest, &mut proofs);
        for p in proofs {
            let pk = key(p["logPubkey"].as_str().unwrap());
            let seq = p["blockSeq"].as_u64().unwrap();
            let root: [u8; 32] = key(p["rootHashAtBlock"].as_str().unwrap());
            let sig = hex::decode(p["rootHashSignature"].as_str().unwrap()).unwrap();
            let log = store.open(&pk, None).unwrap();
            // A `latestProof` records `blockSeq = length` (0.1.3 passes the length as the seq)
            // and covers the head at that length; every other proof covers `blockSeq + 1`.
            let length = if seq == log.len() { seq } else { seq + 1 };
            assert_eq!(
                log.tree_hash(length).unwrap(),
                root,
                "{name}: tree hash of {} at {}",
                hex::encode(pk),
                length
            );
            assert!(
                log.verify_head(length, 0, &root, &sig, SignatureScheme::Legacy),
                "{name}: signature of {} at {}",
                hex::encode(pk),
                length
            );
            assert!(!log.verify_head(length, 0, &root, &sig, SignatureScheme::Compat));
            checked += 1;
        }
    }
    assert!(checked >= 60, "only {checked} proofs found");
}
