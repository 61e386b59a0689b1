//! Hostile and broken contracts: each gets its own clear, typed error, and the very next call
//! on the same `Contract` works.

use std::time::Duration;
use vitra::codec::{Object, Value};
use vitra::contract::{ApplyOutcome, Contract, ContractError, Limits, MemoryHost, Phase};

const WRITER: &str = "1111111111111111111111111111111111111111111111111111111111111111";

const HOSTILE: &str = r#"
import { index } from 'contract'
let calls = 0
export function ping () { calls++; return 'pong' }
export function spin () { for (;;) {} }
export async function spinLater () { await null; for (;;) {} }
export function microtaskStorm () { const f = () => Promise.resolve().then(f); f(); return 1 }
export function bomb () { const keep = []; for (;;) keep.push(new Array(100000).fill(7)) }
export function bombCaught () {
  try { const keep = []; for (;;) keep.push('x'.repeat(1 << 20) + keep.length) } catch (e) { return 'survived' }
}
export function recurse () { const f = (n) => f(n + 1) + 1; return f(0) }
export function throwNumber () { throw 42 }
export function throwObject () { throw {a: 1} }
export function throwCustom () {
  class NotAllowed extends Error { constructor (m) { super(m); this.name = 'NotAllowed' } }
  throw new NotAllowed('no way')
}
export function neverSettles () { return new Promise(() => {}) }
export function importFs () { return import('fs') }
export const apply = {
  SPIN () { for (;;) {} },
  RECURSE () { const f = () => f(); f() },
  HANG () { return new Promise(() => {}) },
  THROW_NUMBER () { throw 7 },
  OK (tx) { tx.put('/ok', calls) },
}
"#;

fn quick() -> Limits {
    Limits {
        time_budget: Duration::from_millis(50),
        memory_bytes: 32 << 20,
        ..Limits::default()
    }
}

fn setup() -> (Contract, MemoryHost) {
    let host = MemoryHost::new().with_local_writer(WRITER);
    let c = Contract::load(HOSTILE, quick(), &host).expect("loads");
    (c, host)
}

fn call(
    c: &mut Contract,
    host: &dyn vitra::contract::ContractHost,
    m: &str,
) -> Result<Value, ContractError> {
    c.call(m, &Value::Object(Object::new()), host)
        .map(|o| o.response)
}

fn op(name: &str) -> Value {
    Value::Object(Object::new().with("op", name))
}

fn apply(c: &mut Contract, host: &MemoryHost, name: &str) -> Result<ApplyOutcome, ContractError> {
    c.apply(&op(name), &Value::Object(Object::new()), host)
}

fn still_works(c: &mut Contract, host: &MemoryHost) {
    assert_eq!(call(c, host, "ping").unwrap(), Value::from("pong"));
    assert!(matches!(
        apply(c, host, "OK").unwrap(),
        ApplyOutcome::Applied { .. }
    ));
}

fn method(m: &str) -> Phase {
    Phase::Method(m.into())
}

#[test]
fn endless_loop_in_a_method_hits_the_time_budget() {
    let (mut c, host) = setup();
    for m in ["spin", "spinLater", "microtaskStorm"] {
        let e = call(&mut c, &host, m).unwrap_err();
        assert_eq!(
            e,
            ContractError::Timeout {
                budget: Duration::from_millis(50),
                during: method(m)
            },
            "{m}"
        );
        assert_eq!(
            e.to_string(),
            format!("contract exceeded its 50 ms time budget in method {m}")
        );
        still_works(&mut c, &host);
    }
}

#[test]
fn endless_loop_in_apply_hits_the_time_budget() {
    let (mut c, host) = setup();
    let e = apply(&mut c, &host, "SPIN").unwrap_err();
    assert_eq!(
        e.to_string(),
        "contract exceeded its 50 ms time budget in apply"
    );
    still_works(&mut c, &host);
}

#[test]
fn memory_bomb_hits_the_memory_limit_even_when_caught() {
    let (mut c, host) = setup();
    for m in ["bomb", "bombCaught"] {
        let e = call(&mut c, &host, m).unwrap_err();
        assert_eq!(
            e,
            ContractError::MemoryLimit {
                limit_bytes: 32 << 20,
                during: method(m)
            },
            "{m}"
        );
        assert_eq!(
            e.to_string(),
            format!("contract exceeded its memory limit of 32 MiB in method {m}")
        );
        still_works(&mut c, &host);
    }
}

#[test]
fn deep_recursion_is_a_stack_overflow_error_not_a_crash() {
    let (mut c, host) = setup();
    assert_eq!(
        call(&mut c, &host, "recurse").unwrap_err(),
        ContractError::StackOverflow {
            during: method("recurse")
        }
    );
    // In apply it is the contract's failure, recorded as JS Vitra 0.1.3 records a RangeError
    // (wrapped in its ContractRuntimeError; observed with the real 0.1.3).
    assert_eq!(
        apply(&mut c, &host, "RECURSE").unwrap(),
        ApplyOutcome::Rejected {
            error: "ContractRuntimeError: The contract failed to execute with \"RangeError: \
                    Maximum call stack size exceeded\""
                .into()
        }
    );
    still_works(&mut c, &host);
}

#[test]
fn thrown_values_are_typed_errors() {
    let (mut c, host) = setup();
    assert_eq!(
        call(&mut c, &host, "throwNumber").unwrap_err(),
        ContractError::ThrewNonError {
            during: method("throwNumber"),
            value: "42".into()
        }
    );
    assert_eq!(
        call(&mut c, &host, "throwObject").unwrap_err(),
        ContractError::ThrewNonError {
            during: method("throwObject"),
            value: "[object Object]".into()
        }
    );
    // Subclasses that set `name` work although Error.prototype is frozen.
    assert_eq!(
        call(&mut c, &host, "throwCustom").unwrap_err(),
        ContractError::Runtime {
            during: method("throwCustom"),
            name: "NotAllowed".into(),
            message: "no way".into()
        }
    );
    // JS Vitra 0.1.3's sandbox loses a thrown primitive's text: its ack says "Error".
    assert_eq!(
        apply(&mut c, &host, "THROW_NUMBER").unwrap(),
        ApplyOutcome::Rejected {
            error: "Error".into()
        }
    );
    still_works(&mut c, &host);
}

#[test]
fn a_promise_that_never_settles_is_an_error() {
    let (mut c, host) = setup();
    let e = apply(&mut c, &host, "HANG").unwrap_err();
    assert_eq!(
        e,
        ContractError::NeverSettled {
            during: Phase::Apply
        }
    );
    assert_eq!(e.to_string(), "apply never settled its promise");
    assert_eq!(
        call(&mut c, &host, "neverSettles").unwrap_err(),
        ContractError::NeverSettled {
            during: method("neverSettles")
        }
    );
    still_works(&mut c, &host);
}

#[test]
fn imports_other_than_the_builtins_are_refused() {
    let host = MemoryHost::new();
    for src in [
        "import fs from 'fs'\nexport const apply = {}",
        "import { x } from './other.js'\nexport const apply = {}",
        "export * from 'child_process'",
    ] {
        let e = Contract::load(src, quick(), &host).unwrap_err();
        assert!(
            matches!(&e, ContractError::ForbiddenImport { specifier } if !specifier.is_empty()),
            "{src}: {e:?}"
        );
    }
    let (mut c, host) = setup();
    let e = call(&mut c, &host, "importFs").unwrap_err();
    assert!(
        matches!(&e, ContractError::Runtime { message, .. } if message.contains("Cannot import 'fs'")),
        "{e:?}"
    );
    still_works(&mut c, &host);
}

#[test]
fn code_generation_and_dangerous_globals_are_gone() {
    let src = r#"
export function probe () {
  const r = {}
  const attempt = (name, f) => { try { r[name] = 'returned ' + typeof f() } catch (e) { r[name] = e.name } }
  r.globalEval = typeof globalThis.eval
  r.Function = typeof Function
  r.WebAssembly = typeof WebAssembly
  r.Atomics = typeof Atomics
  attempt('eval', () => eval('1'))
  attempt('FunctionCall', () => Function('return this')())
  attempt('fnCtor', () => (function () {}).constructor('return this')())
  attempt('asyncCtor', () => (async () => {}).constructor('return 1'))
  attempt('genCtor', () => (function* () {}).constructor('yield 1'))
  attempt('asyncGenCtor', () => (async function* () {}).constructor('yield 1'))
  attempt('classCtor', () => (class {}).constructor('return 1'))
  return r
}
export const apply = {}
"#;
    let host = MemoryHost::new();
    let mut c = Contract::load(src, quick(), &host).unwrap();
    let r = call(&mut c, &host, "probe").unwrap();
    let expect = [
        ("globalEval", "undefined"),
        ("Function", "undefined"),
        ("WebAssembly", "undefined"),
        ("Atomics", "undefined"),
        ("eval", "ReferenceError"),
        ("FunctionCall", "ReferenceError"),
        ("fnCtor", "TypeError"),
        ("asyncCtor", "TypeError"),
        ("genCtor", "TypeError"),
        ("asyncGenCtor", "TypeError"),
        ("classCtor", "TypeError"),
    ];
    for (k, v) in expect {
        assert_eq!(r.get(k), Some(&Value::from(v)), "{k}: {r}");
    }
}

#[test]
fn builtins_cannot_be_polluted_for_a_later_call() {
    let src = r#"
import { index } from 'contract'
import assert from 'assert'
export function pollute ({what}) {
  if (what === 'index') index.get = async () => ({value: 'fake'})
  if (what === 'indexProto') Object.getPrototypeOf(index).get = async () => ({value: 'fake'})
  if (what === 'assert') assert.fail = () => {}
  if (what === 'objectProto') Object.prototype.polluted = 'yes'
  if (what === 'arrayMap') Array.prototype.map = function () { return 'hacked' }
  if (what === 'json') JSON.stringify = () => 'hacked'
  if (what === 'promiseThen') Promise.prototype.then = function () { for (;;) {} }
  if (what === 'global') globalThis.Array = function () {}
  if (what === 'mathRandom') Math.random = () => 4
  return 'polluted'
}
export async function check () {
  return [({}).polluted === undefined && (await index.get('/x')) === undefined, [1].map(x => x + 1)[0] === 2, JSON.stringify([1]) === '[1]',
          typeof Array.isArray === 'function', Math.random !== undefined]
}
export function ownOverrides () {
  const o = { toString () { return 'mine' } }
  o.valueOf = () => 5
  return String(o) + (+o)
}
export const apply = {}
"#;
    let host = MemoryHost::new();
    let mut c = Contract::load(src, quick(), &host).unwrap();
    for what in [
        "objectProto",
        "arrayMap",
        "json",
        "promiseThen",
        "global",
        "mathRandom",
    ] {
        let params = Value::Object(Object::new().with("what", what));
        let e = c.call("pollute", &params, &host).unwrap_err();
        assert!(
            matches!(&e, ContractError::Runtime { name, .. } if name == "TypeError"),
            "{what}: {e:?}"
        );
        let ok = call(&mut c, &host, "check").unwrap();
        assert_eq!(ok, Value::Array(vec![Value::Bool(true); 5]), "after {what}");
    }
    assert_eq!(
        call(&mut c, &host, "ownOverrides").unwrap(),
        Value::from("mine5")
    );
}

#[test]
fn apply_is_deterministic_and_process_is_not() {
    let src = r#"
import { genUUID } from 'util'
export function process (op) { return {r: Math.random() < 2, t: Date.now() > 0, d: new Date().getTime() > 0, u: genUUID().length} }
export function stamp () { return [typeof Date.now(), typeof Math.random(), Date().length > 0, genUUID()] }
export function apply (tx, op) {
  if (op.op === 'RANDOM') Math.random()
  if (op.op === 'NOW') Date.now()
  if (op.op === 'NEW_DATE') new Date()
  if (op.op === 'DATE_CALL') Date()
  if (op.op === 'UUID') genUUID()
  if (op.op === 'SUBCLASS') { class D extends Date {}; new D() }
  tx.put('/epoch', new Date(0))
}
"#;
    let host = MemoryHost::new();
    let mut c = Contract::load(src, quick(), &host).unwrap();
    for (name, what) in [
        ("RANDOM", "Math.random()"),
        ("NOW", "Date.now()"),
        ("NEW_DATE", "new Date()"),
        ("DATE_CALL", "Date()"),
        ("UUID", "genUUID()"),
        ("SUBCLASS", "new Date()"),
    ] {
        let ApplyOutcome::Rejected { error } = apply(&mut c, &host, name).unwrap() else {
            panic!("{name} was applied");
        };
        assert_eq!(
            error,
            format!("Error: {what} is not available in apply: apply must be deterministic (use process() for timestamps and random values)")
        );
    }
    assert_eq!(
        apply(&mut c, &host, "FINE").unwrap(),
        ApplyOutcome::Applied {
            changes: vec![vitra::contract::Change::Put {
                path: "/epoch".into(),
                value: Value::Date(0.0)
            }]
        }
    );
    let meta = c.process(&op("X"), &host).unwrap();
    assert_eq!(
        vitra::codec::to_json(&meta).to_string(),
        r#"{"r":true,"t":true,"d":true,"u":36}"#
    );
    let stamp = call(&mut c, &host, "stamp").unwrap();
    let uuid = stamp.as_array().unwrap()[3].as_str().unwrap().to_owned();
    assert_eq!(uuid.len(), 36);
    assert_eq!(&uuid[14..15], "4", "{uuid}");
}

#[test]
fn restricted_mode_refuses_host_calls_other_than_index_reads() {
    let src = r#"
import { index, oplog, listOplogs, isWriter } from 'contract'
export async function info () {
  return {isWriter, key: oplog.pubkey, len: await oplog.getLength(), first: await oplog.get(0),
          oplogs: listOplogs().map(o => o.pubkey)}
}
export async function process (op) { return await oplog.getLength() }
export async function apply (tx, op) {
  const seen = await index.get('/seen')
  const listed = await index.list('/')
  if (op.op === 'LEN') await oplog.getLength()
  if (op.op === 'GET') await oplog.get(0)
  if (op.op === 'LIST') listOplogs()
  tx.put('/seen', {before: seen?.value ?? null, listed: listed.length})
}
"#;
    let mut host = MemoryHost::new().with_local_writer(WRITER);
    host.append_ops(WRITER, [Value::from("op0")]);
    host.put("/seen", Value::from(1));
    let mut c = Contract::load(src, quick(), &host).unwrap();
    let info = call(&mut c, &host, "info").unwrap();
    assert_eq!(
        vitra::codec::to_json(&info).to_string(),
        format!(
            r#"{{"isWriter":true,"key":"{WRITER}","len":1,"first":{{"seq":0,"value":"op0"}},"oplogs":["{WRITER}"]}}"#
        )
    );
    for (name, what) in [
        ("LEN", "oplog.getLength()"),
        ("GET", "oplog.get()"),
        ("LIST", "listOplogs()"),
    ] {
        assert_eq!(
            apply(&mut c, &host, name).unwrap(),
            ApplyOutcome::Rejected {
                error: format!("Error: {what} is not available during apply: only index reads are allowed in restricted mode")
            }
        );
    }
    let e = c.process(&op("X"), &host).unwrap_err();
    assert!(
        matches!(&e, ContractError::Runtime { during: Phase::Process, message, .. } if message.contains("restricted mode")),
        "{e:?}"
    );
    assert_eq!(
        apply(&mut c, &host, "READ").unwrap(),
        ApplyOutcome::Applied {
            changes: vec![vitra::contract::Change::Put {
                path: "/seen".into(),
                value: Value::Object(Object::new().with("before", 1).with("listed", 1)),
            }]
        }
    );
}

#[test]
fn host_failures_abort_the_call_even_if_the_contract_catches_them() {
    use vitra::contract::{ContractHost, HostError, IndexEntry, ListEntry, ListOptions};
    struct Broken;
    impl ContractHost for Broken {
        fn get(&self, _: &str) -> Result<Option<IndexEntry>, HostError> {
            Err(HostError::Failed("disk on fire".into()))
        }
        fn list(&self, _: &str, _: &ListOptions) -> Result<Vec<ListEntry>, HostError> {
            Err(HostError::Refused("no listing here".into()))
        }
        fn local_oplog(&self) -> Option<String> {
            None
        }
        fn oplog_length(&self, _: &str) -> Result<u64, HostError> {
            Ok(0)
        }
        fn oplog_get(&self, _: &str, _: u64) -> Result<Value, HostError> {
            Ok(Value::Null)
        }
        fn list_oplogs(&self) -> Result<Vec<String>, HostError> {
            Ok(vec![])
        }
    }
    let src = r#"
import { index } from 'contract'
export async function read () { try { await index.get('/x') } catch (e) { return 'caught' } }
export async function list () { try { await index.list('/') } catch (e) { return e.message } }
export const apply = {}
"#;
    let mut c = Contract::load(src, quick(), &Broken).unwrap();
    assert_eq!(
        call(&mut c, &Broken, "read").unwrap_err(),
        ContractError::Host {
            during: method("read"),
            message: "disk on fire".into()
        }
    );
    // A refusal is the contract's to handle.
    assert_eq!(
        call(&mut c, &Broken, "list").unwrap(),
        Value::from("no listing here")
    );
}

#[test]
fn recursion_inside_builtins_and_regex_backtracking_are_contained() {
    let src = r#"
const deep = () => { let v = [1]; for (let i = 0; i < 200000; i++) v = [v]; return v }
export function json () { return JSON.stringify(deep()).length }
export function join () { return String(deep()).length }
export function flat () { return deep().flat(Infinity).length }
export function parse () { return JSON.parse('['.repeat(200000) + ']'.repeat(200000)).length }
export function proxies () { let p = {}; for (let i = 0; i < 100000; i++) p = new Proxy(p, {}); return p.x }
export function backtrack () { return /(a+)+$/.test('a'.repeat(40) + 'b') }
export const apply = {}
"#;
    let host = MemoryHost::new();
    let limits = Limits {
        time_budget: Duration::from_millis(500),
        ..quick()
    };
    let mut c = Contract::load(src, limits, &host).unwrap();
    for m in ["json", "join", "flat", "parse", "proxies"] {
        assert_eq!(
            call(&mut c, &host, m).unwrap_err(),
            ContractError::StackOverflow { during: method(m) },
            "{m}"
        );
    }
    assert_eq!(
        call(&mut c, &host, "backtrack").unwrap_err(),
        ContractError::Timeout {
            budget: Duration::from_millis(500),
            during: method("backtrack")
        }
    );
}
