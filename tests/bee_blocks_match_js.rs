//! For the same operations, our bee writes byte-identical blocks to JS Hyperbee 1.10.1 on
//! JS Hypercore 10.31.9 (`compat-tests/bee-run.js`): single puts and dels, puts of JS `null`,
//! overwrites, splits and merges deep in the tree, and batches mixing all of them.

mod bee_support;

use std::time::Duration;

use bee_support::{apply, hex_blocks, op_json, run_node, Op, Rng};
use serde_json::json;
use vitra::bee::Bee;

fn key(rng: &mut Rng, space: u64) -> Vec<u8> {
    // variable-length keys so that order is not just numeric order
    let n = rng.below(space);
    let mut k = format!("k{:x}", n * 2654435761 % 1_000_003).into_bytes();
    if n.is_multiple_of(7) {
        k.push(0);
        k.extend_from_slice(b"sub");
    }
    k
}

fn value(rng: &mut Rng) -> Option<Vec<u8>> {
    match rng.below(10) {
        0 => None,
        1 => Some(Vec::new()),
        _ => Some((0..rng.below(12)).map(|_| rng.below(256) as u8).collect()),
    }
}

fn single_op(rng: &mut Rng, space: u64, del_ratio: u64) -> Op {
    if rng.below(100) < del_ratio {
        Op::Del(key(rng, space))
    } else {
        Op::Put(key(rng, space), value(rng))
    }
}

/// A batch of `n` random ops. JS Hyperbee 1.x never releases its write lock after flushing a
/// batch that wrote nothing (every del missed), which hangs the next write; JS Vitra's batches
/// always hold an ack put, so every generated batch holds at least one put too.
fn batch(rng: &mut Rng, n: u64, space: u64, del_ratio: u64) -> Op {
    let mut ops: Vec<Op> = (0..n).map(|_| single_op(rng, space, del_ratio)).collect();
    if !ops.iter().any(|o| matches!(o, Op::Put(..))) {
        let at = rng.below(ops.len() as u64 + 1) as usize;
        ops.insert(at, Op::Put(key(rng, space), value(rng)));
    }
    Op::Batch(ops)
}

fn scenario(seed: u64) -> Vec<Op> {
    let mut rng = Rng(seed * 0x9E37_79B9 + 17);
    let space = [8, 40, 300, 2000][(seed % 4) as usize];
    let mut ops = Vec::new();
    // grow
    let grow = 50 + rng.below(400);
    for _ in 0..grow {
        if rng.below(4) == 0 {
            let n = 1 + rng.below(30);
            ops.push(batch(&mut rng, n, space, 15));
        } else {
            ops.push(single_op(&mut rng, space, 10));
        }
    }
    // shrink: deletes dominate, so nodes borrow, merge and the root shrinks
    let shrink = 50 + rng.below(400);
    for _ in 0..shrink {
        if rng.below(3) == 0 {
            let n = 1 + rng.below(40);
            ops.push(batch(&mut rng, n, space, 70));
        } else {
            ops.push(single_op(&mut rng, space, 80));
        }
    }
    ops
}

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
