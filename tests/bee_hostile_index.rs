//! Reads and writes on a damaged or hostile index give typed errors: never a panic, never an
//! endless loop (bad protobuf, pointers past the end, missing tree nodes, malformed nodes,
//! cycles), and random corruption of a valid index is survived the same way.

use proptest::prelude::*;
use vitra::bee::messages::{encode_header, encode_index, encode_node, Header, Level};
use vitra::bee::{Bee, BeeError, HistoryOptions, RangeOptions};

fn header() -> Vec<u8> {
    encode_header(&Header {
        protocol: "hyperbee".into(),
        metadata: None,
    })
}

fn node(levels: &[Level], key: &[u8]) -> Vec<u8> {
    encode_node(&encode_index(levels), key, Some(b"v"))
}

fn lvl(keys: &[u64], children: &[(u64, u64)]) -> Level {
    Level {
        keys: keys.to_vec(),
        children: children.to_vec(),
    }
}

fn all_reads(bee: &Bee<Vec<Vec<u8>>>) -> Vec<Result<(), BeeError>> {
    vec![
        bee.get(b"m").map(|_| ()),
        bee.get(b"a").map(|_| ()),
        bee.range(RangeOptions::default())
            .try_for_each(|r| r.map(|_| ())),
        bee.range(RangeOptions {
            reverse: true,
            gte: Some(b"b".to_vec()),
            ..Default::default()
        })
        .try_for_each(|r| r.map(|_| ())),
        bee.list("/").map(|_| ()),
    ]
}

#[test]
fn bad_protobuf_is_a_bad_node_error() {
    let log = vec![
        header(),
        node(&[lvl(&[1], &[])], b"a"),
        vec![0x0a, 0x09, 0x01],
    ];
    let bee = Bee::new(log);
    assert!(matches!(
        bee.get(b"a"),
        Err(BeeError::BadNode { seq: 2, .. })
    ));
    let mut h = bee.history(HistoryOptions::default()).unwrap();
    assert!(h.next().unwrap().is_ok());
    assert!(matches!(
        h.next(),
        Some(Err(BeeError::BadNode { seq: 2, .. }))
    ));
    assert!(h.next().is_none());
    let mut bee = bee;
    assert!(matches!(
        bee.put(b"x", None),
        Err(BeeError::BadNode { seq: 2, .. })
    ));
}

#[test]
fn bad_index_bytes_are_a_bad_index_error() {
    let log = vec![
        header(),
        encode_node(&[0x0a, 0x03, 0x12, 0x01, 0x05], b"a", None),
    ];
    let bee = Bee::new(log);
    assert!(matches!(
        bee.get(b"a"),
        Err(BeeError::BadIndex { seq: 1, .. })
    ));
}

#[test]
fn pointers_past_the_end_are_refused() {
    // root in block 2 has a child in block 9 of a 3-block log
    let log = vec![
        header(),
        node(&[lvl(&[1], &[])], b"a"),
        node(&[lvl(&[2], &[(1, 0), (9, 0)])], b"m"),
    ];
    let mut bee = Bee::new(log);
    for r in all_reads(&bee) {
        assert!(
            matches!(
                r,
                Err(BeeError::PointerPastEnd {
                    from_seq: 2,
                    target_seq: 9,
                    length: 3
                })
            ),
            "{r:?}"
        );
    }
    assert!(matches!(
        bee.put(b"z", Some(b"1")),
        Err(BeeError::PointerPastEnd { .. })
    ));
    // a key pointing at the header block
    let log = vec![header(), node(&[lvl(&[0], &[])], b"a")];
    let bee = Bee::new(log);
    assert!(matches!(
        bee.get(b"a"),
        Err(BeeError::PointerPastEnd { target_seq: 0, .. })
    ));
    // a checkout past the end
    assert!(matches!(
        bee.checkout(5),
        Err(BeeError::VersionPastEnd {
            version: 5,
            length: 2
        })
    ));
}

#[test]
fn missing_and_malformed_tree_nodes_are_refused() {
    let log = vec![
        header(),
        node(&[lvl(&[1], &[])], b"a"),
        node(&[lvl(&[2], &[(1, 0), (1, 7)])], b"m"),
    ];
    let bee = Bee::new(log);
    assert!(matches!(
        bee.get(b"z"),
        Err(BeeError::MissingTreeNode {
            seq: 1,
            offset: 7,
            levels: 1
        })
    ));
    let log = vec![
        header(),
        node(&[lvl(&[1], &[])], b"a"),
        node(&[lvl(&[2, 1], &[(1, 0)])], b"m"),
    ];
    let mut bee = Bee::new(log);
    for r in all_reads(&bee) {
        assert!(
            matches!(
                r,
                Err(BeeError::MalformedTreeNode {
                    seq: 2,
                    offset: 0,
                    keys: 2,
                    children: 1
                })
            ),
            "{r:?}"
        );
    }
    assert!(matches!(
        bee.del(b"a"),
        Err(BeeError::MalformedTreeNode { .. })
    ));
}

#[test]
fn cycles_end_in_errors_not_loops() {
    // the root's children point back at the root itself
    let log = vec![header(), node(&[lvl(&[1], &[(1, 0), (1, 0)])], b"m")];
    let mut bee = Bee::new(log);
    assert!(matches!(bee.get(b"a"), Err(BeeError::TreeTooDeep { .. })));
    assert!(matches!(bee.get(b"z"), Err(BeeError::TreeTooDeep { .. })));
    let r: Result<Vec<_>, _> = bee.range(RangeOptions::default()).collect();
    assert!(
        matches!(r, Err(BeeError::TreeCycle { seq: 1, offset: 0 })),
        "{r:?}"
    );
    assert!(matches!(
        bee.list("/"),
        Err(BeeError::TreeCycle { .. } | BeeError::TreeTooDeep { .. })
    ));
    assert!(matches!(
        bee.put(b"a", None),
        Err(BeeError::TreeTooDeep { .. })
    ));
    assert!(matches!(bee.del(b"a"), Err(BeeError::TreeTooDeep { .. })));
    // a two-node cycle through another level of the same block
    let log = vec![
        header(),
        node(
            &[lvl(&[1], &[(1, 1), (1, 1)]), lvl(&[1], &[(1, 0), (1, 0)])],
            b"m",
        ),
    ];
    let bee = Bee::new(log);
    assert!(matches!(bee.get(b"a"), Err(BeeError::TreeTooDeep { .. })));
    let r: Result<Vec<_>, _> = bee
        .range(RangeOptions {
            reverse: true,
            ..Default::default()
        })
        .collect();
    assert!(matches!(r, Err(BeeError::TreeCycle { .. })), "{r:?}");
}

#[test]
fn a_header_that_is_not_hyperbee_is_refused() {
    let bee = Bee::new(vec![encode_header(&Header {
        protocol: "hypertrie".into(),
        metadata: None,
    })]);
    assert!(matches!(
        bee.check_header(),
        Err(BeeError::BadHeader { .. })
    ));
    let bee = Bee::new(vec![vec![0xff, 0xff]]);
    assert!(matches!(
        bee.check_header(),
        Err(BeeError::BadHeader { .. })
    ));
}

fn valid_log() -> Vec<Vec<u8>> {
    let mut bee = Bee::new(Vec::<Vec<u8>>::new());
    for i in 0..60u32 {
        bee.put(
            format!("{:03}", (i * 37) % 100).as_bytes(),
            Some(&i.to_be_bytes()),
        )
        .unwrap();
    }
    let mut b = bee.batch();
    for i in 0..30u32 {
        b.del(format!("{:03}", (i * 37) % 100).as_bytes()).unwrap();
    }
    b.put(b"zz", None).unwrap();
    b.flush().unwrap();
    bee.into_log()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// Flipping bytes anywhere in a valid index never panics or hangs any read or write.
    #[test]
    fn corrupted_indexes_never_panic(flips in proptest::collection::vec((any::<u16>(), any::<u16>(), any::<u8>()), 1..6)) {
        let mut log = valid_log();
        let n = log.len();
        for (b, at, x) in flips {
            let block = &mut log[1 + (b as usize) % (n - 1)];
            if block.is_empty() { continue; }
            let i = (at as usize) % block.len();
            block[i] ^= x | 1;
        }
        let mut bee = Bee::new(log);
        let _ = all_reads(&bee);
        let _ = bee.history(HistoryOptions { reverse: true, ..Default::default() }).map(|h| h.count());
        for v in [2u64, 10, 40] {
            if let Ok(s) = bee.checkout(v) {
                let _ = s.get(b"050");
                let _ = s.range(RangeOptions::default()).count();
            }
        }
        let _ = bee.put(b"050", Some(b"x"));
        let _ = bee.del(b"037");
    }
}
