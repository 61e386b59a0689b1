//! Many threads calling one database: a `SharedDatabase` commits the calls that arrive while
//! the disk is busy as one group (one synced append), and runs the executor between groups.
//! Every call still returns only once its operation is on disk, with its own inclusion proof.
//!
//! ```sh
//! cargo run --release --example many_callers            # 16 threads, 200 calls each
//! cargo run --release --example many_callers -- 64 50   # 64 threads, 50 calls each
//! ```

use std::time::{Duration, Instant};
use vitra::codec::{Object, Value};
use vitra::database::{Database, Location, Options, SharedDatabase, Verdict};

const CONTRACT: &str = include_str!("contracts/counter.js");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(16);
    let calls: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(200);
    let dir = tempfile::tempdir()?;
    let location = Location::Dir(dir.path().to_path_buf());
    let db =
        SharedDatabase::open(move || Database::create(location, CONTRACT, Options::default()))?;

    let start = Instant::now();
    std::thread::scope(|s| -> Result<(), String> {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let db = &db;
                s.spawn(move || -> Result<(), String> {
                    let by = Value::Object(Object::new().with("by", 1));
                    let mut last = None;
                    for _ in 0..calls {
                        last = Some(db.call("increment", &by).map_err(|e| e.to_string())?);
                    }
                    if let Some(tx) = last {
                        db.when_processed(&tx, Duration::from_secs(60))
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

    let stats = db.stats()?;
    let total = threads * calls;
    println!(
        "{total} calls from {threads} threads in {elapsed:.2} s: {:.0} calls/s, each synced \
         before it returned",
        total as f64 / elapsed
    );
    println!(
        "{} groups (one append each), {:.1} calls per group on average, {} at most; the \
         executor processed {} operations",
        stats.groups,
        stats.calls as f64 / stats.groups.max(1) as f64,
        stats.largest_group,
        stats.executed
    );
    let counter = db.call("get", &Value::Object(Object::new()))?.response;
    println!("counter = {counter}");
    match db.with(|db| db.verify())?? {
        Verdict::Verified { length } => println!("verified: {length} index blocks"),
        other => return Err(format!("did not verify: {other:?}").into()),
    }
    db.close()?;
    Ok(())
}
