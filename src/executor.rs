//! The executor: runs each participant's operations through the contract and writes the
//! results to the index (VITRA-FORMAT.md section 7).
//!
//! For oplog `L`, block `seq` (each oplog strictly in order, from one after its last ack):
//! `process(op)` gives the ack's metadata; `apply(tx, op, ack)` gives the changes or a
//! rejection; then one Hyperbee batch writes the ack at `/.sys/acks/<L>/<seq>` followed by the
//! changes in `localeCompare` order. Contract-source and participant changes take effect right
//! after the batch.
//!
//! Throughput comes from group commit: the batches of many operations are buffered in the
//! [`IndexLog`](crate::database::IndexLog) and made durable with one append (one fsync group,
//! one signature). Each operation keeps its own ack-then-changes run of blocks, byte for byte
//! what JS Vitra writes. Nothing reaches disk for an operation until its whole batch does, and
//! the next operation to process is always derived from the acks in the index, so a restart
//! (also after a crash) never processes an operation twice or skips one.
//!
//! What the executor must never do: stop on a bad operation or a misbehaving contract (those
//! become failed acks: undecodable bytes reach `apply` as `undefined`, and a contract that
//! throws, loops or exhausts its memory fails that one operation), or ack an operation whose
//! processing failed for reasons outside the contract (storage, engine): those stop the run,
//! unacked, to be retried.

use crate::bee::{path_to_key, RangeOptions};
use crate::codec::{self, Object, Value};
use crate::contract::{ApplyOutcome, Change, ContractError};
use crate::database::{Database, DatabaseError, Result};
use crate::schema::{self, Ack, ACK_PATH_PREFIX, CONTRACT_SOURCE_PATH, PARTICIPANT_PATH_PREFIX};
use std::collections::HashMap;

/// Pending index blocks after which the executor commits mid-run.
const GROUP_COMMIT_BLOCKS: usize = 8192;

/// Test-only executor misbehaviours, as JS Vitra 0.1.3's `ExecutorBehavior`: each breaks the
/// contract in a way the monitor must catch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExecutorBehavior {
    /// Follow the contract.
    #[default]
    Normal,
    /// Write a second ack for every operation (caught as `ProcessedOutOfOrderError`).
    ProcessOpMultipleTimes,
    /// Skip every second operation (caught as `ProcessedOutOfOrderError`).
    SkipOps,
    /// Ack every operation as a success with no changes, then write `/wrong` (caught as
    /// `ChangeNotProducedByMonitorError`).
    WrongOpMutations,
}

/// The executor's memory between runs: the next operation of each oplog.
#[derive(Debug, Default)]
pub(crate) struct ExecutorState {
    next_seq: HashMap<[u8; 32], u64>,
    counter: u64,
}

/// What one [`Database::execute_pending`] run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExecutionReport {
    /// Operations acked.
    pub processed: u64,
    /// Of those, operations whose `apply` failed.
    pub failed: u64,
}

/// An oplog block as the contract sees it: undecodable bytes become `undefined`, for the
/// executor and every monitor alike.
pub(crate) fn decode_op(bytes: &[u8]) -> Value {
    codec::decode(bytes).unwrap_or(Value::Undefined)
}

/// Whether a contract error is the contract's own doing (the same on every machine), and so
/// fails the operation rather than the run.
pub(crate) fn is_contract_failure(e: &ContractError) -> bool {
    matches!(
        e,
        ContractError::Parse { .. }
            | ContractError::ForbiddenImport { .. }
            | ContractError::Runtime { .. }
            | ContractError::ThrewNonError { .. }
            | ContractError::StackOverflow { .. }
            | ContractError::NeverSettled { .. }
            | ContractError::MethodNotFound { .. }
            | ContractError::ReservedMethod { .. }
            | ContractError::BadValue { .. }
    )
}

/// What `apply` decided for one operation.
enum Decision {
    Applied(Vec<Change>),
    Failed(String),
}

impl Database {
    /// Processes every available operation of every participant, in order, and commits the
    /// results to the index. Only the executor may call this.
    pub fn execute_pending(&mut self) -> Result<ExecutionReport> {
        if self.executor.is_none() {
            return Err(DatabaseError::NotTheExecutor {
                key: hex::encode(self.index_key),
            });
        }
        let mut report = ExecutionReport::default();
        let outcome = self.execute_rounds(&mut report);
        // Whatever happened, what was fully processed is made durable.
        self.commit_index()?;
        outcome.map(|()| report)
    }

    fn execute_rounds(&mut self, report: &mut ExecutionReport) -> Result<()> {
        loop {
            let mut progressed = false;
            for key in self.participants.clone() {
                let mut seq = self.next_seq(&key)?;
                while self.participants.contains(&key) {
                    let available = self.oplogs.get(&key).is_some_and(|log| log.has(seq));
                    if !available {
                        break;
                    }
                    if let Some(ok) = self.execute_op(&key, seq)? {
                        report.processed += 1;
                        report.failed += u64::from(!ok);
                    }
                    seq += 1;
                    progressed = true;
                    if self.index.log().pending() >= GROUP_COMMIT_BLOCKS {
                        self.commit_index()?;
                    }
                }
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    /// The next operation to process from oplog `key`: one after its last ack in the index.
    fn next_seq(&mut self, key: &[u8; 32]) -> Result<u64> {
        if let Some(state) = &self.executor {
            if let Some(seq) = state.next_seq.get(key) {
                return Ok(*seq);
            }
        }
        let prefix = path_to_key(&format!("{ACK_PATH_PREFIX}{}", hex::encode(key)));
        let mut lower = prefix.clone();
        lower.push(0);
        let mut upper = prefix;
        upper.push(1);
        let last = self
            .index
            .range(RangeOptions {
                gt: Some(lower),
                lt: Some(upper),
                reverse: true,
                limit: Some(1),
                ..Default::default()
            })
            .next()
            .transpose()?;
        let next = match last {
            Some(entry) => {
                let path = crate::bee::key_to_path(&entry.key);
                let name = crate::database::path_name(&path);
                name.parse::<u64>().map(|s| s + 1).map_err(|_| {
                    DatabaseError::MalformedIndexEntry {
                        path: path.clone(),
                        seq: entry.seq,
                        reason: "an ack path must end in a 15-digit block number".into(),
                    }
                })?
            }
            None => 0,
        };
        if let Some(state) = &mut self.executor {
            state.next_seq.insert(*key, next);
        }
        Ok(next)
    }

    /// Processes block `seq` of oplog `key`: `Some(success)` when acked, `None` when a test
    /// behaviour skipped it.
    fn execute_op(&mut self, key: &[u8; 32], seq: u64) -> Result<Option<bool>> {
        let behavior = self.options.executor_behavior;
        if let Some(state) = &mut self.executor {
            state.next_seq.insert(*key, seq + 1);
            state.counter += 1;
            if behavior == crate::executor::ExecutorBehavior::SkipOps && state.counter % 2 == 0 {
                return Ok(None);
            }
        }
        let bytes = match self.oplogs.get(key).map(|log| log.get(seq)).transpose()? {
            Some(Some(bytes)) => bytes,
            _ => {
                return Err(DatabaseError::UnknownOplog {
                    key: hex::encode(key),
                })
            }
        };
        let op = decode_op(&bytes);
        let ts = (self.clock)();

        if behavior == ExecutorBehavior::WrongOpMutations {
            let ack = Ack {
                success: true,
                error: None,
                origin: *key,
                seq,
                ts,
                metadata: Value::Undefined,
                num_changes: 0,
            };
            let wrong = Change::Put {
                path: "/wrong".into(),
                value: Value::Object(Object::new().with("bad", "data")),
            };
            self.write_op(&ack, &[wrong])?;
            return Ok(Some(true));
        }

        let (metadata, decision) = self.run_contract(key, seq, ts, &op)?;
        let (ack, changes) = match decision {
            Decision::Applied(changes) => (
                Ack {
                    success: true,
                    error: None,
                    origin: *key,
                    seq,
                    ts,
                    metadata,
                    num_changes: changes.len() as u64,
                },
                changes,
            ),
            Decision::Failed(error) => (
                Ack {
                    success: false,
                    error: Some(error),
                    origin: *key,
                    seq,
                    ts,
                    metadata,
                    num_changes: 0,
                },
                Vec::new(),
            ),
        };
        self.write_op(&ack, &changes)?;
        if behavior == ExecutorBehavior::ProcessOpMultipleTimes {
            let again = Ack {
                num_changes: 0,
                ..ack.clone()
            };
            self.write_op(&again, &[])?;
        }
        self.take_effects(&changes)?;
        Ok(Some(ack.success))
    }

    /// `process` then `apply`, in restricted mode, against the index head.
    fn run_contract(
        &mut self,
        key: &[u8; 32],
        seq: u64,
        ts: f64,
        op: &Value,
    ) -> Result<(Value, Decision)> {
        let (contract, host) = match self.contract_at_head() {
            Ok(parts) => parts,
            Err(DatabaseError::Contract(e)) if is_contract_failure(&e) => {
                return Ok((Value::Undefined, Decision::Failed(e.to_string())));
            }
            Err(e) => return Err(e),
        };
        let metadata = match contract.process(op, &host) {
            Ok(v) => v,
            // JS Vitra records no metadata when `process` fails, and carries on.
            Err(e @ (ContractError::Host { .. } | ContractError::Engine { .. })) => {
                return Err(e.into())
            }
            Err(_) => Value::Undefined,
        };
        let pending = Ack::pending_value(key, seq, ts, &metadata);
        let decision = match contract.apply(op, &pending, &host) {
            Ok(ApplyOutcome::Applied { changes }) => Decision::Applied(changes),
            Ok(ApplyOutcome::Rejected { error }) => Decision::Failed(error),
            Err(e)
                if is_contract_failure(&e)
                    || matches!(
                        e,
                        ContractError::Timeout { .. } | ContractError::MemoryLimit { .. }
                    ) =>
            {
                Decision::Failed(e.to_string())
            }
            Err(e) => return Err(e.into()),
        };
        Ok((metadata, decision))
    }

    /// One Hyperbee batch: the ack, then the changes.
    fn write_op(&mut self, ack: &Ack, changes: &[Change]) -> Result<()> {
        let mut batch = self.index.batch();
        batch.put_value(
            &path_to_key(&schema::ack_path(&ack.origin, ack.seq)),
            &ack.to_value(),
        )?;
        for change in changes {
            match change {
                Change::Put { path, value } => {
                    batch.put_value(&path_to_key(path), value)?;
                }
                Change::Delete { path } => {
                    batch.del(&path_to_key(path))?;
                }
            }
        }
        batch.flush()?;
        Ok(())
    }

    /// Contract-source and participant changes take effect after their batch.
    fn take_effects(&mut self, changes: &[Change]) -> Result<()> {
        for change in changes {
            let Change::Put { path, value } = change else {
                continue;
            };
            if path == CONTRACT_SOURCE_PATH {
                self.contract = None;
            } else if path.starts_with(PARTICIPANT_PATH_PREFIX) {
                if let Some((key, active)) = crate::database::parse_participant(value) {
                    if active {
                        if !self.participants.contains(&key) {
                            self.participants.push(key);
                            self.open_oplog(&key)?;
                        }
                    } else {
                        self.participants.retain(|k| k != &key);
                    }
                }
            }
        }
        Ok(())
    }
}
