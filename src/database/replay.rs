//! The monitor's environment for a database: operations come from the local oplogs (also
//! those of former participants, opened from the store on demand), replays run the contract
//! against a checkout of the index at the ack's block.

use super::{parse_key, Database, DbHost};
use crate::bee::path_to_key;
use crate::codec::Value;
use crate::contract::{ApplyOutcome, Change, Contract, ContractError};
use crate::executor::decode_op;
use crate::log::Log;
use crate::monitor::{BoxError, ChangeKind, ExpectedChange, ReplayEnv, ReplayOutcome};
use std::collections::HashMap;

/// Replays for one verification run; contracts are loaded once per source.
pub(crate) struct DbReplay<'a> {
    db: &'a Database,
    contracts: HashMap<String, Contract>,
    /// Oplogs the database does not hold open (former participants: their operations stay
    /// in the history after `removeOplog`), opened read-only from the store when an ack
    /// names them.
    former: HashMap<[u8; 32], Log>,
}

impl<'a> DbReplay<'a> {
    pub(crate) fn new(db: &'a Database) -> Self {
        DbReplay {
            db,
            contracts: HashMap::new(),
            former: HashMap::new(),
        }
    }

    /// The oplog `key`, or `None` when neither the database nor its store has it.
    fn oplog(&mut self, key: &[u8; 32]) -> Result<Option<&Log>, BoxError> {
        if let Some(log) = self.db.oplogs.get(key) {
            return Ok(Some(log));
        }
        if !self.former.contains_key(key) {
            match &self.db.store {
                Some(store) if store.contains(key) => {
                    self.former.insert(*key, store.open(key, None)?);
                }
                _ => return Ok(None),
            }
        }
        Ok(self.former.get(key))
    }
}

impl ReplayEnv for DbReplay<'_> {
    fn fetch_op(&mut self, origin: &str, seq: u64) -> Result<Option<Value>, BoxError> {
        let Some(key) = parse_key(origin) else {
            return Ok(None);
        };
        let Some(log) = self.oplog(&key)? else {
            return Ok(None);
        };
        Ok(log.get(seq)?.map(|bytes| decode_op(&bytes)))
    }

    fn replay(
        &mut self,
        source: &str,
        op: &Value,
        ack: &Value,
        at_seq: u64,
    ) -> Result<ReplayOutcome, BoxError> {
        let host = DbHost {
            index_key: self.db.index_key,
            index: self.db.index.checkout(at_seq)?,
            oplogs: &self.db.oplogs,
            participants: &self.db.participants,
            local_oplog: None,
        };
        if !self.contracts.contains_key(source) {
            match Contract::load(source, self.db.options.limits.clone(), &host) {
                Ok(contract) => {
                    self.contracts.insert(source.to_owned(), contract);
                }
                // A contract that cannot load fails every operation, for the executor too.
                Err(e) if crate::executor::is_contract_failure(&e) => {
                    return Ok(ReplayOutcome::Rejected(e.to_string()))
                }
                Err(e) => return Err(e.into()),
            }
        }
        let Some(contract) = self.contracts.get_mut(source) else {
            return Err("contract cache lost an entry".into());
        };
        match contract.apply(op, ack, &host) {
            Ok(ApplyOutcome::Applied { changes }) => {
                let mut expected = Vec::with_capacity(changes.len());
                for change in changes {
                    match change {
                        Change::Put { path, value } => expected.push(ExpectedChange {
                            kind: ChangeKind::Put,
                            path,
                            value,
                        }),
                        Change::Delete { path } => {
                            // Hyperbee writes nothing for a delete of an absent key.
                            if host.index.get(&path_to_key(&path))?.is_some() {
                                expected.push(ExpectedChange {
                                    kind: ChangeKind::Del,
                                    path,
                                    value: Value::Undefined,
                                });
                            }
                        }
                    }
                }
                Ok(ReplayOutcome::Changes(expected))
            }
            Ok(ApplyOutcome::Rejected { error }) => Ok(ReplayOutcome::Rejected(error)),
            Err(e) if crate::executor::is_contract_failure(&e) => {
                Ok(ReplayOutcome::Rejected(e.to_string()))
            }
            Err(e @ (ContractError::Timeout { .. } | ContractError::MemoryLimit { .. })) => {
                // The executor acks an op that exhausted its limits as failed; a replay that
                // exhausts the same limits agrees with that ack, but cannot confirm a success.
                if ack.get("success").and_then(Value::as_bool) == Some(false) {
                    Ok(ReplayOutcome::Rejected(e.to_string()))
                } else {
                    Err(format!("the replay hit this machine's contract limits: {e}").into())
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}
