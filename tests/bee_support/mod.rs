//! Shared helpers for the bee integration tests: op scripts, a tiny deterministic RNG, and
//! running the JS reference scripts in `compat-tests/` with a bounded timeout.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

pub fn compat_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("compat-tests")
}

/// Runs `node compat-tests/<script>` with `input` on stdin and parses its JSON stdout.
/// Fails the test with a clear message when node or node_modules are missing, the script
/// fails, or it runs past `timeout`.
pub fn run_node(script: &str, input: &Json, timeout: Duration) -> Json {
    let dir = compat_dir();
    assert!(
        dir.join("node_modules").join("hyperbee").is_dir(),
        "compat-tests/node_modules is missing: run `npm ci` in {}",
        dir.display()
    );
    let mut child = Command::new("node")
        .arg(script)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `node` (is Node.js installed?): {e}"));
    let body = serde_json::to_vec(input).expect("json");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("JS side (node {script}) timed out after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    let out = out_t.join().unwrap_or_default();
    let err = err_t.join().unwrap_or_default();
    assert!(
        status.success(),
        "JS side (node {script}) failed with {status}: {err}"
    );
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("JS side (node {script}) printed bad JSON ({e}): {out}"))
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
