//! The database benchmark, measured as JS Vitra 0.1.3 was measured on this kind of machine:
//! an on-disk database; 5,000 `put` calls of 100-byte values through `call` with the executor
//! running until all are processed; a full `verify()`; 1,000 random contract `get` calls;
//! 1,000 no-op calls. Prints figures beside JS Vitra's, and as its last line one JSON object.
//!
//! `executor_ops_per_s` is at our default durability, every `call` returning only once its
//! operation is synced to disk, with the calls coming from 64 threads at once through a
//! [`SharedDatabase`] (as a host serving many clients gets them): calls that arrive while
//! the disk is busy are committed together, one synced append per group, and the executor
//! runs after every group. JS Vitra's figure does not depend on how many callers there are
//! (its executor is its bottleneck); ours does, so the other workloads are shown beside it:
//! - `executor_ops_per_s_one_caller`: one caller, one synced `call` after another, bound by
//!   the disk's sync latency (`fdatasync_us`: one small append to a growing file plus
//!   `fdatasync`);
//! - `executor_ops_per_s_buffered`: one caller, appends never synced, JS Vitra's durability;
//! - `executor_ops_per_s_batched_calls`: one caller handing over 100 calls at a time through
//!   `call_batch`, synced.
//!
//! The machine may be shared: run it more than once.
//!
//! ```sh
//! cargo bench --bench executor
//! ```

use std::io::Write;
use std::time::{Duration, Instant};
use vitra::codec::{Object, Value};
use vitra::database::{Database, Location, Options, SharedDatabase, Verdict};
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

/// The median time of one small append to a growing file plus `fdatasync`, in µs: the
/// floor of a call that must be on disk before it returns.
fn fdatasync_us(dir: &std::path::Path) -> Result<f64, Box<dyn std::error::Error>> {
    let mut file = std::fs::File::create(dir.join("probe"))?;
    let mut times = Vec::with_capacity(200);
    for _ in 0..200 {
        let t = Instant::now();
        file.write_all(&[7u8; 128])?;
        file.sync_data()?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    Ok(percentile(&times, 0.5))
}

/// What [`run_puts`] measured.
struct PutRun {
    ops_per_s: f64,
    /// One caller: the share of the wall time spent in the executor (running `apply`, writing
    /// the index). Concurrent callers: the mean number of calls per committed group.
    detail: f64,
    db: Database,
}

/// How the 5,000 puts reach the database.
#[derive(Clone, Copy)]
enum Callers {
    /// One caller, one `call` after another; the executor runs every [`EXECUTOR_EVERY`] calls.
    Sequential,
    /// One caller handing over [`EXECUTOR_EVERY`] calls at a time through `call_batch`.
    Batched,
    /// This many threads each making their share of the calls, one after another, through a
    /// [`SharedDatabase`] whose owner runs the executor after every group it commits.
    Concurrent(usize),
}

/// 5,000 puts with the executor running, then until all are processed.
fn run_puts(
    dir: &std::path::Path,
    durability: Durability,
    callers: Callers,
    value: &str,
) -> Result<PutRun, Box<dyn std::error::Error>> {
    let options = Options {
        durability,
        ..Options::default()
    };
    let put = |i: usize| params(&[("key", format!("k{i}").into()), ("value", value.into())]);
    if let Callers::Concurrent(threads) = callers {
        let location = Location::Dir(dir.to_path_buf());
        let shared = SharedDatabase::open(move || Database::create(location, CONTRACT, options))?;
        let key = shared.with(|db| db.key())?;
        let start = Instant::now();
        std::thread::scope(|s| -> Result<(), String> {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let shared = &shared;
                    s.spawn(move || -> Result<(), String> {
                        let mut last = None;
                        for i in (t..PUTS).step_by(threads) {
                            last = Some(shared.call("put", &put(i)).map_err(|e| e.to_string())?);
                        }
                        if let Some(tx) = last {
                            shared
                                .when_processed(&tx, Duration::from_secs(600))
                                .map_err(|e| e.to_string())?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for worker in workers {
                worker
                    .join()
                    .map_err(|_| "a caller panicked".to_owned())??;
            }
            Ok(())
        })?;
        let elapsed = start.elapsed().as_secs_f64();
        let stats = shared.stats()?;
        shared.close()?;
        let db = Database::load(dir, &key, Options::default())?;
        return Ok(PutRun {
            ops_per_s: PUTS as f64 / elapsed,
            detail: stats.calls as f64 / stats.groups.max(1) as f64,
            db,
        });
    }
    let mut db = Database::create(Location::Dir(dir.to_path_buf()), CONTRACT, options)?;
    let mut executing = Duration::ZERO;
    let start = Instant::now();
    let mut last = None;
    for round in 0..PUTS / EXECUTOR_EVERY {
        let calls = round * EXECUTOR_EVERY..(round + 1) * EXECUTOR_EVERY;
        if matches!(callers, Callers::Batched) {
            let calls: Vec<(&str, Value)> = calls.map(|i| ("put", put(i))).collect();
            for tx in db.call_batch(&calls)? {
                last = Some(tx?);
            }
        } else {
            for i in calls {
                last = Some(db.call("put", &put(i))?);
            }
        }
        let t = Instant::now();
        db.execute_pending()?;
        executing += t.elapsed();
    }
    if let Some(tx) = last {
        let t = Instant::now();
        db.when_processed(&tx, Duration::from_secs(600))?;
        executing += t.elapsed();
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(PutRun {
        ops_per_s: PUTS as f64 / elapsed,
        detail: executing.as_secs_f64() / elapsed,
        db,
    })
}

/// The number of concurrent callers in the headline figure (`VITRA_BENCH_CALLERS` overrides).
const CALLERS: usize = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let value = "x".repeat(100);
    let callers = match std::env::var("VITRA_BENCH_CALLERS") {
        Ok(n) => n.parse::<usize>()?.max(1),
        Err(_) => CALLERS,
    };
    // Our default durability: every call's append is synced before it returns its proof.
    // Many callers at once, as a host serving many clients sees them (group commit).
    let dir = tempfile::tempdir()?;
    let concurrent = run_puts(
        dir.path(),
        Durability::Synced,
        Callers::Concurrent(callers),
        &value,
    )?;
    let (executor_ops, mean_group, mut db) =
        (concurrent.ops_per_s, concurrent.detail, concurrent.db);
    // One caller, one synced call after another: bound by the disk's sync latency.
    let one_dir = tempfile::tempdir()?;
    let sync_us = fdatasync_us(one_dir.path())?;
    let one = run_puts(
        one_dir.path(),
        Durability::Synced,
        Callers::Sequential,
        &value,
    )?;
    let (one_caller_ops, executor_share) = (one.ops_per_s, one.detail);
    drop(one);
    // One caller with appends buffered as JS Hypercore writes them (never synced).
    let buffered_dir = tempfile::tempdir()?;
    let buffered_ops = run_puts(
        buffered_dir.path(),
        Durability::Buffered,
        Callers::Sequential,
        &value,
    )?
    .ops_per_s;
    // One caller handing over 100 calls at a time, synced.
    let batched_dir = tempfile::tempdir()?;
    let batched_ops = run_puts(
        batched_dir.path(),
        Durability::Synced,
        Callers::Batched,
        &value,
    )?
    .ops_per_s;

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
        "executor: {executor_ops:>10.0} ops/s, {callers} callers, each call synced to disk before \
         it returns   = x{:.1} JS Vitra 0.1.3 (112–182 ops/s, never synced); {mean_group:.1} calls \
         per group commit",
        executor_ops / JS_EXECUTOR_OPS,
    );
    println!(
        "executor: {one_caller_ops:>10.0} ops/s, one caller, each call synced   = x{:.1} JS Vitra \
         0.1.3; executor's share of the time {:.0}%",
        one_caller_ops / JS_EXECUTOR_OPS,
        executor_share * 100.0
    );
    println!(
        "          this disk: one small append + fdatasync takes {sync_us:.0} µs (median), so \
         one caller waiting for the disk on every call stays under {:.0}/s",
        1e6 / sync_us
    );
    println!(
        "executor: {buffered_ops:>10.0} ops/s, one caller, appends buffered as JS does   = x{:.1} \
         JS Vitra 0.1.3",
        buffered_ops / JS_EXECUTOR_OPS
    );
    println!(
        "executor: {batched_ops:>10.0} ops/s, one caller handing over 100 calls at a time \
         (call_batch), synced   = x{:.1} JS Vitra 0.1.3",
        batched_ops / JS_EXECUTOR_OPS
    );
    println!(
        "verify:   {verify_ops:>10.0} ops/s   = x{:.1} JS Vitra 0.1.3 (534–943 ops/s)",
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
    let ratio = |x: f64| (x * 10.0).round() / 10.0;
    println!(
        "{}",
        serde_json::json!({
            "executor_ops_per_s": executor_ops.round(),
            "executor_callers": callers,
            "executor_mean_group": (mean_group * 10.0).round() / 10.0,
            "executor_ops_per_s_one_caller": one_caller_ops.round(),
            "executor_ops_per_s_buffered": buffered_ops.round(),
            "executor_ops_per_s_batched_calls": batched_ops.round(),
            "verify_ops_per_s": verify_ops.round(),
            "get_us_p50": (p50 * 10.0).round() / 10.0,
            "get_us_p99": (p99 * 10.0).round() / 10.0,
            "noop_call_us": (noop_us * 10.0).round() / 10.0,
            "rss_mb": (rss * 10.0).round() / 10.0,
            "puts": PUTS,
            "executor_vs_js": ratio(executor_ops / JS_EXECUTOR_OPS),
            "executor_one_caller_vs_js": ratio(one_caller_ops / JS_EXECUTOR_OPS),
            "executor_buffered_vs_js": ratio(buffered_ops / JS_EXECUTOR_OPS),
            "verify_vs_js": ratio(verify_ops / JS_VERIFY_OPS),
            "executor_share": (executor_share * 100.0).round() / 100.0,
            "fdatasync_us": sync_us.round(),
        })
    );
    Ok(())
}
