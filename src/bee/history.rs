//! History: the log's node blocks in order, each as a put or a del (JS `createHistoryStream`).
//!
//! Whether a value-less block is a delete is decided as JS Hyperbee 1.x decides it: the block
//! is a put when its own index holds its key's block number, else a del. A put of JS `null`
//! inside a batch whose leaf a later block of the batch rewrote therefore reads back as a
//! del in JS too; we keep that answer so both implementations agree.
//!
//! `live: true` makes the iterator blocking: at the end of the log it waits for new blocks
//! through [`BlockLog::wait_for_append`] ([`HistoryIter::next_timeout`] bounds the wait).

use std::time::{Duration, Instant};

use super::{decode_value, Bee, BeeError, BlockLog};
use crate::codec::Value;

/// Put or del.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryKind {
    /// A put (including a put of JS `null`).
    Put,
    /// A delete.
    Del,
}

/// One history entry (JS `{type, seq, key, value}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Put or del.
    pub kind: HistoryKind,
    /// The block number.
    pub seq: u64,
    /// The key.
    pub key: Vec<u8>,
    /// The value (`None` for deletes and puts of JS `null`).
    pub value: Option<Vec<u8>>,
}

impl HistoryEntry {
    /// The value decoded as msgpack (`None` is `Value::Null`).
    pub fn decode_value(&self) -> Result<Value, BeeError> {
        decode_value(self.seq, self.value.as_deref())
    }
}

/// Which blocks a history read covers. Block numbers may be negative: `-n` means
/// `version - n`, as in JS. `gt` wins over `gte`, `lte` over `lt`; the header (block 0) is
/// never returned. Without an upper bound a checkout's history ends at its version; explicit
/// bounds may reach past it, as in JS, up to the end of the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryOptions {
    /// Blocks after this one.
    pub gt: Option<i64>,
    /// Blocks from this one (default 1).
    pub gte: Option<i64>,
    /// Blocks before this one (default: the version).
    pub lt: Option<i64>,
    /// Blocks up to this one.
    pub lte: Option<i64>,
    /// Newest first (not with `live`).
    pub reverse: bool,
    /// At most this many entries.
    pub limit: Option<usize>,
    /// Keep waiting for new blocks at the end instead of stopping.
    pub live: bool,
}

fn rel(v: i64, version: u64) -> u64 {
    if v < 0 {
        (version as i64).saturating_add(v).max(0) as u64
    } else {
        v as u64
    }
}

/// Iterator over history entries; see the module docs for `live`.
pub struct HistoryIter<'a, L> {
    bee: &'a Bee<L>,
    next: u64,
    end: Option<u64>,
    reverse: bool,
    left: Option<usize>,
    failed: bool,
}

impl<'a, L: BlockLog> HistoryIter<'a, L> {
    pub(crate) fn new(
        bee: &'a Bee<L>,
        checkout: Option<u64>,
        opts: HistoryOptions,
    ) -> Result<Self, BeeError> {
        if opts.live && opts.reverse {
            return Err(BeeError::LiveReverse);
        }
        let version = checkout.unwrap_or_else(|| bee.log().len()).max(1);
        let gte = match (opts.gt, opts.gte) {
            (Some(gt), _) => rel(gt, version).saturating_add(1),
            (None, Some(gte)) => rel(gte, version),
            (None, None) => 1,
        }
        .max(1);
        let lt = match (opts.lte, opts.lt) {
            (Some(lte), _) => rel(lte, version).saturating_add(1),
            (None, Some(lt)) => rel(lt, version),
            (None, None) => version,
        }
        // JS lets explicit bounds reach past a checkout's version (the blocks exist) and waits
        // for blocks past the log's end; we stop at the log's end instead of waiting.
        .min(bee.log().len());
        let end = if opts.live { None } else { Some(lt) };
        let (next, end) = if opts.reverse {
            (lt, Some(gte))
        } else {
            (gte, end)
        };
        Ok(HistoryIter {
            bee,
            next,
            end,
            reverse: opts.reverse,
            left: opts.limit,
            failed: false,
        })
    }

    fn entry(&self, seq: u64) -> Result<HistoryEntry, BeeError> {
        let block = self.bee.block(seq)?;
        Ok(HistoryEntry {
            kind: if block.is_deletion() {
                HistoryKind::Del
            } else {
                HistoryKind::Put
            },
            seq,
            key: block.key.to_vec(),
            value: block.value.as_ref().map(|v| v.to_vec()),
        })
    }

    /// The next entry, waiting at most `timeout` for a new block when live. `Ok(None)`: the
    /// history ended, or (live) nothing arrived in time.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<HistoryEntry>, BeeError> {
        if self.failed || self.left == Some(0) {
            return Ok(None);
        }
        let seq = if self.reverse {
            let floor = self.end.unwrap_or(1);
            if self.next <= floor {
                return Ok(None);
            }
            self.next - 1
        } else {
            if let Some(end) = self.end {
                if self.next >= end {
                    return Ok(None);
                }
                if self.next >= self.bee.log().len() {
                    return Ok(None);
                }
            } else {
                let deadline = Instant::now() + timeout;
                while self.bee.log().len() <= self.next {
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(None);
                    }
                    self.bee.log().wait_for_append(self.next, deadline - now)?;
                }
            }
            self.next
        };
        match self.entry(seq) {
            Ok(e) => {
                if self.reverse {
                    self.next -= 1;
                } else {
                    self.next += 1;
                }
                if let Some(l) = self.left.as_mut() {
                    *l -= 1;
                }
                Ok(Some(e))
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }
}

impl<L: BlockLog> Iterator for HistoryIter<'_, L> {
    type Item = Result<HistoryEntry, BeeError>;

    /// Blocks forever at the end of a live history until the log grows.
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let live_waiting = self.end.is_none() && !self.reverse;
            match self.next_timeout(Duration::from_secs(3600)) {
                Ok(Some(e)) => return Some(Ok(e)),
                Ok(None) if live_waiting && !self.failed && self.left != Some(0) => continue,
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
