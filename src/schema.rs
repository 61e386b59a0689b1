//! The reserved `/.sys/` paths and the values stored there (VITRA-FORMAT.md section 3).
//!
//! Executor, monitor and database all read and write these; keeping them in one place keeps
//! the three in agreement. This module builds and names values; it does no I/O.

use crate::codec::{Object, Value};

/// Where the contract's source is kept.
pub const CONTRACT_SOURCE_PATH: &str = "/.sys/contract/source";
/// The prefix of participant declarations.
pub const PARTICIPANT_PATH_PREFIX: &str = "/.sys/inputs/";
/// The prefix of acks.
pub const ACK_PATH_PREFIX: &str = "/.sys/acks/";
/// The ack that closes the genesis entries.
pub const GENESIS_ACK_PATH: &str = "/.sys/acks/genesis";

/// `/.sys/inputs/<hex>`: where a participant oplog is declared.
pub fn participant_path(oplog: &[u8; 32]) -> String {
    format!("{PARTICIPANT_PATH_PREFIX}{}", hex::encode(oplog))
}

/// `/.sys/acks/<hex>/<seq padded to 15 digits>`: where the ack of one operation is kept.
pub fn ack_path(oplog: &[u8; 32], seq: u64) -> String {
    format!("{ACK_PATH_PREFIX}{}/{seq:015}", hex::encode(oplog))
}

/// `{pubkey: <32 bytes>, active}`: a participant declaration.
pub fn participant_value(oplog: &[u8; 32], active: bool) -> Value {
    Value::Object(
        Object::new()
            .with("pubkey", Value::Bytes(oplog.to_vec()))
            .with("active", active),
    )
}

/// The ack of one processed operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Ack {
    /// Whether `apply` completed.
    pub success: bool,
    /// The error as JS's `String(error)` gives it, when `apply` threw.
    pub error: Option<String>,
    /// The oplog the operation came from.
    pub origin: [u8; 32],
    /// The operation's block in that oplog.
    pub seq: u64,
    /// The executor's clock when it processed the operation (ms since the epoch).
    pub ts: f64,
    /// What `process()` returned (`Undefined` when there is none).
    pub metadata: Value,
    /// How many index changes the operation produced (0 when it failed).
    pub num_changes: u64,
}

impl Ack {
    /// The stored value, keys in JS Vitra's order: `success, error, origin, seq, ts,
    /// metadata, numChanges`.
    pub fn to_value(&self) -> Value {
        Value::Object(
            Object::new()
                .with("success", self.success)
                .with(
                    "error",
                    self.error.clone().map_or(Value::Undefined, Value::String),
                )
                .with("origin", hex::encode(self.origin))
                .with("seq", self.seq)
                .with("ts", self.ts)
                .with("metadata", self.metadata.clone())
                .with("numChanges", self.num_changes),
        )
    }

    /// The value `apply` sees while the executor runs it: `success` and `error` still
    /// `undefined`, `numChanges` 0.
    pub fn pending_value(origin: &[u8; 32], seq: u64, ts: f64, metadata: &Value) -> Value {
        Value::Object(
            Object::new()
                .with("success", Value::Undefined)
                .with("error", Value::Undefined)
                .with("origin", hex::encode(origin))
                .with("seq", seq)
                .with("ts", ts)
                .with("metadata", metadata.clone())
                .with("numChanges", 0u32),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode;

    #[test]
    fn ack_bytes_match_js_vitra() {
        // The first ack of the `counter` fixture, as JS Vitra 0.1.3 stored it (index block 4).
        let mut origin = [0u8; 32];
        hex::decode_to_slice(
            "4d93cb18299f7c11408345dfb6e6221a9efb094e96b86d0ceaf8e44923c5086b",
            &mut origin,
        )
        .expect("hex");
        let ack = Ack {
            success: true,
            error: None,
            origin,
            seq: 0,
            ts: 1795634745937.0,
            metadata: Value::Undefined,
            num_changes: 1,
        };
        assert_eq!(
            hex::encode(encode(&ack.to_value())),
            "de0007a773756363657373c3a56572726f72d40000a66f726967696ed940\
             34643933636231383239396637633131343038333435646662366536323231\
             613965666230393465393662383664306365616638653434393233633530383662\
             a373657100a27473cb427a2142bd251000a86d65746164617461d40000\
             aa6e756d4368616e67657301"
        );
        assert_eq!(
            ack_path(&origin, 4),
            format!("/.sys/acks/{}/000000000000004", hex::encode(origin))
        );
    }
}
