//! The monitor: replays every operation against the contract and checks the executor's index.
//!
//! A [`Monitor`] walks the index history from block 1, one entry at a time (VITRA-FORMAT.md
//! section 8): the genesis entries (contract source, participant declarations, the genesis
//! ack), then for every operation its ack followed by exactly the changes a replay of the
//! contract's `apply` produces. The first disagreement is a [`FraudDetails`] with JS Vitra's
//! failure code and wording; a problem that is not the executor's fault (an operation that
//! cannot be fetched, a replay that hit a resource limit) is a [`VerificationError`], never
//! a fraud claim.
//!
//! Unlike JS Vitra 0.1.3 the monitor here
//! - does not compare the value of a delete (0.1.3 compares the stored `null` with the
//!   replay's `undefined` and so calls every delete a mismatch);
//! - goes straight back to awaiting the next ack after an operation with zero changes
//!   (0.1.3 waits for a change that never comes and blames the next ack);
//! - reports an operation whose changes stop short at the end of the history
//!   ([`Monitor::finish`]).
//!
//! The monitor never reads storage itself: the caller feeds entries and supplies a
//! [`ReplayEnv`] that fetches operations and runs the contract on an index checkout.

use crate::codec::{deep_equal, to_json, Value};
use crate::proof::{FraudCode, FraudDetails};
pub use crate::schema::{
    ACK_PATH_PREFIX, CONTRACT_SOURCE_PATH, GENESIS_ACK_PATH, PARTICIPANT_PATH_PREFIX,
};
use serde_json::{json, Value as Json};
use std::collections::{BTreeSet, HashMap, VecDeque};
use thiserror::Error;

/// Whether an index entry is a put or a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A put (also a put of `null`).
    Put,
    /// A delete.
    Del,
}

impl ChangeKind {
    /// `"put"` or `"del"`, as JS Vitra writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Put => "put",
            ChangeKind::Del => "del",
        }
    }
}

/// One entry of the index history, as the monitor reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    /// The index block number.
    pub seq: u64,
    /// Put or delete.
    pub kind: ChangeKind,
    /// The Vitra path (`/a/b`).
    pub path: String,
    /// The stored value (`Null` for deletes and for puts of `null`).
    pub value: Value,
    /// Why the stored value bytes could not be decoded, when they could not (`value` is then
    /// `Null`). The executor wrote bytes no honest executor writes: a schema violation.
    pub malformed: Option<String>,
}

impl HistoryEntry {
    /// The entry as JS Vitra puts it in fraud proof data: `{type, seq, path, name, value}`.
    pub fn to_json(&self) -> Json {
        json!({
            "type": self.kind.as_str(),
            "seq": self.seq,
            "path": self.path,
            "name": self.path.rsplit('/').next().unwrap_or_default(),
            "value": to_json(&self.value),
        })
    }
}

/// A change a replay of `apply` produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedChange {
    /// Put or delete.
    pub kind: ChangeKind,
    /// The Vitra path.
    pub path: String,
    /// The value put (`Undefined` for deletes).
    pub value: Value,
}

impl ExpectedChange {
    /// `{type, path, value}`, as JS Vitra writes an index batch entry.
    pub fn to_json(&self) -> Json {
        json!({"type": self.kind.as_str(), "path": self.path, "value": to_json(&self.value)})
    }
}

/// What replaying one operation's `apply` gave.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplayOutcome {
    /// `apply` completed with these changes (already mapped and sorted as the executor does).
    Changes(Vec<ExpectedChange>),
    /// `apply` threw or rejected; the message as JS's `error.toString()` gives it.
    Rejected(String),
}

/// What the monitor needs from its surroundings.
pub trait ReplayEnv {
    /// Operation `seq` of the oplog `origin` (64 hex chars), or `None` when it is not available.
    fn fetch_op(&mut self, origin: &str, seq: u64) -> Result<Option<Value>, BoxError>;

    /// Runs `apply(tx, op, ack)` of the contract with source `source` against the index as it
    /// was just before block `at_seq` (a checkout at `at_seq`).
    fn replay(
        &mut self,
        source: &str,
        op: &Value,
        ack: &Value,
        at_seq: u64,
    ) -> Result<ReplayOutcome, BoxError>;
}

/// A boxed error from the monitor's environment.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Verification could not complete; this does not say the executor cheated.
#[derive(Debug, Error)]
pub enum VerificationError {
    /// The history skipped or repeated a block number.
    #[error("unexpected index block: expected {expected}, received {received}")]
    UnexpectedSeq {
        /// The block number the monitor expected.
        expected: u64,
        /// The block number it was given.
        received: u64,
    },
    /// An acked operation is not available locally (the oplog is not synced).
    #[error("cannot fetch operation {seq} of oplog {origin} (acked at index block {ack_seq})")]
    CannotFetchOp {
        /// The oplog.
        origin: String,
        /// The operation's block in the oplog.
        seq: u64,
        /// The index block of its ack.
        ack_seq: u64,
    },
    /// Fetching an operation or replaying it failed in the environment (storage, limits).
    #[error("replaying the operation acked at index block {ack_seq} failed: {source}")]
    Environment {
        /// The index block of the ack.
        ack_seq: u64,
        /// What failed.
        source: BoxError,
    },
}

/// Why [`Monitor::validate`] stopped.
#[derive(Debug, Error)]
pub enum MonitorError {
    /// The executor violated the contract.
    #[error("{}: {}", .0.code, .0.description)]
    Fraud(FraudDetails),
    /// Verification could not complete.
    #[error(transparent)]
    Verification(#[from] VerificationError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    GenesisSource,
    GenesisInputs,
    AwaitingAck,
    ValidatingChanges,
}

#[derive(Debug, Clone)]
enum Effect {
    SetContract(String),
    AddInput(String),
    RemoveInput(String),
}

/// The monitor's state while walking one index history.
#[derive(Debug)]
pub struct Monitor {
    expected_seq: u64,
    state: State,
    contract_source: Option<String>,
    inputs: BTreeSet<String>,
    processed: HashMap<String, u64>,
    expected_changes: VecDeque<ExpectedChange>,
    queued: Vec<Effect>,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor::new()
    }
}

impl Monitor {
    /// A monitor about to read index block 1.
    pub fn new() -> Self {
        Monitor {
            expected_seq: 1,
            state: State::GenesisSource,
            contract_source: None,
            inputs: BTreeSet::new(),
            processed: HashMap::new(),
            expected_changes: VecDeque::new(),
            queued: Vec::new(),
        }
    }

    /// How many index blocks (after the header) have been validated.
    pub fn verified_length(&self) -> u64 {
        self.expected_seq - 1
    }

    /// The active participants (oplog keys, hex) as of the last validated operation.
    pub fn participants(&self) -> impl Iterator<Item = &str> {
        self.inputs.iter().map(String::as_str)
    }

    /// The contract source in force.
    pub fn contract_source(&self) -> Option<&str> {
        self.contract_source.as_deref()
    }

    /// The next operation the monitor expects from oplog `origin` (hex).
    pub fn next_seq(&self, origin: &str) -> u64 {
        self.processed.get(origin).map_or(0, |s| s + 1)
    }

    /// Validates the next history entry.
    pub fn validate(
        &mut self,
        entry: &HistoryEntry,
        env: &mut dyn ReplayEnv,
    ) -> Result<(), MonitorError> {
        if entry.seq != self.expected_seq {
            return Err(VerificationError::UnexpectedSeq {
                expected: self.expected_seq,
                received: entry.seq,
            }
            .into());
        }
        if let Some(reason) = &entry.malformed {
            return Err(invalid_schema(
                entry,
                &format!("a valid msgpack value ({reason})"),
            ));
        }
        match self.state {
            State::GenesisSource => {
                if entry.path != CONTRACT_SOURCE_PATH {
                    return Err(unexpected_path(entry, CONTRACT_SOURCE_PATH));
                }
                self.check_contract_source(entry)?;
                self.state = State::GenesisInputs;
            }
            State::GenesisInputs => {
                if entry.path.starts_with(PARTICIPANT_PATH_PREFIX) {
                    self.check_input(entry)?;
                } else if entry.path == GENESIS_ACK_PATH {
                    self.apply_effects();
                    self.state = State::AwaitingAck;
                    if self.inputs.is_empty() {
                        return Err(fraud(
                            FraudCode::NoGenesisInputsDeclaredError,
                            "No input oplogs declared in genesis sequence".into(),
                            // JS Vitra gives this one no data (`undefined`: no "data" key).
                            Json::Null,
                        ));
                    }
                } else {
                    return Err(unexpected_path(
                        entry,
                        &format!("{GENESIS_ACK_PATH} or a child of {PARTICIPANT_PATH_PREFIX}"),
                    ));
                }
            }
            State::AwaitingAck => self.check_ack_and_replay(entry, env)?,
            State::ValidatingChanges => self.check_change(entry)?,
        }
        self.expected_seq += 1;
        Ok(())
    }

    /// Called at the end of a complete history: an operation whose changes stop short is
    /// fraud (an ack and its changes are one atomic append).
    pub fn finish(&self) -> Result<(), MonitorError> {
        match self.expected_changes.front() {
            Some(missing) if self.state == State::ValidatingChanges => Err(fraud(
                FraudCode::ChangeNotProducedByExecutorError,
                "The executor did not produce a change which the monitor expected.".into(),
                json!({"expectedChange": missing.to_json()}),
            )),
            _ => Ok(()),
        }
    }

    fn check_ack_and_replay(
        &mut self,
        entry: &HistoryEntry,
        env: &mut dyn ReplayEnv,
    ) -> Result<(), MonitorError> {
        if !entry.path.starts_with(ACK_PATH_PREFIX) {
            return Err(fraud(
                FraudCode::ChangeNotProducedByMonitorError,
                "The executor produced a change which the monitor did not expect.".into(),
                json!({"entry": entry.to_json()}),
            ));
        }
        let ack = self.check_ack(entry)?;
        let op = env
            .fetch_op(&ack.origin, ack.seq)
            .map_err(|source| VerificationError::Environment {
                ack_seq: entry.seq,
                source,
            })?
            .ok_or_else(|| VerificationError::CannotFetchOp {
                origin: ack.origin.clone(),
                seq: ack.seq,
                ack_seq: entry.seq,
            })?;
        let source = self.contract_source.clone().unwrap_or_default();
        let outcome = env
            .replay(&source, &op, &entry.value, entry.seq)
            .map_err(|source| VerificationError::Environment {
                ack_seq: entry.seq,
                source,
            })?;
        let changes = match outcome {
            ReplayOutcome::Rejected(message) => {
                if ack.success {
                    return Err(fraud(
                        FraudCode::MonitorApplyFailedError,
                        format!("The monitor expected the operation to fail but the executor successfully processed it. {message}"),
                        json!({"entry": entry.to_json(), "errorMessage": message}),
                    ));
                }
                Vec::new()
            }
            ReplayOutcome::Changes(changes) => changes,
        };
        self.expected_changes = changes.into();
        if self.expected_changes.is_empty() {
            self.apply_effects();
        } else {
            self.state = State::ValidatingChanges;
        }
        Ok(())
    }

    fn check_ack(&mut self, entry: &HistoryEntry) -> Result<AckFields, MonitorError> {
        let schema = |what: &str| invalid_schema(entry, what);
        let obj = entry
            .value
            .as_object()
            .ok_or_else(|| schema("value to be an object"))?;
        let success = obj
            .get("success")
            .and_then(Value::as_bool)
            .ok_or_else(|| schema(".success to be a boolean"))?;
        let origin = obj
            .get("origin")
            .and_then(Value::as_str)
            .filter(|o| o.chars().count() == 64)
            .ok_or_else(|| schema(".origin to be a 64-character utf-8 string"))?
            .to_owned();
        let seq = obj
            .get("seq")
            .and_then(Value::as_f64)
            .ok_or_else(|| schema(".seq to be a number"))?;
        if obj.get("ts").and_then(Value::as_f64).is_none() {
            return Err(schema(".ts to be a number"));
        }
        if !self.inputs.contains(&origin) {
            return Err(fraud(
                FraudCode::NonParticipantError,
                format!("The executor processed an operation from an oplog which is not a declared participant, oplog = {origin}"),
                json!({"entry": entry.to_json(), "oplogPubkey": origin}),
            ));
        }
        let expected = self.next_seq(&origin);
        if seq != expected as f64 {
            return Err(fraud(
                FraudCode::ProcessedOutOfOrderError,
                format!("The executor processed an operation out of order. Expected to process {expected} but actually processed {} for oplog {origin}", crate::codec::msgpack::number_to_string(seq)),
                json!({"entry": entry.to_json(), "oplogPubkey": origin, "expectedSeq": expected, "executedSeq": to_json(&Value::Number(seq))}),
            ));
        }
        self.processed.insert(origin.clone(), expected);
        if success {
            if obj.get("numChanges").and_then(Value::as_f64).is_none() {
                return Err(schema(".numChanges to be a number"));
            }
        } else {
            match obj.get("error") {
                None | Some(Value::Undefined) | Some(Value::String(_)) => {}
                Some(_) => return Err(schema(".error to be a string or undefined")),
            }
        }
        Ok(AckFields {
            success,
            origin,
            seq: expected,
        })
    }

    fn check_change(&mut self, entry: &HistoryEntry) -> Result<(), MonitorError> {
        let Some(expected) = self.expected_changes.pop_front() else {
            // Unreachable by construction: this state is only entered with changes pending.
            self.state = State::AwaitingAck;
            return Err(fraud(
                FraudCode::ChangeNotProducedByMonitorError,
                "The executor produced a change which the monitor did not expect.".into(),
                json!({"entry": entry.to_json()}),
            ));
        };
        if entry.path.starts_with(ACK_PATH_PREFIX) {
            return Err(fraud(
                FraudCode::ChangeNotProducedByExecutorError,
                "The executor did not produce a change which the monitor expected.".into(),
                json!({"entry": entry.to_json(), "expectedChange": expected.to_json()}),
            ));
        }
        let mismatch = |what: &str| {
            fraud(
                FraudCode::ChangeMismatchError,
                format!("The executor produced a change which is different than the change expected by the monitor. {what}"),
                json!({"entry": entry.to_json(), "expectedChange": expected.to_json()}),
            )
        };
        if entry.kind != expected.kind {
            return Err(mismatch("Change type is different."));
        }
        if entry.path != expected.path {
            return Err(mismatch("Change path is different."));
        }
        if entry.kind == ChangeKind::Put && !put_values_equal(&entry.value, &expected.value) {
            return Err(mismatch("Change value is different."));
        }
        if entry.path == CONTRACT_SOURCE_PATH {
            self.check_contract_source(entry)?;
        }
        if entry.path.starts_with(PARTICIPANT_PATH_PREFIX) {
            self.check_input(entry)?;
        }
        if self.expected_changes.is_empty() {
            self.apply_effects();
            self.state = State::AwaitingAck;
        }
        Ok(())
    }

    fn check_contract_source(&mut self, entry: &HistoryEntry) -> Result<(), MonitorError> {
        match &entry.value {
            Value::String(s) if !s.is_empty() => {
                self.queued.push(Effect::SetContract(s.clone()));
                Ok(())
            }
            _ => Err(invalid_schema(entry, "a utf-8 string")),
        }
    }

    fn check_input(&mut self, entry: &HistoryEntry) -> Result<(), MonitorError> {
        let obj = entry
            .value
            .as_object()
            .ok_or_else(|| invalid_schema(entry, "value to be an object"))?;
        let pubkey = obj
            .get("pubkey")
            .and_then(Value::as_bytes)
            .ok_or_else(|| invalid_schema(entry, ".pubkey to be a buffer"))?;
        if pubkey.len() != 32 {
            return Err(invalid_schema(entry, ".pubkey to be a buffer of 32 bytes"));
        }
        let active = obj
            .get("active")
            .and_then(Value::as_bool)
            .ok_or_else(|| invalid_schema(entry, ".active to be a boolean"))?;
        let key = hex::encode(pubkey);
        self.queued.push(if active {
            Effect::AddInput(key)
        } else {
            Effect::RemoveInput(key)
        });
        Ok(())
    }

    fn apply_effects(&mut self) {
        for effect in self.queued.drain(..) {
            match effect {
                Effect::SetContract(source) => self.contract_source = Some(source),
                Effect::AddInput(key) => {
                    self.inputs.insert(key);
                }
                Effect::RemoveInput(key) => {
                    self.inputs.remove(&key);
                }
            }
        }
    }
}

struct AckFields {
    success: bool,
    origin: String,
    seq: u64,
}

/// A stored put value against a replayed one. Hyperbee stores a put of `null` or
/// `undefined` without a value, so both read back as `null`.
fn put_values_equal(stored: &Value, replayed: &Value) -> bool {
    match replayed {
        Value::Undefined => matches!(stored, Value::Null | Value::Undefined),
        other => deep_equal(stored, other),
    }
}

fn fraud(code: FraudCode, description: String, data: Json) -> MonitorError {
    MonitorError::Fraud(FraudDetails {
        description,
        data,
        code,
    })
}

fn unexpected_path(entry: &HistoryEntry, expected_path: &str) -> MonitorError {
    fraud(
        FraudCode::UnexpectedPathError,
        format!(
            "Unexpected message path. Expected {expected_path}, received {}",
            entry.path
        ),
        json!({"entry": entry.to_json(), "expectedPath": expected_path}),
    )
}

fn invalid_schema(entry: &HistoryEntry, description: &str) -> MonitorError {
    fraud(
        FraudCode::InvalidSchemaError,
        format!("Unexpected message value. Expected {description}"),
        json!({"entry": entry.to_json()}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Object;

    const A: &str = "aa00000000000000000000000000000000000000000000000000000000000000";
    const B: &str = "bb00000000000000000000000000000000000000000000000000000000000000";

    /// A replay environment with a tiny built-in "contract": an op `{path, value}` puts,
    /// `{del: path}` deletes, `{fail: msg}` throws, `{}` changes nothing.
    #[derive(Default)]
    struct Script {
        ops: HashMap<(String, u64), Value>,
    }

    impl ReplayEnv for Script {
        fn fetch_op(&mut self, origin: &str, seq: u64) -> Result<Option<Value>, BoxError> {
            Ok(self.ops.get(&(origin.to_owned(), seq)).cloned())
        }
        fn replay(
            &mut self,
            _: &str,
            op: &Value,
            _: &Value,
            _: u64,
        ) -> Result<ReplayOutcome, BoxError> {
            if let Some(msg) = op.get("fail").and_then(Value::as_str) {
                return Ok(ReplayOutcome::Rejected(format!("Error: {msg}")));
            }
            if let Some(path) = op.get("del").and_then(Value::as_str) {
                return Ok(ReplayOutcome::Changes(vec![ExpectedChange {
                    kind: ChangeKind::Del,
                    path: path.into(),
                    value: Value::Undefined,
                }]));
            }
            Ok(ReplayOutcome::Changes(
                match op.get("path").and_then(Value::as_str) {
                    Some(path) => vec![ExpectedChange {
                        kind: ChangeKind::Put,
                        path: path.into(),
                        value: op.get("value").cloned().unwrap_or(Value::Undefined),
                    }],
                    None => vec![],
                },
            ))
        }
    }

    struct History {
        entries: Vec<HistoryEntry>,
        env: Script,
        next_op: HashMap<String, u64>,
    }

    impl History {
        fn genesis(inputs: &[&str]) -> Self {
            let mut h = History {
                entries: vec![],
                env: Script::default(),
                next_op: HashMap::new(),
            };
            h.put(CONTRACT_SOURCE_PATH, Value::from("export const apply = {}"));
            for key in inputs {
                h.put(&format!("{PARTICIPANT_PATH_PREFIX}{key}"), input(key, true));
            }
            h.put(GENESIS_ACK_PATH, Value::Object(Object::new()));
            h
        }
        fn entry(&mut self, kind: ChangeKind, path: &str, value: Value) {
            let seq = self.entries.len() as u64 + 1;
            self.entries.push(HistoryEntry {
                seq,
                kind,
                path: path.into(),
                value,
                malformed: None,
            });
        }
        fn put(&mut self, path: &str, value: Value) {
            self.entry(ChangeKind::Put, path, value);
        }
        /// Appends an op to `origin` and writes its ack (claiming `seq`, `success`, `changes`).
        fn op(&mut self, origin: &str, op: Value, success: bool, num_changes: u32) -> u64 {
            let seq = *self.next_op.get(origin).unwrap_or(&0);
            self.next_op.insert(origin.into(), seq + 1);
            self.env.ops.insert((origin.into(), seq), op);
            self.ack(origin, seq, success, num_changes);
            seq
        }
        fn ack(&mut self, origin: &str, seq: u64, success: bool, num_changes: u32) {
            let ack = Object::new()
                .with("success", success)
                .with(
                    "error",
                    if success {
                        Value::Undefined
                    } else {
                        Value::from("Error: no")
                    },
                )
                .with("origin", origin)
                .with("seq", seq)
                .with("ts", 1795634745937.0)
                .with("metadata", Value::Undefined)
                .with("numChanges", num_changes);
            self.put(
                &format!("{ACK_PATH_PREFIX}{origin}/{seq:015}"),
                Value::Object(ack),
            );
        }
        fn verify(mut self) -> Result<(), MonitorError> {
            let mut m = Monitor::new();
            for e in &self.entries {
                m.validate(e, &mut self.env)?;
            }
            m.finish()
        }
    }

    fn input(key: &str, active: bool) -> Value {
        Value::Object(
            Object::new()
                .with("pubkey", Value::Bytes(hex::decode(key).unwrap_or_default()))
                .with("active", active),
        )
    }

    fn put_op(path: &str, value: impl Into<Value>) -> Value {
        Value::Object(Object::new().with("path", path).with("value", value.into()))
    }

    fn code(r: Result<(), MonitorError>) -> FraudCode {
        match r {
            Err(MonitorError::Fraud(d)) => d.code,
            other => panic!("expected a fraud proof, got {other:?}"),
        }
    }

    #[test]
    fn honest_history_with_failed_and_zero_change_ops_verifies() {
        let mut h = History::genesis(&[A]);
        h.op(A, put_op("/x", 1), true, 1);
        h.put("/x", Value::from(1));
        h.op(A, Value::Object(Object::new().with("fail", "no")), false, 0);
        h.op(A, Value::Object(Object::new()), true, 0);
        h.op(A, put_op("/y", Value::Null), true, 1);
        h.put("/y", Value::Null);
        h.verify().expect("an honest history verifies");
    }

    #[test]
    fn deletes_are_compared_by_type_and_path_only() {
        let mut h = History::genesis(&[A]);
        h.op(A, put_op("/x", 1), true, 1);
        h.put("/x", Value::from(1));
        h.op(A, Value::Object(Object::new().with("del", "/x")), true, 1);
        h.entry(ChangeKind::Del, "/x", Value::Null);
        h.verify().expect("a delete verifies");
    }

    #[test]
    fn participants_added_by_an_op_may_then_be_processed() {
        let mut h = History::genesis(&[A]);
        h.op(
            A,
            put_op(&format!("{PARTICIPANT_PATH_PREFIX}{B}"), input(B, true)),
            true,
            1,
        );
        h.put(&format!("{PARTICIPANT_PATH_PREFIX}{B}"), input(B, true));
        h.op(B, put_op("/from-b", true), true, 1);
        h.put("/from-b", Value::Bool(true));
        h.verify().expect("the added participant's op verifies");
    }

    #[test]
    fn genesis_must_start_with_the_contract_source() {
        let mut h = History::genesis(&[A]);
        h.entries[0].path = "/hello".into();
        assert_eq!(code(h.verify()), FraudCode::UnexpectedPathError);
    }

    #[test]
    fn genesis_without_inputs_is_fraud() {
        let h = History::genesis(&[]);
        assert_eq!(code(h.verify()), FraudCode::NoGenesisInputsDeclaredError);
    }

    #[test]
    fn an_ack_with_a_bad_schema_is_fraud() {
        let mut h = History::genesis(&[A]);
        h.put(
            &format!("{ACK_PATH_PREFIX}{A}/000000000000000"),
            Value::from("not an object"),
        );
        assert_eq!(code(h.verify()), FraudCode::InvalidSchemaError);
    }

    #[test]
    fn processing_a_non_participant_is_fraud() {
        let mut h = History::genesis(&[A]);
        h.op(B, Value::Object(Object::new()), true, 0);
        assert_eq!(code(h.verify()), FraudCode::NonParticipantError);
    }

    #[test]
    fn skipping_or_repeating_an_op_is_fraud() {
        let mut h = History::genesis(&[A]);
        h.env
            .ops
            .insert((A.into(), 1), Value::Object(Object::new()));
        h.ack(A, 1, true, 0);
        assert_eq!(code(h.verify()), FraudCode::ProcessedOutOfOrderError);

        let mut h = History::genesis(&[A]);
        h.op(A, Value::Object(Object::new()), true, 0);
        h.ack(A, 0, true, 0);
        assert_eq!(code(h.verify()), FraudCode::ProcessedOutOfOrderError);
    }

    #[test]
    fn claiming_success_for_a_failing_op_is_fraud() {
        let mut h = History::genesis(&[A]);
        h.op(
            A,
            Value::Object(Object::new().with("fail", "because")),
            true,
            0,
        );
        assert_eq!(code(h.verify()), FraudCode::MonitorApplyFailedError);
    }

    #[test]
    fn an_extra_change_is_fraud() {
        let mut h = History::genesis(&[A]);
        h.op(A, Value::Object(Object::new()), true, 1);
        h.put("/sneaky", Value::from(1));
        assert_eq!(code(h.verify()), FraudCode::ChangeNotProducedByMonitorError);
    }

    #[test]
    fn a_missing_change_is_fraud_before_the_next_ack_and_at_the_end() {
        let mut h = History::genesis(&[A]);
        h.op(A, put_op("/x", 1), true, 0);
        h.op(A, Value::Object(Object::new()), true, 0);
        assert_eq!(
            code(h.verify()),
            FraudCode::ChangeNotProducedByExecutorError
        );

        let mut h = History::genesis(&[A]);
        h.op(A, put_op("/x", 1), true, 0);
        assert_eq!(
            code(h.verify()),
            FraudCode::ChangeNotProducedByExecutorError
        );
    }

    #[test]
    fn a_different_change_is_fraud() {
        for (kind, path, value) in [
            (ChangeKind::Del, "/x", Value::Null),
            (ChangeKind::Put, "/z", Value::from(1)),
            (ChangeKind::Put, "/x", Value::from(2)),
        ] {
            let mut h = History::genesis(&[A]);
            h.op(A, put_op("/x", 1), true, 1);
            h.entry(kind, path, value);
            assert_eq!(code(h.verify()), FraudCode::ChangeMismatchError);
        }
    }

    #[test]
    fn an_undecodable_stored_value_is_fraud_not_an_error() {
        let mut h = History::genesis(&[A]);
        h.op(A, put_op("/x", 1), true, 1);
        h.put("/x", Value::Null);
        if let Some(last) = h.entries.last_mut() {
            last.malformed = Some("msgpack byte 0xc1 at offset 0 is not a valid type".into());
        }
        assert_eq!(code(h.verify()), FraudCode::InvalidSchemaError);
    }

    #[test]
    fn an_unavailable_op_is_a_verification_error_not_fraud() {
        let mut h = History::genesis(&[A]);
        h.ack(A, 0, true, 0);
        assert!(matches!(
            h.verify(),
            Err(MonitorError::Verification(
                VerificationError::CannotFetchOp { seq: 0, .. }
            ))
        ));
    }

    #[test]
    fn a_gap_in_block_numbers_is_a_verification_error() {
        let mut h = History::genesis(&[A]);
        h.entries[1].seq = 7;
        assert!(matches!(
            h.verify(),
            Err(MonitorError::Verification(
                VerificationError::UnexpectedSeq {
                    expected: 2,
                    received: 7
                }
            ))
        ));
    }
}
