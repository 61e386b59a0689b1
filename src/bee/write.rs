//! Writing: puts, dels and batches, building the same blocks as JS Hyperbee 1.x.
//!
//! Byte identity with JS depends on more than the B-tree algorithm: which tree nodes a block's
//! index holds, in which order, and at which offsets. So this file mirrors the JS object graph
//! in an arena:
//! - a [`WNode`] is a JS `TreeNode` (keys, children, a `changed` flag);
//! - a [`WChild`] is a JS `Child` pointer object `(seq, offset, node)`. Its *identity* matters:
//!   the same pointer object sits in the parent's children list and in the pending index of
//!   the block that last wrote the child, and JS mutates it in place.
//!
//! Writing one operation (JS `_append`) walks the changed nodes depth-first from the root and
//! gives each one the next offset in the new block's index. In a batch, every block but the
//! last is compacted at flush time (JS `toBlocks`): its root slot is dropped, pointers that a
//! later block of the batch took over (their `seq` moved on) are removed with a swap-remove,
//! and the survivors get their final offsets. Blocks are serialised in order, each right after
//! its own compaction, exactly as JS does.

use std::ops::Range;
use std::sync::Arc;

use super::messages::{encode_header, encode_level_into, encode_node, Header};
use super::{Bee, BeeError, Block, BlockLog, MAX_CHILDREN, MAX_DEPTH, MIN_KEYS, PROTOCOL};

type NodeId = usize;
type ChildId = usize;

#[derive(Clone)]
struct WKey {
    seq: u64,
    bytes: Option<Arc<[u8]>>,
}

struct WNode {
    keys: Vec<WKey>,
    children: Vec<ChildId>,
    changed: bool,
}

struct WChild {
    seq: u64,
    offset: u64,
    node: Option<NodeId>,
}

struct Pending {
    key: Arc<[u8]>,
    value: Option<Vec<u8>>,
    index: Vec<Option<ChildId>>,
}

/// The in-memory state of a batch: the JS `Batch` object.
#[derive(Default)]
struct Session {
    nodes: Vec<WNode>,
    childs: Vec<WChild>,
    root: Option<NodeId>,
    /// Log length when the first pending block was numbered (after the header).
    base: u64,
    pending: Vec<Pending>,
}

/// Several puts and dels written as one append (JS `bee.batch()`).
///
/// Nothing reaches the log until [`Batch::flush`]; dropping a batch discards it (except the
/// header, which JS also appends as soon as the first operation runs on an empty log).
pub struct Batch<'a, L: BlockLog> {
    bee: &'a mut Bee<L>,
    s: Session,
}

impl<'a, L: BlockLog> Batch<'a, L> {
    pub(crate) fn new(bee: &'a mut Bee<L>) -> Self {
        Batch {
            bee,
            s: Session::default(),
        }
    }

    /// Number of blocks waiting to be flushed.
    pub fn len(&self) -> usize {
        self.s.pending.len()
    }

    /// True when nothing waits to be flushed.
    pub fn is_empty(&self) -> bool {
        self.s.pending.is_empty()
    }

    fn ensure_header(&mut self) -> Result<(), BeeError> {
        if self.s.pending.is_empty() {
            if self.bee.log().is_empty() {
                let h = encode_header(&Header {
                    protocol: PROTOCOL.to_owned(),
                    metadata: None,
                });
                self.bee.log_mut().append_batch(&[h])?;
            }
            self.s.base = self.bee.log().len();
        }
        Ok(())
    }

    /// Queues `key = value` (`None`: JS `null`, no value field). Returns the block number the
    /// node will have.
    pub fn put(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<u64, BeeError> {
        self.ensure_header()?;
        self.s.put(self.bee, key, value)
    }

    /// Queues `key = value` with the value msgpack-encoded (`null`/`undefined`: no value field).
    pub fn put_value(&mut self, key: &[u8], value: &crate::codec::Value) -> Result<u64, BeeError> {
        self.put(key, super::encode_value(value).as_deref())
    }

    /// Queues a delete of `key`. Returns the block number the delete node will have, or `None`
    /// when the key is absent (nothing is queued).
    pub fn del(&mut self, key: &[u8]) -> Result<Option<u64>, BeeError> {
        self.ensure_header()?;
        self.s.del(self.bee, key)
    }

    /// Reads `key` as the batch sees it: committed blocks plus this batch's queued writes
    /// (JS `batch.get`).
    pub fn get(&mut self, key: &[u8]) -> Result<Option<super::Entry>, BeeError> {
        self.s.get(self.bee, key)
    }

    /// The encoded blocks the batch would append, without appending them.
    pub fn to_blocks(&self) -> Result<Vec<Vec<u8>>, BeeError> {
        // Compaction mutates pointer objects, so run it on a copy of the pointer state.
        let mut childs: Vec<(u64, u64)> = self.s.childs.iter().map(|c| (c.seq, c.offset)).collect();
        self.s.encode(&mut childs)
    }

    /// Appends every queued block as one append. Returns the block numbers written.
    pub fn flush(mut self) -> Result<Range<u64>, BeeError> {
        if self.s.pending.is_empty() {
            let len = self.bee.log().len();
            return Ok(len..len);
        }
        let blocks = self.to_blocks()?;
        let start = self.s.base;
        if self.bee.log().len() != start {
            return Err(BeeError::Internal("the log grew while a batch was open"));
        }
        self.bee.log_mut().append_batch(&blocks)?;
        for (i, raw) in blocks.iter().enumerate() {
            let seq = start + i as u64;
            let block = Block::decode(seq, raw)?;
            self.bee.cache().insert(seq, Arc::new(block));
        }
        self.s = Session::default();
        Ok(start..start + blocks.len() as u64)
    }
}

impl Session {
    fn new_node(&mut self, keys: Vec<WKey>, children: Vec<ChildId>, changed: bool) -> NodeId {
        self.nodes.push(WNode {
            keys,
            children,
            changed,
        });
        self.nodes.len() - 1
    }

    fn new_child(&mut self, seq: u64, offset: u64, node: Option<NodeId>) -> ChildId {
        self.childs.push(WChild { seq, offset, node });
        self.childs.len() - 1
    }

    fn check_ptr(&self, from: u64, target: u64) -> Result<(), BeeError> {
        if target == 0 || target >= self.base {
            return Err(BeeError::PointerPastEnd {
                from_seq: from,
                target_seq: target,
                length: self.base,
            });
        }
        Ok(())
    }

    /// Builds a `TreeNode` from level `offset` of committed block `seq` (JS `getTreeNode`).
    fn load_node<L: BlockLog>(
        &mut self,
        bee: &Bee<L>,
        seq: u64,
        offset: u64,
    ) -> Result<NodeId, BeeError> {
        let block = bee.block(seq)?;
        let level = usize::try_from(offset)
            .ok()
            .and_then(|o| block.levels.get(o))
            .ok_or(BeeError::MissingTreeNode {
                seq,
                offset,
                levels: block.levels.len(),
            })?;
        if !level.children.is_empty() && level.children.len() != level.keys.len() + 1 {
            return Err(BeeError::MalformedTreeNode {
                seq,
                offset,
                keys: level.keys.len(),
                children: level.children.len(),
            });
        }
        let mut keys = Vec::with_capacity(level.keys.len() + 1);
        for &k in &level.keys {
            self.check_ptr(seq, k)?;
            let bytes = (k == seq).then(|| block.key.clone());
            keys.push(WKey { seq: k, bytes });
        }
        let mut children = Vec::with_capacity(level.children.len() + 1);
        for &(cs, co) in &level.children {
            self.check_ptr(seq, cs)?;
            children.push(self.new_child(cs, co, None));
        }
        Ok(self.new_node(keys, children, false))
    }

    fn get_root<L: BlockLog>(&mut self, bee: &Bee<L>) -> Result<Option<NodeId>, BeeError> {
        if let Some(r) = self.root {
            return Ok(Some(r));
        }
        let len = bee.log().len();
        if len < 2 {
            return Ok(None);
        }
        self.load_node(bee, len - 1, 0).map(Some)
    }

    /// JS `getChildNode(i)`.
    fn child_node<L: BlockLog>(
        &mut self,
        bee: &Bee<L>,
        node: NodeId,
        i: usize,
    ) -> Result<NodeId, BeeError> {
        let cid = *self.nodes[node]
            .children
            .get(i)
            .ok_or(BeeError::Internal("child index out of range"))?;
        if let Some(n) = self.childs[cid].node {
            return Ok(n);
        }
        let (seq, offset) = (self.childs[cid].seq, self.childs[cid].offset);
        if seq >= self.base {
            return Err(BeeError::Internal("pending child without a node"));
        }
        let n = self.load_node(bee, seq, offset)?;
        self.childs[cid].node = Some(n);
        Ok(n)
    }

    fn key_bytes<L: BlockLog>(
        &mut self,
        bee: &Bee<L>,
        node: NodeId,
        k: usize,
    ) -> Result<Arc<[u8]>, BeeError> {
        let wk = &self.nodes[node].keys[k];
        if let Some(b) = &wk.bytes {
            return Ok(b.clone());
        }
        let seq = wk.seq;
        if seq >= self.base {
            return Err(BeeError::Internal("pending key without bytes"));
        }
        let b = bee.block(seq)?.key.clone();
        self.nodes[node].keys[k].bytes = Some(b.clone());
        Ok(b)
    }

    /// Binary search as JS does it: `Ok(i)` when key `i` equals, else `Err(insertion point)`.
    fn search<L: BlockLog>(
        &mut self,
        bee: &Bee<L>,
        node: NodeId,
        key: &[u8],
    ) -> Result<Result<usize, usize>, BeeError> {
        let mut s = 0;
        let mut e = self.nodes[node].keys.len();
        while s < e {
            let mid = (s + e) >> 1;
            let k = self.key_bytes(bee, node, mid)?;
            match key.cmp(&k) {
                std::cmp::Ordering::Equal => return Ok(Ok(mid)),
                std::cmp::Ordering::Less => e = mid,
                std::cmp::Ordering::Greater => s = mid + 1,
            }
        }
        Ok(Err(s))
    }

    fn get<L: BlockLog>(
        &mut self,
        bee: &Bee<L>,
        key: &[u8],
    ) -> Result<Option<super::Entry>, BeeError> {
        if self.pending.is_empty() {
            // nothing queued yet: `base` is not set, read the log as it is
            return bee.get(key);
        }
        let Some(mut node) = self.get_root(bee)? else {
            return Ok(None);
        };
        for _ in 0..MAX_DEPTH {
            match self.search(bee, node, key)? {
                Ok(i) => {
                    let seq = self.nodes[node].keys[i].seq;
                    if seq < self.base {
                        return Ok(Some(bee.block(seq)?.entry()));
                    }
                    let p = usize::try_from(seq - self.base)
                        .ok()
                        .and_then(|i| self.pending.get(i))
                        .ok_or(BeeError::Internal("key of an unknown pending block"))?;
                    return Ok(Some(super::Entry {
                        seq,
                        key: p.key.to_vec(),
                        value: p.value.clone(),
                    }));
                }
                Err(i) => {
                    if self.nodes[node].children.is_empty() {
                        return Ok(None);
                    }
                    node = self.child_node(bee, node, i)?;
                }
            }
        }
        Err(BeeError::TreeTooDeep {
            seq: self.base.saturating_sub(1),
        })
    }

    fn next_seq(&self) -> u64 {
        self.base + self.pending.len() as u64
    }

    fn put<L: BlockLog>(
        &mut self,
        bee: &Bee<L>,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<u64, BeeError> {
        let key: Arc<[u8]> = Arc::from(key);
        let mut stack = Vec::new();
        let mut root = match self.get_root(bee)? {
            Some(r) => r,
            None => self.new_node(Vec::new(), Vec::new(), true),
        };
        let mut node = root;
        let seq = self.next_seq();
        let target = WKey {
            seq,
            bytes: Some(key.clone()),
        };

        while !self.nodes[node].children.is_empty() {
            if stack.len() >= MAX_DEPTH {
                return Err(BeeError::TreeTooDeep {
                    seq: self.base.saturating_sub(1),
                });
            }
            stack.push(node);
            self.nodes[node].changed = true;
            match self.search(bee, node, &key)? {
                Ok(mid) => {
                    self.nodes[node].keys[mid] = target;
                    self.nodes[node].changed = true;
                    self.append(root, seq, key, value.map(<[u8]>::to_vec));
                    return Ok(seq);
                }
                Err(i) => node = self.child_node(bee, node, i)?,
            }
        }

        let mut needs_split = !self.insert_key(bee, node, target, None, true)?;
        while needs_split {
            let parent = stack.pop();
            let (median, right) = self.split(node)?;
            match parent {
                Some(p) => {
                    needs_split = !self.insert_key(bee, p, median, Some(right), false)?;
                    node = p;
                }
                None => {
                    let c1 = self.new_child(0, 0, Some(node));
                    let c2 = self.new_child(0, 0, Some(right));
                    root = self.new_node(vec![median], vec![c1, c2], true);
                    needs_split = false;
                }
            }
        }
        self.append(root, seq, key, value.map(<[u8]>::to_vec));
        Ok(seq)
    }

    /// JS `insertKey`: returns false when the node is now too big.
    fn insert_key<L: BlockLog>(
        &mut self,
        bee: &Bee<L>,
        node: NodeId,
        key: WKey,
        child: Option<NodeId>,
        overwrite: bool,
    ) -> Result<bool, BeeError> {
        let kb = match &key.bytes {
            Some(b) => b.clone(),
            None if key.seq < self.base => bee.block(key.seq)?.key.clone(),
            None => return Err(BeeError::Internal("pending key without bytes")),
        };
        match self.search(bee, node, &kb)? {
            Ok(mid) => {
                if overwrite {
                    self.nodes[node].changed = true;
                    self.nodes[node].keys[mid] = key;
                }
                Ok(true)
            }
            Err(i) => {
                self.nodes[node].keys.insert(i, key);
                if let Some(c) = child {
                    let cid = self.new_child(0, 0, Some(c));
                    let n = &mut self.nodes[node];
                    if i + 1 > n.children.len() {
                        return Err(BeeError::Internal("child insert out of range"));
                    }
                    n.children.insert(i + 1, cid);
                }
                self.nodes[node].changed = true;
                Ok(self.nodes[node].keys.len() < MAX_CHILDREN)
            }
        }
    }

    fn split(&mut self, node: NodeId) -> Result<(WKey, NodeId), BeeError> {
        let n = &mut self.nodes[node];
        let len = n.keys.len() >> 1;
        let right_keys = n.keys.split_off(n.keys.len() - len);
        let median = n
            .keys
            .pop()
            .ok_or(BeeError::Internal("split of a tiny node"))?;
        let right_children = if n.children.is_empty() {
            Vec::new()
        } else {
            if n.children.len() < len + 1 {
                return Err(BeeError::Internal("split children out of range"));
            }
            n.children.split_off(n.children.len() - (len + 1))
        };
        n.changed = true;
        let right = self.new_node(right_keys, right_children, true);
        Ok((median, right))
    }

    fn del<L: BlockLog>(&mut self, bee: &Bee<L>, key: &[u8]) -> Result<Option<u64>, BeeError> {
        let Some(root) = self.get_root(bee)? else {
            return Ok(None);
        };
        let seq = self.next_seq();
        let mut stack = Vec::new();
        let mut node = root;
        loop {
            if stack.len() >= MAX_DEPTH {
                return Err(BeeError::TreeTooDeep {
                    seq: self.base.saturating_sub(1),
                });
            }
            stack.push(node);
            match self.search(bee, node, key)? {
                Ok(mid) => {
                    if self.nodes[node].children.is_empty() {
                        self.remove_key(node, mid);
                    } else {
                        self.set_key_to_nearest_leaf(bee, node, mid, &mut stack)?;
                    }
                    for &n in &stack {
                        self.nodes[n].changed = true;
                    }
                    let new_root = self.rebalance(bee, &mut stack)?;
                    self.append(new_root, seq, Arc::from(key), None);
                    return Ok(Some(seq));
                }
                Err(i) => {
                    if self.nodes[node].children.is_empty() {
                        return Ok(None);
                    }
                    node = self.child_node(bee, node, i)?;
                }
            }
        }
    }

    fn remove_key(&mut self, node: NodeId, index: usize) {
        let n = &mut self.nodes[node];
        if index < n.keys.len() {
            n.keys.remove(index);
        }
        if index + 1 < n.children.len() {
            let cid = n.children.remove(index + 1);
            self.childs[cid].seq = 0; // mark as freed
        }
        self.nodes[node].changed = true;
    }

    fn leaf_size<L: BlockLog>(
        &mut self,
        bee: &Bee<L>,
        mut node: NodeId,
        go_left: bool,
    ) -> Result<usize, BeeError> {
        let mut depth = 0;
        while !self.nodes[node].children.is_empty() {
            depth += 1;
            if depth > MAX_DEPTH {
                return Err(BeeError::TreeTooDeep {
                    seq: self.base.saturating_sub(1),
                });
            }
            let i = if go_left {
                0
            } else {
                self.nodes[node].children.len() - 1
            };
            node = self.child_node(bee, node, i)?;
        }
        Ok(self.nodes[node].keys.len())
    }

    fn set_key_to_nearest_leaf<L: BlockLog>(
        &mut self,
        bee: &Bee<L>,
        node: NodeId,
        index: usize,
        stack: &mut Vec<NodeId>,
    ) -> Result<(), BeeError> {
        let left = self.child_node(bee, node, index)?;
        let right = self.child_node(bee, node, index + 1)?;
        let ls = self.leaf_size(bee, left, false)?;
        let rs = self.leaf_size(bee, right, true)?;
        let malformed = BeeError::Internal("empty leaf in the tree");
        if ls < rs {
            let mut r = right;
            stack.push(r);
            while !self.nodes[r].children.is_empty() {
                r = self.child_node(bee, r, 0)?;
                stack.push(r);
            }
            if self.nodes[r].keys.is_empty() {
                return Err(malformed);
            }
            let k = self.nodes[r].keys.remove(0);
            self.nodes[node].keys[index] = k;
        } else {
            let mut l = left;
            stack.push(l);
            while !self.nodes[l].children.is_empty() {
                let last = self.nodes[l].children.len() - 1;
                l = self.child_node(bee, l, last)?;
                stack.push(l);
            }
            let k = self.nodes[l].keys.pop().ok_or(malformed)?;
            self.nodes[node].keys[index] = k;
        }
        Ok(())
    }

    fn rebalance<L: BlockLog>(
        &mut self,
        bee: &Bee<L>,
        stack: &mut Vec<NodeId>,
    ) -> Result<NodeId, BeeError> {
        let root = stack[0];
        let bad = || BeeError::Internal("tree shape broke during rebalance");
        while stack.len() > 1 {
            let node = stack.pop().ok_or_else(bad)?;
            let parent = *stack.last().ok_or_else(bad)?;
            if self.nodes[node].keys.len() >= MIN_KEYS {
                return Ok(root);
            }
            // JS `siblings(parent)`
            let index = self.nodes[parent]
                .children
                .iter()
                .position(|&c| self.childs[c].node == Some(node))
                .ok_or_else(bad)?;
            let left = if index > 0 {
                Some(self.child_node(bee, parent, index - 1)?)
            } else {
                None
            };
            let right = if index + 1 < self.nodes[parent].children.len() {
                Some(self.child_node(bee, parent, index + 1)?)
            } else {
                None
            };

            if let Some(l) = left {
                if self.nodes[l].keys.len() > MIN_KEYS {
                    self.nodes[l].changed = true;
                    let k = self.nodes[parent]
                        .keys
                        .get(index - 1)
                        .cloned()
                        .ok_or_else(bad)?;
                    self.nodes[node].keys.insert(0, k);
                    if let Some(c) = self.nodes[l].children.pop() {
                        self.nodes[node].children.insert(0, c);
                    }
                    let up = self.nodes[l].keys.pop().ok_or_else(bad)?;
                    self.nodes[parent].keys[index - 1] = up;
                    return Ok(root);
                }
            }
            if let Some(r) = right {
                if self.nodes[r].keys.len() > MIN_KEYS {
                    self.nodes[r].changed = true;
                    let k = self.nodes[parent]
                        .keys
                        .get(index)
                        .cloned()
                        .ok_or_else(bad)?;
                    self.nodes[node].keys.push(k);
                    if !self.nodes[r].children.is_empty() {
                        let c = self.nodes[r].children.remove(0);
                        self.nodes[node].children.push(c);
                    }
                    let up = self.nodes[r].keys.remove(0);
                    self.nodes[parent].keys[index] = up;
                    return Ok(root);
                }
            }
            let (l, r, idx) = match (left, right) {
                (Some(l), _) => (l, node, index - 1),
                (None, Some(r)) => (node, r, index),
                (None, None) => return Err(bad()),
            };
            let median = self.nodes[parent].keys.get(idx).cloned().ok_or_else(bad)?;
            // JS `merge` copies the right node's lists and leaves the right node untouched.
            let (rk, rc) = (self.nodes[r].keys.clone(), self.nodes[r].children.clone());
            let ln = &mut self.nodes[l];
            ln.changed = true;
            ln.keys.push(median);
            ln.keys.extend(rk);
            ln.children.extend(rc);
            self.remove_key(parent, idx);
        }
        if self.nodes[root].keys.is_empty() && !self.nodes[root].children.is_empty() {
            return self.child_node(bee, root, 0);
        }
        Ok(root)
    }

    /// JS `indexChanges`: gives every changed node under `node` an offset in `index`.
    fn index_changes(&mut self, node: NodeId, index: &mut Vec<Option<ChildId>>, seq: u64) -> u64 {
        let offset = index.len() as u64;
        index.push(None);
        self.nodes[node].changed = false;
        for ci in 0..self.nodes[node].children.len() {
            let cid = self.nodes[node].children[ci];
            let Some(child) = self.childs[cid].node else {
                continue;
            };
            if !self.nodes[child].changed {
                continue;
            }
            self.childs[cid].seq = seq;
            let off = self.index_changes(child, index, seq);
            self.childs[cid].offset = off;
            index[off as usize] = Some(cid);
        }
        offset
    }

    /// JS `_append` in batch mode: records the block with its pending index.
    fn append(&mut self, root: NodeId, seq: u64, key: Arc<[u8]>, value: Option<Vec<u8>>) {
        let mut index = Vec::new();
        self.index_changes(root, &mut index, seq);
        let rc = self.new_child(seq, 0, Some(root));
        index[0] = Some(rc);
        self.pending.push(Pending { key, value, index });
        self.root = Some(root);
    }

    /// JS `toBlocks`, on a copy `childs` of the pointer objects' `(seq, offset)`.
    fn encode(&self, childs: &mut [(u64, u64)]) -> Result<Vec<Vec<u8>>, BeeError> {
        let n = self.pending.len();
        let mut out = Vec::with_capacity(n);
        let mut keys = Vec::new();
        let mut children = Vec::new();
        let mut index_buf = Vec::new();
        for (i, p) in self.pending.iter().enumerate() {
            let seq = self.base + i as u64;
            let mut idx = p.index.clone();
            if i + 1 < n {
                if let Some(first) = idx.first_mut() {
                    *first = None;
                }
                let mut j = 0;
                while j < idx.len() {
                    if let Some(c) = idx[j] {
                        if childs[c].0 == seq {
                            childs[c].1 = j as u64;
                            j += 1;
                            continue;
                        }
                    }
                    idx.swap_remove(j);
                }
            }
            index_buf.clear();
            for c in &idx {
                let c = c.ok_or(BeeError::Internal("hole in a pending index"))?;
                let node = self.childs[c]
                    .node
                    .ok_or(BeeError::Internal("pending index entry without a node"))?;
                let wn = &self.nodes[node];
                keys.clear();
                keys.extend(wn.keys.iter().map(|k| k.seq));
                children.clear();
                children.extend(wn.children.iter().map(|&cc| childs[cc]));
                encode_level_into(&mut index_buf, &keys, &children);
            }
            out.push(encode_node(&index_buf, &p.key, p.value.as_deref()));
        }
        Ok(out)
    }
}
