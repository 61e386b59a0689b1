//! JS Hyperbee 1.10.1 reads an index our bee wrote (`compat-tests/bee-read.js` appends our
//! blocks to a fresh JS Hypercore), and our bee reads the index JS wrote for the same
//! operations (`compat-tests/bee-run.js`): gets, ranges (bounds, reverse, limit), history
//! windows (negative bounds too) and checkouts give the same answers on both sides.

mod bee_support;

use std::time::Duration;

use bee_support::{apply, hex_blocks, key, op_json, run_node, scenario, Rng};
use serde_json::{json, Value as Json};
use vitra::bee::{Bee, BlockLog, HistoryKind, HistoryOptions, RangeOptions};

fn queries(rng: &mut Rng, versions: &[u64], space: u64) -> Vec<Json> {
    let mut q = Vec::new();
    for i in 0..60 {
        let checkout = if i % 3 == 0 {
            Json::Null
        } else {
            json!(versions[rng.below(versions.len() as u64) as usize])
        };
        match i % 3 {
            0 => q.push(json!({"type": "get", "key": hex::encode(key(rng, space + 5)), "checkout": checkout})),
            1 => {
                let mut opts = serde_json::Map::new();
                let names = ["gt", "gte", "lt", "lte"];
                for n in names {
                    if rng.below(3) == 0 {
                        opts.insert(n.into(), json!(hex::encode(key(rng, space))));
                    }
                }
                if rng.below(2) == 0 {
                    opts.insert("reverse".into(), json!(true));
                }
                if rng.below(3) == 0 {
                    opts.insert("limit".into(), json!(1 + rng.below(20)));
                }
                q.push(json!({"type": "range", "opts": opts, "checkout": checkout}));
            }
            _ => {
                let v = versions.last().copied().unwrap_or(1) as i64;
                let mut opts = serde_json::Map::new();
                match rng.below(4) {
                    0 => {}
                    1 => {
                        opts.insert("gte".into(), json!(1 + rng.below(v as u64)));
                    }
                    2 => {
                        opts.insert("gt".into(), json!(1 + rng.below(v as u64)));
                        opts.insert("lte".into(), json!(1 + rng.below(v as u64)));
                    }
                    _ => {
                        opts.insert("gte".into(), json!(-(1 + rng.below(10) as i64)));
                    }
                }
                if rng.below(2) == 0 {
                    opts.insert("reverse".into(), json!(true));
                }
                if rng.below(3) == 0 {
                    opts.insert("limit".into(), json!(1 + rng.below(15)));
                }
                q.push(json!({"type": "history", "opts": opts, "checkout": checkout}));
            }
        }
    }
    q
}

fn node_json(seq: u64, key: &[u8], value: Option<&[u8]>) -> Json {
    json!({"seq": seq, "key": hex::encode(key), "value": value.map(hex::encode)})
}

/// Runs the queries with our bee, in the JSON shape bee-read.js prints.
fn our_answers<L: BlockLog>(bee: &Bee<L>, queries: &[Json]) -> Vec<Json> {
    let hexopt = |o: &Json, n: &str| {
        o.get(n)
            .and_then(Json::as_str)
            .map(|h| hex::decode(h).unwrap())
    };
    queries
        .iter()
        .map(|q| {
            let snap = match q["checkout"].as_u64() {
                Some(v) => bee.checkout(v).unwrap(),
                None => bee.snapshot(),
            };
            let o = &q["opts"];
            match q["type"].as_str().unwrap() {
                "get" => {
                    let k = hex::decode(q["key"].as_str().unwrap()).unwrap();
                    snap.get(&k)
                        .unwrap()
                        .map_or(Json::Null, |e| node_json(e.seq, &e.key, e.value.as_deref()))
                }
                "range" => {
                    let opts = RangeOptions {
                        gt: hexopt(o, "gt"),
                        gte: hexopt(o, "gte"),
                        lt: hexopt(o, "lt"),
                        lte: hexopt(o, "lte"),
                        reverse: o["reverse"].as_bool().unwrap_or(false),
                        limit: o["limit"].as_u64().map(|l| l as usize),
                    };
                    Json::Array(
                        snap.range(opts)
                            .map(|e| e.unwrap())
                            .map(|e| node_json(e.seq, &e.key, e.value.as_deref()))
                            .collect(),
                    )
                }
                _ => {
                    let opts = HistoryOptions {
                        gt: o["gt"].as_i64(),
                        gte: o["gte"].as_i64(),
                        lt: o["lt"].as_i64(),
                        lte: o["lte"].as_i64(),
                        reverse: o["reverse"].as_bool().unwrap_or(false),
                        limit: o["limit"].as_u64().map(|l| l as usize),
                        live: false,
                    };
                    Json::Array(
                        snap.history(opts)
                            .unwrap()
                            .map(|h| h.unwrap())
                            .map(|h| {
                                let mut j = node_json(h.seq, &h.key, h.value.as_deref());
                                j["type"] = json!(if h.kind == HistoryKind::Put {
                                    "put"
                                } else {
                                    "del"
                                });
                                j
                            })
                            .collect(),
                    )
                }
            }
        })
        .collect()
}

#[test]
fn js_reads_our_index_and_we_read_theirs() {
    for seed in [1u64, 2, 3, 6, 7] {
        let ops = scenario(seed);
        let space = [8, 40, 300, 2000][(seed % 4) as usize];
        // our index, with the versions at batch boundaries
        let mut bee = Bee::new(Vec::<Vec<u8>>::new());
        let mut versions = Vec::new();
        for op in &ops {
            apply(&mut bee, std::slice::from_ref(op));
            versions.push(bee.version());
        }
        let ours = bee.into_log();
        let mut rng = Rng(seed + 99);
        let qs = queries(&mut rng, &versions, space);

        // JS reads ours
        let input =
            json!({"blocks": ours.iter().map(hex::encode).collect::<Vec<_>>(), "queries": qs});
        let js = run_node("bee-read.js", &input, Duration::from_secs(120));
        let js_answers = js["results"].as_array().expect("results").clone();

        // we read what JS wrote for the same operations
        let js_written = run_node(
            "bee-run.js",
            &json!({"ops": ops.iter().map(op_json).collect::<Vec<_>>()}),
            Duration::from_secs(120),
        );
        let theirs = Bee::new(hex_blocks(&js_written));
        let our_answers = our_answers(&theirs, &qs);

        assert_eq!(js_answers.len(), our_answers.len());
        for (i, (j, o)) in js_answers.iter().zip(&our_answers).enumerate() {
            assert_eq!(j, o, "seed {seed}: query {i} {} answered differently (left: JS on our blocks, right: us on JS blocks)", qs[i]);
        }
    }
}
