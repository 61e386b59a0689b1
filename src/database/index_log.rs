//! The index log as the bee sees it: a signed [`Log`] with a group-commit buffer.
//!
//! The executor writes many operations' Hyperbee batches, then makes them durable with one
//! append (one fsync group, one signature): [`IndexLog::commit`]. Until then the pending
//! blocks are visible to reads through this log (so later operations in the same group see
//! earlier ones), but not to anyone else: nothing is on disk and no head is signed. Each
//! operation still gets its own ack-then-changes run of blocks, exactly as JS Vitra writes
//! them; only the signed lengths differ.

use crate::bee::{BlockError, BlockLog};
use crate::log::{Log, LogError};

/// A [`Log`] plus blocks appended but not yet committed.
pub struct IndexLog {
    log: Log,
    pending: Vec<Vec<u8>>,
}

impl IndexLog {
    /// Wraps a log.
    pub fn new(log: Log) -> Self {
        IndexLog {
            log,
            pending: Vec::new(),
        }
    }

    /// The signed log (committed blocks only).
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The signed log, for writes outside the bee (truncation in tests, replication).
    pub fn log_mut(&mut self) -> &mut Log {
        &mut self.log
    }

    /// Number of blocks waiting for [`IndexLog::commit`].
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Appends every pending block as one durable, signed append.
    pub fn commit(&mut self) -> Result<(), LogError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let blocks = std::mem::take(&mut self.pending);
        self.log.append_batch(&blocks)?;
        Ok(())
    }

    /// Drops pending blocks (after a failed operation group).
    pub fn discard(&mut self) {
        self.pending.clear();
    }
}

impl BlockLog for IndexLog {
    fn len(&self) -> u64 {
        self.log.len() + self.pending.len() as u64
    }

    fn get(&self, seq: u64) -> Result<Vec<u8>, BlockError> {
        let committed = self.log.len();
        if seq >= committed {
            return usize::try_from(seq - committed)
                .ok()
                .and_then(|i| self.pending.as_slice().get(i).cloned())
                .ok_or_else(|| BlockError::msg(format!("index block {seq} does not exist")));
        }
        match self.log.get(seq) {
            Ok(Some(block)) => Ok(block),
            Ok(None) => Err(BlockError::msg(format!(
                "index block {seq} is not available locally"
            ))),
            Err(e) => Err(BlockError::new(e)),
        }
    }

    fn append_batch(&mut self, blocks: &[Vec<u8>]) -> Result<(), BlockError> {
        self.pending.extend_from_slice(blocks);
        Ok(())
    }
}
