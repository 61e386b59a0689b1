//! The contract `assert` module's `deepEqual` against Node's `assert.deepStrictEqual`
//! (JS Vitra 0.1.3 used Node's strict assert semantics): the same expression pairs, judged
//! by `node compat-tests/contract-deep-equal.js` and by a contract.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vitra::codec::Value;
use vitra::contract::{Contract, Limits, MemoryHost};

const PAIRS: &[(&str, &str)] = &[
    ("{a: 1}", "{a: 1}"),
    ("{a: 1}", "{a: '1'}"),
    ("{a: 1, b: 2}", "{b: 2, a: 1}"),
    ("[1, 2]", "[1, 2]"),
    ("[1, 2, 3]", "[1, 2]"),
    ("[1]", "{0: 1}"),
    ("[1, , 3]", "[1, undefined, 3]"),
    ("NaN", "NaN"),
    ("0", "-0"),
    ("1", "'1'"),
    ("null", "undefined"),
    ("'a'", "'a'"),
    ("new Date(5)", "new Date(5)"),
    ("new Date(5)", "new Date(6)"),
    ("new Uint8Array([1, 2])", "new Uint8Array([1, 2])"),
    ("new Uint8Array([1])", "new Uint8Array([2])"),
    ("new Uint8Array([1])", "new Int8Array([1])"),
    ("{a: undefined}", "{}"),
    ("/x/g", "/x/g"),
    ("/x/g", "/x/i"),
    ("new Map([[1, {a: 1}]])", "new Map([[1, {a: 1}]])"),
    ("new Map([[1, {a: 1}]])", "new Map([[1, {a: 2}]])"),
    ("new Set([1, 2])", "new Set([2, 1])"),
    ("new Set([{a: 1}])", "new Set([{a: 1}])"),
    ("new Set([1])", "new Set([2])"),
    ("Object.create(null)", "{}"),
    ("new Error('x')", "new Error('x')"),
    ("new Error('x')", "new TypeError('x')"),
    ("new String('a')", "new String('a')"),
    ("new Number(1)", "new Number(2)"),
    ("{a: {b: [1, {c: 2}]}}", "{a: {b: [1, {c: 2}]}}"),
    ("{a: {b: [1, {c: 2}]}}", "{a: {b: [1, {c: 3}]}}"),
    (
        "(() => { const a = {}; a.a = a; return a })()",
        "(() => { const b = {}; b.a = b; return b })()",
    ),
    ("{[Symbol.for('s')]: 1}", "{}"),
    ("{[Symbol.for('s')]: 1}", "{[Symbol.for('s')]: 1}"),
];

fn node_verdicts() -> Vec<bool> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/compat-tests/contract-deep-equal.js"
    );
    let mut child = Command::new("node")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node must be installed to run the cross-implementation tests");
    let input =
        serde_json::to_string(&PAIRS.iter().map(|(a, b)| [*a, *b]).collect::<Vec<_>>()).unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("node side (contract-deep-equal.js) did not finish within 30 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "node side failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("node printed JSON")
}

#[test]
fn contract_deep_equal_agrees_with_node_deep_strict_equal() {
    let expected = node_verdicts();
    let mut src = String::from(
        "import { deepEqual } from 'assert'\nexport function verdicts () {\n  const out = []\n",
    );
    for (a, b) in PAIRS {
        src.push_str(&format!(
            "  try {{ deepEqual(({a}), ({b})); out.push(true) }} catch (e) {{ out.push(false) }}\n"
        ));
    }
    src.push_str("  return out\n}\nexport const apply = {}\n");
    let host = MemoryHost::new();
    let mut c = Contract::load(&src, Limits::default(), &host).unwrap();
    let ours = c.call("verdicts", &Value::Null, &host).unwrap().response;
    let ours: Vec<bool> = ours
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_bool().unwrap())
        .collect();
    for (i, (a, b)) in PAIRS.iter().enumerate() {
        assert_eq!(
            ours[i], expected[i],
            "deepEqual({a}, {b}): contract says {} but Node says {}",
            ours[i], expected[i]
        );
    }
}
