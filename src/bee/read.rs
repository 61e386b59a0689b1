//! Reading the tree: point lookups and ordered range iteration, on a version (log length).
//!
//! Every pointer is checked before it is followed: key and child pointers must name a block
//! in `1..length`, child offsets a tree node the block holds, inner nodes must have one more
//! child than keys. A lookup is bounded by [`MAX_DEPTH`]; a range iteration also refuses to
//! enter the same tree node twice, so a cyclic index ends in [`BeeError::TreeCycle`].

use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::Arc;

use super::{Bee, BeeError, Block, BlockLog, Entry, Level, MAX_DEPTH};

/// A tree node inside a decoded block.
#[derive(Clone)]
pub(crate) struct NodeRef {
    block: Arc<Block>,
    offset: usize,
}

impl NodeRef {
    fn level(&self) -> &Level {
        // `offset` was checked in `load_node`.
        &self.block.levels[self.offset]
    }
}

fn check_ptr(from: u64, target: u64, length: u64) -> Result<(), BeeError> {
    if target == 0 || target >= length {
        return Err(BeeError::PointerPastEnd {
            from_seq: from,
            target_seq: target,
            length,
        });
    }
    Ok(())
}

fn load_node<L: BlockLog>(
    bee: &Bee<L>,
    seq: u64,
    offset: u64,
    length: u64,
) -> Result<NodeRef, BeeError> {
    let block = bee.block(seq)?;
    let levels = block.levels.len();
    let off =
        usize::try_from(offset)
            .ok()
            .filter(|o| *o < levels)
            .ok_or(BeeError::MissingTreeNode {
                seq,
                offset,
                levels,
            })?;
    let level = &block.levels[off];
    if !level.children.is_empty() && level.children.len() != level.keys.len() + 1 {
        return Err(BeeError::MalformedTreeNode {
            seq,
            offset,
            keys: level.keys.len(),
            children: level.children.len(),
        });
    }
    for &k in &level.keys {
        check_ptr(seq, k, length)?;
    }
    for &(c, _) in &level.children {
        check_ptr(seq, c, length)?;
    }
    Ok(NodeRef { block, offset: off })
}

/// The root of the tree at `length` (JS `getRoot`): tree node 0 of block `length - 1`.
pub(crate) fn root<L: BlockLog>(bee: &Bee<L>, length: u64) -> Result<Option<NodeRef>, BeeError> {
    if length < 2 {
        return Ok(None);
    }
    load_node(bee, length - 1, 0, length).map(Some)
}

fn key_at<L: BlockLog>(bee: &Bee<L>, node: &NodeRef, i: usize) -> Result<Arc<[u8]>, BeeError> {
    let seq = node.level().keys[i];
    if seq == node.block.seq {
        return Ok(node.block.key.clone());
    }
    Ok(bee.block(seq)?.key.clone())
}

/// `Ok(i)`: key `i` equals; `Err(i)`: insertion point.
fn search<L: BlockLog>(
    bee: &Bee<L>,
    node: &NodeRef,
    key: &[u8],
) -> Result<Result<usize, usize>, BeeError> {
    let (mut s, mut e) = (0, node.level().keys.len());
    while s < e {
        let mid = (s + e) >> 1;
        match key.cmp(&key_at(bee, node, mid)?) {
            Ordering::Equal => return Ok(Ok(mid)),
            Ordering::Less => e = mid,
            Ordering::Greater => s = mid + 1,
        }
    }
    Ok(Err(s))
}

fn child<L: BlockLog>(
    bee: &Bee<L>,
    node: &NodeRef,
    i: usize,
    length: u64,
) -> Result<NodeRef, BeeError> {
    let (seq, offset) = node.level().children[i];
    load_node(bee, seq, offset, length)
}

/// Point lookup at version `length`.
pub(crate) fn get<L: BlockLog>(
    bee: &Bee<L>,
    length: u64,
    key: &[u8],
) -> Result<Option<Entry>, BeeError> {
    let Some(mut node) = root(bee, length)? else {
        return Ok(None);
    };
    let root_seq = node.block.seq;
    for _ in 0..MAX_DEPTH {
        match search(bee, &node, key)? {
            Ok(i) => {
                let seq = node.level().keys[i];
                let block = if seq == node.block.seq {
                    node.block.clone()
                } else {
                    bee.block(seq)?
                };
                return Ok(Some(block.entry()));
            }
            Err(i) => {
                if node.level().children.is_empty() {
                    return Ok(None);
                }
                node = child(bee, &node, i, length)?;
            }
        }
    }
    Err(BeeError::TreeTooDeep { seq: root_seq })
}

/// Bounds and direction of a range read (JS `createReadStream` options). When both `gt` and
/// `gte` are given, `gt` wins, as in JS; likewise `lt` over `lte`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeOptions {
    /// Keys strictly greater than this.
    pub gt: Option<Vec<u8>>,
    /// Keys greater than or equal to this.
    pub gte: Option<Vec<u8>>,
    /// Keys strictly less than this.
    pub lt: Option<Vec<u8>>,
    /// Keys less than or equal to this.
    pub lte: Option<Vec<u8>>,
    /// Largest key first.
    pub reverse: bool,
    /// At most this many entries.
    pub limit: Option<usize>,
}

impl RangeOptions {
    /// Everything, in key order.
    pub fn all() -> Self {
        Self::default()
    }

    fn lower(&self) -> Option<(&[u8], bool)> {
        match (&self.gt, &self.gte) {
            (Some(k), _) => Some((k, false)),
            (None, Some(k)) => Some((k, true)),
            _ => None,
        }
    }

    fn upper(&self) -> Option<(&[u8], bool)> {
        match (&self.lt, &self.lte) {
            (Some(k), _) => Some((k, false)),
            (None, Some(k)) => Some((k, true)),
            _ => None,
        }
    }
}

/// One node on the iteration stack. Slots `0..=2*keys` interleave children (even) and keys
/// (odd); `slot` is the next one to visit.
struct Frame {
    node: NodeRef,
    slot: isize,
}

/// Entries of a version in key order (or reverse) within bounds: JS `RangeIterator`.
pub struct RangeIter<'a, L> {
    bee: &'a Bee<L>,
    length: u64,
    opts: RangeOptions,
    stack: Vec<Frame>,
    visited: HashSet<(u64, usize)>,
    opened: bool,
    done: bool,
    left: Option<usize>,
}

impl<'a, L: BlockLog> RangeIter<'a, L> {
    pub(crate) fn new(bee: &'a Bee<L>, length: u64, opts: RangeOptions) -> Self {
        let left = opts.limit;
        RangeIter {
            bee,
            length,
            opts,
            stack: Vec::new(),
            visited: HashSet::new(),
            opened: false,
            done: false,
            left,
        }
    }

    fn push(&mut self, node: NodeRef, slot: isize) -> Result<(), BeeError> {
        if !self.visited.insert((node.block.seq, node.offset)) {
            return Err(BeeError::TreeCycle {
                seq: node.block.seq,
                offset: node.offset as u64,
            });
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(BeeError::TreeTooDeep {
                seq: self.length.saturating_sub(1),
            });
        }
        self.stack.push(Frame { node, slot });
        Ok(())
    }

    fn first_slot(&self, node: &NodeRef) -> isize {
        if self.opts.reverse {
            (node.level().keys.len() * 2) as isize
        } else {
            0
        }
    }

    /// Positions the stack at the start bound (JS `_open`).
    fn open(&mut self) -> Result<(), BeeError> {
        self.opened = true;
        let Some(mut node) = root(self.bee, self.length)? else {
            return Ok(());
        };
        let reverse = self.opts.reverse;
        let start = if reverse {
            self.opts.upper()
        } else {
            self.opts.lower()
        };
        let Some((start, incl)) = start.map(|(k, i)| (k.to_vec(), i)) else {
            let slot = self.first_slot(&node);
            return self.push(node, slot);
        };
        for _ in 0..MAX_DEPTH {
            let nkeys = node.level().keys.len() as isize;
            match search(self.bee, &node, &start)? {
                Ok(mid) => {
                    let mid = mid as isize;
                    let slot = match (incl, reverse) {
                        (true, _) => mid * 2 + 1,
                        (false, false) => mid * 2 + 2,
                        (false, true) => mid * 2,
                    };
                    return self.push(node, slot);
                }
                Err(i) => {
                    let slot = 2 * i as isize + if reverse { -1 } else { 1 };
                    let leaf = node.level().children.is_empty();
                    let next = if leaf {
                        None
                    } else {
                        Some(child(self.bee, &node, i, self.length)?)
                    };
                    if slot >= 0 && slot <= nkeys * 2 {
                        self.push(node, slot)?;
                    } else {
                        // Not kept on the stack, but still counts as visited for cycle checks.
                        self.visited.insert((node.block.seq, node.offset));
                    }
                    match next {
                        None => return Ok(()),
                        Some(n) => node = n,
                    }
                }
            }
        }
        Err(BeeError::TreeTooDeep {
            seq: self.length.saturating_sub(1),
        })
    }

    fn past_end(&self, key: &[u8]) -> bool {
        let end = if self.opts.reverse {
            self.opts.lower()
        } else {
            self.opts.upper()
        };
        let Some((end, incl)) = end else {
            return false;
        };
        match key.cmp(end) {
            Ordering::Equal => !incl,
            Ordering::Less => self.opts.reverse,
            Ordering::Greater => !self.opts.reverse,
        }
    }

    fn step(&mut self) -> Result<Option<Entry>, BeeError> {
        if !self.opened {
            self.open()?;
        }
        let reverse = self.opts.reverse;
        while !self.done && self.left != Some(0) {
            let Some(top) = self.stack.last_mut() else {
                break;
            };
            let slot = top.slot;
            let nkeys = top.node.level().keys.len() as isize;
            if slot < 0 || slot > nkeys * 2 {
                self.stack.pop();
                continue;
            }
            top.slot += if reverse { -1 } else { 1 };
            let idx = (slot >> 1) as usize;
            if slot & 1 == 0 {
                if top.node.level().children.is_empty() {
                    continue;
                }
                let node = top.node.clone();
                let c = child(self.bee, &node, idx, self.length)?;
                let first = self.first_slot(&c);
                self.push(c, first)?;
                continue;
            }
            let seq = top.node.level().keys[idx];
            let block = self.bee.block(seq)?;
            if self.past_end(&block.key) {
                self.done = true;
                break;
            }
            if let Some(l) = self.left.as_mut() {
                *l -= 1;
            }
            return Ok(Some(block.entry()));
        }
        self.done = true;
        Ok(None)
    }
}

impl<L: BlockLog> Iterator for RangeIter<'_, L> {
    type Item = Result<Entry, BeeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
