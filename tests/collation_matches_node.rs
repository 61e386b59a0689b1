//! Our `localeCompare` ordering against Node's (ICU, default locale): JS Vitra sorts every
//! operation's index changes with it, so the order of index blocks depends on agreeing.

mod support;

use serde_json::json;
use std::time::Duration;
use support::{node_json, Rng};
use vitra::codec::locale_compare;

const PIECES: &[&str] = &[
    "a",
    "A",
    "b",
    "B",
    "z",
    "Z",
    "é",
    "É",
    "e\u{301}",
    "E\u{301}",
    "ß",
    "ss",
    "æ",
    "ø",
    "å",
    "ñ",
    "n\u{303}",
    "0",
    "1",
    "9",
    "10",
    "-",
    "_",
    ".",
    "/",
    " ",
    "'",
    "!",
    "~",
    "$",
    "@",
    "α",
    "Ω",
    "ω",
    "я",
    "Ж",
    "中",
    "文",
    "日本",
    "한",
    "😀",
    "👍🏽",
    "🏳️‍🌈",
    "\u{ff}",
    "\u{100}",
    "ǅ",
    "ﬁ",
    "Ⅻ",
    "½",
    "²",
    "\u{200b}",
    "\u{0}",
    "\t",
    "İ",
    "ı",
    "ア",
    "ｱ",
    "ｶﾞ",
];

fn random_string(r: &mut Rng) -> String {
    let n = 1 + r.below(6);
    let mut s = String::new();
    if r.chance(0.3) {
        s.push('/');
    }
    for _ in 0..n {
        s.push_str(r.pick(PIECES));
        if r.chance(0.15) {
            s.push('/');
        }
    }
    s
}

#[test]
fn generated_strings_sort_in_node_locale_compare_order() {
    let mut r = Rng::new(0x0c01_1a7e);
    let mut strings: Vec<String> = PIECES.iter().map(|s| s.to_string()).collect();
    strings.extend((0..6000).map(|_| random_string(&mut r)));

    let dir = std::env::temp_dir().join(format!("vitra-collate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("strings.json");
    std::fs::write(&file, json!({ "strings": strings }).to_string()).expect("write");
    let js_order: Vec<usize> = node_json(
        "codec.js",
        &["sort", file.to_str().unwrap_or_default()],
        Duration::from_secs(120),
    )
    .as_array()
    .expect("sort returns an array")
    .iter()
    .map(|i| i.as_u64().expect("index") as usize)
    .collect();

    let mut ours: Vec<usize> = (0..strings.len()).collect();
    ours.sort_by(|&a, &b| locale_compare(&strings[a], &strings[b]));
    if let Some(at) = ours.iter().zip(&js_order).position(|(a, b)| a != b) {
        panic!(
            "order differs at position {at}: ours has {:?}, Node has {:?} (neighbours ours {:?}, Node {:?})",
            strings[ours[at]],
            strings[js_order[at]],
            &ours[at.saturating_sub(2)..(at + 3).min(ours.len())].iter().map(|&i| &strings[i]).collect::<Vec<_>>(),
            &js_order[at.saturating_sub(2)..(at + 3).min(ours.len())].iter().map(|&i| &strings[i]).collect::<Vec<_>>(),
        );
    }
    assert_eq!(ours.len(), js_order.len());
}
