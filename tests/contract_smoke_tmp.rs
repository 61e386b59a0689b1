use vitra::codec::{Object, Value};
use vitra::contract::*;

#[test]
fn smoke() {
    let host = MemoryHost::new().with_local_writer(&"ab".repeat(32));
    let src = r#"
import { index, isWriter, oplog } from 'contract'
import assert from 'assert'
export function globals () { return Object.getOwnPropertyNames(globalThis).join(',') }
export function hello (p, emit) { emit({op: 'X', p}); return {isWriter, pk: oplog.pubkey, d: new Date(5), b: new Uint8Array([1,2])} }
export async function get ({path}) { return await index.get(path) }
export const apply = { X (tx, op, ack) { tx.put('/a', op.p); assert(true) } }
"#;
    let mut c = Contract::load(src, Limits::default(), &host).unwrap();
    println!("{:?}", c.methods());
    let out = c.call("globals", &Value::Object(Object::new()), &host).unwrap();
    println!("{}", out.response);
    let out = c.call("hello", &Value::Object(Object::new().with("x", 1)), &host).unwrap();
    println!("{} {:?}", out.response, out.ops);
    let r = c.apply(&out.ops[0], &Value::Object(Object::new()), &host).unwrap();
    println!("{r:?}");
    let e = Contract::load("export function x() {", Limits::default(), &host).unwrap_err();
    println!("{e}");
    let e = Contract::load("import fs from 'fs'\nexport const apply = () => {}", Limits::default(), &host).unwrap_err();
    println!("{e}");
}
#[test]
fn parse_error_shape() {
    let host = MemoryHost::new();
    let rt = Contract::load("export const apply = 1\nexport function x() {\n  let = = 2\n}", Limits::default(), &host).unwrap_err();
    println!("{rt:?}");
    let src = "export const apply = 1\nexport function f() { try { null.x } catch (e) { return e.stack } }";
    let mut c = Contract::load(src, Limits::default(), &host).unwrap();
    println!("{}", c.call("f", &Value::Null, &host).unwrap().response);
}
