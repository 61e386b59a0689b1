//! Replication throughput over loopback TCP (secret stream, hypercore/alpha): 10,000 blocks of
//! 100 bytes, Rust → JS, JS → Rust and Rust → Rust, beside JS → JS (`compat-tests/
//! replicate_bench.js`) in the same run, for JS Hypercore 11 (compat) and 10.38. Times run from
//! dialing to the last block stored (JS readers use their default parallel `download()`).
//! Rust logs are in memory, plus one Rust -> Rust row with the replica on disk (the log engine
//! syncs every verified block to disk before recording it). Run: `cargo bench --bench replicate`.

#[path = "../tests/replicate_support/mod.rs"]
mod replicate_support;

use std::time::{Duration, Instant};

use replicate_support::{has_all_blocks, js_writer_session, serve_log, writer_log, Js, RustPair};
use vitra::log::{Durability, Storage};
use vitra::net::replicate::Download;

const BLOCKS: u64 = 10_000;
/// The size of `replicate_support::block(i)`.
const SIZE: usize = 100;

fn report(what: &str, d: Duration) {
    let s = d.as_secs_f64();
    println!(
        "{what:<32} {BLOCKS} blocks x {SIZE} B in {:>8.1} ms: {:>9.0} blocks/s {:>6.2} MB/s",
        s * 1e3,
        BLOCKS as f64 / s,
        (BLOCKS as f64 * SIZE as f64) / s / 1e6
    );
}

/// The `ms` figure of a JS event.
fn ms_of(ev: &serde_json::Value) -> Duration {
    Duration::from_secs_f64(ev["ms"].as_f64().expect("ms") / 1e3)
}

async fn js_to_js(version: &str) -> Duration {
    let mut js = Js::spawn(
        "replicate_bench.js",
        &[version, &BLOCKS.to_string(), &SIZE.to_string()],
    );
    let ev = js.wait_for("done", 180).await;
    let _ = js.child.wait().await;
    ms_of(&ev)
}

async fn rust_to_js(version: &str) -> Duration {
    let log = writer_log(BLOCKS);
    let key = log.public_key();
    let (mut set, mut rep, addr) = serve_log(log).await;
    let mut js = Js::spawn_reader(version, addr, &key);
    js.command(&format!("wait {BLOCKS}")).await;
    ms_of(&js.drive_until(&mut rep, &mut set, "have", 180).await)
}

async fn js_to_rust(version: &str) -> Duration {
    let mut s = js_writer_session(version, BLOCKS).await;
    let start = Instant::now();
    let key = s.key;
    s.rep
        .run_until(&mut s.set, Duration::from_secs(180), |set, _| {
            has_all_blocks(set, &key, BLOCKS)
        })
        .await
        .expect("JS -> Rust replication");
    start.elapsed()
}

async fn rust_to_rust() -> Duration {
    rust_to_rust_into(Storage::Memory(vitra::log::MemoryStorage::new())).await
}

async fn rust_to_rust_into(replica: Storage) -> Duration {
    rust_to_rust_with(replica, Durability::Synced).await
}

async fn rust_to_rust_with(replica: Storage, durability: Durability) -> Duration {
    let log = writer_log(BLOCKS);
    let key = log.public_key();
    let mut replica = vitra::log::Log::create_replica(replica, key).expect("replica");
    replica.set_durability(durability);
    let mut pair = RustPair::new(log, replica, Download::Full).await;
    let start = Instant::now();
    pair.connect().await;
    pair.drive_until(180, |_, sb| has_all_blocks(sb, &key, BLOCKS))
        .await;
    start.elapsed()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        for version in ["11", "10-38"] {
            report(
                &format!("JS {version} -> JS {version}"),
                js_to_js(version).await,
            );
            report(&format!("Rust -> JS {version}"), rust_to_js(version).await);
            report(&format!("JS {version} -> Rust"), js_to_rust(version).await);
        }
        report("Rust -> Rust", rust_to_rust().await);
        let dir = tempfile::tempdir().expect("tempdir");
        report(
            "Rust -> Rust (replica on disk)",
            rust_to_rust_into(Storage::Disk(dir.path().join("replica"))).await,
        );
        report(
            "Rust -> Rust (disk, Buffered)",
            rust_to_rust_with(
                Storage::Disk(dir.path().join("buffered")),
                Durability::Buffered,
            )
            .await,
        );
    });
}
