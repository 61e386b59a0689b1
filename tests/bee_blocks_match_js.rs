//! For the same operations, our bee writes byte-identical blocks to JS Hyperbee 1.10.1 on
//! JS Hypercore 10.31.9 (`compat-tests/bee-run.js`): single puts and dels, puts of JS `null`,
//! overwrites, splits and merges deep in the tree, and batches mixing all of them.

mod bee_support;

use std::time::Duration;

use bee_support::{apply, hex_blocks, op_json, run_node, scenario, Op};
use serde_json::json;
use vitra::bee::Bee;

fn check(scripts: Vec<Vec<Op>>) {
    let input = json!({"scripts": scripts.iter().map(|ops| json!({"ops": ops.iter().map(op_json).collect::<Vec<_>>()})).collect::<Vec<_>>()});
    let out = run_node("bee-run.js", &input, Duration::from_secs(120));
    let results = out["results"].as_array().expect("results");
    assert_eq!(results.len(), scripts.len());
    for (i, (ops, js)) in scripts.iter().zip(results).enumerate() {
        let js_blocks = hex_blocks(js);
        let mut bee = Bee::new(Vec::<Vec<u8>>::new());
        apply(&mut bee, ops);
        let ours = bee.into_log();
        let first_diff = ours.iter().zip(&js_blocks).position(|(a, b)| a != b);
        if let Some(d) = first_diff {
            panic!(
                "script {i}: block {d} differs\n ours: {}\n   js: {}",
                hex::encode(&ours[d]),
                hex::encode(&js_blocks[d])
            );
        }
        assert_eq!(
            ours.len(),
            js_blocks.len(),
            "script {i}: block counts differ"
        );
    }
}

#[test]
fn hand_written_edge_cases_match_js() {
    let k = |s: &str| s.as_bytes().to_vec();
    check(vec![
        // header only: a del on an empty bee writes the header, as JS does
        vec![Op::Del(k("a"))],
        // null put, empty value, overwrite, delete, delete of a missing key
        vec![
            Op::Put(k("a"), None),
            Op::Put(k("b"), Some(vec![])),
            Op::Put(k("a"), Some(vec![1])),
            Op::Del(k("a")),
            Op::Del(k("zz")),
            Op::Del(k("b")),
            Op::Put(k("c"), Some(vec![3])),
        ],
        // batch on an empty bee, with a null put that a later put moves out of its leaf
        vec![Op::Batch(
            (0..30)
                .map(|i| {
                    Op::Put(
                        format!("key{i:03}").into_bytes(),
                        if i == 3 { None } else { Some(vec![i as u8]) },
                    )
                })
                .collect(),
        )],
        // batch deleting what it put, and a batch that deletes everything
        vec![
            Op::Batch(
                (0..20)
                    .map(|i| Op::Put(vec![b'a' + i as u8], Some(vec![i as u8])))
                    .collect(),
            ),
            Op::Batch(
                (0..20)
                    .map(|i| Op::Del(vec![b'a' + ((i * 7) % 20) as u8]))
                    .collect(),
            ),
            Op::Put(k("after"), Some(vec![1])),
        ],
    ]);
}

#[test]
fn random_scenarios_match_js() {
    check((0..24).map(scenario).collect());
}
