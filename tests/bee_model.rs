//! Model test: random puts, dels and batches against a `BTreeMap`, then gets, ranges (bounds,
//! reverse, limit), peeks, history and checkouts at random past versions must all agree with
//! the model.

use std::collections::BTreeMap;
use std::ops::Bound;

use proptest::prelude::*;
use vitra::bee::{Bee, HistoryKind, HistoryOptions, RangeOptions};

#[derive(Debug, Clone)]
enum MOp {
    Put(u16, Option<Vec<u8>>),
    Del(u16),
}

#[derive(Debug, Clone)]
enum Step {
    One(MOp),
    Batch(Vec<MOp>),
}

fn key(i: u16) -> Vec<u8> {
    // uneven lengths and a shared prefix so byte order differs from numeric order
    let mut k = format!("k{}", i % 97).into_bytes();
    k.extend(std::iter::repeat_n(b'x', (i / 97) as usize));
    k
}

fn mop(space: u16) -> impl Strategy<Value = MOp> {
    prop_oneof![
        3 => (0..space, proptest::option::weighted(0.9, proptest::collection::vec(any::<u8>(), 0..6)))
            .prop_map(|(k, v)| MOp::Put(k, v)),
        2 => (0..space).prop_map(MOp::Del),
    ]
}

fn steps() -> impl Strategy<Value = (u16, Vec<Step>)> {
    (prop_oneof![Just(20u16), Just(120), Just(400)]).prop_flat_map(|space| {
        let step = prop_oneof![
            3 => mop(space).prop_map(Step::One),
            1 => proptest::collection::vec(mop(space), 1..40).prop_map(Step::Batch),
        ];
        (Just(space), proptest::collection::vec(step, 1..160))
    })
}

type Model = BTreeMap<Vec<u8>, (u64, Option<Vec<u8>>)>;

/// What history must say about one block: kind and value, or `None` when JS's rule leaves the
/// kind to the tree shape (a put of `null` that is not the last block of its batch).
type Expected = (Vec<u8>, Option<HistoryKind>, Option<Vec<u8>>);

fn bounds(
    lo: &Option<(Vec<u8>, bool)>,
    hi: &Option<(Vec<u8>, bool)>,
) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let l = match lo {
        None => Bound::Unbounded,
        Some((k, true)) => Bound::Included(k.clone()),
        Some((k, false)) => Bound::Excluded(k.clone()),
    };
    let h = match hi {
        None => Bound::Unbounded,
        Some((k, true)) => Bound::Included(k.clone()),
        Some((k, false)) => Bound::Excluded(k.clone()),
    };
    (l, h)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn bee_agrees_with_btreemap((space, steps) in steps(), probes in proptest::collection::vec((any::<u16>(), any::<u16>(), any::<u8>(), any::<bool>(), 0usize..12), 12)) {
        let mut bee = Bee::new(Vec::<Vec<u8>>::new());
        let mut model: Model = BTreeMap::new();
        let mut versions: Vec<(u64, Model)> = vec![(1, BTreeMap::new())];
        let mut expected: Vec<Expected> = Vec::new(); // index = seq - 1

        let apply = |b: &mut vitra::bee::Batch<'_, Vec<Vec<u8>>>, op: &MOp, last: bool, model: &mut Model, expected: &mut Vec<Expected>| {
            match op {
                MOp::Put(k, v) => {
                    let seq = b.put(&key(*k), v.as_deref()).unwrap();
                    prop_assert_eq!(seq, expected.len() as u64 + 1);
                    model.insert(key(*k), (seq, v.clone()));
                    let kind = if v.is_some() || last { Some(HistoryKind::Put) } else { None };
                    expected.push((key(*k), kind, v.clone()));
                }
                MOp::Del(k) => {
                    let r = b.del(&key(*k)).unwrap();
                    prop_assert_eq!(r.is_some(), model.remove(&key(*k)).is_some());
                    if let Some(seq) = r {
                        prop_assert_eq!(seq, expected.len() as u64 + 1);
                        expected.push((key(*k), Some(HistoryKind::Del), None));
                    }
                }
            }
            Ok(())
        };

        for step in &steps {
            let ops: Vec<MOp> = match step { Step::One(o) => vec![o.clone()], Step::Batch(v) => v.clone() };
            // the last op that writes a block is the batch's last block
            let mut probe = model.clone();
            let mut last_writer = None;
            for (i, o) in ops.iter().enumerate() {
                match o {
                    MOp::Put(k, v) => { probe.insert(key(*k), (0, v.clone())); last_writer = Some(i); }
                    MOp::Del(k) => if probe.remove(&key(*k)).is_some() { last_writer = Some(i); },
                }
            }
            let mut b = bee.batch();
            for (i, o) in ops.iter().enumerate() {
                apply(&mut b, o, Some(i) == last_writer, &mut model, &mut expected)?;
                // the batch reads its own queued writes
                let k = match o { MOp::Put(k, _) | MOp::Del(k) => key(*k) };
                let seen = b.get(&k).unwrap().map(|e| (e.seq, e.value));
                prop_assert_eq!(seen, model.get(&k).cloned(), "batch get after {:?}", o);
            }
            b.flush().unwrap();
            versions.push((bee.version(), model.clone()));
        }
        prop_assert_eq!(bee.version(), expected.len() as u64 + 1);

        // gets at the latest version
        for k in 0..space {
            let got = bee.get(&key(k)).unwrap();
            let want = model.get(&key(k));
            prop_assert_eq!(got.map(|e| (e.seq, e.value)), want.cloned());
        }

        for (a, b, which, reverse, limit) in probes {
            let lo = (which & 1 != 0).then(|| (key(a % (space + 3)), which & 2 != 0));
            let hi = (which & 4 != 0).then(|| (key(b % (space + 3)), which & 8 != 0));
            let (vi, snap_model) = &versions[(a as usize) % versions.len()];
            let snap = bee.checkout(*vi).unwrap();
            let opts = RangeOptions {
                gt: lo.as_ref().filter(|l| !l.1).map(|l| l.0.clone()),
                gte: lo.as_ref().filter(|l| l.1).map(|l| l.0.clone()),
                lt: hi.as_ref().filter(|h| !h.1).map(|h| h.0.clone()),
                lte: hi.as_ref().filter(|h| h.1).map(|h| h.0.clone()),
                reverse,
                limit: (limit > 0).then_some(limit),
            };
            let got: Vec<_> = snap.range(opts.clone()).collect::<Result<Vec<_>, _>>().unwrap();
            let inverted = matches!((&lo, &hi), (Some(l), Some(h)) if l.0 > h.0 || (l.0 == h.0 && !(l.1 && h.1)));
            let mut want: Vec<_> = if inverted { Vec::new() } else { snap_model.range(bounds(&lo, &hi)).collect() };
            if reverse { want.reverse(); }
            if limit > 0 { want.truncate(limit); }
            let got_t: Vec<_> = got.iter().map(|e| (e.key.clone(), e.seq, e.value.clone())).collect();
            let want_t: Vec<_> = want.iter().map(|(k, (s, v))| ((*k).clone(), *s, v.clone())).collect();
            prop_assert_eq!(&got_t, &want_t, "range {:?} at version {}", opts, vi);
            let peek = snap.peek(opts).unwrap();
            prop_assert_eq!(peek.map(|e| e.seq), want_t.first().map(|w| w.1));

            // point gets on the checkout
            for k in [a % space, b % space] {
                let got = snap.get(&key(k)).unwrap().map(|e| (e.seq, e.value));
                prop_assert_eq!(got, snap_model.get(&key(k)).cloned(), "get at version {}", vi);
            }

            // history window on the checkout
            let gte = 1 + (b as u64) % *vi;
            let hist: Vec<_> = snap.history(HistoryOptions { gte: Some(gte as i64), reverse, ..Default::default() })
                .unwrap().collect::<Result<Vec<_>, _>>().unwrap();
            let mut seqs: Vec<u64> = (gte..*vi).collect();
            if reverse { seqs.reverse(); }
            prop_assert_eq!(hist.iter().map(|h| h.seq).collect::<Vec<_>>(), seqs);
            for h in &hist {
                let (k, kind, v) = &expected[(h.seq - 1) as usize];
                prop_assert_eq!(&h.key, k);
                prop_assert_eq!(&h.value, v);
                if let Some(kind) = kind { prop_assert_eq!(h.kind, *kind, "kind of block {}", h.seq); }
            }
        }
    }
}
