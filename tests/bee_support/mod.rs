//! Shared helpers for the bee integration tests: op scripts, a tiny deterministic RNG, and
//! running the JS reference scripts in `compat-tests/` with a bounded timeout.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::{json, Value as Json};
use vitra::bee::{Bee, BlockLog};

/// One write operation.
#[derive(Debug, Clone)]
pub enum Op {
    Put(Vec<u8>, Option<Vec<u8>>),
    Del(Vec<u8>),
    Batch(Vec<Op>),
}

pub fn op_json(op: &Op) -> Json {
    match op {
        Op::Put(k, v) => {
            json!({"type": "put", "key": hex::encode(k), "value": v.as_ref().map(hex::encode)})
        }
        Op::Del(k) => json!({"type": "del", "key": hex::encode(k)}),
        Op::Batch(ops) => {
            json!({"type": "batch", "ops": ops.iter().map(op_json).collect::<Vec<_>>()})
        }
    }
}

/// Applies `ops` to `bee` the way the JS script does.
pub fn apply<L: BlockLog>(bee: &mut Bee<L>, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Put(k, v) => {
                bee.put(k, v.as_deref()).expect("put");
            }
            Op::Del(k) => {
                bee.del(k).expect("del");
            }
            Op::Batch(ops) => {
                let mut b = bee.batch();
                for o in ops {
                    match o {
                        Op::Put(k, v) => {
                            b.put(k, v.as_deref()).expect("batch put");
                        }
                        Op::Del(k) => {
                            b.del(k).expect("batch del");
                        }
                        Op::Batch(_) => panic!("nested batch"),
                    }
                }
                b.flush().expect("flush");
            }
        }
    }
}

/// xorshift64*: deterministic, dependency-free randomness for generated scenarios.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[path = "../support/node.rs"]
mod runner;

/// Runs `node compat-tests/<script>` with `input` on stdin and parses its JSON stdout.
pub fn run_node(script: &str, input: &Json, timeout: Duration) -> Json {
    let body = serde_json::to_vec(input).expect("json");
    let out = runner::run(script, &[], Some(body), timeout);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("JS side (node {script}) printed bad JSON ({e}): {out:.2000}"))
}

pub fn hex_blocks(j: &Json) -> Vec<Vec<u8>> {
    j["blocks"]
        .as_array()
        .expect("blocks array")
        .iter()
        .map(|h| hex::decode(h.as_str().expect("hex string")).expect("hex"))
        .collect()
}

// ---------------------------------------------------------------- generated scenarios

pub fn key(rng: &mut Rng, space: u64) -> Vec<u8> {
    // variable-length keys so that order is not just numeric order
    let n = rng.below(space);
    let mut k = format!("k{:x}", n * 2654435761 % 1_000_003).into_bytes();
    if n.is_multiple_of(7) {
        k.push(0);
        k.extend_from_slice(b"sub");
    }
    k
}

pub fn value(rng: &mut Rng) -> Option<Vec<u8>> {
    match rng.below(10) {
        0 => None,
        1 => Some(Vec::new()),
        _ => Some((0..rng.below(12)).map(|_| rng.below(256) as u8).collect()),
    }
}

pub fn single_op(rng: &mut Rng, space: u64, del_ratio: u64) -> Op {
    if rng.below(100) < del_ratio {
        Op::Del(key(rng, space))
    } else {
        Op::Put(key(rng, space), value(rng))
    }
}

/// A batch of `n` random ops. JS Hyperbee 1.x never releases its write lock after flushing a
/// batch that wrote nothing (every del missed), which hangs the next write; JS Vitra's batches
/// always hold an ack put, so every generated batch holds at least one put too.
pub fn batch(rng: &mut Rng, n: u64, space: u64, del_ratio: u64) -> Op {
    let mut ops: Vec<Op> = (0..n).map(|_| single_op(rng, space, del_ratio)).collect();
    if !ops.iter().any(|o| matches!(o, Op::Put(..))) {
        let at = rng.below(ops.len() as u64 + 1) as usize;
        ops.insert(at, Op::Put(key(rng, space), value(rng)));
    }
    Op::Batch(ops)
}

pub fn scenario(seed: u64) -> Vec<Op> {
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
