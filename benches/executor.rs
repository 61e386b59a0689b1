//! The database benchmark, measured as JS Vitra 0.1.3 was measured on this kind of machine:
//! an on-disk database; 5,000 `put` calls of 100-byte values through `call` with the executor
//! running until all are processed; a full `verify()`; 1,000 random contract `get` calls;
//! 1,000 no-op calls. Prints figures beside JS Vitra's, and as its last line one JSON object.
//!
//! ```sh
//! cargo bench --bench executor
//! ```

use std::time::Instant;
use vitra::codec::{Object, Value};
use vitra::database::{Database, Location, Options, Verdict};
use vitra::log::Durability;

const CONTRACT: &str = r#"
import { index } from 'contract'
export async function get ({ key }) {
  const entry = await index.get('/values/' + key)
  return entry ? entry.value : undefined
}
export function put ({ key, value }, emit) { emit({ op: 'PUT', key, value }) }
export function noop () { return null }
export const apply = { PUT (tx, op) { tx.put('/values/' + op.key, op.value) } }
"#;

const PUTS: usize = 5_000;
const GETS: usize = 1_000;
const NOOPS: usize = 1_000;
/// How many calls arrive between two runs of the executor (it processes what is there).
const EXECUTOR_EVERY: usize = 100;

// JS Vitra 0.1.3 on this machine (issue 6): 112–182 ops/s executed, 534–943 ops/s verified,
// get p50 8.8 ms, no-op call 0.29 ms.
const JS_EXECUTOR_OPS: f64 = 182.0;
const JS_VERIFY_OPS: f64 = 943.0;
const JS_GET_P50_US: f64 = 8800.0;
const JS_NOOP_US: f64 = 290.0;

fn params(pairs: &[(&str, Value)]) -> Value {
    Value::Object(pairs.iter().cloned().collect::<Object>())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// 5,000 puts through `call` with the executor running; returns ops/s and the database.
fn run_puts(
    dir: &std::path::Path,
    durability: Durability,
    value: &str,
) -> Result<(f64, Database), Box<dyn std::error::Error>> {
    let options = Options {
        durability,
        ..Options::default()
    };
    let mut db = Database::create(Location::Dir(dir.to_path_buf()), CONTRACT, options)?;
    let start = Instant::now();
    for i in 0..PUTS {
        db.call(
            "put",
            &params(&[("key", format!("k{i}").into()), ("value", value.into())]),
        )?;
        if (i + 1) % EXECUTOR_EVERY == 0 {
            db.execute_pending()?;
        }
    }
    db.execute_pending()?;
    Ok((PUTS as f64 / start.elapsed().as_secs_f64(), db))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let value = "x".repeat(100);
    // As JS Hypercore writes (no fsync per append), for a like-for-like comparison.
    let buffered_dir = tempfile::tempdir()?;
    let (buffered_ops, _) = run_puts(buffered_dir.path(), Durability::Buffered, &value)?;
    // Our default: every call's append is synced to disk before it returns its proof.
    let dir = tempfile::tempdir()?;
    let (executor_ops, mut db) = run_puts(dir.path(), Durability::Synced, &value)?;

    let start = Instant::now();
    let verdict = db.verify()?;
    let verify_secs = start.elapsed().as_secs_f64();
    if !matches!(verdict, Verdict::Verified { .. }) {
        return Err(format!("the benchmark database did not verify: {verdict:?}").into());
    }
    let verify_ops = PUTS as f64 / verify_secs;

    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut gets = Vec::with_capacity(GETS);
    for _ in 0..GETS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let key = format!("k{}", seed % PUTS as u64);
        let t = Instant::now();
        let response = db.call("get", &params(&[("key", key.into())]))?.response;
        gets.push(t.elapsed().as_secs_f64() * 1e6);
        if response.as_str() != Some(value.as_str()) {
            return Err("a get returned the wrong value".into());
        }
    }
    gets.sort_by(f64::total_cmp);

    let t = Instant::now();
    for _ in 0..NOOPS {
        db.call("noop", &params(&[]))?;
    }
    let noop_us = t.elapsed().as_secs_f64() * 1e6 / NOOPS as f64;
    let (p50, p99) = (percentile(&gets, 0.5), percentile(&gets, 0.99));
    let rss = peak_rss_mb();

    println!(
        "executor: {executor_ops:>10.0} ops/s, each call synced to disk   (JS Vitra 0.1.3, never synced: 112–182; x{:.0})",
        executor_ops / JS_EXECUTOR_OPS
    );
    println!(
        "executor: {buffered_ops:>10.0} ops/s, appends buffered as JS does   (x{:.0})",
        buffered_ops / JS_EXECUTOR_OPS
    );
    println!(
        "verify:   {verify_ops:>10.0} ops/s   (JS Vitra 0.1.3: 534–943; x{:.0})",
        verify_ops / JS_VERIFY_OPS
    );
    println!(
        "get:      p50 {p50:.1} µs, p99 {p99:.1} µs   (JS Vitra p50 8.8 ms; x{:.0})",
        JS_GET_P50_US / p50
    );
    println!(
        "no-op:    {noop_us:.1} µs per call   (JS Vitra 290 µs; x{:.0})",
        JS_NOOP_US / noop_us
    );
    println!("peak RSS: {rss:.1} MB");
    println!(
        "{}",
        serde_json::json!({
            "executor_ops_per_s": executor_ops.round(),
            "executor_ops_per_s_buffered": buffered_ops.round(),
            "verify_ops_per_s": verify_ops.round(),
            "get_us_p50": (p50 * 10.0).round() / 10.0,
            "get_us_p99": (p99 * 10.0).round() / 10.0,
            "noop_call_us": (noop_us * 10.0).round() / 10.0,
            "rss_mb": (rss * 10.0).round() / 10.0,
            "puts": PUTS,
        })
    );
    Ok(())
}
