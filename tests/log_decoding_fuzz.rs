//! Hostile bytes never panic: random and mutated oplog headers, entries, whole oplog files,
//! tree/bitfield/data files and wire proofs decode to a value or a typed error, and a log whose
//! files were damaged either opens consistently or reports which file is bad.

use proptest::prelude::*;
use vitra::log::oplog::{read_oplog, Entry, Header};
use vitra::log::{Log, LogError, MemoryStorage, OpenOptions, Proof, ProofRequest, Storage};

fn sample_log() -> MemoryStorage {
    let m = MemoryStorage::new();
    let mut log = Log::create(Storage::Memory(m.clone())).unwrap();
    log.append_batch(&[b"one".to_vec(), b"two".to_vec(), b"three".to_vec()])
        .unwrap();
    log.flush().unwrap();
    log.append_batch(&[b"four".to_vec(), vec![7u8; 300]])
        .unwrap();
    log.truncate(4).unwrap();
    log.append(b"five").unwrap();
    m
}

fn copy_with(m: &MemoryStorage, name: &str, bytes: Vec<u8>) -> MemoryStorage {
    let out = MemoryStorage::new();
    for f in ["oplog", "tree", "bitfield", "data", "heads"] {
        let b = if f == name {
            bytes.clone()
        } else {
            m.snapshot(f)
        };
        let st = Storage::Memory(out.clone());
        let file = st.open_file(f).unwrap();
        file.write_at(0, &b).unwrap();
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Header::decode(&bytes);
        let _ = Entry::decode(&bytes);
        let _ = read_oplog(&bytes);
        let _ = Proof::decode(&bytes);
        let _ = ProofRequest::decode(&bytes);
    }

    #[test]
    fn crafted_entries_with_valid_checksums_never_panic_open(
        entries in proptest::collection::vec((
            proptest::option::of((any::<u64>(), any::<u64>(), any::<bool>())),
            proptest::option::of((any::<u64>(), any::<u64>(), any::<u64>())),
            proptest::collection::vec((any::<u64>(), any::<u64>()), 0..4),
        ), 1..4),
        small in any::<bool>(),
    ) {
        use vitra::compact::Writer;
        use vitra::log::oplog::{frame, BitfieldUpdate, TreeUpgrade};
        use vitra::log::Node;
        let m = sample_log();
        let mut oplog = m.snapshot("oplog");
        let state = read_oplog(&oplog).unwrap();
        let bit = (state.headers[0] + state.headers[1]) & 1;
        oplog.truncate(8192 + state.entries_byte_length as usize);
        let shrink = |v: u64| if small { v % 16 } else { v };
        for (bf, up, nodes) in entries {
            let e = Entry {
                user_data: None,
                tree_nodes: Some(nodes.into_iter().map(|(i, s)| Node { index: shrink(i), size: shrink(s), hash: [1; 32] }).collect()),
                tree_upgrade: up.map(|(f, a, l)| TreeUpgrade { fork: shrink(f), ancestors: shrink(a), length: shrink(l), signature: vec![0; 64] }),
                bitfield: bf.map(|(s, l, d)| BitfieldUpdate { drop: d, start: shrink(s), length: shrink(l) }),
            };
            let mut w = Writer::new();
            e.encode(&mut w);
            frame(&w.buf, bit, false, &mut oplog);
        }
        let damaged = copy_with(&m, "oplog", oplog);
        if let Ok(log) = Log::open(Storage::Memory(damaged), OpenOptions::default()) {
            for i in 0..log.len().min(64) {
                let _ = log.get(i);
            }
        }
    }

    #[test]
    fn header_with_valid_prefix_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..200), v in 0u8..3) {
        let mut b = vec![v];
        b.extend(tail);
        let _ = Header::decode(&b);
    }

    #[test]
    fn damaged_files_open_or_fail_with_a_typed_error(
        which in 0usize..5,
        pos in any::<u16>(),
        xor in 1u8..=255,
        cut in proptest::option::of(any::<u16>()),
    ) {
        let m = sample_log();
        let name = ["oplog", "tree", "bitfield", "data", "heads"][which];
        let mut bytes = m.snapshot(name);
        if !bytes.is_empty() {
            let p = pos as usize % bytes.len();
            bytes[p] ^= xor;
        }
        if let Some(c) = cut {
            let c = c as usize % (bytes.len() + 1);
            bytes.truncate(c);
        }
        let damaged = copy_with(&m, name, bytes);
        match Log::open(Storage::Memory(damaged), OpenOptions::default()) {
            Ok(log) => {
                // Whatever opened must read back without panicking and keep a valid head.
                for i in 0..log.len() {
                    let _ = log.get(i);
                }
                if let Some(h) = log.signed_heads().last() {
                    prop_assert!(h.verify(&log.public_key()));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(!msg.is_empty());
                if let LogError::Io { .. } = e {
                    prop_assert!(false, "memory storage reported I/O error: {}", msg);
                }
            }
        }
    }
}

#[test]
fn both_header_slots_corrupt_is_a_typed_error_naming_the_oplog() {
    let m = sample_log();
    let mut oplog = m.snapshot("oplog");
    oplog[10] ^= 0xff;
    oplog[4096 + 10] ^= 0xff;
    let damaged = copy_with(&m, "oplog", oplog);
    let err = Log::open(Storage::Memory(damaged), OpenOptions::default())
        .err()
        .unwrap();
    assert!(matches!(err, LogError::NoValidHeader { .. }), "{err}");
    assert!(err.to_string().contains("oplog"));
}

#[test]
fn missing_tree_nodes_are_a_typed_error_naming_the_tree_file() {
    let m = sample_log();
    let mut log = Log::open(Storage::Memory(m.clone()), OpenOptions::default()).unwrap();
    log.flush().unwrap();
    drop(log);
    let damaged = copy_with(&m, "tree", vec![]);
    let err = Log::open(Storage::Memory(damaged), OpenOptions::default())
        .err()
        .unwrap();
    assert!(matches!(err, LogError::MissingNode { .. }), "{err}");
    assert!(err.to_string().contains("tree"));
}

#[test]
fn short_data_file_is_a_typed_error_naming_the_data_file() {
    let m = sample_log();
    let damaged = copy_with(&m, "data", b"on".to_vec());
    let err = Log::open(Storage::Memory(damaged), OpenOptions::default())
        .err()
        .unwrap();
    assert!(matches!(err, LogError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("data"));
}

#[test]
fn a_torn_last_entry_is_dropped_and_the_prefix_reopens() {
    let m = sample_log();
    let log = Log::open(Storage::Memory(m.clone()), OpenOptions::default()).unwrap();
    let (len, fork) = (log.len(), log.fork());
    drop(log);
    // Append a half-written entry after the valid ones.
    let mut oplog = m.snapshot("oplog");
    oplog.extend_from_slice(&[0x12, 0x34, 0x56, 0x78, 0xff, 0x00, 0x00, 0x00, 1, 2, 3]);
    let damaged = copy_with(&m, "oplog", oplog);
    let log = Log::open(Storage::Memory(damaged), OpenOptions::default()).unwrap();
    assert_eq!((log.len(), log.fork()), (len, fork));
    assert_eq!(log.get(len - 1).unwrap(), Some(b"five".to_vec()));
}
