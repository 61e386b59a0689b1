//! Proofs created by one log verify on a replica (block, hash, seek, upgrade, additional
//! nodes), survive the wire encoding, fill a replica that then reopens, anchor to older signed
//! heads, and tampered proofs are rejected with a typed error.

use vitra::log::proof::{
    inclusion_request, verify_remote, verify_remote_prefix, RequestBlock, RequestSeek,
    RequestUpgrade,
};
use vitra::log::{Log, LogError, MemoryStorage, OpenOptions, Proof, ProofRequest, Storage};

fn block(i: u64) -> Vec<u8> {
    format!("block-{i}-{}", "x".repeat((i % 13) as usize)).into_bytes()
}

fn writer(n: u64) -> Log {
    let mut log = Log::create(Storage::Memory(MemoryStorage::new())).unwrap();
    let mut i = 0;
    while i < n {
        let batch: Vec<Vec<u8>> = (i..(i + 7).min(n)).map(block).collect();
        i += batch.len() as u64;
        log.append_batch(&batch).unwrap();
    }
    log
}

/// An empty in-memory replica of `w`.
fn memory_replica(w: &Log) -> Log {
    Log::create_replica(Storage::Memory(MemoryStorage::new()), w.public_key()).unwrap()
}

/// `w`'s proof of an upgrade from `start` to `start + length` (no block).
fn upgrade_proof(w: &Log, start: u64, length: u64) -> Proof {
    w.create_proof(&ProofRequest {
        upgrade: Some(RequestUpgrade { start, length }),
        ..Default::default()
    })
    .unwrap()
}

/// `w`'s proof of block `i`, leaving out the tree nodes replica `r` already has.
fn block_proof(w: &Log, r: &Log, i: u64) -> Proof {
    let nodes = r.missing_nodes(2 * i).unwrap();
    w.create_proof(&ProofRequest {
        block: Some(RequestBlock { index: i, nodes }),
        ..Default::default()
    })
    .unwrap()
}

fn wire(p: &Proof) -> Proof {
    let (id, back) = Proof::decode(&p.encode(42)).unwrap();
    assert_eq!(id, 42);
    assert_eq!(&back, p);
    back
}

#[test]
fn replica_follows_writer_through_upgrades_blocks_and_reopen() {
    let w = writer(45);
    let storage = MemoryStorage::new();
    let mut r = Log::create_replica(Storage::Memory(storage.clone()), w.public_key()).unwrap();
    // Upgrade to 20 with block 3.
    let req = ProofRequest {
        block: Some(RequestBlock { index: 3, nodes: 0 }),
        upgrade: Some(RequestUpgrade {
            start: 0,
            length: 20,
        }),
        ..Default::default()
    };
    let p = wire(&w.create_proof(&req).unwrap());
    let v = r.verify_and_apply_proof(&p).unwrap();
    // Additional nodes take the replica to the writer's full signed head.
    assert_eq!(v.head.as_ref().unwrap().length, 45);
    assert_eq!(r.len(), 45);
    assert_eq!(r.tree_hash(45).unwrap(), w.tree_hash(45).unwrap());
    assert_eq!(r.get(3).unwrap(), Some(block(3)));
    assert_eq!(r.get(4).unwrap(), None);
    // Every other block, with the replica's knowledge of the tree (nodes: 0 and more).
    for i in (0..45).filter(|&i| i != 3) {
        let p = wire(&block_proof(&w, &r, i));
        r.verify_and_apply_proof(&p).unwrap();
        assert_eq!(r.get(i).unwrap(), Some(block(i)), "block {i}");
    }
    drop(r);
    let r = Log::open(Storage::Memory(storage), OpenOptions::default()).unwrap();
    assert!(!r.writable());
    assert_eq!(r.len(), 45);
    for i in 0..45 {
        assert_eq!(r.get(i).unwrap(), Some(block(i)));
    }
    assert_eq!(r.signed_heads().last().unwrap().length, 45);
}

#[test]
fn upgrade_from_a_partial_replica_and_hash_and_seek_proofs() {
    let mut w = writer(10);
    let mut r = memory_replica(&w);
    let p = upgrade_proof(&w, 0, 10);
    r.verify_and_apply_proof(&wire(&p)).unwrap();
    assert_eq!(r.len(), 10);
    let more: Vec<Vec<u8>> = (10..33).map(block).collect();
    w.append_batch(&more).unwrap();
    // Upgrade 10 -> 33 with a block inside the new range.
    let p = w
        .create_proof(&ProofRequest {
            block: Some(RequestBlock {
                index: 25,
                nodes: 0,
            }),
            upgrade: Some(RequestUpgrade {
                start: 10,
                length: 23,
            }),
            ..Default::default()
        })
        .unwrap();
    r.verify_and_apply_proof(&wire(&p)).unwrap();
    assert_eq!(r.len(), 33);
    assert_eq!(r.get(25).unwrap(), Some(block(25)));
    // A hash proof for a parent node.
    let p = w
        .create_proof(&ProofRequest {
            hash: Some(RequestBlock {
                index: 5,
                nodes: r.missing_nodes(5).unwrap(),
            }),
            ..Default::default()
        })
        .unwrap();
    r.verify_and_apply_proof(&wire(&p)).unwrap();
    assert_eq!(r.node(5).unwrap(), w.node(5).unwrap());
    // A seek proof with an upgrade: the path to the block holding byte offset 100.
    let mut fresh = memory_replica(&w);
    let p = w
        .create_proof(&ProofRequest {
            seek: Some(RequestSeek {
                bytes: 100,
                padding: 0,
            }),
            upgrade: Some(RequestUpgrade {
                start: 0,
                length: 33,
            }),
            ..Default::default()
        })
        .unwrap();
    assert!(p.seek.is_some());
    fresh.verify_and_apply_proof(&wire(&p)).unwrap();
    assert_eq!(fresh.len(), 33);
    // The seek path is stored: the leaf holding byte 100 is now known to the replica.
    let mut offset = 0;
    let mut seq = 0;
    while offset + block(seq).len() as u64 <= 100 {
        offset += block(seq).len() as u64;
        seq += 1;
    }
    assert_eq!(fresh.node(2 * seq).unwrap(), w.node(2 * seq).unwrap());
}

#[test]
fn inclusion_proof_anchored_to_an_older_signed_head_verifies_remotely() {
    let w = writer(30);
    // Heads exist at 7, 14, 21, 28, 30 (batches of 7).
    for (seq, length) in [(0, 7), (6, 7), (10, 14), (27, 28), (29, 30)] {
        let p = w
            .create_proof_at(&inclusion_request(seq, length), length)
            .unwrap();
        let v = verify_remote(&w.public_key(), &wire(&p)).unwrap();
        let head = v.head.unwrap();
        assert_eq!(head.length, length);
        assert_eq!(head.tree_hash, w.tree_hash(length).unwrap());
        assert_eq!(v.block, Some((seq, block(seq))));
    }
    assert!(
        w.create_proof_at(&inclusion_request(0, 9), 9).is_err(),
        "no head at 9"
    );
}

/// A proof whose upgrade ends short of the signed length (the rest as additional nodes)
/// spells out the writer's tree at that length under the signed head; a node that does not
/// belong to the signed tree is refused.
#[test]
fn a_proof_from_zero_shows_the_tree_at_a_shorter_length() {
    let w = writer(45);
    for length in [1, 7, 8, 20, 32, 44, 45] {
        let p = wire(&upgrade_proof(&w, 0, length));
        let (v, at, hash) = verify_remote_prefix(&w.public_key(), &p).unwrap();
        assert_eq!(at, length);
        assert_eq!(hash, w.tree_hash(length).unwrap(), "tree at {length}");
        let head = v.head.unwrap();
        assert_eq!(
            (head.length, head.tree_hash),
            (45, w.tree_hash(45).unwrap())
        );
        let mut bad = p.clone();
        if let Some(n) = bad.upgrade.as_mut().unwrap().nodes.first_mut() {
            n.hash[0] ^= 1;
            assert!(
                verify_remote_prefix(&w.public_key(), &bad).is_err(),
                "{length}"
            );
        }
    }
}

#[test]
fn tampered_proofs_are_rejected() {
    let w = writer(20);
    let req = ProofRequest {
        block: Some(RequestBlock { index: 5, nodes: 0 }),
        upgrade: Some(RequestUpgrade {
            start: 0,
            length: 20,
        }),
        ..Default::default()
    };
    let good = w.create_proof(&req).unwrap();
    let mut bad_block = good.clone();
    bad_block.block.as_mut().unwrap().value[0] ^= 1;
    let mut bad_sig = good.clone();
    bad_sig.upgrade.as_mut().unwrap().signature[0] ^= 1;
    let mut bad_node = good.clone();
    bad_node.upgrade.as_mut().unwrap().nodes[0].hash[0] ^= 1;
    let mut wrong_fork = good.clone();
    wrong_fork.fork = 3;
    for (name, p) in [
        ("block", bad_block),
        ("sig", bad_sig),
        ("node", bad_node),
        ("fork", wrong_fork),
    ] {
        let mut r = memory_replica(&w);
        let err = r.verify_and_apply_proof(&p).unwrap_err();
        assert!(
            matches!(
                err,
                LogError::SignatureInvalid { .. } | LogError::InvalidProof { .. }
            ),
            "{name}: {err}"
        );
        assert_eq!(r.len(), 0, "{name}: nothing applied");
        assert!(verify_remote(&w.public_key(), &p).is_err(), "{name}");
    }
    // Garbage bytes never panic.
    for n in 0..200u32 {
        let bytes: Vec<u8> = (0..n)
            .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
            .collect();
        let _ = Proof::decode(&bytes);
        let _ = ProofRequest::decode(&bytes);
    }
}

#[test]
fn request_round_trips_the_wire_format() {
    let req = ProofRequest {
        fork: 2,
        block: Some(RequestBlock {
            index: 300,
            nodes: 2,
        }),
        hash: None,
        seek: Some(RequestSeek {
            bytes: 70000,
            padding: 0,
        }),
        upgrade: Some(RequestUpgrade {
            start: 4,
            length: 1,
        }),
        manifest: true,
        priority: 1,
    };
    let (id, back) = ProofRequest::decode(&req.encode(7)).unwrap();
    assert_eq!((id, back), (7, req));
}

#[test]
fn replica_follows_a_truncation_into_the_new_fork() {
    let mut w = writer(24);
    let storage = MemoryStorage::new();
    let mut r = Log::create_replica(Storage::Memory(storage.clone()), w.public_key()).unwrap();
    r.verify_and_apply_proof(&upgrade_proof(&w, 0, 24)).unwrap();
    for i in 0..24 {
        r.verify_and_apply_proof(&block_proof(&w, &r, i)).unwrap();
    }
    w.truncate(20).unwrap();
    let fresh: Vec<Vec<u8>> = (0..3).map(|i| format!("fork1-{i}").into_bytes()).collect();
    w.append_batch(&fresh).unwrap();
    // The old-fork proof path refuses the new fork; the reorg path takes it.
    let p = upgrade_proof(&w, 0, 23);
    assert!(r.verify_and_apply_proof(&p).is_err());
    let v = r.verify_and_apply_reorg(&wire(&p)).unwrap();
    assert_eq!(v.head.unwrap().fork, 1);
    assert_eq!((r.len(), r.fork()), (23, 1));
    assert_eq!(r.tree_hash(23).unwrap(), w.tree_hash(23).unwrap());
    // Blocks under the shared roots (node 15: blocks 0..16, node 35: blocks 16..20) stay;
    // the old fork's blocks from 20 on are dropped.
    for i in 0..20 {
        assert_eq!(r.get(i).unwrap(), Some(block(i)), "kept block {i}");
    }
    for i in 20..23 {
        assert_eq!(r.get(i).unwrap(), None, "block {i} must be fetched again");
    }
    for i in 20..23 {
        r.verify_and_apply_proof(&block_proof(&w, &r, i)).unwrap();
        assert_eq!(r.get(i).unwrap(), w.get(i).unwrap());
    }
    drop(r);
    let mut r = Log::open(Storage::Memory(storage), OpenOptions::default()).unwrap();
    assert_eq!((r.len(), r.fork()), (23, 1));
    for i in 0..23 {
        assert_eq!(
            r.get(i).unwrap(),
            w.get(i).unwrap(),
            "after reopen, block {i}"
        );
    }
    // The same (now stale) reorg is refused.
    assert!(r.verify_and_apply_reorg(&p).is_err());
}
