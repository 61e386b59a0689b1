//! The index B-tree: our own Hyperbee 1.x, byte-compatible with JS Hyperbee 1.10.1 (and 1.7.0,
//! which JS Vitra 0.1.3 used).
//!
//! A [`Bee`] sits on any append-only [`BlockLog`] (the real signed log, or the in-memory
//! `Vec<Vec<u8>>` used in tests). Block 0 is the Hyperbee header; every later block is one
//! `Node { index, key, value }` whose `index` holds the tree nodes that changed when the block
//! was written. Writes (`put`, `del`, [`Batch`]) build exactly the blocks JS Hyperbee builds
//! for the same operations, including the batch quirk where only the last node of a batch
//! carries the full tree index (see `write.rs`). Reads (`get`, ranges, `peek`, `history`,
//! `checkout`, Vitra's shallow `list`) follow the pointers in those indexes.
//!
//! What this module must never do:
//! - panic, loop forever or allocate without bound on a damaged or hostile index: every
//!   pointer is checked against the log length, descents are bounded in depth, iterations
//!   refuse to visit a tree node twice, and every failure is a typed [`BeeError`];
//! - write anything but whole batches: a batch is one `append_batch` call, or nothing;
//! - depend on an async runtime: the API is synchronous.
//!
//! Live history is a *blocking iterator*: [`HistoryIter`] with `live: true` waits for the log
//! to grow through [`BlockLog::wait_for_append`] (the in-memory [`SharedMemoryLog`] wakes
//! waiters on append; the default implementation polls).
//!
//! ```
//! use vitra::bee::{path_to_key, Bee, HistoryOptions, RangeOptions};
//! use vitra::codec::Value;
//!
//! let mut bee = Bee::new(Vec::<Vec<u8>>::new()); // any BlockLog; here an in-memory one
//! let mut batch = bee.batch();
//! batch.put_value(&path_to_key("/.sys/acks/genesis"), &Value::Object(Default::default()))?;
//! batch.put_value(&path_to_key("/counter"), &Value::Number(1.0))?;
//! batch.flush()?; // one append: blocks 1 and 2 (block 0 is the header)
//! let before = bee.version();
//! bee.put_value(&path_to_key("/counter"), &Value::Number(2.0))?;
//!
//! let (entry, value) = bee.get_value(&path_to_key("/counter"))?.expect("present");
//! assert_eq!((entry.seq, value), (3, Value::Number(2.0)));
//! let old = bee.checkout(before)?.get_value(&path_to_key("/counter"))?.expect("present");
//! assert_eq!(old.1, Value::Number(1.0));
//! assert_eq!(bee.range(RangeOptions::all()).count(), 2);
//! assert_eq!(bee.history(HistoryOptions::default())?.count(), 3);
//! let root: Vec<String> = bee.list("/")?.into_iter().map(|e| e.path).collect();
//! assert_eq!(root, ["/.sys", "/counter"]);
//! # Ok::<(), vitra::bee::BeeError>(())
//! ```

mod cache;
mod history;
mod list;
mod memory;
pub mod messages;
mod read;
mod write;

use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::codec::{self, CodecError, Value};

pub use history::{HistoryEntry, HistoryIter, HistoryKind, HistoryOptions};
pub use list::{key_to_path, path_to_key, ListEntry, ListOptions};
pub use memory::SharedMemoryLog;
pub use messages::{Header, Level, Metadata, NodeMessage, ProtoError};
pub use read::{RangeIter, RangeOptions};
pub use write::Batch;

use cache::BlockCache;
use messages::decode_node_ref;

/// Branching parameter of JS Hyperbee 1.x: a node holds at most `2 * (T - 1)` keys.
pub(crate) const T: usize = 5;
/// Fewest keys a non-root node keeps before it borrows or merges.
pub(crate) const MIN_KEYS: usize = T - 1;
/// A node splits when it reaches this many keys.
pub(crate) const MAX_CHILDREN: usize = MIN_KEYS * 2 + 1;
/// No valid Hyperbee is deeper than this (every non-root inner node has at least 5 children,
/// so even 2^64 keys need fewer than 30 levels). Deeper descents mean a cycle.
pub(crate) const MAX_DEPTH: usize = 48;

/// The protocol name in a Hyperbee header.
pub const PROTOCOL: &str = "hyperbee";

/// The error of a [`BlockLog`]: whatever the log implementation failed with.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct BlockError(pub Box<dyn std::error::Error + Send + Sync + 'static>);

impl BlockError {
    /// Wraps any error.
    pub fn new(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        BlockError(Box::new(err))
    }

    /// An error made of a message.
    pub fn msg(msg: impl Into<String>) -> Self {
        BlockError(msg.into().into())
    }
}

/// The append-only log a [`Bee`] stores its blocks in.
///
/// The real signed log implements this; so do `Vec<Vec<u8>>` and [`SharedMemoryLog`].
pub trait BlockLog {
    /// Number of blocks.
    fn len(&self) -> u64;

    /// True when the log has no blocks.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes of block `seq` (an error when `seq >= len()` or the block is unavailable).
    fn get(&self, seq: u64) -> Result<Vec<u8>, BlockError>;

    /// Appends all `blocks` as one atomic append.
    fn append_batch(&mut self, blocks: &[Vec<u8>]) -> Result<(), BlockError>;

    /// Waits until the log has more than `known_len` blocks or `timeout` passes, and returns
    /// the length then. The default polls `len()` every 2 ms; logs that can be appended from
    /// another thread should wake waiters instead.
    fn wait_for_append(&self, known_len: u64, timeout: Duration) -> Result<u64, BlockError> {
        let deadline = Instant::now() + timeout;
        loop {
            let len = self.len();
            let now = Instant::now();
            if len > known_len || now >= deadline {
                return Ok(len);
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(2)));
        }
    }
}

/// Everything that can go wrong in the index B-tree.
#[derive(Debug, Error)]
pub enum BeeError {
    /// The underlying log failed to read or append.
    #[error("index log failed: {0}")]
    Log(#[from] BlockError),
    /// Block 0 is not a Hyperbee header.
    #[error("block 0 is not a hyperbee header: {reason}")]
    BadHeader {
        /// Why it was refused.
        reason: String,
    },
    /// A block is not a valid protobuf `Node`.
    #[error("block {seq} is not a hyperbee node: {source}")]
    BadNode {
        /// The block.
        seq: u64,
        /// What is wrong with the bytes.
        source: ProtoError,
    },
    /// A block's `index` field is not a valid `YoloIndex`.
    #[error("block {seq} has a bad tree index: {source}")]
    BadIndex {
        /// The block.
        seq: u64,
        /// What is wrong with the bytes.
        source: ProtoError,
    },
    /// A tree node points at a block that is not part of this version of the log (or at the
    /// header block 0).
    #[error("block {from_seq} points at block {target_seq}, outside 1..{length}")]
    PointerPastEnd {
        /// Block holding the pointer.
        from_seq: u64,
        /// Block pointed at.
        target_seq: u64,
        /// Length of the log version being read.
        length: u64,
    },
    /// A child pointer names a tree node its block does not hold.
    #[error("block {seq} has no tree node at offset {offset} (it has {levels})")]
    MissingTreeNode {
        /// The block.
        seq: u64,
        /// The offset asked for.
        offset: u64,
        /// How many tree nodes the block holds.
        levels: usize,
    },
    /// A tree node has children but not one more than its keys, or is otherwise unusable.
    #[error(
        "tree node at block {seq} offset {offset} is malformed: {keys} keys, {children} children"
    )]
    MalformedTreeNode {
        /// Block of the node.
        seq: u64,
        /// Offset of the node in that block's index.
        offset: u64,
        /// Number of keys.
        keys: usize,
        /// Number of children.
        children: usize,
    },
    /// A descent went deeper than any valid Hyperbee can be: the tree has a cycle.
    #[error("tree deeper than {MAX_DEPTH} levels below block {seq}: the index has a cycle")]
    TreeTooDeep {
        /// Block of the root the descent started from.
        seq: u64,
    },
    /// An iteration reached the same tree node twice: the index has a cycle or shared subtree.
    #[error("tree node at block {seq} offset {offset} reached twice: the index has a cycle")]
    TreeCycle {
        /// Block of the node.
        seq: u64,
        /// Offset of the node.
        offset: u64,
    },
    /// A tree node returned keys out of order (a damaged index), so an ordered scan stopped.
    #[error("keys out of order at block {seq}: the index is damaged")]
    KeysOutOfOrder {
        /// Block of the out-of-order key.
        seq: u64,
    },
    /// A checkout asked for a version the log does not have yet.
    #[error("version {version} is past the end of the log (length {length})")]
    VersionPastEnd {
        /// Version asked for.
        version: u64,
        /// Length of the log.
        length: u64,
    },
    /// A stored value is not valid MessagePack.
    #[error("value of block {seq} is not valid msgpack: {source}")]
    BadValue {
        /// The block.
        seq: u64,
        /// The decoder's complaint.
        source: CodecError,
    },
    /// History cannot be both live and reversed.
    #[error("history cannot be both live and reverse")]
    LiveReverse,
    /// An invariant of the writer broke; this is a bug, reported instead of a panic.
    #[error("internal error in the index writer: {0}")]
    Internal(&'static str),
}

/// A decoded node block, shared by the cache and every reader.
#[derive(Debug)]
pub(crate) struct Block {
    pub seq: u64,
    pub key: Arc<[u8]>,
    pub value: Option<Box<[u8]>>,
    pub levels: Vec<Level>,
}

impl Block {
    pub(crate) fn decode(seq: u64, bytes: &[u8]) -> Result<Block, BeeError> {
        let node = decode_node_ref(bytes).map_err(|source| BeeError::BadNode { seq, source })?;
        let levels = messages::decode_index(node.index)
            .map_err(|source| BeeError::BadIndex { seq, source })?;
        Ok(Block {
            seq,
            key: Arc::from(node.key),
            value: node.value.map(Box::from),
            levels,
        })
    }

    /// JS `isDeletion()`: no value, and the block's own index does not hold its key.
    pub(crate) fn is_deletion(&self) -> bool {
        self.value.is_none() && !self.levels.iter().any(|l| l.keys.contains(&self.seq))
    }

    pub(crate) fn entry(&self) -> Entry {
        Entry {
            seq: self.seq,
            key: self.key.to_vec(),
            value: self.value.as_ref().map(|v| v.to_vec()),
        }
    }
}

/// One key/value as read from the tree (JS `{seq, key, value}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Block number of the node that holds this key's current value.
    pub seq: u64,
    /// The key.
    pub key: Vec<u8>,
    /// The value bytes; `None` when it was put as JS `null`.
    pub value: Option<Vec<u8>>,
}

impl Entry {
    /// The value decoded as msgpack (`None` becomes `Value::Null`, as JS Hyperbee returns `null`).
    pub fn decode_value(&self) -> Result<Value, BeeError> {
        decode_value(self.seq, self.value.as_deref())
    }
}

/// Decodes a stored value the way JS Vitra's value encoding does.
pub(crate) fn decode_value(seq: u64, value: Option<&[u8]>) -> Result<Value, BeeError> {
    match value {
        None => Ok(Value::Null),
        Some(bytes) => codec::decode(bytes).map_err(|source| BeeError::BadValue { seq, source }),
    }
}

/// Encodes a value the way JS Vitra's value encoding does: `null` and `undefined` store no
/// value field at all (JS Hyperbee skips the encoder for them); everything else is msgpack.
pub fn encode_value(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::Null | Value::Undefined => None,
        v => Some(codec::encode(v)),
    }
}

/// A Hyperbee on a block log.
pub struct Bee<L> {
    log: L,
    cache: BlockCache,
}

impl<L: BlockLog> Bee<L> {
    /// Opens a bee on `log` with the default cache (64 Ki decoded blocks at most). Nothing is
    /// written until the first `put`/`del`, which appends the header first, as JS does.
    pub fn new(log: L) -> Self {
        Self::with_cache_capacity(log, 1 << 16)
    }

    /// Opens a bee that keeps at most about `blocks` decoded blocks in memory.
    pub fn with_cache_capacity(log: L, blocks: usize) -> Self {
        Bee {
            log,
            cache: BlockCache::new(blocks),
        }
    }

    /// The underlying log.
    pub fn log(&self) -> &L {
        &self.log
    }

    /// Gives the log back.
    pub fn into_log(self) -> L {
        self.log
    }

    /// Forgets every decoded block (needed only if the log was truncated underneath).
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    /// JS `bee.version`: the log length, at least 1.
    pub fn version(&self) -> u64 {
        self.log.len().max(1)
    }

    /// The header in block 0, or `None` for an empty log.
    pub fn header(&self) -> Result<Option<Header>, BeeError> {
        if self.log.is_empty() {
            return Ok(None);
        }
        let raw = self.log.get(0)?;
        let h = messages::decode_header(&raw).map_err(|e| BeeError::BadHeader {
            reason: e.to_string(),
        })?;
        Ok(Some(h))
    }

    /// Checks that block 0 is a Hyperbee header (when the log has one).
    pub fn check_header(&self) -> Result<(), BeeError> {
        match self.header()? {
            Some(h) if h.protocol != PROTOCOL => Err(BeeError::BadHeader {
                reason: format!("protocol is {:?}, not {PROTOCOL:?}", h.protocol),
            }),
            _ => Ok(()),
        }
    }

    /// The decoded node block `seq`, from the cache or the log.
    pub(crate) fn block(&self, seq: u64) -> Result<Arc<Block>, BeeError> {
        if let Some(b) = self.cache.get(seq) {
            return Ok(b);
        }
        let raw = self.log.get(seq)?;
        let b = Arc::new(Block::decode(seq, &raw)?);
        self.cache.insert(seq, b.clone());
        Ok(b)
    }

    /// A read-only view of the tree as it was when the log had `version` blocks (JS
    /// `checkout(version)`). Versions 0 and 1 are the empty tree. Cheap: no copy is made.
    pub fn checkout(&self, version: u64) -> Result<Snapshot<'_, L>, BeeError> {
        let length = self.log.len();
        if version > length {
            return Err(BeeError::VersionPastEnd { version, length });
        }
        Ok(Snapshot {
            bee: self,
            length: version,
        })
    }

    /// A read-only view of the current version.
    pub fn snapshot(&self) -> Snapshot<'_, L> {
        Snapshot {
            bee: self,
            length: self.log.len(),
        }
    }

    /// The entry for `key` in the current version.
    pub fn get(&self, key: &[u8]) -> Result<Option<Entry>, BeeError> {
        self.snapshot().get(key)
    }

    /// The entry for `key`, with its value decoded as msgpack.
    pub fn get_value(&self, key: &[u8]) -> Result<Option<(Entry, Value)>, BeeError> {
        self.snapshot().get_value(key)
    }

    /// Iterates the current version in key order within `opts`.
    pub fn range(&self, opts: RangeOptions) -> RangeIter<'_, L> {
        RangeIter::new(self, self.log.len(), opts)
    }

    /// The first entry of a range (JS `peek`).
    pub fn peek(&self, opts: RangeOptions) -> Result<Option<Entry>, BeeError> {
        self.snapshot().peek(opts)
    }

    /// Iterates the log's blocks as put/del entries (JS `createHistoryStream`).
    pub fn history(&self, opts: HistoryOptions) -> Result<HistoryIter<'_, L>, BeeError> {
        HistoryIter::new(self, None, opts)
    }

    /// JS Vitra's shallow listing of the direct children of `prefix` (a `/` path).
    pub fn list(&self, prefix: &str) -> Result<Vec<ListEntry>, BeeError> {
        self.snapshot().list(prefix)
    }

    /// Writes `key = value` (`None` is JS `null`: a node without a value field) as one block,
    /// and returns its block number.
    pub fn put(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<u64, BeeError> {
        let mut b = self.batch();
        let seq = b.put(key, value)?;
        b.flush()?;
        Ok(seq)
    }

    /// Writes `key = value` with the value msgpack-encoded (`null`/`undefined`: no value field).
    pub fn put_value(&mut self, key: &[u8], value: &Value) -> Result<u64, BeeError> {
        self.put(key, encode_value(value).as_deref())
    }

    /// Deletes `key`. Returns the block number of the delete node, or `None` when the key was
    /// absent (nothing but, on an empty log, the header is written, as in JS).
    pub fn del(&mut self, key: &[u8]) -> Result<Option<u64>, BeeError> {
        let mut b = self.batch();
        let seq = b.del(key)?;
        b.flush()?;
        Ok(seq)
    }

    /// Starts a batch: its puts and dels are flushed as one append.
    pub fn batch(&mut self) -> Batch<'_, L> {
        Batch::new(self)
    }

    /// The underlying log, for writes outside the tree (committing a write buffer). Blocks
    /// must only ever be appended through the bee, or the block cache goes stale.
    pub fn log_mut(&mut self) -> &mut L {
        &mut self.log
    }

    pub(crate) fn cache(&self) -> &BlockCache {
        &self.cache
    }
}

/// A read-only view of a [`Bee`] at one version (log length). Checkouts and snapshots are this.
pub struct Snapshot<'a, L> {
    bee: &'a Bee<L>,
    length: u64,
}

impl<L> Clone for Snapshot<'_, L> {
    fn clone(&self) -> Self {
        Snapshot {
            bee: self.bee,
            length: self.length,
        }
    }
}

impl<'a, L: BlockLog> Snapshot<'a, L> {
    /// The version (log length, at least 1) this view reads.
    pub fn version(&self) -> u64 {
        self.length.max(1)
    }

    /// The entry for `key` in this version.
    pub fn get(&self, key: &[u8]) -> Result<Option<Entry>, BeeError> {
        read::get(self.bee, self.length, key)
    }

    /// The entry for `key`, with its value decoded as msgpack.
    pub fn get_value(&self, key: &[u8]) -> Result<Option<(Entry, Value)>, BeeError> {
        match self.get(key)? {
            None => Ok(None),
            Some(e) => {
                let v = e.decode_value()?;
                Ok(Some((e, v)))
            }
        }
    }

    /// Iterates this version in key order within `opts`.
    pub fn range(&self, opts: RangeOptions) -> RangeIter<'a, L> {
        RangeIter::new(self.bee, self.length, opts)
    }

    /// The first entry of a range.
    pub fn peek(&self, opts: RangeOptions) -> Result<Option<Entry>, BeeError> {
        let mut it = self.range(RangeOptions {
            limit: Some(1),
            ..opts
        });
        it.next().transpose()
    }

    /// History up to this version (`live` waits past it for new blocks).
    pub fn history(&self, opts: HistoryOptions) -> Result<HistoryIter<'a, L>, BeeError> {
        HistoryIter::new(self.bee, Some(self.length), opts)
    }

    /// JS Vitra's shallow listing of `prefix` in this version.
    pub fn list(&self, prefix: &str) -> Result<Vec<ListEntry>, BeeError> {
        list::shallow_list(self, prefix)
    }

    /// Shallow listing with JS Vitra's reverse/offset/limit options.
    pub fn list_with(&self, prefix: &str, opts: &ListOptions) -> Result<Vec<ListEntry>, BeeError> {
        let arr = list::shallow_list(self, prefix)?;
        Ok(opts.apply(arr))
    }
}
