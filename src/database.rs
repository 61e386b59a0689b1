//! The database: one index log plus participant oplogs, a contract, and the roles around them.
//!
//! This is the public API most users want ([`Database::create`], [`Database::load`],
//! [`Database::call`] and [`Database::call_batch`], [`Database::execute_pending`],
//! [`Database::when_processed`], [`Database::verify`]; [`SharedDatabase`] for many threads
//! calling one database, their concurrent calls committed together). It composes the
//! layers below: the contract runtime answers calls and produces operations, which are
//! appended to the local oplog with inclusion proofs; when this instance holds the index
//! log's secret key it is the *executor* ([`crate::executor`]), writing acks and changes to
//! the index; anyone can run the *monitor* over the index history ([`Database::verify`]).
//!
//! Storage is a directory of logs laid out as corestore does it (so a JS Vitra 0.1.3 data
//! directory opens as is), or memory.
//!
//! What this module must never do: write to the index unless it holds the index's secret key;
//! report a verification problem as fraud; let a failing contract or malformed operation stop
//! the executor (they become failed acks); or leave a half-written operation in the index
//! (an operation group is one durable append, or nothing).

mod host;
mod index_log;
mod replay;
mod shared;
mod sync;
mod transaction;

pub(crate) use host::{normalize_path, parse_key, path_name, DbHost};
pub use index_log::IndexLog;
pub use shared::{GroupStats, SharedDatabase, EXECUTE_WHEN_IDLE, MAX_GROUP};
pub use sync::{fork_fraud_proofs, replication_fraud_proofs};
pub use transaction::{OpResult, Operation, Transaction, WaitEnd};

use crate::bee::{path_to_key, Bee, BeeError, HistoryKind, HistoryOptions};
use crate::codec::{self, Object, Value};
use crate::contract::{Contract, ContractError, Limits};
use crate::executor::{ExecutorBehavior, ExecutorState};
use crate::log::{self, KeyPair, Log, LogError, LogStore, MemoryStorage, SignatureScheme, Storage};
use crate::monitor::{ChangeKind, HistoryEntry, Monitor, MonitorError, VerificationError};
use crate::proof::{BlockInclusionProof, ContractFraudProof, FraudProof, LogForkFraudProof};
use crate::schema::{self, CONTRACT_SOURCE_PATH, PARTICIPANT_PATH_PREFIX};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Everything that can go wrong in the database layer.
#[derive(Debug, Error)]
pub enum DatabaseError {
    /// A log failed (storage, corruption, signatures).
    #[error(transparent)]
    Log(#[from] LogError),
    /// The index B-tree failed (damaged index, storage).
    #[error(transparent)]
    Index(#[from] BeeError),
    /// The contract failed to load or run in a way that is not a contract decision.
    #[error(transparent)]
    Contract(#[from] ContractError),
    /// The directory holds no index log with this key.
    #[error("no database with key {key} in {dir}")]
    NotFound {
        /// The index key, hex.
        key: String,
        /// The directory searched.
        dir: PathBuf,
    },
    /// The index has no contract source at `/.sys/contract/source` (not a Vitra database, or
    /// not synced yet).
    #[error("the index of {key} has no contract source at /.sys/contract/source")]
    NoContractSource {
        /// The index key, hex.
        key: String,
    },
    /// The method emitted operations but this instance has no oplog of its own.
    #[error("Unable to execute transaction: not a writer")]
    NotAWriter,
    /// Only the executor (holder of the index's secret key) may do this.
    #[error("this instance is not the executor of {key}")]
    NotTheExecutor {
        /// The index key, hex.
        key: String,
    },
    /// No log with this key is known to the database.
    #[error("oplog {key} is not part of this database")]
    UnknownOplog {
        /// The oplog key, hex.
        key: String,
    },
    /// A block inclusion proof names a block the local log does not have yet.
    #[error("log {key} has {length} blocks locally; the proof is for block {seq}")]
    BlocksNotAvailable {
        /// The log, hex.
        key: String,
        /// The proven block.
        seq: u64,
        /// The local length.
        length: u64,
    },
    /// No signature for this length can be produced (a replica without that signed head).
    #[error("log {key} has no signed head at length {length} to prove block {seq} with")]
    NoSignedHead {
        /// The log, hex.
        key: String,
        /// The block.
        seq: u64,
        /// The length needed.
        length: u64,
    },
    /// An inclusion proof's signature does not verify under the log's key.
    #[error("invalid inclusion proof for block {seq} of log {key}: the signature does not verify")]
    InvalidProofSignature {
        /// The log, hex.
        key: String,
        /// The block.
        seq: u64,
    },
    /// The log was truncated (its fork id is not 0): its blocks cannot be proven, and the
    /// fork itself is evidence against it.
    #[error("log {key} has forked (fork id {fork}); it was truncated after publishing")]
    LogForked {
        /// The log, hex.
        key: String,
        /// Its fork id.
        fork: u64,
    },
    /// A stored index value has the wrong shape for a reserved path.
    #[error("index entry {path} at block {seq} is malformed: {reason}")]
    MalformedIndexEntry {
        /// The path.
        path: String,
        /// The block.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// [`Database::when_processed`] stopped waiting while operations of the transaction
    /// still had no ack in the index.
    #[error(
        "transaction {transaction}: {unprocessed} of {total} operations not processed after \
         {waited:?}: {why}"
    )]
    NotProcessed {
        /// The transaction's id ([`Transaction::id`]).
        transaction: String,
        /// Operations without an ack.
        unprocessed: usize,
        /// Operations of the transaction.
        total: usize,
        /// How long it waited.
        waited: std::time::Duration,
        /// Why it stopped.
        why: WaitEnd,
    },
    /// The thread that owns a [`SharedDatabase`] is gone (closed, or it panicked), or could
    /// not be started.
    #[error("the shared database stopped: {reason}")]
    OwnerStopped {
        /// What happened.
        reason: String,
    },
    /// Replicating with peers failed (a [`SharedDatabase`] listening or connecting).
    #[error(transparent)]
    Replicate(#[from] crate::net::replicate::ReplicateError),
    /// The executor of a [`SharedDatabase`] failed its last run, so a wait for processing
    /// cannot end well; the owner retries on its next run.
    #[error("the executor failed: {reason}")]
    ExecutorFailed {
        /// The executor's error.
        reason: String,
    },
    /// A JSON document (transaction, proof) is malformed.
    #[error("malformed {what}: {reason}")]
    MalformedDocument {
        /// What was parsed.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
}

/// Shorthand for results of this layer.
pub type Result<T, E = DatabaseError> = std::result::Result<T, E>;

/// Where a database keeps its logs.
#[derive(Debug, Clone)]
pub enum Location {
    /// A corestore-style directory (`cores/…`, optionally `profiles/default`).
    Dir(PathBuf),
    /// Memory only.
    Memory,
}

/// Options of [`Database::create`] and [`Database::load`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Resource limits of the contract runtime.
    pub limits: Limits,
    /// When appends to this instance's logs are durable (see [`log::Durability`]); the
    /// default syncs every append to disk.
    pub durability: log::Durability,
    /// Test-only executor misbehaviours, to prove the monitor catches each (JS Vitra's
    /// `ExecutorBehavior`).
    pub executor_behavior: ExecutorBehavior,
}

/// One entry of the index as `index.get()` returns it (the type contracts see).
pub use crate::contract::IndexEntry;

/// A database.
pub struct Database {
    pub(crate) location: Location,
    pub(crate) store: Option<LogStore>,
    pub(crate) index: Bee<IndexLog>,
    pub(crate) index_key: [u8; 32],
    /// Every oplog this instance has opened, participant or not.
    pub(crate) oplogs: BTreeMap<[u8; 32], Log>,
    /// The active participants, in declaration order.
    pub(crate) participants: Vec<[u8; 32]>,
    pub(crate) local_oplog: Option<[u8; 32]>,
    pub(crate) contract: Option<Contract>,
    pub(crate) options: Options,
    pub(crate) executor: Option<ExecutorState>,
    pub(crate) clock: Box<dyn FnMut() -> f64>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("key", &hex::encode(self.index_key))
            .field("location", &self.location)
            .field("is_executor", &self.is_executor())
            .field("participants", &self.participants.len())
            .finish()
    }
}

fn new_log(store: Option<&LogStore>) -> Result<Log> {
    let key_pair = KeyPair::generate().map_err(|e| LogError::Random(e.to_string()))?;
    Ok(match store {
        Some(store) => store.create(Some(key_pair))?,
        None => Log::create_with_key_pair(Storage::Memory(MemoryStorage::default()), key_pair)?,
    })
}

fn wall_clock_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as f64)
        .unwrap_or(0.0)
}

impl Database {
    /// Creates a database: a new index log (this instance is its executor) and one oplog of
    /// its own, with the genesis entries JS Vitra writes (VITRA-FORMAT.md section 4).
    pub fn create(location: Location, source: &str, options: Options) -> Result<Database> {
        let store = match &location {
            Location::Dir(dir) => Some(LogStore::new(dir)),
            Location::Memory => None,
        };
        let index_log = new_log(store.as_ref())?;
        let oplog = new_log(store.as_ref())?;
        Database::create_with_logs(location, store, index_log, vec![oplog], source, options)
    }

    /// Creates a database on logs made elsewhere: `index_log` (empty, writable) becomes the
    /// index and every log in `oplogs` an initial participant; writable oplogs are local.
    pub fn create_with_logs(
        location: Location,
        store: Option<LogStore>,
        index_log: Log,
        oplogs: Vec<Log>,
        source: &str,
        options: Options,
    ) -> Result<Database> {
        let index_key = index_log.public_key();
        if !index_log.writable() {
            return Err(DatabaseError::NotTheExecutor {
                key: hex::encode(index_key),
            });
        }
        let mut db = Database::assemble(location, store, index_log, options);
        for log in oplogs {
            let key = log.public_key();
            if log.writable() && db.local_oplog.is_none() {
                db.local_oplog = Some(key);
            }
            db.insert_oplog(log);
        }
        // Genesis: the contract source, one declaration per oplog, the genesis ack.
        let keys: Vec<[u8; 32]> = db.oplogs.keys().copied().collect();
        {
            let mut batch = db.index.batch();
            batch.put_value(&path_to_key(CONTRACT_SOURCE_PATH), &Value::from(source))?;
            for key in &keys {
                batch.put_value(
                    &path_to_key(&schema::participant_path(key)),
                    &schema::participant_value(key, true),
                )?;
            }
            batch.put_value(
                &path_to_key(schema::GENESIS_ACK_PATH),
                &Value::Object(Object::new()),
            )?;
            batch.flush()?;
        }
        db.commit_index()?;
        db.participants = keys;
        db.executor = Some(ExecutorState::default());
        Ok(db)
    }

    /// Opens the database whose index key is `key` from `dir` (a corestore-style directory,
    /// including a JS Vitra 0.1.3 one). Its participant oplogs are opened when present; the
    /// instance is the executor when the index's secret key is stored or derivable.
    pub fn load(dir: &Path, key: &[u8; 32], options: Options) -> Result<Database> {
        let store = LogStore::new(dir);
        if !store.contains(key) {
            return Err(DatabaseError::NotFound {
                key: hex::encode(key),
                dir: dir.to_path_buf(),
            });
        }
        let index_log = store.open(key, None)?;
        let writable = index_log.writable();
        let mut db = Database::assemble(
            Location::Dir(dir.to_path_buf()),
            Some(store),
            index_log,
            options,
        );
        db.refresh_participants()?;
        if writable {
            db.executor = Some(ExecutorState::default());
        }
        Ok(db)
    }

    fn assemble(
        location: Location,
        store: Option<LogStore>,
        mut index_log: Log,
        options: Options,
    ) -> Database {
        index_log.set_durability(options.durability);
        Database {
            location,
            store,
            index_key: index_log.public_key(),
            index: Bee::new(IndexLog::new(index_log)),
            oplogs: BTreeMap::new(),
            participants: Vec::new(),
            local_oplog: None,
            contract: None,
            options,
            executor: None,
            clock: Box::new(wall_clock_ms),
        }
    }

    /// Keeps an opened oplog, with this instance's durability.
    fn insert_oplog(&mut self, mut log: Log) {
        log.set_durability(self.options.durability);
        self.oplogs.insert(log.public_key(), log);
    }

    /// Replaces the executor's clock (`ack.ts`); tests use it to reproduce recorded acks.
    pub fn set_clock(&mut self, clock: impl FnMut() -> f64 + 'static) {
        self.clock = Box::new(clock);
    }

    /// The database's public key (the index log's).
    pub fn key(&self) -> [u8; 32] {
        self.index_key
    }

    /// Where the logs are kept.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Whether this instance is the executor (holds the index's secret key).
    pub fn is_executor(&self) -> bool {
        self.executor.is_some()
    }

    /// The local oplog (a participant this instance can write), if any.
    pub fn local_oplog(&self) -> Option<[u8; 32]> {
        self.local_oplog
    }

    /// Chooses which writable oplog `call` appends to.
    pub fn set_local_oplog(&mut self, key: &[u8; 32]) -> Result<()> {
        match self.oplogs.get(key) {
            Some(log) if log.writable() => {
                self.local_oplog = Some(*key);
                self.contract = None;
                Ok(())
            }
            _ => Err(DatabaseError::UnknownOplog {
                key: hex::encode(key),
            }),
        }
    }

    /// The active participant oplogs, in declaration order.
    pub fn participants(&self) -> &[[u8; 32]] {
        &self.participants
    }

    /// Every oplog opened by this instance.
    pub fn oplogs(&self) -> impl Iterator<Item = &Log> {
        self.oplogs.values()
    }

    /// The oplog with this key, if opened.
    pub fn oplog(&self, key: &[u8; 32]) -> Option<&Log> {
        self.oplogs.get(key)
    }

    /// The index log.
    pub fn index_log(&self) -> &Log {
        self.index.log().log()
    }

    /// The index B-tree.
    pub fn index(&self) -> &Bee<IndexLog> {
        &self.index
    }

    /// Number of index blocks (committed).
    pub fn index_len(&self) -> u64 {
        self.index_log().len()
    }

    /// Creates a new oplog of this instance's (not yet a participant: the contract decides,
    /// e.g. with `tx.addOplog`). It becomes the local oplog when there was none.
    pub fn create_oplog(&mut self) -> Result<[u8; 32]> {
        let log = new_log(self.store.as_ref())?;
        let key = log.public_key();
        self.insert_oplog(log);
        if self.local_oplog.is_none() {
            self.local_oplog = Some(key);
            self.contract = None;
        }
        Ok(key)
    }

    /// Opens (or creates empty, for replication) the oplog with this key.
    pub fn open_oplog(&mut self, key: &[u8; 32]) -> Result<&Log> {
        if !self.oplogs.contains_key(key) {
            let log = match &self.store {
                Some(store) if store.contains(key) => store.open(key, None)?,
                Some(store) => Log::create_replica(store.storage_for(key), *key)?,
                None => Log::create_replica(Storage::Memory(MemoryStorage::default()), *key)?,
            };
            self.insert_oplog(log);
        }
        self.oplogs
            .get(key)
            .ok_or_else(|| DatabaseError::UnknownOplog {
                key: hex::encode(key),
            })
    }

    /// Re-reads the participant declarations from the index and opens their oplogs, those
    /// of former participants too: their acked operations stay in the history, so
    /// verification needs them and replication must bring them.
    ///
    /// A malformed declaration (only a fraudulent executor writes one) declares nobody: it
    /// is skipped, so the database still opens and [`Database::verify`] can report it as
    /// the executor's fraud (`InvalidSchemaError`).
    pub fn refresh_participants(&mut self) -> Result<()> {
        let mut participants = Vec::new();
        let entries = self.index.list(PARTICIPANT_PATH_PREFIX)?;
        for entry in entries {
            let Some(seq) = entry.seq else { continue };
            let parsed = entry
                .decode_value()
                .ok()
                .and_then(|v| parse_participant(&v));
            let Some((key, active)) = parsed else {
                continue;
            };
            if active {
                participants.push((seq, key));
            } else {
                self.open_oplog(&key)?;
            }
        }
        participants.sort();
        self.participants = participants.into_iter().map(|(_, k)| k).collect();
        for key in self.participants.clone() {
            self.open_oplog(&key)?;
            let writable = self.oplogs.get(&key).is_some_and(Log::writable);
            if writable && self.local_oplog.is_none() {
                self.local_oplog = Some(key);
            }
        }
        Ok(())
    }

    /// The contract source stored in the index.
    pub fn source(&self) -> Result<String> {
        match self.index.get_value(&path_to_key(CONTRACT_SOURCE_PATH))? {
            Some((_, Value::String(s))) => Ok(s),
            Some((_, Value::Bytes(b))) => Ok(String::from_utf8_lossy(&b).into_owned()),
            _ => Err(DatabaseError::NoContractSource {
                key: hex::encode(self.index_key),
            }),
        }
    }

    /// The host a contract sees at the index head.
    pub(crate) fn head_host(&self) -> DbHost<'_> {
        DbHost {
            index_key: self.index_key,
            index: self.index.snapshot(),
            oplogs: &self.oplogs,
            participants: &self.participants,
            local_oplog: self.local_oplog,
        }
    }

    /// The loaded contract and the host it reads the index head through (loading the
    /// contract first when needed).
    pub(crate) fn contract_at_head(&mut self) -> Result<(&mut Contract, DbHost<'_>)> {
        self.ensure_contract()?;
        let Database {
            contract,
            index,
            oplogs,
            participants,
            local_oplog,
            index_key,
            ..
        } = self;
        let contract = contract
            .as_mut()
            .ok_or_else(|| DatabaseError::NoContractSource {
                key: hex::encode(*index_key),
            })?;
        let host = DbHost {
            index_key: *index_key,
            index: index.snapshot(),
            oplogs,
            participants,
            local_oplog: *local_oplog,
        };
        Ok((contract, host))
    }

    /// Loads the contract from the index source when it is not loaded.
    pub(crate) fn ensure_contract(&mut self) -> Result<()> {
        if self.contract.is_none() {
            let source = self.source()?;
            let contract = Contract::load(&source, self.options.limits.clone(), &self.head_host())?;
            self.contract = Some(contract);
        }
        Ok(())
    }

    /// The methods the contract exports.
    pub fn methods(&mut self) -> Result<Vec<String>> {
        self.ensure_contract()?;
        Ok(self
            .contract
            .as_ref()
            .map(|c| c.methods().to_vec())
            .unwrap_or_default())
    }

    /// Calls contract method `method` with `params`: its response, and the operations it
    /// emitted, appended to the local oplog in one durable append, each with its inclusion
    /// proof. The executor processes them later ([`Database::execute_pending`]).
    pub fn call(&mut self, method: &str, params: &Value) -> Result<Transaction> {
        let (contract, host) = self.contract_at_head()?;
        let outcome = contract.call(method, params, &host)?;
        if !outcome.ops.is_empty() {
            self.writable_local_oplog()?;
        }
        let operations = self
            .append_operations(vec![outcome.ops])?
            .pop()
            .unwrap_or_default();
        Ok(self.transaction(method, params, outcome.response, operations))
    }

    /// Group commit for calls: runs several calls in order (each against the index head, as
    /// [`Database::call`] does) and appends the operations of all of them to the local oplog
    /// in one durable append (one signature, one wait for the disk), each transaction with
    /// its own inclusion proofs. A sequence of `call`s waits for the disk once per call; a
    /// caller holding several calls at once (a host serving many clients) waits once. A call
    /// that fails (or emits without a writable oplog) gets its error and appends nothing; the
    /// outer error is a failed append, after which none of the operations was acknowledged.
    pub fn call_batch(&mut self, calls: &[(&str, Value)]) -> Result<Vec<Result<Transaction>>> {
        let writer = self.writable_local_oplog().is_ok();
        let mut outcomes = Vec::with_capacity(calls.len());
        {
            let (contract, host) = self.contract_at_head()?;
            for (method, params) in calls {
                outcomes.push(match contract.call(method, params, &host) {
                    Ok(outcome) if !writer && !outcome.ops.is_empty() => {
                        Err(DatabaseError::NotAWriter)
                    }
                    other => other.map_err(DatabaseError::from),
                });
            }
        }
        let emitted = outcomes
            .iter_mut()
            .map(|o| {
                o.as_mut()
                    .map(|o| std::mem::take(&mut o.ops))
                    .unwrap_or_default()
            })
            .collect();
        let mut operations = self.append_operations(emitted)?.into_iter();
        Ok(calls
            .iter()
            .zip(outcomes)
            .map(|((method, params), outcome)| {
                let ops = operations.next().unwrap_or_default();
                outcome.map(|o| self.transaction(method, params, o.response, ops))
            })
            .collect())
    }

    /// [`Database::call_batch`] with one answer per call, for callers answering several
    /// clients: when the group's append fails (nothing of it was acknowledged), each call is
    /// made again alone, so each client gets its own answer rather than one shared error.
    pub fn call_each(&mut self, calls: &[(&str, Value)]) -> Vec<Result<Transaction>> {
        match self.call_batch(calls) {
            Ok(answers) => answers,
            Err(e) if calls.len() <= 1 => vec![Err(e)],
            Err(_) => calls
                .iter()
                .map(|(method, params)| self.call(method, params))
                .collect(),
        }
    }

    fn transaction(
        &self,
        method: &str,
        params: &Value,
        response: Value,
        operations: Vec<Operation>,
    ) -> Transaction {
        Transaction {
            database: self.index_key,
            method: method.to_owned(),
            params: params.clone(),
            response,
            operations,
        }
    }

    /// The key of the local oplog, when this instance can write it.
    fn writable_local_oplog(&self) -> Result<[u8; 32]> {
        let key = self.local_oplog.ok_or(DatabaseError::NotAWriter)?;
        match self.oplogs.get(&key) {
            Some(log) if log.writable() => Ok(key),
            _ => Err(DatabaseError::NotAWriter),
        }
    }

    /// Appends the operations of several calls (one list per call) to the local oplog in one
    /// durable append; returns each call's operations with their inclusion proofs.
    fn append_operations(&mut self, emitted: Vec<Vec<Value>>) -> Result<Vec<Vec<Operation>>> {
        if emitted.iter().all(Vec::is_empty) {
            return Ok(emitted.into_iter().map(|_| Vec::new()).collect());
        }
        let key = self.writable_local_oplog()?;
        let log = self.oplogs.get_mut(&key).ok_or(DatabaseError::NotAWriter)?;
        let mut seq = log.len();
        let blocks: Vec<Vec<u8>> = emitted.iter().flatten().map(codec::encode).collect();
        log.append_batch(&blocks)?;
        let mut out = Vec::with_capacity(emitted.len());
        for ops in emitted {
            let mut operations = Vec::with_capacity(ops.len());
            for value in ops {
                let proof = self.inclusion_proof(&key, seq)?;
                operations.push(Operation {
                    oplog: key,
                    seq,
                    value,
                    proof,
                });
                seq += 1;
            }
            out.push(operations);
        }
        Ok(out)
    }

    /// The inclusion proof of block `seq` of log `key` (an oplog or the index), in JS
    /// Vitra's JSON shape: signed now when this instance holds the log's secret key (current
    /// "compat" scheme), else taken from a stored signed head at exactly `seq + 1`.
    pub fn inclusion_proof(&self, key: &[u8; 32], seq: u64) -> Result<BlockInclusionProof> {
        let log = self.any_log(key)?;
        let length = seq + 1;
        if log.len() < length {
            return Err(DatabaseError::BlocksNotAvailable {
                key: hex::encode(key),
                seq,
                length: log.len(),
            });
        }
        let hash = log.tree_hash(length)?;
        // The head signed when the block was appended is this proof's signature; sign anew
        // only when no head was signed at exactly this length (a block inside a batch).
        let signature = match log.signed_head_at(length) {
            Some(head)
                if head.tree_hash == hash
                    && head.fork == log.fork()
                    && head.scheme == SignatureScheme::Compat =>
            {
                head.signature
            }
            _ => match log.sign(&SignatureScheme::Compat.signable(&hash, length, log.fork())) {
                Some(sig) => sig,
                None => {
                    return Err(DatabaseError::NoSignedHead {
                        key: hex::encode(key),
                        seq,
                        length,
                    })
                }
            },
        };
        if log.fork() != 0 {
            // JS Vitra refuses to prove a block of a forked log and reports the fork instead.
            return Err(DatabaseError::LogForked {
                key: hex::encode(key),
                fork: log.fork(),
            });
        }
        Ok(BlockInclusionProof {
            log_pubkey: *key,
            block_seq: seq,
            root_hash_at_block: hash,
            root_hash_signature: signature,
        })
    }

    /// Checks an inclusion proof against the local copy of its log: the signature must
    /// verify under the log's key (compat or 0.1.3 scheme), and the local tree at that length
    /// must have the same hash. A disagreement is returned as fraud evidence.
    pub fn verify_inclusion_proof(
        &self,
        proof: &BlockInclusionProof,
    ) -> Result<Option<FraudProof>> {
        let key = proof.log_pubkey;
        let log = self.any_log(&key)?;
        let length = proof.block_seq + 1;
        if log::detect_scheme(
            &key,
            &proof.root_hash_at_block,
            length,
            0,
            &proof.root_hash_signature,
        )
        .is_none()
        {
            return Err(DatabaseError::InvalidProofSignature {
                key: hex::encode(key),
                seq: proof.block_seq,
            });
        }
        if log.fork() != 0 {
            let head = log.signed_heads().last();
            return Ok(Some(FraudProof::LogFork(LogForkFraudProof {
                log_pubkey: key,
                fork_number: log.fork(),
                block_seq: proof.block_seq,
                root_hash_at_block: head.map_or([0; 32], |h| h.tree_hash),
                root_hash_signature: head.map_or([0; 64], |h| h.signature),
            })));
        }
        if log.len() < length {
            return Err(DatabaseError::BlocksNotAvailable {
                key: hex::encode(key),
                seq: proof.block_seq,
                length: log.len(),
            });
        }
        let local = log.tree_hash(length)?;
        if local == proof.root_hash_at_block {
            return Ok(None);
        }
        let violating = self.inclusion_proof(&key, proof.block_seq)?;
        Ok(Some(FraudProof::BlockRewrite(
            crate::proof::BlockRewriteFraudProof {
                description: "Checksums do not match".into(),
                given_inclusion_proof: proof.clone(),
                violating_inclusion_proof: violating,
            },
        )))
    }

    fn any_log(&self, key: &[u8; 32]) -> Result<&Log> {
        if key == &self.index_key {
            return Ok(self.index_log());
        }
        self.oplogs
            .get(key)
            .ok_or_else(|| DatabaseError::UnknownOplog {
                key: hex::encode(key),
            })
    }

    /// The proof of the index's current head (JS Vitra's `latestProof`: the latest signature
    /// and the tree hash at the current length).
    pub fn index_state_proof(&self) -> Result<BlockInclusionProof> {
        let log = self.index_log();
        let length = log.len();
        let hash = log.tree_hash(length)?;
        let signature = match log.signed_heads().last() {
            Some(head) if head.length == length => head.signature,
            _ => match log.sign(&SignatureScheme::Compat.signable(&hash, length, log.fork())) {
                Some(sig) => sig,
                None => {
                    return Err(DatabaseError::NoSignedHead {
                        key: hex::encode(self.index_key),
                        seq: length.saturating_sub(1),
                        length,
                    })
                }
            },
        };
        Ok(BlockInclusionProof {
            log_pubkey: self.index_key,
            block_seq: length.saturating_sub(1),
            root_hash_at_block: hash,
            root_hash_signature: signature,
        })
    }

    /// The index entry at `path`.
    pub fn get(&self, path: &str) -> Result<Option<IndexEntry>> {
        let path = normalize_path(path);
        Ok(self
            .index
            .get_value(&path_to_key(&path))?
            .map(|(entry, value)| IndexEntry {
                seq: entry.seq,
                name: path_name(&path).to_owned(),
                path,
                value,
            }))
    }

    /// The shallow listing of `prefix` (JS Vitra's `index.list`).
    pub fn list(&self, prefix: &str) -> Result<Vec<crate::contract::ListEntry>> {
        use crate::contract::{ContractHost, ListOptions};
        self.head_host()
            .list(prefix, &ListOptions::default())
            .map_err(|e| {
                DatabaseError::Index(BeeError::Log(crate::bee::BlockError::msg(e.to_string())))
            })
    }

    /// The index history (block 1 onwards), decoded.
    pub fn history(&self) -> Result<Vec<HistoryEntry>> {
        let mut out = Vec::new();
        for entry in self.index.history(HistoryOptions::default())? {
            out.push(history_entry(entry?)?);
        }
        Ok(out)
    }

    /// Writes pending index blocks as one durable, signed append.
    pub(crate) fn commit_index(&mut self) -> Result<()> {
        let result = self.index.log_mut().commit();
        if result.is_err() {
            self.index.log_mut().discard();
            self.index.clear_cache();
        }
        Ok(result?)
    }

    /// Fully verifies the database: replays every operation in the index history against the
    /// contract. `Ok(Verified)` when the executor followed the contract; a fraud proof when it
    /// did not; an error when verification could not complete (missing data).
    pub fn verify(&mut self) -> Result<Verdict> {
        let mut monitor = Monitor::new();
        let entries = self.history()?;
        let mut env = replay::DbReplay::new(self);
        for entry in &entries {
            match monitor.validate(entry, &mut env) {
                Ok(()) => {}
                Err(MonitorError::Fraud(details)) => return self.fraud_verdict(details, entry.seq),
                Err(MonitorError::Verification(e)) => return Ok(Verdict::Incomplete(e)),
            }
        }
        match monitor.finish() {
            Ok(()) => Ok(Verdict::Verified {
                length: monitor.verified_length() + 1,
            }),
            Err(MonitorError::Fraud(details)) => self.fraud_verdict(details, entries.len() as u64),
            Err(MonitorError::Verification(e)) => Ok(Verdict::Incomplete(e)),
        }
    }

    fn fraud_verdict(&self, details: crate::proof::FraudDetails, _at: u64) -> Result<Verdict> {
        Ok(Verdict::Fraud(Box::new(FraudProof::Contract(
            ContractFraudProof {
                index_state_proof: self.index_state_proof()?,
                details,
            },
        ))))
    }
}

/// Continuous verification: keeps the monitor's state between checks, so each
/// [`LiveMonitor::check`] validates only the index entries written since the last one.
#[derive(Debug, Default)]
pub struct LiveMonitor {
    monitor: Monitor,
    next_seq: u64,
    stopped: Option<Box<FraudProof>>,
}

/// What one [`LiveMonitor::check`] found.
#[derive(Debug)]
pub enum MonitorProgress {
    /// These entries were validated (possibly none); the history so far is honest.
    Validated(Vec<HistoryEntry>),
    /// The first violation. The monitor stops here; later checks report it again.
    Violation(Box<FraudProof>),
    /// Verification cannot go on yet (an operation is not available); later checks retry.
    Waiting(VerificationError),
}

impl LiveMonitor {
    /// A monitor at the start of the history.
    pub fn new() -> Self {
        LiveMonitor {
            monitor: Monitor::new(),
            next_seq: 1,
            stopped: None,
        }
    }

    /// Index blocks validated so far (after the header).
    pub fn verified_length(&self) -> u64 {
        self.monitor.verified_length()
    }

    /// Validates every index entry of `db` not seen yet.
    pub fn check(&mut self, db: &Database) -> Result<MonitorProgress> {
        if let Some(proof) = &self.stopped {
            return Ok(MonitorProgress::Violation(proof.clone()));
        }
        let opts = HistoryOptions {
            gte: Some(self.next_seq as i64),
            ..Default::default()
        };
        let mut validated = Vec::new();
        let mut env = replay::DbReplay::new(db);
        for entry in db.index.history(opts)? {
            let entry = history_entry(entry?)?;
            match self.monitor.validate(&entry, &mut env) {
                Ok(()) => {
                    self.next_seq = entry.seq + 1;
                    validated.push(entry);
                }
                Err(MonitorError::Fraud(details)) => {
                    let proof = Box::new(FraudProof::Contract(ContractFraudProof {
                        index_state_proof: db.index_state_proof()?,
                        details,
                    }));
                    self.stopped = Some(proof.clone());
                    return Ok(MonitorProgress::Violation(proof));
                }
                Err(MonitorError::Verification(e)) => return Ok(MonitorProgress::Waiting(e)),
            }
        }
        Ok(MonitorProgress::Validated(validated))
    }
}

/// The outcome of [`Database::verify`].
#[derive(Debug)]
pub enum Verdict {
    /// Every operation was replayed and matched; `length` index blocks were checked.
    Verified {
        /// Index blocks verified (header included).
        length: u64,
    },
    /// The executor broke the contract.
    Fraud(Box<FraudProof>),
    /// Verification could not complete (not the executor's fault).
    Incomplete(VerificationError),
}

/// Reads `{pubkey: <32 bytes>, active: <bool>}`.
pub(crate) fn parse_participant(value: &Value) -> Option<([u8; 32], bool)> {
    let key: [u8; 32] = value.get("pubkey")?.as_bytes()?.try_into().ok()?;
    Some((key, value.get("active")?.as_bool()?))
}

/// A bee history entry as the monitor reads it.
pub(crate) fn history_entry(entry: crate::bee::HistoryEntry) -> Result<HistoryEntry> {
    let (value, malformed) = match entry.kind {
        HistoryKind::Del => (Value::Null, None),
        HistoryKind::Put => match entry.decode_value() {
            Ok(value) => (value, None),
            Err(BeeError::BadValue { source, .. }) => (Value::Null, Some(source.to_string())),
            Err(e) => return Err(e.into()),
        },
    };
    Ok(HistoryEntry {
        seq: entry.seq,
        kind: match entry.kind {
            HistoryKind::Put => ChangeKind::Put,
            HistoryKind::Del => ChangeKind::Del,
        },
        path: crate::bee::key_to_path(&entry.key),
        value,
        malformed,
    })
}
