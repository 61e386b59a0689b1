//! `cargo bench --bench log`: append throughput of the log (single durable appends and
//! batches, on disk and in memory), printed beside JS Hypercore 10's figures from
//! `compat-tests/log-bench.js` (the anchor; JS does not fsync, we do once per batch).

use std::process::Command;
use std::time::Instant;

use vitra::log::{Log, MemoryStorage, Storage};

const SINGLE: u64 = 2_000;
const BATCHES: u64 = 100;
const BATCH_SIZE: usize = 1_000;
const BLOCK: usize = 64;

fn single(storage: Storage) -> f64 {
    let mut log = Log::create(storage).expect("create");
    let block = vec![7u8; BLOCK];
    let t = Instant::now();
    for _ in 0..SINGLE {
        log.append(&block).expect("append");
    }
    SINGLE as f64 / t.elapsed().as_secs_f64()
}

fn batched(storage: Storage) -> f64 {
    let mut log = Log::create(storage).expect("create");
    let batch = vec![vec![7u8; BLOCK]; BATCH_SIZE];
    let t = Instant::now();
    for _ in 0..BATCHES {
        log.append_batch(&batch).expect("append_batch");
    }
    (BATCHES as f64 * BATCH_SIZE as f64) / t.elapsed().as_secs_f64()
}

fn reads(storage: Storage) -> f64 {
    let mut log = Log::create(storage).expect("create");
    let batch = vec![vec![7u8; BLOCK]; BATCH_SIZE];
    for _ in 0..20 {
        log.append_batch(&batch).expect("append_batch");
    }
    let t = Instant::now();
    for i in 0..log.len() {
        log.get(i).expect("get");
    }
    log.len() as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let tmp = std::env::temp_dir().join(format!("vitra-log-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    println!("log append throughput, {BLOCK}-byte blocks (blocks/s; batches of {BATCH_SIZE})");
    let rust = [
        (
            "disk single (durable)",
            single(Storage::Disk(tmp.join("single"))),
        ),
        (
            "disk batch (durable)",
            batched(Storage::Disk(tmp.join("batch"))),
        ),
        (
            "memory single",
            single(Storage::Memory(MemoryStorage::new())),
        ),
        (
            "memory batch",
            batched(Storage::Memory(MemoryStorage::new())),
        ),
        ("disk get", reads(Storage::Disk(tmp.join("reads")))),
    ];
    for (name, v) in rust {
        println!("  vitra {name:<24} {v:>12.0}");
    }
    let compat = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("compat-tests");
    for version in ["10-31", "10-38"] {
        let out = Command::new("node")
            .arg(compat.join("log-bench.js"))
            .args([
                version,
                &tmp.to_string_lossy(),
                &SINGLE.to_string(),
                &BATCHES.to_string(),
                &BATCH_SIZE.to_string(),
                &BLOCK.to_string(),
            ])
            .current_dir(&compat)
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let v: serde_json::Value =
                    serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
                for (k, name) in [
                    ("diskSingle", "disk single (no fsync)"),
                    ("diskBatch", "disk batch (no fsync)"),
                    ("memSingle", "memory single"),
                    ("memBatch", "memory batch"),
                ] {
                    let x = v[k].as_f64().unwrap_or(f64::NAN);
                    println!("  JS hypercore {version} {name:<24} {x:>12.0}");
                }
            }
            Ok(o) => println!(
                "  JS hypercore {version}: bench failed: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => println!("  JS hypercore {version}: node unavailable: {e}"),
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
