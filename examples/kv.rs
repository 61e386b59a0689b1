//! A key/value database with two participants: the owner claims the store, invites a second
//! oplog, both write, the owner expels the second one, and the history verifies.
//!
//! ```sh
//! cargo run --example kv
//! ```

use vitra::codec::{Object, Value};
use vitra::database::{Database, Location, Options, Verdict};

const CONTRACT: &str = include_str!("contracts/kv.js");

fn params(pairs: &[(&str, Value)]) -> Value {
    Value::Object(pairs.iter().cloned().collect::<Object>())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut db = Database::create(Location::Memory, CONTRACT, Options::default())?;
    let owner = db.local_oplog().ok_or("the creator has an oplog")?;
    db.call("claim", &params(&[]))?;

    let guest = db.create_oplog()?;
    db.call("invite", &params(&[("pubkey", hex::encode(guest).into())]))?;
    db.call(
        "put",
        &params(&[("key", "greeting".into()), ("value", "hello".into())]),
    )?;
    db.execute_pending()?;
    println!("participants: {}", db.participants().len());

    db.set_local_oplog(&guest)?;
    let tx = db.call(
        "put",
        &params(&[("key", "guest-was-here".into()), ("value", true.into())]),
    )?;
    db.execute_pending()?;
    let result = db.fetch_results(&tx)?.remove(0).ok_or("processed")?;
    println!(
        "guest's put: success = {}, changes = {}",
        result.success,
        result.changes.len()
    );

    db.set_local_oplog(&owner)?;
    db.call("expel", &params(&[("pubkey", hex::encode(guest).into())]))?;
    db.execute_pending()?;

    let keys = db.call("list", &params(&[]))?.response;
    println!("keys: {keys}");
    let greeting = db
        .call("get", &params(&[("key", "greeting".into())]))?
        .response;
    println!("greeting = {greeting}");

    match db.verify()? {
        Verdict::Verified { length } => println!("verified: {length} index blocks"),
        Verdict::Fraud(proof) => println!("FRAUD: {}", proof.summary()),
        Verdict::Incomplete(why) => println!("could not verify: {why}"),
    }
    Ok(())
}
