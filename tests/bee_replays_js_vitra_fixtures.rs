//! Replaying the index operations of the JS Vitra 0.1.3 fixture databases through our bee
//! reproduces their index blocks byte for byte (genesis batch, ack + changes batches, a put of
//! `null`), and our reads of those JS-written indexes give what JS Vitra recorded in the
//! manifests: `expectedState` (gets), `indexList` (shallow listings) and `indexHistory`.

mod bee_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use vitra::bee::{key_to_path, path_to_key, Bee, HistoryKind, HistoryOptions};
use vitra::codec::{from_json, to_json, Value};

fn fixture_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/js-vitra");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("fixtures/js-vitra")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("blocks.json").is_file())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 5,
        "expected the JS Vitra fixtures in {}",
        root.display()
    );
    dirs
}

fn read_json(p: &Path) -> Json {
    serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("json")
}

fn index_blocks(dir: &Path) -> Vec<Vec<u8>> {
    read_json(&dir.join("blocks.json"))["index"]
        .as_array()
        .expect("index blocks")
        .iter()
        .map(|b| hex::decode(b["hex"].as_str().expect("hex")).expect("hex"))
        .collect()
}

/// Block number -> "put"/"del" for every change JS Vitra reported in the manifest.
fn change_types(manifest: &Json) -> HashMap<u64, String> {
    let mut m = HashMap::new();
    for call in manifest["calls"].as_array().into_iter().flatten() {
        for r in call["results"].as_array().into_iter().flatten() {
            for ch in r["changes"].as_array().into_iter().flatten() {
                if let (Some(seq), Some(t)) = (ch["seq"].as_u64(), ch["type"].as_str()) {
                    m.insert(seq, t.to_owned());
                }
            }
        }
    }
    m
}

#[test]
fn replayed_operations_rebuild_the_fixture_index_blocks() {
    for dir in fixture_dirs() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let blocks = index_blocks(&dir);
        let manifest = read_json(&dir.join("manifest.json"));
        let types = change_types(&manifest);

        // Batches: genesis is blocks 1..=`.sys/acks/genesis`; then each ack starts a batch of
        // 1 + numChanges blocks (VITRA-FORMAT.md sections 4 and 7). Any other block (the
        // `violation` fixture's forged write) was a write of its own.
        let nodes: Vec<_> = blocks[1..]
            .iter()
            .map(|b| vitra::bee::messages::decode_node(b).expect("fixture node"))
            .collect();
        let mut batches: Vec<Vec<(u64, &vitra::bee::NodeMessage)>> = Vec::new();
        let mut in_genesis = true;
        let mut room = 0u64;
        for (i, n) in nodes.iter().enumerate() {
            let seq = i as u64 + 1;
            if in_genesis {
                if batches.is_empty() {
                    batches.push(Vec::new());
                }
                in_genesis = n.key != b".sys\0acks\0genesis";
            } else if n.key.starts_with(b".sys\0acks\0") {
                let ack =
                    vitra::codec::decode(n.value.as_deref().expect("ack value")).expect("ack");
                room = match &ack {
                    Value::Object(o) => match o.get("numChanges") {
                        Some(Value::Number(c)) => *c as u64,
                        _ => 0,
                    },
                    _ => 0,
                };
                batches.push(Vec::new());
            } else if room == 0 {
                batches.push(Vec::new());
            } else {
                room -= 1;
            }
            batches.last_mut().unwrap().push((seq, n));
        }
        let mut bee = Bee::new(Vec::<Vec<u8>>::new());
        let mut dels = 0;
        for batch in &batches {
            let mut b = bee.batch();
            for (seq, n) in batch {
                let written = if types.get(seq).map(String::as_str) == Some("del") {
                    dels += 1;
                    b.del(&n.key).expect("del").expect("deleted key existed")
                } else {
                    b.put(&n.key, n.value.as_deref()).expect("put")
                };
                assert_eq!(
                    written,
                    *seq,
                    "{name}: block number of {}",
                    key_to_path(&n.key)
                );
            }
            b.flush().expect("flush");
        }
        let ours = bee.into_log();
        assert_eq!(ours.len(), blocks.len(), "{name}: block count");
        for (i, (a, b)) in ours.iter().zip(&blocks).enumerate() {
            assert_eq!(
                hex::encode(a),
                hex::encode(b),
                "{name}: index block {i} differs"
            );
        }
        eprintln!(
            "{name}: {} blocks in {} batches ({dels} dels) identical",
            blocks.len(),
            batches.len()
        );
    }
}

fn entry_json(
    seq: Option<u64>,
    container: bool,
    name: &str,
    path: &str,
    value: Option<Value>,
) -> Json {
    serde_json::json!({
        "container": container,
        "seq": seq.map_or(to_json(&Value::Undefined), Json::from),
        "name": name,
        "path": path,
        "value": to_json(&value.unwrap_or(Value::Undefined)),
    })
}

#[test]
fn reads_of_fixture_indexes_match_what_js_vitra_recorded() {
    for dir in fixture_dirs() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let manifest = read_json(&dir.join("manifest.json"));
        let bee = Bee::new(index_blocks(&dir));
        bee.check_header().expect("header");

        for (path, want) in manifest["expectedState"]
            .as_object()
            .expect("expectedState")
        {
            if from_json(want) == Value::Undefined {
                assert_eq!(
                    bee.get(&path_to_key(path)).expect("get"),
                    None,
                    "{name}: {path} must be absent"
                );
                continue;
            }
            let (e, v) = bee
                .get_value(&path_to_key(path))
                .expect("get")
                .unwrap_or_else(|| panic!("{name}: {path} missing"));
            assert_eq!(
                e.seq,
                want["seq"].as_u64().unwrap(),
                "{name}: seq of {path}"
            );
            assert_eq!(to_json(&v), want["value"], "{name}: value of {path}");
        }

        for (prefix, want) in manifest["indexList"].as_object().expect("indexList") {
            let got: Vec<Json> = bee
                .list(prefix)
                .expect("list")
                .into_iter()
                .map(|e| {
                    let v = if e.container && e.seq.is_none() {
                        None
                    } else {
                        Some(e.decode_value().expect("value"))
                    };
                    entry_json(e.seq, e.container, &e.name, &e.path, v)
                })
                .collect();
            assert_eq!(Json::Array(got), *want, "{name}: list({prefix})");
        }

        let history: Vec<_> = bee
            .history(HistoryOptions::default())
            .expect("history")
            .collect::<Result<_, _>>()
            .expect("history");
        let want = manifest["indexHistory"].as_array().expect("indexHistory");
        assert_eq!(history.len(), want.len(), "{name}: history length");
        for (h, w) in history.iter().zip(want) {
            let t = match h.kind {
                HistoryKind::Put => "put",
                HistoryKind::Del => "del",
            };
            assert_eq!(t, w["type"], "{name}: type of block {}", h.seq);
            assert_eq!(h.seq, w["seq"].as_u64().unwrap());
            assert_eq!(
                key_to_path(&h.key),
                w["path"],
                "{name}: path of block {}",
                h.seq
            );
            assert_eq!(
                h.decode_value().expect("value"),
                from_json(&w["value"]),
                "{name}: value of block {}",
                h.seq
            );
        }
    }
}
