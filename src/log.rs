//! The log engine: a signed append-only log (our own Hypercore 10 core), stored exactly as
//! JS Hypercore 10 stores it (`oplog`, `tree`, `bitfield`, `data`), so JS Hypercore 10.31/10.38
//! and this crate open each other's logs, plus JS Vitra 0.1.3's pre-release cores.
//!
//! A [`Log`] appends blocks in signed batches (one Ed25519 signature per batch over the
//! BLAKE2b Merkle tree hash), reads them back, truncates (raising the fork id), keeps a history
//! of every signed head it created or verified, and creates/verifies proofs in the Hypercore
//! wire format for replication and inclusion proofs.
//!
//! Durability: when [`Log::append_batch`] returns, the batch is on disk: its blocks are written
//! before the oplog entry that commits them (which carries the tree nodes and the signature),
//! then both files are synced together (two `fdatasync`s in parallel, one wait). Tree,
//! bitfield, header and head history are checkpointed later (JS layout), and replay of the
//! oplog covers a crash before that; on replay, blocks that do not hash to their leaf nodes
//! (an entry that reached the disk before its blocks) cut that never-acknowledged entry. A
//! crash at any point reopens to a consistent prefix whose signatures verify.
//!
//! This module must never panic on bytes from disk or from a peer, never write a head it has
//! not signed or verified, and never leave stored data inconsistent after an error.
//!
//! ```
//! use vitra::log::{Log, MemoryStorage, OpenOptions, Storage};
//! use vitra::log::proof::{inclusion_request, verify_remote};
//!
//! let storage = Storage::Memory(MemoryStorage::new());
//! let mut log = Log::create(storage.clone())?;
//! assert_eq!(log.append_batch(&[b"a".as_slice(), b"bc"])?, 2); // one signature
//! log.append(b"def")?;
//! log.truncate(2)?; // fork 1
//! let log = Log::open(storage, OpenOptions::default())?;
//! assert_eq!((log.len(), log.fork(), log.byte_len()), (2, 1, 3));
//! assert_eq!(log.get(1)?, Some(b"bc".to_vec()));
//! // An inclusion proof of block 0 anchored to the signed head at length 2.
//! let proof = log.create_proof(&inclusion_request(0, 2))?;
//! let verified = verify_remote(&log.public_key(), &proof)?;
//! assert_eq!(verified.head.map(|h| h.tree_hash), Some(log.tree_hash(2)?));
//! # Ok::<(), vitra::log::LogError>(())
//! ```

pub mod bitfield;
pub mod crypto;
pub mod legacy;
pub mod oplog;
pub mod proof;
pub mod storage;
pub mod store;
pub mod tree;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use crypto::{KeyPair, SignatureScheme};
pub use oplog::{Header, HeaderVersion, Manifest};
pub use proof::{Proof, ProofRequest};
pub use storage::{MemoryStorage, Storage};
pub use store::LogStore;
pub use tree::Node;

use crate::compact::{DecodeError, Writer};
use bitfield::Bitfield;
use oplog::{BitfieldUpdate, Entry, ReorgHint, TreeHeader, TreeUpgrade, ENTRY_OFFSET, PAGE_SIZE};
use storage::StoreFile;

/// Everything that can go wrong in the log layer.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An I/O operation on one of the log's files failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file's contents are inconsistent or malformed.
    #[error("corrupt {path}: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The oplog has entries but neither header slot holds a valid header.
    #[error("corrupt {path}: no valid header in either slot")]
    NoValidHeader {
        /// The oplog file.
        path: PathBuf,
    },
    /// An oplog header passed its checksum but could not be decoded (unknown version...).
    #[error("undecodable header in {path} slot {slot}: {source}")]
    HeaderUndecodable {
        /// The oplog file.
        path: PathBuf,
        /// Header slot (0 or 1).
        slot: usize,
        /// Why.
        #[source]
        source: DecodeError,
    },
    /// No log is stored at this location.
    #[error("no log stored at {path}")]
    NotFound {
        /// The oplog file.
        path: PathBuf,
    },
    /// A log already exists where one was to be created.
    #[error("a log already exists at {path}")]
    AlreadyExists {
        /// The oplog file.
        path: PathBuf,
    },
    /// The stored log has another key than the one given.
    #[error("log key mismatch: expected {expected}, stored {stored}")]
    KeyMismatch {
        /// Key asked for (hex).
        expected: String,
        /// Key stored (hex).
        stored: String,
    },
    /// A secret key does not belong to the log's public key.
    #[error("secret key does not match public key {key}")]
    SecretKeyMismatch {
        /// The public key (hex).
        key: String,
    },
    /// Appending or truncating needs the secret key, which this side does not have.
    #[error("log {key} is read-only here (no secret key)")]
    NotWritable {
        /// The public key (hex).
        key: String,
    },
    /// The log uses a feature this implementation does not support.
    #[error("unsupported log {key}: {detail}")]
    Unsupported {
        /// The log key (hex).
        key: String,
        /// What is unsupported.
        detail: String,
    },
    /// A Merkle tree node needed for an operation is not stored.
    #[error("tree node {index} missing in {path}")]
    MissingNode {
        /// The tree file.
        path: PathBuf,
        /// Flat-tree index.
        index: u64,
    },
    /// A length or block index beyond the log.
    #[error("{what} {requested} is beyond log length {length}")]
    OutOfBounds {
        /// What was asked.
        what: &'static str,
        /// The requested value.
        requested: u64,
        /// Current length.
        length: u64,
    },
    /// A head's signature does not verify under any known scheme.
    #[error("invalid signature for log {key} at length {length}, fork {fork}")]
    SignatureInvalid {
        /// The log key (hex).
        key: String,
        /// Head length.
        length: u64,
        /// Head fork id.
        fork: u64,
    },
    /// A stored root hash differs from the one recomputed from the tree.
    #[error("tree hash mismatch in {path} at length {length}")]
    TreeHashMismatch {
        /// The file holding the stale hash.
        path: PathBuf,
        /// Length concerned.
        length: u64,
    },
    /// The encoded header is larger than its 4096-byte slot.
    #[error("oplog header of {size} bytes does not fit its slot")]
    HeaderTooLarge {
        /// Encoded size.
        size: usize,
    },
    /// A proof failed verification.
    #[error("invalid proof for log {key}: {detail}")]
    InvalidProof {
        /// The log key (hex).
        key: String,
        /// What failed.
        detail: String,
    },
    /// A proof request cannot be answered from this log.
    #[error("invalid proof request: {detail}")]
    InvalidRequest {
        /// Why.
        detail: String,
    },
    /// Bytes received from elsewhere could not be decoded.
    #[error("could not decode {what}: {source}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// Why.
        #[source]
        source: DecodeError,
    },
    /// One oplog entry (a batch's tree nodes) would exceed the 1 GiB frame limit.
    #[error("batch too large: its oplog entry would be {bytes} bytes")]
    BatchTooLarge {
        /// Encoded entry size.
        bytes: usize,
    },
    /// The system random generator failed.
    #[error("random generator failed: {0}")]
    Random(String),
}

/// Shorthand for results of this layer.
pub type Result<T, E = LogError> = std::result::Result<T, E>;

/// A signed head: a length, fork id and tree hash with the signature over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHead {
    /// Number of blocks.
    pub length: u64,
    /// Fork id.
    pub fork: u64,
    /// Tree hash of the roots at `length`.
    pub tree_hash: [u8; 32],
    /// Ed25519 signature.
    pub signature: [u8; 64],
    /// Which bytes the signature covers.
    pub scheme: SignatureScheme,
}

const HEAD_RECORD: usize = 120;

impl SignedHead {
    fn to_record(&self) -> [u8; HEAD_RECORD] {
        let mut r = [0u8; HEAD_RECORD];
        r[0..8].copy_from_slice(&self.length.to_le_bytes());
        r[8..16].copy_from_slice(&self.fork.to_le_bytes());
        r[16..48].copy_from_slice(&self.tree_hash);
        r[48..112].copy_from_slice(&self.signature);
        r[112] = self.scheme.to_byte();
        let crc = crc32fast::hash(&r[..116]);
        r[116..120].copy_from_slice(&crc.to_le_bytes());
        r
    }

    fn from_record(r: &[u8]) -> Option<SignedHead> {
        if r.len() != HEAD_RECORD || crc32fast::hash(&r[..116]).to_le_bytes() != r[116..120] {
            return None;
        }
        Some(SignedHead {
            length: u64::from_le_bytes(r[0..8].try_into().ok()?),
            fork: u64::from_le_bytes(r[8..16].try_into().ok()?),
            tree_hash: r[16..48].try_into().ok()?,
            signature: r[48..112].try_into().ok()?,
            scheme: SignatureScheme::from_byte(r[112])?,
        })
    }

    /// Whether the signature verifies for `public_key`.
    pub fn verify(&self, public_key: &[u8; 32]) -> bool {
        crypto::verify(
            public_key,
            &self
                .scheme
                .signable(&self.tree_hash, self.length, self.fork),
            &self.signature,
        )
    }
}

/// Finds the scheme under which `signature` verifies, if any.
pub fn detect_scheme(
    public_key: &[u8; 32],
    tree_hash: &[u8; 32],
    length: u64,
    fork: u64,
    signature: &[u8],
) -> Option<SignatureScheme> {
    [SignatureScheme::Compat, SignatureScheme::Legacy]
        .into_iter()
        .find(|s| crypto::verify(public_key, &s.signable(tree_hash, length, fork), signature))
}

/// When an append is durable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// `append_batch` returns once the blocks and their entry are synced to disk (the two
    /// files' `fdatasync`s run in parallel): a crash of the process or of the machine loses
    /// nothing that was returned. The default.
    #[default]
    Synced,
    /// `append_batch` returns once the writes reached the operating system, as JS Hypercore
    /// does: a crash of the process loses nothing, a crash of the machine may lose the last
    /// appends (and a writer that re-appends different blocks after that has forked its log).
    /// Syncs still happen at every checkpoint and on [`Log::flush`].
    Buffered,
}

/// How to open a log.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The key pair: its public key must match the stored key; with a secret key the log is
    /// writable even when the header stores none (JS Vitra 0.1.3 cores derive it).
    pub key_pair: Option<KeyPair>,
    /// Oplog size past which the tree, bitfield and header are checkpointed (default 4 MiB).
    pub checkpoint_bytes: Option<u64>,
}

/// The blocks `start..end` one replayed oplog entry (number `entry`) wrote.
struct Written {
    start: u64,
    end: u64,
    entry: usize,
}

/// What one replay of the oplog found.
enum Replayed {
    /// A consistent log.
    Log(Box<Log>),
    /// The blocks of an entry are not on disk: cut the oplog at `cut` and replay again.
    TornBlocks {
        /// The oplog file.
        oplog: StoreFile,
        /// Where that entry's atomic group starts.
        cut: u64,
    },
}

/// The log files of one log, opened.
struct Files {
    oplog: StoreFile,
    tree: StoreFile,
    bitfield: StoreFile,
    data: StoreFile,
    heads: StoreFile,
}

/// A signed append-only log. Writers take `&mut self`, readers `&self`.
pub struct Log {
    files: Files,
    header: Header,
    headers: [u8; 2],
    oplog_bytes: u64,
    key_pair: KeyPair,
    /// `key_pair`'s signing key, derived once (`None` when read-only).
    signer: Option<crypto::Signer>,
    length: u64,
    byte_length: u64,
    fork: u64,
    roots: Vec<Node>,
    signature: Vec<u8>,
    unflushed: BTreeMap<u64, Node>,
    tree_cut: Option<u64>,
    bitfield: Bitfield,
    heads: Vec<SignedHead>,
    heads_persisted: usize,
    scheme: SignatureScheme,
    checkpoint_bytes: u64,
    /// Block bytes appended since the last checkpoint.
    data_since_checkpoint: u64,
    durability: Durability,
}

fn hexkey(k: &[u8; 32]) -> String {
    hex::encode(k)
}

fn total_size(roots: &[Node]) -> u64 {
    roots.iter().fold(0u64, |a, r| a.saturating_add(r.size))
}

/// Adds `node` as a new root, merging roots into parents (as `MerkleTreeBatch.appendRoot`);
/// returns the new length.
pub(crate) fn append_root(
    roots: &mut Vec<Node>,
    nodes: &mut Vec<Node>,
    node: Node,
    length: u64,
) -> u64 {
    let length = length + tree::count_leaves(node.index);
    roots.push(node);
    nodes.push(node);
    while roots.len() > 1 {
        let a = roots[roots.len() - 1];
        let b = roots[roots.len() - 2];
        if tree::sibling(a.index) != b.index {
            break;
        }
        let p = Node {
            index: tree::parent(a.index),
            size: a.size.wrapping_add(b.size),
            hash: crypto::parent_hash(&a, &b),
        };
        nodes.push(p);
        roots.pop();
        roots.pop();
        roots.push(p);
    }
    length
}

impl Log {
    /// Creates a new log with a fresh random key pair.
    pub fn create(storage: Storage) -> Result<Log> {
        let kp = KeyPair::generate().map_err(|e| LogError::Random(e.to_string()))?;
        Self::create_with_key_pair(storage, kp)
    }

    /// Creates a new log signed by `key_pair` (which must hold the secret key).
    pub fn create_with_key_pair(storage: Storage, key_pair: KeyPair) -> Result<Log> {
        let files = Self::open_files(&storage)?;
        if !files.oplog.is_empty()? {
            return Err(LogError::AlreadyExists {
                path: files.oplog.path.clone(),
            });
        }
        if key_pair.secret_key.is_none() {
            return Err(LogError::NotWritable {
                key: hexkey(&key_pair.public_key),
            });
        }
        if !key_pair.is_consistent() {
            return Err(LogError::SecretKeyMismatch {
                key: hexkey(&key_pair.public_key),
            });
        }
        let stored = (
            key_pair.public_key.to_vec(),
            key_pair.secret_key.map(|s| s.to_vec()).unwrap_or_default(),
        );
        let header = Self::empty_header(key_pair.public_key, Some(stored));
        Self::init_empty(files, header, key_pair)
    }

    /// The header of a new, empty compat log for `public_key`.
    fn empty_header(public_key: [u8; 32], key_pair: Option<(Vec<u8>, Vec<u8>)>) -> Header {
        Header {
            version: HeaderVersion::Current,
            key: public_key,
            manifest: Some(Manifest::compat(public_key)),
            key_pair,
            user_data: vec![],
            tree: TreeHeader::default(),
            hints: Default::default(),
            types: None,
        }
    }

    /// Starts an empty log on `files` (already checked to hold no log) and checkpoints it.
    fn init_empty(files: Files, header: Header, key_pair: KeyPair) -> Result<Log> {
        // Start from clean files (a crashed create may have left bytes behind).
        for f in [&files.tree, &files.bitfield, &files.data, &files.heads] {
            f.truncate(0)?;
        }
        let mut log = Log {
            files,
            header,
            headers: [1, 0],
            oplog_bytes: 0,
            signer: crypto::Signer::new(&key_pair),
            key_pair,
            length: 0,
            byte_length: 0,
            fork: 0,
            roots: vec![],
            signature: vec![],
            unflushed: BTreeMap::new(),
            tree_cut: None,
            bitfield: Bitfield::default(),
            heads: vec![],
            heads_persisted: 0,
            scheme: SignatureScheme::Compat,
            checkpoint_bytes: 4 << 20,
            data_since_checkpoint: 0,
            durability: Durability::Synced,
        };
        log.flush()?;
        Ok(log)
    }

    /// Creates an empty replica of the log with `public_key` (read-only; grows by verified
    /// proofs).
    pub fn create_replica(storage: Storage, public_key: [u8; 32]) -> Result<Log> {
        let files = Self::open_files(&storage)?;
        if !files.oplog.is_empty()? {
            return Err(LogError::AlreadyExists {
                path: files.oplog.path.clone(),
            });
        }
        let header = Self::empty_header(public_key, None);
        Self::init_empty(files, header, KeyPair::public_only(public_key))
    }

    /// Opens an existing log (read-only unless a secret key is stored or given).
    ///
    /// Recovery: the oplog is replayed over its header; a torn last entry fails its CRC and is
    /// dropped. Blocks are written before the entry that commits them, but the two files are
    /// synced together, so after a machine crash an entry may be on disk while its blocks are
    /// not: every block committed by a replayed entry is hashed against its leaf node, and the
    /// first entry whose blocks do not match is cut from the oplog with everything after it.
    /// No append that returned is ever cut (it returned only once both files were synced).
    pub fn open(storage: Storage, options: OpenOptions) -> Result<Log> {
        if !storage.exists() {
            // Do not leave empty files behind for a log that is not there.
            return Err(LogError::NotFound {
                path: storage.path_of("oplog"),
            });
        }
        loop {
            match Self::open_replayed(&storage, &options)? {
                Replayed::Log(log) => return Ok(*log),
                Replayed::TornBlocks { oplog, cut } => {
                    let size = oplog.len()?;
                    if cut >= size {
                        return Err(LogError::Corrupt {
                            path: oplog.path.clone(),
                            detail: format!(
                                "blocks committed at oplog offset {cut} do not match their tree \
                                 nodes"
                            ),
                        });
                    }
                    oplog.truncate(cut)?;
                    oplog.sync()?;
                }
            }
        }
    }

    /// One attempt of [`Log::open`]: the log, or where the oplog must be cut because the
    /// blocks of an entry are not on disk.
    fn open_replayed(storage: &Storage, options: &OpenOptions) -> Result<Replayed> {
        let files = Self::open_files(storage)?;
        let buf = files.oplog.read_all()?;
        let state = oplog::read_oplog(&buf).map_err(|e| match e {
            oplog::OplogReadError::NoValidHeader => LogError::NoValidHeader {
                path: files.oplog.path.clone(),
            },
            oplog::OplogReadError::BadHeader { slot, error } => LogError::HeaderUndecodable {
                path: files.oplog.path.clone(),
                slot,
                source: error,
            },
        })?;
        let Some(header) = state.header else {
            return Err(LogError::NotFound {
                path: files.oplog.path.clone(),
            });
        };
        let key = header.key;
        if let Some(m) = &header.manifest {
            if !m.is_compat(&key) {
                return Err(LogError::Unsupported {
                    key: hexkey(&key),
                    detail: "manifest-keyed (non-compat) cores are not supported".into(),
                });
            }
        }
        let stored_secret = header.key_pair.as_ref().and_then(|(pk, sk)| {
            (pk.as_slice() == key.as_slice() && sk.len() == 64)
                .then(|| sk.as_slice().try_into().ok())
                .flatten()
        });
        let key_pair = match options.key_pair.clone() {
            Some(kp) => {
                if kp.public_key != key {
                    return Err(LogError::KeyMismatch {
                        expected: hexkey(&kp.public_key),
                        stored: hexkey(&key),
                    });
                }
                let secret_key = kp.secret_key.or(stored_secret);
                KeyPair {
                    public_key: key,
                    secret_key,
                }
            }
            None => KeyPair {
                public_key: key,
                secret_key: stored_secret,
            },
        };
        if !key_pair.is_consistent() {
            return Err(LogError::SecretKeyMismatch { key: hexkey(&key) });
        }
        let bitfield = Bitfield::from_bytes(files.bitfield.read_all()?);
        let mut log = Log {
            files,
            headers: state.headers,
            oplog_bytes: state.entries_byte_length,
            signer: crypto::Signer::new(&key_pair),
            key_pair,
            length: 0,
            byte_length: 0,
            fork: header.tree.fork,
            roots: vec![],
            signature: header.tree.signature.clone(),
            unflushed: BTreeMap::new(),
            tree_cut: None,
            bitfield,
            heads: vec![],
            heads_persisted: 0,
            scheme: SignatureScheme::Compat,
            checkpoint_bytes: options.checkpoint_bytes.unwrap_or(4 << 20),
            data_since_checkpoint: 0,
            durability: Durability::Synced,
            header,
        };
        // Roots of the header's head come from the tree file.
        let hl = log.header.tree.length;
        if hl > MAX_LENGTH {
            return Err(LogError::Corrupt {
                path: log.files.oplog.path.clone(),
                detail: format!("header length {hl} out of range"),
            });
        }
        log.roots = log.roots_at_stored(hl)?;
        log.length = hl;
        log.byte_length = total_size(&log.roots);
        let mut seen_heads: Vec<SignedHead> = Vec::new();
        if hl > 0 {
            let th = crypto::tree_hash(&log.roots);
            if !log.header.tree.root_hash.is_empty() && log.header.tree.root_hash != th {
                return Err(LogError::TreeHashMismatch {
                    path: log.files.oplog.path.clone(),
                    length: hl,
                });
            }
            seen_heads.push(log.check_head(
                hl,
                log.fork,
                th,
                &log.header.tree.signature.clone(),
            )?);
        }
        // Replay entries, remembering which blocks each one wrote.
        let mut written: Vec<Written> = Vec::new();
        for (entry, e) in state.entries.into_iter().enumerate() {
            if let Some(b) = e.bitfield.as_ref().filter(|b| !b.drop) {
                written.push(Written {
                    start: b.start,
                    end: b.start.saturating_add(b.length),
                    entry,
                });
            }
            log.apply_entry(e, &mut seen_heads)?;
        }
        if let Some(torn) = log.first_torn_entry(&written)? {
            let cut = state
                .group_starts
                .get(torn)
                .copied()
                .unwrap_or(ENTRY_OFFSET);
            return Ok(Replayed::TornBlocks {
                oplog: log.files.oplog,
                cut,
            });
        }
        if log.header.hints.contiguous_length == 0 {
            let mut c = 0;
            while log.bitfield.get(c) {
                c += 1;
            }
            log.header.hints.contiguous_length = c;
        }
        if log.header.version == HeaderVersion::Alpha {
            // Rewritten as a version-1 header on the next checkpoint; a derived secret key is
            // never written to disk. New heads use the current scheme, as JS 10.38 would.
            if log
                .header
                .key_pair
                .as_ref()
                .is_some_and(|(_, sk)| sk.len() != 64)
            {
                log.header.key_pair = None;
            }
        }
        log.load_heads(seen_heads)?;
        log.check_data_file()?;
        log.cleanup_tree_file()?;
        Ok(Replayed::Log(Box::new(log)))
    }

    /// The first replayed entry (index into the entries) one of whose blocks, still part of
    /// the log and last written by that entry, does not hash to its leaf node (missing or torn
    /// after a machine crash). Each stored block is read once, whatever the entries claim.
    fn first_torn_entry(&self, written: &[Written]) -> Result<Option<usize>> {
        // Blocks covered by later entries, as disjoint ranges start -> end.
        let mut covered: BTreeMap<u64, u64> = BTreeMap::new();
        let mut torn: Option<usize> = None;
        for w in written.iter().rev() {
            let end = w.end.min(self.length);
            let mut seq = w.start;
            while seq < end {
                if let Some((_, &covered_end)) =
                    covered.range(..=seq).next_back().filter(|(_, &e)| seq < e)
                {
                    seq = covered_end;
                    continue;
                }
                if self.bitfield.get(seq) && !self.block_intact(seq)? {
                    torn = Some(w.entry);
                    break;
                }
                seq += 1;
            }
            if w.start < end {
                let (mut start, mut end) = (w.start, end);
                while let Some((&s, &e)) = covered.range(..=end).next_back() {
                    if e < start {
                        break;
                    }
                    covered.remove(&s);
                    start = start.min(s);
                    end = end.max(e);
                }
                covered.insert(start, end);
            }
        }
        Ok(torn)
    }

    /// Whether block `seq` is in the data file and hashes to its leaf node.
    fn block_intact(&self, seq: u64) -> Result<bool> {
        let Some(leaf) = self.node_raw(2 * seq)? else {
            return Ok(false);
        };
        let offset = self.byte_offset(2 * seq)?;
        let len = usize::try_from(leaf.size).map_err(|_| LogError::Corrupt {
            path: self.files.tree.path.clone(),
            detail: format!("block {seq} claims {} bytes", leaf.size),
        })?;
        Ok(self
            .files
            .data
            .read_at(offset, len)?
            .is_some_and(|block| crypto::leaf_hash(&block) == leaf.hash))
    }

    /// Opens the log stored here, or creates one with `key_pair` (random when `None`).
    pub fn open_or_create(storage: Storage, key_pair: Option<KeyPair>) -> Result<Log> {
        if storage.exists() {
            Self::open(
                storage,
                OpenOptions {
                    key_pair,
                    ..Default::default()
                },
            )
        } else {
            match key_pair {
                Some(kp) => Self::create_with_key_pair(storage, kp),
                None => Self::create(storage),
            }
        }
    }

    fn open_files(storage: &Storage) -> Result<Files> {
        Ok(Files {
            oplog: storage.open_file("oplog")?,
            tree: storage.open_file("tree")?,
            bitfield: storage.open_file("bitfield")?,
            data: storage.open_file("data")?,
            heads: storage.open_file("heads")?,
        })
    }

    fn check_head(
        &self,
        length: u64,
        fork: u64,
        tree_hash: [u8; 32],
        signature: &[u8],
    ) -> Result<SignedHead> {
        let key = self.key_pair.public_key;
        let bad = || LogError::SignatureInvalid {
            key: hexkey(&key),
            length,
            fork,
        };
        let scheme = detect_scheme(&key, &tree_hash, length, fork, signature).ok_or_else(bad)?;
        let signature: [u8; 64] = signature.try_into().map_err(|_| bad())?;
        Ok(SignedHead {
            length,
            fork,
            tree_hash,
            signature,
            scheme,
        })
    }

    fn apply_entry(&mut self, e: Entry, seen: &mut Vec<SignedHead>) -> Result<()> {
        let corrupt = |detail: String| LogError::Corrupt {
            path: self.files.oplog.path.clone(),
            detail,
        };
        let new_length = e.tree_upgrade.as_ref().map_or(self.length, |u| u.length);
        if let Some(u) = &e.tree_upgrade {
            if u.length > MAX_LENGTH || u.ancestors > u.length.min(self.length) {
                return Err(corrupt(format!(
                    "entry upgrade to {} (ancestors {}) from {}",
                    u.length, u.ancestors, self.length
                )));
            }
        }
        if let Some(b) = &e.bitfield {
            let end = b.start.checked_add(b.length);
            if end.is_none_or(|end| !b.drop && end > new_length.max(self.length)) {
                return Err(corrupt(format!(
                    "entry bitfield range {}+{} beyond length {}",
                    b.start, b.length, new_length
                )));
            }
        }
        if let Some(n) = e
            .tree_nodes
            .iter()
            .flatten()
            .find(|n| n.index >= 2 * MAX_LENGTH)
        {
            return Err(corrupt(format!(
                "entry tree node index {} out of range",
                n.index
            )));
        }
        if let Some((k, v)) = &e.user_data {
            self.header.set_user_data(k, Some(v));
        }
        let nodes = e.tree_nodes.unwrap_or_default();
        for n in &nodes {
            self.unflushed.insert(n.index, *n);
        }
        if let Some(b) = &e.bitfield {
            self.bitfield.set_range(b.start, b.length, !b.drop);
            if b.drop && self.header.hints.contiguous_length > b.start {
                self.header.hints.contiguous_length = b.start;
            }
        }
        if let Some(u) = e.tree_upgrade {
            if u.ancestors < self.length {
                self.cut_tree(u.ancestors);
                for n in &nodes {
                    self.unflushed.insert(n.index, *n);
                }
                if u.fork != self.fork {
                    push_reorg(
                        &mut self.header.hints.reorgs,
                        self.fork,
                        u.fork,
                        u.ancestors,
                    );
                }
            }
            let roots = self.roots_at(u.length)?;
            self.byte_length = total_size(&roots);
            self.roots = roots;
            self.length = u.length;
            self.fork = u.fork;
            self.signature = u.signature.clone();
            let th = crypto::tree_hash(&self.roots);
            if u.length > 0 {
                seen.push(self.check_head(u.length, u.fork, th, &u.signature)?);
            }
            self.header.tree = TreeHeader {
                fork: u.fork,
                length: u.length,
                root_hash: if u.length > 0 { th.to_vec() } else { vec![] },
                signature: u.signature,
            };
        }
        if let Some(b) = &e.bitfield {
            if !b.drop {
                let mut c = self.header.hints.contiguous_length;
                if c >= b.start && c <= b.start + b.length {
                    while self.bitfield.get(c) {
                        c += 1;
                    }
                    self.header.hints.contiguous_length = c;
                }
            }
        }
        Ok(())
    }

    /// Forgets tree nodes at or beyond `ancestors` blocks and blanks the parents spanning the cut.
    fn cut_tree(&mut self, ancestors: u64) {
        let head = 2 * ancestors;
        self.unflushed.retain(|&i, _| i < head);
        if ancestors > 0 {
            let mut it = tree::Iter::new(head - 2);
            loop {
                if it.contains(head) && it.index < head {
                    self.unflushed.insert(it.index, Node::blank(it.index));
                }
                if it.offset == 0 {
                    break;
                }
                it.parent();
            }
        }
        self.tree_cut = Some(self.tree_cut.map_or(ancestors, |c| c.min(ancestors)));
    }

    fn load_heads(&mut self, seen: Vec<SignedHead>) -> Result<()> {
        let buf = self.files.heads.read_all()?;
        let mut heads: Vec<SignedHead> = Vec::new();
        for rec in buf.chunks(HEAD_RECORD) {
            // The CRC catches torn or damaged records; signatures were checked before the
            // records were written, so reopening a long history costs no verification.
            match SignedHead::from_record(rec) {
                Some(h) => heads.push(h),
                None => break,
            }
        }
        // Drop heads beyond the recovered state (written before a crash cut the oplog entry).
        let mut keep = heads.len();
        while keep > 0 {
            let h = &heads[keep - 1];
            if h.fork > self.fork || (h.fork == self.fork && h.length > self.length) {
                keep -= 1;
            } else {
                break;
            }
        }
        heads.truncate(keep);
        let mut rewrite = keep * HEAD_RECORD != buf.len();
        for h in seen {
            if !heads.contains(&h) {
                heads.push(h);
                rewrite = true;
            }
        }
        if rewrite {
            let mut out = Vec::with_capacity(heads.len() * HEAD_RECORD);
            for h in &heads {
                out.extend_from_slice(&h.to_record());
            }
            self.files.heads.write_at(0, &out)?;
            self.files.heads.truncate(out.len() as u64)?;
            self.files.heads.sync()?;
        }
        self.heads_persisted = heads.len();
        self.heads = heads;
        Ok(())
    }

    fn check_data_file(&self) -> Result<()> {
        if self.header.hints.contiguous_length >= self.length && self.length > 0 {
            let size = self.files.data.len()?;
            if size < self.byte_length {
                return Err(LogError::Corrupt {
                    path: self.files.data.path.clone(),
                    detail: format!(
                        "{} bytes stored, {} expected for {} blocks",
                        size, self.byte_length, self.length
                    ),
                });
            }
        }
        Ok(())
    }

    fn cleanup_tree_file(&mut self) -> Result<()> {
        // Remove nodes a crash left beyond the head (after the header, before cleanup).
        let expected = if self.length == 0 {
            0
        } else {
            (2 * self.length - 1) * 40
        };
        if self.files.tree.len()? > expected && self.unflushed.keys().all(|&i| i < 2 * self.length)
        {
            self.cut_tree(self.length);
            self.flush()?;
        }
        Ok(())
    }

    // ---- tree access ----

    /// A stored tree node within the current length, `None` when absent or blank.
    pub fn node(&self, index: u64) -> Result<Option<Node>> {
        if tree::right_span(index) >= 2 * self.length {
            return Ok(None);
        }
        self.node_raw(index)
    }

    fn node_raw(&self, index: u64) -> Result<Option<Node>> {
        if let Some(n) = self.unflushed.get(&index) {
            return Ok((!n.is_blank()).then_some(*n));
        }
        if self.tree_cut.is_some_and(|c| index >= 2 * c) {
            return Ok(None);
        }
        let Some(off) = index.checked_mul(40) else {
            return Ok(None);
        };
        let Some(b) = self.files.tree.read_at(off, 40)? else {
            return Ok(None);
        };
        let mut a = [0u8; 40];
        a.copy_from_slice(&b);
        let n = Node::from_bytes(index, &a);
        Ok((!n.is_blank()).then_some(n))
    }

    fn required_node(&self, index: u64) -> Result<Node> {
        self.node_raw(index)?.ok_or_else(|| LogError::MissingNode {
            path: self.files.tree.path.clone(),
            index,
        })
    }

    fn roots_at_stored(&self, length: u64) -> Result<Vec<Node>> {
        tree::full_roots(2 * length)
            .into_iter()
            .map(|i| self.required_node(i))
            .collect()
    }

    fn roots_at(&self, length: u64) -> Result<Vec<Node>> {
        if length == self.length && !self.roots.is_empty() {
            return Ok(self.roots.clone());
        }
        self.roots_at_stored(length)
    }

    /// The Merkle roots at `length` (≤ current length).
    pub fn roots(&self, length: u64) -> Result<Vec<Node>> {
        if length > self.length {
            return Err(LogError::OutOfBounds {
                what: "length",
                requested: length,
                length: self.length,
            });
        }
        self.roots_at(length)
    }

    /// The tree hash of the roots at `length` (≤ current length).
    pub fn tree_hash(&self, length: u64) -> Result<[u8; 32]> {
        Ok(crypto::tree_hash(&self.roots(length)?))
    }

    /// Byte offset of flat-tree `index` in the data (as JS `getByteOffset`).
    pub(crate) fn byte_offset(&self, index: u64) -> Result<u64> {
        if index == 2 * self.length {
            return Ok(self.byte_length);
        }
        let index = if index & 1 == 1 {
            tree::left_span(index)
        } else {
            index
        };
        let mut head = 0u64;
        let mut offset = 0u64;
        for root in &self.roots {
            head += 2 * ((root.index - head) + 1);
            if index >= head {
                offset = offset.saturating_add(root.size);
                continue;
            }
            let mut it = tree::Iter::new(root.index);
            while it.index != index {
                if index < it.index {
                    it.left_child();
                } else {
                    let l = it.left_child();
                    offset = offset.saturating_add(self.required_node(l)?.size);
                    it.sibling();
                }
            }
            return Ok(offset);
        }
        Err(LogError::OutOfBounds {
            what: "tree index",
            requested: index,
            length: self.length,
        })
    }

    // ---- reads ----

    /// Number of blocks.
    pub fn len(&self) -> u64 {
        self.length
    }

    /// Whether the log has no blocks.
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// Total bytes of all blocks.
    pub fn byte_len(&self) -> u64 {
        self.byte_length
    }

    /// Fork id (raised by every truncation).
    pub fn fork(&self) -> u64 {
        self.fork
    }

    /// The log's public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key_pair.public_key
    }

    /// The key pair (secret key present when writable).
    pub fn key_pair(&self) -> &KeyPair {
        &self.key_pair
    }

    /// Whether this side can append.
    pub fn writable(&self) -> bool {
        self.key_pair.secret_key.is_some()
    }

    /// The discovery key.
    pub fn discovery_key(&self) -> [u8; 32] {
        crypto::discovery_key(&self.key_pair.public_key)
    }

    /// The stored oplog header (user data, manifest, hints...).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The user data value stored under `key`.
    pub fn user_data(&self, key: &str) -> Option<&[u8]> {
        self.header
            .user_data
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// The signature of the current head (empty when the log is empty).
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// Every signed head this log created or verified, oldest first.
    pub fn signed_heads(&self) -> &[SignedHead] {
        &self.heads
    }

    /// The most recent signed head at exactly `length` in the current fork, if any.
    pub fn signed_head_at(&self, length: u64) -> Option<&SignedHead> {
        self.heads
            .iter()
            .rev()
            .find(|h| h.length == length && h.fork == self.fork)
    }

    /// Whether block `seq` is stored locally.
    pub fn has(&self, seq: u64) -> bool {
        seq < self.length && self.bitfield.get(seq)
    }

    /// Reads block `seq`; `None` when beyond the length or not stored locally.
    pub fn get(&self, seq: u64) -> Result<Option<Vec<u8>>> {
        if !self.has(seq) {
            return Ok(None);
        }
        let offset = self.byte_offset(2 * seq)?;
        let size = self.required_node(2 * seq)?.size;
        let len = usize::try_from(size).map_err(|_| LogError::Corrupt {
            path: self.files.tree.path.clone(),
            detail: format!("block {seq} size {size} too large"),
        })?;
        match self.files.data.read_at(offset, len)? {
            Some(b) => Ok(Some(b)),
            None => Err(LogError::Corrupt {
                path: self.files.data.path.clone(),
                detail: format!("block {seq} ({len} bytes at {offset}) beyond end of file"),
            }),
        }
    }

    /// Signs `message` with the log's secret key (`None` when read-only).
    pub fn sign(&self, message: &[u8]) -> Option<[u8; 64]> {
        self.signer.as_ref().map(|signer| signer.sign(message))
    }

    /// Verifies `signature` over `message` with the log's public key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        crypto::verify(&self.key_pair.public_key, message, signature)
    }

    /// Verifies a head signature for this log at `length`/`fork` with the given scheme
    /// against the tree hash this log computes for `length` (current fork).
    pub fn verify_head(
        &self,
        length: u64,
        fork: u64,
        tree_hash: &[u8; 32],
        signature: &[u8],
        scheme: SignatureScheme,
    ) -> bool {
        crypto::verify(
            &self.key_pair.public_key,
            &scheme.signable(tree_hash, length, fork),
            signature,
        )
    }

    /// Sets the oplog size past which appends checkpoint (tree, bitfield, header).
    pub fn set_checkpoint_bytes(&mut self, bytes: u64) {
        self.checkpoint_bytes = bytes;
    }

    /// Chooses when appends are durable (see [`Durability`]).
    pub fn set_durability(&mut self, durability: Durability) {
        self.durability = durability;
    }

    /// When appends are durable.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    // ---- writes ----

    fn require_writable(&self) -> Result<()> {
        if self.writable() {
            Ok(())
        } else {
            Err(LogError::NotWritable {
                key: hexkey(&self.key_pair.public_key),
            })
        }
    }

    /// Appends one block; returns the new length.
    pub fn append(&mut self, block: &[u8]) -> Result<u64> {
        self.append_batch(&[block])
    }

    /// Appends blocks under one signature; durable when it returns. Returns the new length.
    pub fn append_batch<B: AsRef<[u8]>>(&mut self, blocks: &[B]) -> Result<u64> {
        self.require_writable()?;
        if blocks.is_empty() {
            return Ok(self.length);
        }
        if self.length.saturating_add(blocks.len() as u64) > MAX_LENGTH {
            return Err(LogError::OutOfBounds {
                what: "length after append",
                requested: self.length.saturating_add(blocks.len() as u64),
                length: self.length,
            });
        }
        let mut roots = self.roots.clone();
        let mut nodes = Vec::with_capacity(blocks.len() * 2);
        let mut length = self.length;
        let mut total = 0usize;
        for b in blocks {
            let b = b.as_ref();
            total += b.len();
            let leaf = Node {
                index: 2 * length,
                size: b.len() as u64,
                hash: crypto::leaf_hash(b),
            };
            length = append_root(&mut roots, &mut nodes, leaf, length);
        }
        let th = crypto::tree_hash(&roots);
        let signature = self
            .sign(&self.scheme.signable(&th, length, self.fork))
            .ok_or_else(|| LogError::NotWritable {
                key: hexkey(&self.key_pair.public_key),
            })?;
        let head = SignedHead {
            length,
            fork: self.fork,
            tree_hash: th,
            signature,
            scheme: self.scheme,
        };
        // 1. blocks, written before the entry that commits them; both files are then synced
        //    together (one wait for the disk instead of two in a row). A machine crash before
        //    both syncs end may leave the entry without its blocks: `open` hashes the blocks
        //    of replayed entries and cuts such an entry, which was never acknowledged. The
        //    head record is written after the entry and synced at the next checkpoint: until
        //    then the oplog entry (which carries the signature) restores it on open.
        let mut data = Vec::with_capacity(total);
        for b in blocks {
            data.extend_from_slice(b.as_ref());
        }
        self.files.data.write_at(self.byte_length, &data)?;
        // 2. the oplog entry.
        let old = self.length;
        let entry = Entry {
            user_data: None,
            tree_nodes: Some(nodes.clone()),
            tree_upgrade: Some(TreeUpgrade {
                fork: self.fork,
                ancestors: old,
                length,
                signature: signature.to_vec(),
            }),
            bitfield: Some(BitfieldUpdate {
                drop: false,
                start: old,
                length: length - old,
            }),
        };
        let framed = self.write_entry_unsynced(&entry)?;
        if self.durability == Durability::Synced {
            storage::sync_together(&[&self.files.data, &self.files.oplog])?;
        }
        self.oplog_bytes += framed;
        self.data_since_checkpoint = self.data_since_checkpoint.saturating_add(total as u64);
        // 3. in-memory state.
        for n in nodes {
            self.unflushed.insert(n.index, n);
        }
        self.bitfield.set_range(old, length - old, true);
        if self.header.hints.contiguous_length == old {
            self.header.hints.contiguous_length = length;
        }
        let byte_length = self.byte_length.saturating_add(total as u64);
        self.adopt_head(roots, byte_length, head);
        if self.oplog_bytes >= self.checkpoint_bytes
            || self.data_since_checkpoint >= CHECKPOINT_DATA_BYTES
        {
            self.flush()?;
        }
        Ok(length)
    }

    /// Records `head` (already committed by a synced oplog entry) in the history. Its record
    /// is written now if possible; a failed write is retried (and reported) at the checkpoint,
    /// and until then the oplog entry restores the head on open.
    pub(crate) fn record_head(&mut self, head: SignedHead) {
        self.heads.push(head);
        let _ = self.write_pending_heads();
    }

    /// Makes `head` (verified, and committed by a synced oplog entry) the log's current head,
    /// over `roots` holding `byte_length` bytes, and records it in the history.
    pub(crate) fn adopt_head(&mut self, roots: Vec<Node>, byte_length: u64, head: SignedHead) {
        self.roots = roots;
        self.length = head.length;
        self.byte_length = byte_length;
        self.fork = head.fork;
        self.signature = head.signature.to_vec();
        self.header.tree = TreeHeader {
            fork: head.fork,
            length: head.length,
            root_hash: head.tree_hash.to_vec(),
            signature: head.signature.to_vec(),
        };
        self.record_head(head);
    }

    fn write_pending_heads(&mut self) -> Result<()> {
        let Some(pending) = self.heads.get(self.heads_persisted..) else {
            return Ok(());
        };
        if pending.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(pending.len() * HEAD_RECORD);
        for h in pending {
            buf.extend_from_slice(&h.to_record());
        }
        let at = (self.heads_persisted * HEAD_RECORD) as u64;
        self.files.heads.write_at(at, &buf)?;
        self.heads_persisted = self.heads.len();
        Ok(())
    }

    /// Writes `entry` after the last one and syncs it (unless appends are buffered).
    fn write_entry(&mut self, entry: &Entry) -> Result<()> {
        let framed = self.write_entry_unsynced(entry)?;
        if self.durability == Durability::Synced {
            self.files.oplog.sync()?;
        }
        self.oplog_bytes += framed;
        Ok(())
    }

    /// Writes `entry` after the last one, unsynced; returns its framed size (the caller adds
    /// it to `oplog_bytes` once the entry is durable).
    fn write_entry_unsynced(&mut self, entry: &Entry) -> Result<u64> {
        let mut w = Writer::new();
        entry.encode(&mut w);
        if w.buf.len() >= 1 << 30 {
            return Err(LogError::BatchTooLarge { bytes: w.buf.len() });
        }
        let mut framed = Vec::with_capacity(w.buf.len() + 8);
        oplog::frame(&w.buf, oplog::entry_bit(self.headers), false, &mut framed);
        self.files
            .oplog
            .write_at(ENTRY_OFFSET + self.oplog_bytes, &framed)?;
        Ok(framed.len() as u64)
    }

    /// Truncates to `new_length` blocks and raises the fork id (as JS `core.truncate`).
    pub fn truncate(&mut self, new_length: u64) -> Result<()> {
        self.require_writable()?;
        if new_length > self.length {
            return Err(LogError::OutOfBounds {
                what: "truncate length",
                requested: new_length,
                length: self.length,
            });
        }
        let fork = self.fork + 1;
        let roots = self.roots_at(new_length)?;
        let th = crypto::tree_hash(&roots);
        let mut head = None;
        let signature = if new_length > 0 {
            let sig = self
                .sign(&self.scheme.signable(&th, new_length, fork))
                .ok_or_else(|| LogError::NotWritable {
                    key: hexkey(&self.key_pair.public_key),
                })?;
            head = Some(SignedHead {
                length: new_length,
                fork,
                tree_hash: th,
                signature: sig,
                scheme: self.scheme,
            });
            sig.to_vec()
        } else {
            vec![]
        };
        let old = self.length;
        let entry = Entry {
            user_data: None,
            tree_nodes: Some(vec![]),
            tree_upgrade: Some(TreeUpgrade {
                fork,
                ancestors: new_length,
                length: new_length,
                signature: signature.clone(),
            }),
            bitfield: Some(BitfieldUpdate {
                drop: true,
                start: new_length,
                length: old - new_length,
            }),
        };
        self.write_entry(&entry)?;
        self.bitfield.set_range(new_length, old - new_length, false);
        if self.length > 0 {
            push_reorg(&mut self.header.hints.reorgs, self.fork, fork, new_length);
        }
        self.cut_tree(new_length);
        if self.header.hints.contiguous_length > new_length {
            self.header.hints.contiguous_length = new_length;
        }
        self.byte_length = total_size(&roots);
        self.roots = roots;
        self.length = new_length;
        self.fork = fork;
        self.signature = signature.clone();
        self.header.tree = TreeHeader {
            fork,
            length: new_length,
            root_hash: if new_length > 0 { th.to_vec() } else { vec![] },
            signature,
        };
        if let Some(h) = head {
            self.record_head(h);
        }
        self.flush()
    }

    /// Sets (or with `None` removes) a user data key in the header, durably.
    pub fn set_user_data(&mut self, key: &str, value: Option<&[u8]>) -> Result<()> {
        let entry = Entry {
            user_data: Some((key.to_string(), value.unwrap_or_default().to_vec())),
            ..Default::default()
        };
        self.write_entry(&entry)?;
        self.header.set_user_data(key, value);
        Ok(())
    }

    /// Checkpoints: writes tree nodes and bitfield pages to their files, then the header to
    /// the alternate slot, then empties the oplog's entries. Safe to call at any time.
    pub fn flush(&mut self) -> Result<()> {
        // 0. the blocks themselves (already synced per batch unless appends are buffered).
        self.files.data.sync()?;
        // 1. non-blank nodes and bitfield pages, synced.
        let mut run: Vec<u8> = Vec::new();
        let mut run_start = 0u64;
        let mut next = u64::MAX;
        for n in self.unflushed.values().filter(|n| !n.is_blank()) {
            if n.index != next && !run.is_empty() {
                self.files.tree.write_at(run_start * 40, &run)?;
                run.clear();
            }
            if run.is_empty() {
                run_start = n.index;
            }
            run.extend_from_slice(&n.to_bytes());
            next = n.index + 1;
        }
        if !run.is_empty() {
            self.files.tree.write_at(run_start * 40, &run)?;
        }
        let pages = self.bitfield.take_dirty();
        for (off, bytes) in &pages {
            if let Err(e) = self.files.bitfield.write_at(*off, bytes) {
                for (o, _) in &pages {
                    self.bitfield.mark_dirty(*o);
                }
                return Err(e);
            }
        }
        self.files.tree.sync()?;
        self.files.bitfield.sync()?;
        // Head records since the last checkpoint become durable before the oplog entries that
        // could restore them are dropped.
        self.write_pending_heads()?;
        self.files.heads.sync()?;
        // 2. header into the alternate slot.
        self.header.tree.fork = self.fork;
        self.header.tree.length = self.length;
        let payload = self.header.encode();
        if payload.len() + 8 > PAGE_SIZE as usize {
            return Err(LogError::HeaderTooLarge {
                size: payload.len(),
            });
        }
        let (slot, bit) = oplog::next_header_slot(self.headers);
        let mut framed = Vec::with_capacity(payload.len() + 8);
        oplog::frame(&payload, bit, false, &mut framed);
        self.files
            .oplog
            .write_at(slot as u64 * PAGE_SIZE, &framed)?;
        if self.files.oplog.len()? < ENTRY_OFFSET {
            // Keep the file at least two pages long, as JS leaves it.
            self.files.oplog.truncate(ENTRY_OFFSET)?;
        }
        self.files.oplog.sync()?;
        self.headers[slot] = bit;
        self.files.oplog.truncate(ENTRY_OFFSET)?;
        self.oplog_bytes = 0;
        self.data_since_checkpoint = 0;
        // 3. after the header: blanks and the cut of the tree file.
        let blanks: Vec<Node> = self
            .unflushed
            .values()
            .filter(|n| n.is_blank())
            .copied()
            .collect();
        for b in &blanks {
            self.files.tree.write_at(b.index * 40, &b.to_bytes())?;
        }
        if let Some(cut) = self.tree_cut.take() {
            // Only when nothing newer than the cut was written above (else stale nodes stay
            // until overwritten; reads never look past the length).
            let keep = if cut == 0 { 0 } else { (2 * cut - 1) * 40 };
            let newer = self
                .unflushed
                .values()
                .any(|n| !n.is_blank() && n.index >= 2 * cut);
            if !newer && self.files.tree.len()? > keep {
                self.files.tree.truncate(keep)?;
            }
        }
        self.unflushed.clear();
        Ok(())
    }
}

/// Largest length (in blocks) a stored head may claim; keeps flat-tree arithmetic exact.
const MAX_LENGTH: u64 = 1 << 55;

/// Block bytes appended since the last checkpoint past which the next append checkpoints:
/// bounds what [`Log::open`] hashes to find blocks a crash kept from the disk.
const CHECKPOINT_DATA_BYTES: u64 = 64 << 20;

pub(crate) fn push_reorg(list: &mut Vec<ReorgHint>, from: u64, to: u64, ancestors: u64) {
    if from == to {
        return;
    }
    while list.len() >= 4 {
        list.remove(0);
    }
    while list.last().is_some_and(|l| l.ancestors > ancestors) {
        list.pop();
    }
    list.push(ReorgHint {
        from,
        to,
        ancestors,
    });
}
