//! Our MessagePack codec against npm msgpackr 1.5.2, the encoder JS Vitra uses: thousands of
//! generated values encoded on both sides must give identical bytes, and what each side
//! writes must decode to equal values on the other.

mod support;

use serde_json::{json, Value as Json};
use std::time::Duration;
use support::{node_json, Rng};
use vitra::codec::{decode, encode, from_json, to_json, Object, Value};

const EDGE_NUMBERS: &[f64] = &[
    0.0,
    -0.0,
    1.0,
    63.0,
    64.0,
    127.0,
    128.0,
    255.0,
    256.0,
    65535.0,
    65536.0,
    2147483647.0,
    2147483648.0,
    2147483649.0,
    4294967295.0,
    4294967296.0,
    9007199254740991.0,
    -1.0,
    -32.0,
    -33.0,
    -128.0,
    -129.0,
    -32768.0,
    -32769.0,
    -2147483647.0,
    -2147483648.0,
    -2147483649.0,
    1.5,
    -0.25,
    0.1,
    1e300,
    5e-324,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
];

const CHARS: &[&str] = &[
    "a", "Z", "0", " ", "/", "\u{0}", "é", "e\u{301}", "ß", "Ω", "中", "文", "😀", "\u{ff}",
    "\u{100}", "\n", "\u{ffff}",
];

fn random_string(r: &mut Rng) -> String {
    let n = if r.chance(0.01) {
        70000
    } else {
        r.pick(&[0usize, 1, 5, 31, 32, 33, 100, 255, 256, 300])
    };
    let mut s = String::new();
    while s.chars().count() < n {
        s.push_str(r.pick(CHARS));
    }
    s
}

fn random_value(r: &mut Rng, depth: usize) -> Value {
    let kinds = if depth > 3 { 8 } else { 11 };
    match r.below(kinds) {
        0 => Value::Undefined,
        1 => Value::Null,
        2 => Value::Bool(r.chance(0.5)),
        3 => Value::Number(r.pick(EDGE_NUMBERS)),
        4 => {
            let bits = r.below(60) as u32;
            let mag = (r.next_u64() % (1u64 << bits.max(1))) as f64;
            Value::Number(if r.chance(0.5) { -mag } else { mag })
        }
        5 => Value::Number(f64::from_bits(r.next_u64()) % 1e12),
        6 => Value::String(random_string(r)),
        7 => {
            let n = if r.chance(0.01) {
                70000
            } else {
                r.pick(&[0usize, 1, 16, 255, 256, 1000])
            };
            Value::Bytes((0..n).map(|_| r.next_u64() as u8).collect())
        }
        8 => Value::Date(r.pick(&[
            0.0,
            1000.0,
            1795634745937.0,
            1795634745000.0,
            4294967296000.0,
            17179869184000.0,
        ])),
        9 => {
            let n = r.pick(&[0usize, 1, 3, 15, 16, 17]);
            Value::Array((0..n).map(|_| random_value(r, depth + 1)).collect())
        }
        _ => {
            let n = r.pick(&[0usize, 1, 3, 15, 16, 20]);
            let mut o = Object::new();
            for i in 0..n {
                let key = if r.chance(0.2) {
                    r.below(20).to_string()
                } else {
                    format!("{}{}{i}", r.pick(CHARS), r.pick(CHARS))
                };
                o.insert(key, random_value(r, depth + 1));
            }
            Value::Object(o)
        }
    }
}

/// `to_json`, but keeping `-0` apart so msgpackr is asked to encode exactly our value.
fn transport(v: &Value) -> Json {
    match v {
        Value::Number(n) if *n == 0.0 && n.is_sign_negative() => json!({"$number": "-0"}),
        Value::Array(a) => Json::Array(a.iter().map(transport).collect()),
        Value::Object(o) => Json::Object(
            o.iter()
                .map(|(k, v)| (k.to_owned(), transport(v)))
                .collect(),
        ),
        other => to_json(other),
    }
}

/// What msgpackr 1.5.2 reads back from the bytes it (and so we) write for `v`: dates between
/// 2^32 and 2^34 seconds lose their upper seconds bits in its 64-bit timestamp form.
fn as_msgpackr_reads_it(v: &Value) -> Value {
    match v {
        Value::Date(ms) if *ms >= 4294967296000.0 && *ms < 17179869184000.0 => {
            Value::Date((ms / 1000.0).trunc() % 4294967296.0 * 1000.0 + ms.rem_euclid(1000.0))
        }
        Value::Array(a) => Value::Array(a.iter().map(as_msgpackr_reads_it).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k, as_msgpackr_reads_it(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The JSON path of the first place two JSON values differ.
fn json_difference(a: &Json, b: &Json, path: String) -> Option<String> {
    if from_json(a) == from_json(b) {
        return None;
    }
    match (a, b) {
        (Json::Array(x), Json::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| json_difference(p, q, format!("{path}[{i}]"))),
        (Json::Object(x), Json::Object(y)) if x.len() == y.len() => {
            x.iter().find_map(|(k, p)| match y.get(k) {
                Some(q) => json_difference(p, q, format!("{path}.{k:?}")),
                None => Some(format!("{path}.{k:?} missing on one side")),
            })
        }
        _ if a == b => None,
        (Json::Number(x), Json::Number(y)) if x.as_f64() == y.as_f64() => None,
        _ => Some(format!(
            "{path}: {:.200} vs {:.200}",
            a.to_string(),
            b.to_string()
        )),
    }
}

fn first_difference(a: &str, b: &str) -> usize {
    a.bytes()
        .zip(b.bytes())
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

fn write_temp(name: &str, body: &Json) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vitra-codec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, body.to_string()).expect("write temp file");
    path
}

#[test]
fn rust_values_encode_to_the_bytes_msgpackr_writes_and_decode_back_in_js() {
    let mut r = Rng::new(0x5eed_0001);
    let mut values: Vec<Value> = EDGE_NUMBERS.iter().map(|n| Value::Number(*n)).collect();
    values.extend((0..3000).map(|_| random_value(&mut r, 0)));

    let file = write_temp(
        "pack.json",
        &json!({"values": values.iter().map(transport).collect::<Vec<_>>()}),
    );
    let js_hex = node_json(
        "codec.js",
        &["pack", file.to_str().unwrap_or_default()],
        Duration::from_secs(120),
    );
    let js_hex = js_hex.as_array().expect("pack returns an array");
    assert_eq!(js_hex.len(), values.len());
    for (i, (v, h)) in values.iter().zip(js_hex).enumerate() {
        let ours = hex::encode(encode(v));
        let theirs = h.as_str().unwrap_or_default();
        if ours != theirs {
            let at = first_difference(&ours, theirs);
            let from = at.saturating_sub(40);
            panic!(
                "value #{i} encodes differently at hex offset {at}\n value: {:.300}\n ours:     ...{:.120}\n msgpackr: ...{:.120}",
                transport(v).to_string(),
                &ours[from..],
                &theirs[from.min(theirs.len())..]
            );
        }
    }

    // msgpackr decodes our bytes to the same value (-0 comes back as 0, as in JS).
    let hexes: Vec<String> = values.iter().map(|v| hex::encode(encode(v))).collect();
    let file = write_temp("unpack.json", &json!({ "hex": hexes }));
    let decoded = node_json(
        "codec.js",
        &["unpack", file.to_str().unwrap_or_default()],
        Duration::from_secs(120),
    );
    let decoded = decoded.as_array().expect("unpack returns an array");
    for (i, (v, j)) in values.iter().zip(decoded).enumerate() {
        let back = from_json(j);
        let expected = as_msgpackr_reads_it(v);
        assert!(
            back == expected,
            "value #{i}: msgpackr decoded our bytes differently; first difference (msgpackr vs ours) at {:?}",
            json_difference(j, &transport(v), String::new())
        );
    }
}

#[test]
fn values_msgpackr_writes_decode_here_and_re_encode_to_the_same_bytes() {
    for seed in [1u32, 2, 3] {
        let out = node_json(
            "codec.js",
            &["generate", "1000", &seed.to_string()],
            Duration::from_secs(120),
        );
        for (i, case) in out
            .as_array()
            .expect("generate returns an array")
            .iter()
            .enumerate()
        {
            let hex_str = case["hex"].as_str().unwrap_or_default();
            let bytes = hex::decode(hex_str).expect("JS wrote hex");
            let ours = decode(&bytes).unwrap_or_else(|e| {
                panic!("seed {seed} case {i}: cannot decode msgpackr bytes {hex_str:.200}: {e}")
            });
            let theirs = from_json(&case["json"]);
            assert!(
                ours == theirs,
                "seed {seed} case {i}: decoded value differs from msgpackr's\n bytes: {hex_str:.200}\n first difference (ours vs msgpackr) at {:?}",
                json_difference(&transport(&ours), &case["json"], String::new())
            );
            let again = hex::encode(encode(&ours));
            assert!(
                again == hex_str,
                "seed {seed} case {i}: re-encoding changed the bytes at hex offset {}",
                first_difference(&again, hex_str)
            );
        }
    }
}
