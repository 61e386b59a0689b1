//! Model test: random appends, batches, truncations, checkpoints and reopens against a
//! `Vec<Vec<u8>>` reference, on disk and in memory. After every step the log's length, fork,
//! blocks, tree hash (recomputed independently from the blocks) and newest signed head agree
//! with the model.

use proptest::prelude::*;
use vitra::log::crypto::{leaf_hash, parent_hash, tree_hash};
use vitra::log::tree::full_roots;
use vitra::log::{Log, MemoryStorage, Node, OpenOptions, Storage};

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>),
    Batch(Vec<Vec<u8>>),
    Truncate(u8),
    Flush,
    Reopen,
    SmallCheckpoints,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Op::Append),
        3 => proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 0..12).prop_map(Op::Batch),
        1 => any::<u8>().prop_map(Op::Truncate),
        1 => Just(Op::Flush),
        2 => Just(Op::Reopen),
        1 => Just(Op::SmallCheckpoints),
    ]
}

/// The Merkle node over leaves `[start, start + count)`, computed directly from the blocks.
fn subtree(blocks: &[Vec<u8>], index: u64) -> Node {
    let depth = (!index).trailing_zeros();
    if depth == 0 {
        let b = &blocks[(index / 2) as usize];
        return Node {
            index,
            size: b.len() as u64,
            hash: leaf_hash(b),
        };
    }
    let half = 1u64 << (depth - 1);
    let l = subtree(blocks, index - half);
    let r = subtree(blocks, index + half);
    Node {
        index,
        size: l.size + r.size,
        hash: parent_hash(&l, &r),
    }
}

fn model_tree_hash(blocks: &[Vec<u8>]) -> [u8; 32] {
    let roots: Vec<Node> = full_roots(2 * blocks.len() as u64)
        .into_iter()
        .map(|i| subtree(blocks, i))
        .collect();
    tree_hash(&roots)
}

fn check(log: &Log, model: &[Vec<u8>], fork: u64) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.len(), model.len() as u64);
    prop_assert_eq!(log.fork(), fork);
    prop_assert_eq!(
        log.byte_len(),
        model.iter().map(|b| b.len() as u64).sum::<u64>()
    );
    for (i, b) in model.iter().enumerate() {
        prop_assert_eq!(log.get(i as u64).unwrap(), Some(b.clone()), "block {}", i);
    }
    prop_assert_eq!(log.get(model.len() as u64).unwrap(), None);
    prop_assert_eq!(
        log.tree_hash(model.len() as u64).unwrap(),
        model_tree_hash(model)
    );
    if !model.is_empty() {
        let head = log.signed_heads().last().unwrap();
        prop_assert_eq!((head.length, head.fork), (model.len() as u64, fork));
        prop_assert!(head.verify(&log.public_key()));
        // Older lengths' tree hashes too.
        let mid = model.len() / 2;
        prop_assert_eq!(
            log.tree_hash(mid as u64).unwrap(),
            model_tree_hash(&model[..mid])
        );
    }
    Ok(())
}

fn run(ops: Vec<Op>, disk: bool) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let storage = if disk {
        Storage::Disk(tmp.path().join("log"))
    } else {
        Storage::Memory(MemoryStorage::new())
    };
    let mut log = Log::create(storage.clone()).unwrap();
    let key = log.public_key();
    let mut model: Vec<Vec<u8>> = Vec::new();
    let mut fork = 0;
    let mut small = false;
    for op in ops {
        match op {
            Op::Append(b) => {
                prop_assert_eq!(log.append(&b).unwrap(), model.len() as u64 + 1);
                model.push(b);
            }
            Op::Batch(bs) => {
                let n = log.append_batch(&bs).unwrap();
                model.extend(bs);
                prop_assert_eq!(n, model.len() as u64);
            }
            Op::Truncate(t) => {
                let to = if model.is_empty() {
                    0
                } else {
                    t as usize % (model.len() + 1)
                };
                log.truncate(to as u64).unwrap();
                model.truncate(to);
                fork += 1;
            }
            Op::Flush => log.flush().unwrap(),
            Op::Reopen => {
                drop(log);
                log = Log::open(
                    storage.clone(),
                    OpenOptions {
                        checkpoint_bytes: small.then_some(64),
                        ..Default::default()
                    },
                )
                .unwrap();
                prop_assert_eq!(log.public_key(), key);
                prop_assert!(log.writable());
            }
            Op::SmallCheckpoints => {
                small = true;
                log.set_checkpoint_bytes(64);
            }
        }
        check(&log, &model, fork)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn memory_log_matches_vec_model(ops in proptest::collection::vec(op(), 1..25)) {
        run(ops, false)?;
    }

    #[test]
    fn disk_log_matches_vec_model(ops in proptest::collection::vec(op(), 1..25)) {
        run(ops, true)?;
    }
}

#[test]
fn log_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Log>();
}
