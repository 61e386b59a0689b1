//! Contract runtime speed: a trivial method call and an `apply` with one put, per call.
//!
//! JS anchor: JS Vitra 0.1.3 runs contracts in isolated-vm in a separate process, about
//! 290 µs per trivial call. Goal here: a trivial call under 10 µs.
//!
//! Run: `cargo bench --bench contract`.

use std::hint::black_box;
use std::time::{Duration, Instant};
use vitra::codec::{Object, Value};
use vitra::contract::{ApplyOutcome, Contract, Limits, MemoryHost};

const SOURCE: &str = r#"
import { index } from 'contract'
export function ping () { return 1 }
export function echo (params) { return params }
export async function read ({path}) { return (await index.get(path))?.value }
export const apply = {
  PUT (tx, op) { tx.put(op.path, op.value) },
}
"#;

/// Runs `f` for about `target` (after a warm-up) and returns the mean time per run.
fn measure(target: Duration, mut f: impl FnMut()) -> (Duration, u64) {
    for _ in 0..1_000 {
        f();
    }
    let mut runs = 0u64;
    let start = Instant::now();
    while start.elapsed() < target {
        for _ in 0..1_000 {
            f();
        }
        runs += 1_000;
    }
    (start.elapsed() / runs as u32, runs)
}

fn report(name: &str, (per, runs): (Duration, u64)) {
    println!(
        "{name:<40} {:>9.2} µs/call  ({:>9.0} calls/s, {runs} runs)",
        per.as_secs_f64() * 1e6,
        1.0 / per.as_secs_f64()
    );
}

fn main() {
    let target = Duration::from_secs(2);
    let mut host = MemoryHost::new();
    host.put("/counter", Value::from(41));
    let mut contract =
        Contract::load(SOURCE, Limits::default(), &host).expect("bench contract loads");
    let empty = Value::Object(Object::new());

    println!(
        "contract runtime (rquickjs / QuickJS-NG); JS Vitra 0.1.3 anchor: ~290 µs per trivial call"
    );
    report(
        "trivial method call (ping)",
        measure(target, || {
            let out = contract.call("ping", &empty, &host).expect("ping");
            black_box(out);
        }),
    );

    let params = Value::Object(Object::new().with("name", "value").with("n", 42).with(
        "list",
        Value::Array(vec![Value::from(1), Value::from("two")]),
    ));
    report(
        "method echoing a small object",
        measure(target, || {
            black_box(contract.call("echo", &params, &host).expect("echo"));
        }),
    );

    let path = Value::Object(Object::new().with("path", "/counter"));
    report(
        "async method with one index.get",
        measure(target, || {
            black_box(contract.call("read", &path, &host).expect("read"));
        }),
    );

    let op = Value::Object(
        Object::new()
            .with("op", "PUT")
            .with("path", "/counter")
            .with("value", 42),
    );
    let ack = Value::Object(
        Object::new()
            .with("success", Value::Undefined)
            .with("error", Value::Undefined)
            .with("origin", "ab".repeat(32))
            .with("seq", 0)
            .with("ts", 1.7e12)
            .with("metadata", Value::Undefined)
            .with("numChanges", 0),
    );
    report(
        "apply with one put",
        measure(target, || {
            let out = contract.apply(&op, &ack, &host).expect("apply");
            assert!(matches!(out, ApplyOutcome::Applied { .. }));
            black_box(out);
        }),
    );

    let start = Instant::now();
    let mut loads = 0u32;
    while start.elapsed() < Duration::from_secs(2) {
        black_box(Contract::load(SOURCE, Limits::default(), &host).expect("load"));
        loads += 1;
    }
    println!(
        "{:<40} {:>9.2} ms/load",
        "load (runtime + sandbox + module)",
        start.elapsed().as_secs_f64() * 1e3 / f64::from(loads)
    );
}
