//! Contract semantics of VITRA-FORMAT.md section 6: the transactor and its changes, both
//! `apply` forms, method listing and calling, the `assert`, `contract` and `util` modules,
//! and values crossing the boundary intact (or refused with a typed error).

use std::time::Duration;
use vitra::codec::{to_json, Object, Value};
use vitra::contract::{ApplyOutcome, Change, Contract, ContractError, Limits, MemoryHost, Phase};

const KEY: &str = "abababababababababababababababababababababababababababababababab";

fn obj() -> Object {
    Object::new()
}

fn op(name: &str) -> Value {
    Value::Object(obj().with("op", name).with("key", KEY))
}

fn load(src: &str, host: &MemoryHost) -> Contract {
    Contract::load(src, Limits::default(), host).expect("loads")
}

fn rejected(c: &mut Contract, host: &MemoryHost, name: &str) -> String {
    match c.apply(&op(name), &Value::Object(obj()), host).unwrap() {
        ApplyOutcome::Rejected { error } => error,
        other => panic!("{name}: {other:?}"),
    }
}

fn applied(c: &mut Contract, host: &MemoryHost, name: &str) -> Vec<Change> {
    match c.apply(&op(name), &Value::Object(obj()), host).unwrap() {
        ApplyOutcome::Applied { changes } => changes,
        other => panic!("{name}: {other:?}"),
    }
}

fn put(path: &str, value: impl Into<Value>) -> Change {
    Change::Put {
        path: path.into(),
        value: value.into(),
    }
}

const TX: &str = r#"
let stash
export function useStash () { stash.put('/later', 1) }
export function apply (tx, op) {
  switch (op.op) {
    case 'MANY':
      tx.put('b', 1); tx.put('/a/', 2); tx.put('/B', 3); tx.delete('/b'); tx.put('/é', 4); tx.put('/f', 5)
      tx.addOplog({pubkey: op.key}); tx.setContractSource({code: 'new code'}); tx.removeOplog({pubkey: op.key})
      break
    case 'GET':
      tx.put('/x', {n: 1}); tx.delete('/y'); tx.put('/x', {n: 2})
      tx.put('/z', tx.get('x/')); tx.put('/w', tx.get('/y')); tx.put('/u', tx.get('/none') === undefined)
      tx.addOplog({pubkey: op.key}); tx.put('/s', tx.get('/.sys/_action0'))
      break
    case 'SYS': tx.put('/.sys/contract/source', 'evil'); break
    case 'SYS_DEL': tx.delete('.sys/inputs/' + op.key); break
    case 'ROOT': tx.delete('/'); break
    case 'NOKEY': tx.put(); break
    case 'BADKEY': tx.addOplog({pubkey: 'XYZ'}); break
    case 'NOCODE': tx.setContractSource({}); break
    case 'FUNC': tx.put('/f', () => 1); break
    case 'LATE': Promise.resolve().then(() => tx.put('/late', 1)); tx.put('/now', 1); break
    case 'STASH': stash = tx; break
    case 'NONE': break
  }
}
"#;

#[test]
fn transactor_actions_become_sorted_changes() {
    let host = MemoryHost::new();
    let mut c = load(TX, &host);
    let input = format!("/.sys/inputs/{KEY}");
    let participant = |active: bool| {
        Value::Object(
            obj()
                .with("pubkey", Value::Bytes(vec![0xab; 32]))
                .with("active", active),
        )
    };
    assert_eq!(
        applied(&mut c, &host, "MANY"),
        [
            put("/.sys/contract/source", "new code"),
            put(&input, participant(true)),
            put(&input, participant(false)),
            put("/a", 2),
            Change::Delete { path: "/b".into() },
            put("/B", 3),
            put("/é", 4),
            put("/f", 5),
        ]
    );
    let changes = applied(&mut c, &host, "GET");
    let paths: Vec<&str> = changes.iter().map(Change::path).collect();
    assert_eq!(paths, [input.as_str(), "/s", "/u", "/w", "/x", "/y", "/z"]);
    let value_of = |p: &str| match changes.iter().find(|c| c.path() == p) {
        Some(Change::Put { value, .. }) => to_json(value).to_string(),
        other => format!("{other:?}"),
    };
    assert_eq!(value_of("/z"), r#"{"type":"put","value":{"n":2}}"#);
    assert_eq!(value_of("/w"), r#"{"type":"del"}"#);
    assert_eq!(value_of("/u"), "true");
    assert_eq!(
        value_of("/s"),
        format!(r#"{{"type":"addOplog","value":{{"pubkey":"{KEY}"}}}}"#)
    );
    assert!(applied(&mut c, &host, "NONE").is_empty());
}

#[test]
fn refused_actions_fail_the_op_with_js_vitra_messages() {
    let host = MemoryHost::new();
    let mut c = load(TX, &host);
    for (name, error) in [
        ("SYS", "Error: Cannot modify values with /.sys/ prefix"),
        ("SYS_DEL", "Error: Cannot modify values with /.sys/ prefix"),
        ("ROOT", "Error: Cannot modify /"),
        ("NOKEY", "Error: A key string parameter must be supplied"),
        (
            "BADKEY",
            "Error: Must pass a valid {pubkey} string to addOplog",
        ),
        (
            "NOCODE",
            "Error: Must pass a valid {code} string to setContractSource",
        ),
        (
            "FUNC",
            // 0.1.3: "Error: () => 1 could not be cloned." (isolated-vm's wording).
            "Error: tx.put(): a function cannot leave the contract (at the top)",
        ),
    ] {
        assert_eq!(rejected(&mut c, &host, name), error, "{name}");
    }
}

#[test]
fn the_transactor_closes_when_apply_settles() {
    let host = MemoryHost::new();
    let mut c = load(TX, &host);
    assert_eq!(applied(&mut c, &host, "LATE"), [put("/now", 1)]);
    assert!(applied(&mut c, &host, "STASH").is_empty());
    let e = c
        .call("useStash", &Value::Object(obj()), &host)
        .unwrap_err();
    assert_eq!(
        e,
        ContractError::Runtime {
            during: Phase::Method("useStash".into()),
            name: "Error".into(),
            message: "tx can only be used while its apply() runs".into()
        }
    );
}

#[test]
fn apply_as_object_dispatches_on_own_handlers_only() {
    let src = r#"
export const apply = {
  async PUT (tx, op, ack) { await null; tx.put('/p', {op: op.v, origin: ack.origin}) },
}
"#;
    let host = MemoryHost::new();
    let mut c = load(src, &host);
    let ack = Value::Object(obj().with("origin", KEY));
    let out = c
        .apply(
            &Value::Object(obj().with("op", "PUT").with("v", 1)),
            &ack,
            &host,
        )
        .unwrap();
    assert_eq!(
        out,
        ApplyOutcome::Applied {
            changes: vec![put(
                "/p",
                Value::Object(obj().with("op", 1).with("origin", KEY))
            )]
        }
    );
    for missing in [
        Value::Object(obj().with("op", "MISSING")),
        Value::Object(obj().with("op", "toString")),
        Value::Object(obj().with("op", 5)),
        Value::from("not an object"),
    ] {
        assert_eq!(
            c.apply(&missing, &ack, &host).unwrap(),
            ApplyOutcome::Rejected {
                error: "Error: Method not found: apply".into()
            },
            "{missing}"
        );
    }
    let mut none = load("export function get () { return 1 }", &host);
    assert!(!none.has_apply());
    assert_eq!(
        none.apply(&op("X"), &ack, &host).unwrap(),
        ApplyOutcome::Rejected {
            error: "Error: Method not found: apply".into()
        }
    );
}

#[test]
fn methods_are_listed_and_called_and_apply_process_are_refused() {
    let src = r#"
export const VERSION = 2
export const helper = () => 'arrow'
export const admin = { reset () { return 'reset' } }
export async function later ({x}) { await null; return x * 2 }
export function process () { return 1 }
export function apply () {}
"#;
    let host = MemoryHost::new();
    let mut c = load(src, &host);
    assert_eq!(c.methods(), ["helper", "later"]);
    assert!(c.has_process());
    let p = Value::Object(obj().with("x", 21));
    assert_eq!(
        c.call("later", &p, &host).unwrap().response,
        Value::from(42)
    );
    assert_eq!(
        c.call("helper", &p, &host).unwrap().response,
        Value::from("arrow")
    );
    assert_eq!(
        c.call("admin.reset", &p, &host).unwrap().response,
        Value::from("reset")
    );
    for m in ["apply", "process", "apply.X"] {
        let e = c.call(m, &p, &host).unwrap_err();
        assert_eq!(e.to_string(), format!("Cannot call \"{m}\" directly"));
    }
    for m in ["VERSION", "nothing", "admin.nothing", ""] {
        let e = c.call(m, &p, &host).unwrap_err();
        assert_eq!(e.to_string(), format!("Method not found: {m}"), "{m}");
    }
}

#[test]
fn assert_module_behaves_like_node_strict_assert() {
    let src = r#"
import assert, { ok, equal, deepEqual, notEqual, notDeepEqual, fail } from 'assert'
export function checks () {
  assert(1); ok('x'); equal(NaN, NaN); notEqual(0, -0); notEqual(1, '1')
  deepEqual({a: [1, {b: new Uint8Array([1])}], d: new Date(5)}, {a: [1, {b: new Uint8Array([1])}], d: new Date(5)})
  notDeepEqual({a: 1}, {a: '1'}); notDeepEqual([1], {0: 1}); notDeepEqual({a: 1}, {a: 1, b: undefined})
  return assert === ok
}
export function apply (tx, op) {
  if (op.op === 'ADMIN') assert(op.admin === true, 'Must be the admin to set the admin')
  if (op.op === 'EQUAL') equal(1, '1')
  if (op.op === 'OK') ok(0)
  if (op.op === 'DEEP') deepEqual({a: 1}, {a: 2}, 'deep differs')
  if (op.op === 'FAIL') fail()
  if (op.op === 'FAIL_MSG') fail('boom')
  if (op.op === 'ERR_MSG') ok(false, new TypeError('custom'))
}
"#;
    let host = MemoryHost::new();
    let mut c = load(src, &host);
    assert_eq!(
        c.call("checks", &Value::Null, &host).unwrap().response,
        Value::Bool(true)
    );
    for (name, error) in [
        ("ADMIN", "Error: Must be the admin to set the admin"),
        (
            "EQUAL",
            "Error: Expected values to be strictly equal:\n\n1 !== '1'\n",
        ),
        ("OK", "Error: 0 == true"),
        ("DEEP", "Error: deep differs"),
        ("FAIL", "Error: Failed"),
        ("FAIL_MSG", "Error: boom"),
        // 0.1.3's sandbox hands over a plain Error (observed: "Error: custom").
        ("ERR_MSG", "Error: custom"),
    ] {
        assert_eq!(rejected(&mut c, &host, name), error, "{name}");
    }
}

#[test]
fn contract_module_reads_the_index_and_knows_the_writer() {
    let src = r#"
import { index, isWriter, oplog } from 'contract'
const atLoad = await index.get('/config')
export function loaded () { return [atLoad.value, isWriter, oplog === undefined, index.pubkey] }
export async function list ({prefix, opts}) { return (await index.list(prefix, opts)).map(e => e.name) }
export async function entry ({path}) { return await index.get(path) }
export const apply = {}
"#;
    let mut host = MemoryHost::new().with_index_pubkey(KEY);
    host.put("/config", Value::from("v1"));
    for name in ["a", "b", "c", "d"] {
        host.put(&format!("/dir/{name}"), Value::from(name));
    }
    host.put("/dir/c/deep", Value::Null);
    let mut c = load(src, &host);
    assert_eq!(
        to_json(&c.call("loaded", &Value::Null, &host).unwrap().response).to_string(),
        format!(r#"["v1",false,true,"{KEY}"]"#)
    );
    let list = |c: &mut Contract, opts: Value| {
        let p = Value::Object(obj().with("prefix", "/dir").with("opts", opts));
        to_json(&c.call("list", &p, &host).unwrap().response).to_string()
    };
    assert_eq!(list(&mut c, Value::Undefined), r#"["a","b","c","d"]"#);
    let o = |r: bool, off: i32, lim: i32| {
        Value::Object(
            obj()
                .with("reverse", r)
                .with("offset", off)
                .with("limit", lim),
        )
    };
    assert_eq!(list(&mut c, o(true, 0, 0)), r#"["d","c","b","a"]"#);
    assert_eq!(list(&mut c, o(false, 1, 2)), r#"["b","c"]"#);
    assert_eq!(list(&mut c, o(true, 3, 5)), r#"["a"]"#);
    let e = c
        .call("entry", &Value::Object(obj().with("path", "dir/c/")), &host)
        .unwrap()
        .response;
    assert_eq!(
        to_json(&e).to_string(),
        r#"{"seq":4,"container":false,"name":"c","path":"/dir/c","value":"c"}"#
    );
}

#[test]
fn apply_reads_the_index_version_the_host_serves() {
    let src = r#"
import { index } from 'contract'
export async function apply (tx) { tx.put('/n', ((await index.get('/n'))?.value ?? 0) + 1) }
"#;
    let mut host = MemoryHost::new();
    let mut c = load(src, &host);
    for _ in 0..3 {
        let changes = applied(&mut c, &host, "INC");
        host.apply_changes(&changes);
    }
    assert_eq!(applied(&mut c, &host, "INC"), [put("/n", 4)]);
    // A replay of the second op sees the index as it was before it.
    let before_second = host.checkout(2);
    assert_eq!(applied(&mut c, &before_second, "INC"), [put("/n", 2)]);
}

#[test]
fn values_cross_the_boundary_intact() {
    let src = r#"
export function echo (p) { return p }
export function kinds (p) {
  return [p.bytes instanceof Uint8Array, p.date instanceof Date, Object.is(p.negZero, -0),
          'undef' in p, p.undef === undefined, Object.keys(p.order).join(','),
          Object.getPrototypeOf(p.proto) === Object.prototype, Object.keys(p.proto).join(',')]
}
export function made () {
  return {s: 'Grüße 中文 😀', lone: '\ud800', n: [0, -0, 1.5, 2 ** 31, NaN, Infinity], u: undefined,
          b: new Uint8Array([0, 255]), ab: new Uint8Array([9]).buffer, d: new Date(86400000),
          nested: {z: 1, 10: 'ten', 2: 'two', a: [null, , 3]}}
}
export const apply = {}
"#;
    let host = MemoryHost::new();
    let mut c = load(src, &host);
    let mut proto = obj();
    proto.insert("__proto__", Value::from(1));
    let p = Value::Object(
        obj()
            .with("bytes", Value::Bytes(vec![1, 2, 3]))
            .with("date", Value::Date(1.5e12))
            .with("negZero", Value::Number(-0.0))
            .with("undef", Value::Undefined)
            .with("order", obj().with("b", 1).with("7", 2).with("a", 3))
            .with("proto", proto),
    );
    let echoed = c.call("echo", &p, &host).unwrap().response;
    assert_eq!(to_json(&echoed), to_json(&p));
    let neg = echoed.get("negZero").and_then(Value::as_f64).unwrap();
    assert!(neg == 0.0 && neg.is_sign_negative());
    assert_eq!(
        to_json(&c.call("kinds", &p, &host).unwrap().response).to_string(),
        r#"[true,true,true,true,true,"7,b,a",true,"__proto__"]"#
    );
    let made = c.call("made", &Value::Null, &host).unwrap().response;
    assert_eq!(
        to_json(&made).to_string(),
        r#"{"s":"Grüße 中文 😀","lone":"�","n":[0,0,1.5,2147483648,{"$number":"NaN"},{"$number":"Infinity"}],"u":{"$undefined":true},"b":{"$buffer":"00ff"},"ab":{"$buffer":"09"},"d":{"$date":86400000},"nested":{"2":"two","10":"ten","z":1,"a":[null,{"$undefined":true},3]}}"#
    );
}

#[test]
fn values_that_cannot_cross_are_typed_errors_never_a_crash() {
    let src = r#"
export function cycle () { const a = {}; a.self = a; return a }
export function deep () { let v = 1; for (let i = 0; i < 100000; i++) v = [v]; return v }
export function fn () { return {f () {}} }
export function sym () { return [Symbol('s')] }
export function big () { return 1n }
export function map () { return new Map() }
export function floats () { return new Float64Array(2) }
export function shared () { const x = {v: 1}; return [x, x] }
export function emitCycle (p, emit) { const a = []; a.push(a); try { emit(a) } catch (e) { return e.name + ': ' + e.message } }
export const apply = {}
"#;
    let host = MemoryHost::new();
    let mut c = Contract::load(
        src,
        Limits {
            time_budget: Duration::from_secs(5),
            ..Limits::default()
        },
        &host,
    )
    .unwrap();
    for (m, reason) in [
        ("cycle", "value contains a cycle (at .self)"),
        ("deep", "value nests deeper than 256 levels"),
        ("fn", "a function cannot leave the contract (at .f)"),
        ("sym", "a symbol cannot leave the contract (at [0])"),
        ("big", "a bigint cannot leave the contract (at the top)"),
        ("map", "a Map cannot leave the contract (at the top)"),
        (
            "floats",
            "a typed array other than Uint8Array cannot leave the contract",
        ),
    ] {
        let e = c.call(m, &Value::Null, &host).unwrap_err();
        match &e {
            ContractError::BadValue { during, reason: r } => {
                assert_eq!(during, &Phase::Method(m.into()));
                assert!(r.contains(reason), "{m}: {r}");
            }
            other => panic!("{m}: {other:?}"),
        }
    }
    assert_eq!(
        to_json(&c.call("shared", &Value::Null, &host).unwrap().response).to_string(),
        r#"[{"v":1},{"v":1}]"#
    );
    assert_eq!(
        c.call("emitCycle", &Value::Null, &host).unwrap().response,
        Value::from("TypeError: emit(): value contains a cycle (at [0])")
    );
}

#[test]
fn load_failures_are_typed() {
    let host = MemoryHost::new();
    let quick = Limits {
        time_budget: Duration::from_millis(50),
        ..Limits::default()
    };
    let e = Contract::load("export function (", quick.clone(), &host).unwrap_err();
    assert!(
        matches!(&e, ContractError::Parse { name, message } if name == "SyntaxError" && message.contains("contract.js:1")),
        "{e:?}"
    );
    let e = Contract::load("throw new RangeError('top')", quick.clone(), &host).unwrap_err();
    assert_eq!(
        e,
        ContractError::Runtime {
            during: Phase::Load,
            name: "RangeError".into(),
            message: "top".into()
        }
    );
    let e = Contract::load("for (;;) {}", quick.clone(), &host).unwrap_err();
    assert_eq!(
        e.to_string(),
        "contract exceeded its 50 ms time budget in load"
    );
    let e = Contract::load("await new Promise(() => {})", quick, &host).unwrap_err();
    assert_eq!(e.to_string(), "load never settled its promise");
}
