//! Transactions: what a method call did, with proofs, and what became of its operations.
//!
//! JSON both ways in JS Vitra's shape (`{"vitraTransaction": 1, databasePubkey, isProcessed,
//! call: {method, params}, response, operations: [{value, proof, result}]}`), so a
//! transaction recorded by either implementation can be checked by the other.

use super::{Database, DatabaseError, Result};
use crate::bee::{path_to_key, HistoryOptions};
use crate::codec::{from_json, to_json, Value};
use crate::monitor::ChangeKind;
use crate::proof::BlockInclusionProof;
use crate::schema;
use serde_json::{json, Value as Json};
use std::time::{Duration, Instant};

/// One operation a call emitted.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// The oplog it was appended to.
    pub oplog: [u8; 32],
    /// Its block in that oplog.
    pub seq: u64,
    /// The operation (what the method passed to `emit`).
    pub value: Value,
    /// The oplog's proof that it published the block.
    pub proof: BlockInclusionProof,
}

/// What a method call did.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    /// The database's key.
    pub database: [u8; 32],
    /// The method called.
    pub method: String,
    /// Its parameters.
    pub params: Value,
    /// Its response.
    pub response: Value,
    /// The operations it emitted, in order.
    pub operations: Vec<Operation>,
}

/// Why [`Database::when_processed`] stopped waiting before every operation was processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitEnd {
    /// The timeout passed.
    TimedOut,
    /// This instance is the executor and processed everything it can: the rest is not
    /// available to it (an oplog that is not, or no longer, a participant).
    ExecutorIdle,
    /// This instance is not the executor and has no connection to it here; wait with
    /// [`Database::when_processed_replicated`] instead.
    NotTheExecutor,
}

impl std::fmt::Display for WaitEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WaitEnd::TimedOut => "the timeout passed",
            WaitEnd::ExecutorIdle => {
                "the executor has nothing more it can process (is the operation's oplog a \
                 participant?)"
            }
            WaitEnd::NotTheExecutor => {
                "this instance is not the executor; wait while replicating with it"
            }
        })
    }
}

/// One index change an operation produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultChange {
    /// Put or delete.
    pub kind: ChangeKind,
    /// The index block.
    pub seq: u64,
    /// The path.
    pub path: String,
    /// The value (`Null` for deletes).
    pub value: Value,
}

/// What the executor did with one operation.
#[derive(Debug, Clone, PartialEq)]
pub struct OpResult {
    /// The index block of the ack.
    pub ack_seq: u64,
    /// The ack as stored.
    pub ack: Value,
    /// Whether `apply` succeeded.
    pub success: bool,
    /// The error, when it did not.
    pub error: Option<String>,
    /// The executor's clock when it processed the operation.
    pub processed_at: f64,
    /// The changes written right after the ack.
    pub changes: Vec<ResultChange>,
}

impl OpResult {
    /// `{success, error, processedAt, changes: [{type, seq, path, value}]}`.
    pub fn to_json(&self) -> Json {
        json!({
            "success": self.success,
            "error": self.error.as_ref().map_or(to_json(&Value::Undefined), |e| Json::String(e.clone())),
            "processedAt": self.processed_at,
            "changes": self.changes.iter().map(|c| json!({
                "type": c.kind.as_str(),
                "seq": c.seq,
                "path": c.path,
                "value": to_json(&c.value),
            })).collect::<Vec<_>>(),
        })
    }
}

impl Transaction {
    /// JS Vitra's transaction id: `<method>:<first 8 hex of the oplog>:<seq>` of the first
    /// operation (empty when the call emitted nothing).
    pub fn id(&self) -> String {
        self.operations
            .first()
            .map(|op| format!("{}:{}:{}", self.method, &hex::encode(op.oplog)[..8], op.seq))
            .unwrap_or_default()
    }

    /// The JSON document, with each operation's result where known.
    pub fn to_json(&self, results: &[Option<OpResult>]) -> Json {
        let processed = self
            .operations
            .iter()
            .enumerate()
            .all(|(i, _)| results.get(i).is_some_and(Option::is_some));
        json!({
            "vitraTransaction": 1,
            "databasePubkey": hex::encode(self.database),
            "isProcessed": processed,
            "call": {"method": self.method, "params": to_json(&self.params)},
            "response": to_json(&self.response),
            "operations": self.operations.iter().enumerate().map(|(i, op)| json!({
                "value": to_json(&op.value),
                "proof": op.proof.to_json(),
                "result": results.get(i).and_then(Option::as_ref).map_or(Json::Null, OpResult::to_json),
            })).collect::<Vec<_>>(),
        })
    }

    /// Parses a transaction document (JS Vitra's or ours).
    pub fn from_json(doc: &Json) -> Result<Transaction> {
        let bad = |reason: &str| DatabaseError::MalformedDocument {
            what: "transaction",
            reason: reason.to_owned(),
        };
        if doc
            .get("vitraTransaction")
            .and_then(Json::as_f64)
            .unwrap_or(0.0)
            < 1.0
        {
            return Err(bad("missing vitraTransaction version"));
        }
        let database = doc
            .get("databasePubkey")
            .and_then(Json::as_str)
            .and_then(super::parse_key)
            .ok_or_else(|| bad("databasePubkey must be 64 hex characters"))?;
        let ops = doc
            .get("operations")
            .and_then(Json::as_array)
            .ok_or_else(|| bad("operations must be an array"))?;
        let mut operations = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let proof = BlockInclusionProof::from_json(op.get("proof").unwrap_or(&Json::Null))
                .map_err(|e| bad(&format!("operations[{i}].proof: {e}")))?;
            operations.push(Operation {
                oplog: proof.log_pubkey,
                seq: proof.block_seq,
                value: op.get("value").map_or(Value::Undefined, from_json),
                proof,
            });
        }
        let call = doc.get("call");
        Ok(Transaction {
            database,
            method: call
                .and_then(|c| c.get("method"))
                .and_then(Json::as_str)
                .unwrap_or("unknown")
                .to_owned(),
            params: call
                .and_then(|c| c.get("params"))
                .map_or(Value::Object(Default::default()), from_json),
            response: doc.get("response").map_or(Value::Undefined, from_json),
            operations,
        })
    }
}

impl Database {
    /// The ack of block `seq` of `oplog`, if the executor has processed it.
    pub fn fetch_ack(&self, oplog: &[u8; 32], seq: u64) -> Result<Option<(u64, Value)>> {
        let key = path_to_key(&schema::ack_path(oplog, seq));
        Ok(self
            .index
            .get_value(&key)?
            .map(|(entry, value)| (entry.seq, value)))
    }

    /// The ack and the changes of block `seq` of `oplog`, if processed.
    pub fn fetch_result(&self, oplog: &[u8; 32], seq: u64) -> Result<Option<OpResult>> {
        let Some((ack_seq, ack)) = self.fetch_ack(oplog, seq)? else {
            return Ok(None);
        };
        let success = ack.get("success").and_then(Value::as_bool).unwrap_or(false);
        let num_changes = ack.get("numChanges").and_then(Value::as_f64).unwrap_or(0.0) as u64;
        let mut changes = Vec::new();
        if success && num_changes > 0 {
            let opts = HistoryOptions {
                gt: Some(ack_seq as i64),
                lte: Some((ack_seq + num_changes) as i64),
                ..Default::default()
            };
            for entry in self.index.history(opts)? {
                let e = super::history_entry(entry?)?;
                changes.push(ResultChange {
                    kind: e.kind,
                    seq: e.seq,
                    path: e.path,
                    value: e.value,
                });
            }
        }
        Ok(Some(OpResult {
            ack_seq,
            success,
            error: ack.get("error").and_then(Value::as_str).map(str::to_owned),
            processed_at: ack.get("ts").and_then(Value::as_f64).unwrap_or(0.0),
            ack,
            changes,
        }))
    }

    /// The result of every operation of `tx` (`None` where not processed yet).
    pub fn fetch_results(&self, tx: &Transaction) -> Result<Vec<Option<OpResult>>> {
        tx.operations
            .iter()
            .map(|op| self.fetch_result(&op.oplog, op.seq))
            .collect()
    }

    /// Waits until every operation of `tx` has an ack in the index and returns their results
    /// (a rejected operation is processed too: its result has `success: false`). The executor
    /// processes what is pending ([`Database::execute_pending`]) until then, starting runs
    /// only while `timeout` has not passed. It returns as soon as waiting cannot help: on a
    /// database that is not the executor (nothing reaches it without replication; see
    /// [`Database::when_processed_replicated`]) and on an executor that has processed all it
    /// can, with [`DatabaseError::NotProcessed`] saying which.
    pub fn when_processed(&mut self, tx: &Transaction, timeout: Duration) -> Result<Vec<OpResult>> {
        let started = Instant::now();
        loop {
            let results = match self.processed_results(tx)? {
                Ok(results) => return Ok(results),
                Err(unprocessed) => unprocessed,
            };
            let why = if !self.is_executor() {
                WaitEnd::NotTheExecutor
            } else if started.elapsed() >= timeout {
                WaitEnd::TimedOut
            } else if self.execute_pending()?.processed > 0 {
                continue;
            } else {
                WaitEnd::ExecutorIdle
            };
            return Err(DatabaseError::NotProcessed {
                transaction: tx.id(),
                unprocessed: results,
                total: tx.operations.len(),
                waited: started.elapsed(),
                why,
            });
        }
    }

    /// Every result of `tx` when all its operations are processed, else how many are not.
    pub(crate) fn processed_results(
        &self,
        tx: &Transaction,
    ) -> Result<std::result::Result<Vec<OpResult>, usize>> {
        let results = self.fetch_results(tx)?;
        let unprocessed = results.iter().filter(|r| r.is_none()).count();
        Ok(if unprocessed == 0 {
            Ok(results.into_iter().flatten().collect())
        } else {
            Err(unprocessed)
        })
    }

    /// Whether every operation of `tx` has been processed.
    pub fn is_processed(&self, tx: &Transaction) -> Result<bool> {
        for op in &tx.operations {
            if self.fetch_ack(&op.oplog, op.seq)?.is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
