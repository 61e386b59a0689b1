//! A counter database: create it, call `increment` a few times, let the executor process
//! the operations, read the result, and verify the whole history.
//!
//! ```sh
//! cargo run --example counter            # in memory
//! cargo run --example counter -- ./data  # on disk, reusable with `vitra --dir ./data/...`
//! ```

use vitra::codec::{Object, Value};
use vitra::database::{Database, Location, Options, Verdict};

const CONTRACT: &str = include_str!("contracts/counter.js");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let location = match std::env::args().nth(1) {
        Some(dir) => Location::Dir(dir.into()),
        None => Location::Memory,
    };
    let mut db = Database::create(location, CONTRACT, Options::default())?;
    println!("created database {}", hex::encode(db.key()));
    println!("methods: {:?}", db.methods()?);

    for by in [1, 2, 39] {
        let tx = db.call("increment", &Value::Object(Object::new().with("by", by)))?;
        let op = &tx.operations[0];
        println!(
            "increment by {by}: op {} of oplog {}…",
            op.seq,
            &hex::encode(op.oplog)[..8]
        );
    }

    let report = db.execute_pending()?;
    println!("executor processed {} operations", report.processed);
    let value = db.call("get", &Value::Object(Object::new()))?.response;
    println!("counter = {value}");

    match db.verify()? {
        Verdict::Verified { length } => {
            println!("verified: {length} index blocks replayed and matched")
        }
        Verdict::Fraud(proof) => println!("FRAUD: {}", proof.summary()),
        Verdict::Incomplete(why) => println!("could not verify: {why}"),
    }
    Ok(())
}
