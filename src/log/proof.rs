//! Merkle proofs in the Hypercore wire format (`wire.request` / `wire.data`): block, hash,
//! seek and upgrade parts. [`Log::create_proof`] answers a request as JS `generateProof`
//! does; [`Log::verify_and_apply_proof`] checks a proof against what this log already trusts
//! (its roots, its stored nodes) and the log's key, then stores what it proved. [`verify_remote`]
//! checks a self-contained proof (upgrade from 0) with nothing but the public key.

use super::crypto;
use super::oplog::{BitfieldUpdate, Entry, Manifest, TreeUpgrade};
use super::tree::{self, Iter, Node};
use super::{detect_scheme, Log, LogError, Result, SignedHead};
use crate::compact::{put_buffer, put_uint, DecodeError, Reader, Writer};

/// Ask for a block (or a tree node) and `nodes` of its uncle path the asker already has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestBlock {
    /// Block seq (for `block`) or flat-tree index (for `hash`).
    pub index: u64,
    /// How many levels of the path the asker already holds (`0` = send them all).
    pub nodes: u64,
}

/// Ask for the block containing a byte offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestSeek {
    /// Byte offset.
    pub bytes: u64,
    /// Per-block padding to subtract.
    pub padding: u64,
}

/// Ask for a signed upgrade from `start` covering `length` blocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestUpgrade {
    /// Length the asker has.
    pub start: u64,
    /// Blocks to add.
    pub length: u64,
}

/// A proof request (`wire.request` without its id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProofRequest {
    /// Fork the asker is on.
    pub fork: u64,
    /// A block and its path.
    pub block: Option<RequestBlock>,
    /// A tree node and its path.
    pub hash: Option<RequestBlock>,
    /// A byte seek.
    pub seek: Option<RequestSeek>,
    /// An upgrade.
    pub upgrade: Option<RequestUpgrade>,
    /// Whether the manifest is wanted.
    pub manifest: bool,
    /// Priority hint.
    pub priority: u64,
}

/// Block part of a proof.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataBlock {
    /// Block seq.
    pub index: u64,
    /// Block bytes.
    pub value: Vec<u8>,
    /// Uncle nodes from the block up.
    pub nodes: Vec<Node>,
}

/// Hash part of a proof.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataHash {
    /// Flat-tree index.
    pub index: u64,
    /// The node itself and uncle nodes up.
    pub nodes: Vec<Node>,
}

/// Seek part of a proof.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataSeek {
    /// Byte offset sought.
    pub bytes: u64,
    /// Nodes from the found node up.
    pub nodes: Vec<Node>,
}

/// Upgrade part of a proof: the nodes to grow the asker's roots to `start + length` (and
/// `additional_nodes` up to the full head), with the head's signature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataUpgrade {
    /// Asker's length.
    pub start: u64,
    /// Blocks added.
    pub length: u64,
    /// Nodes up to `start + length`.
    pub nodes: Vec<Node>,
    /// Roots from there up to the signed head.
    pub additional_nodes: Vec<Node>,
    /// Signature of the head.
    pub signature: Vec<u8>,
}

/// A proof (`wire.data` without its request id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proof {
    /// Fork of the prover.
    pub fork: u64,
    /// Block part.
    pub block: Option<DataBlock>,
    /// Hash part.
    pub hash: Option<DataHash>,
    /// Seek part.
    pub seek: Option<DataSeek>,
    /// Upgrade part.
    pub upgrade: Option<DataUpgrade>,
    /// Manifest, when asked for.
    pub manifest: Option<Manifest>,
}

fn put_nodes(out: &mut Vec<u8>, nodes: &[Node]) {
    put_uint(out, nodes.len() as u64);
    for n in nodes {
        put_uint(out, n.index);
        put_uint(out, n.size);
        out.extend_from_slice(&n.hash);
    }
}

fn read_nodes(r: &mut Reader) -> Result<Vec<Node>, DecodeError> {
    // Each node takes at least 34 bytes: a hostile count never allocates.
    let n = r.count("nodes", 34)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Node {
            index: r.uint("node index")?,
            size: r.uint("node size")?,
            hash: r.fixed32("node hash")?,
        });
    }
    Ok(out)
}

/// Reads a part of a message when its flag is set.
fn part<T>(
    on: bool,
    r: &mut Reader,
    read: impl FnOnce(&mut Reader) -> Result<T, DecodeError>,
) -> Result<Option<T>, DecodeError> {
    if on {
        read(r).map(Some)
    } else {
        Ok(None)
    }
}

impl ProofRequest {
    /// Encodes as `wire.request` with request id `id`.
    pub fn encode(&self, id: u64) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(id, &mut out);
        out
    }

    /// Appends the `wire.request` body with request id `id` to `out`.
    pub fn write(&self, id: u64, out: &mut Vec<u8>) {
        let flags = u64::from(self.block.is_some())
            | u64::from(self.hash.is_some()) << 1
            | u64::from(self.seek.is_some()) << 2
            | u64::from(self.upgrade.is_some()) << 3
            | u64::from(self.manifest) << 4
            | u64::from(self.priority != 0) << 5;
        put_uint(out, flags);
        put_uint(out, id);
        put_uint(out, self.fork);
        for b in [&self.block, &self.hash].into_iter().flatten() {
            put_uint(out, b.index);
            put_uint(out, b.nodes);
        }
        if let Some(s) = &self.seek {
            put_uint(out, s.bytes);
            put_uint(out, s.padding);
        }
        if let Some(u) = &self.upgrade {
            put_uint(out, u.start);
            put_uint(out, u.length);
        }
        if self.priority != 0 {
            put_uint(out, self.priority);
        }
    }

    /// Decodes `wire.request`, returning `(id, request)`.
    pub fn decode(buf: &[u8]) -> Result<(u64, ProofRequest)> {
        Self::read(&mut Reader::new(buf)).map_err(|source| LogError::Decode {
            what: "proof request",
            source,
        })
    }

    /// Reads a `wire.request` body, returning `(id, request)`; trailing bytes are left.
    pub fn read(r: &mut Reader) -> Result<(u64, ProofRequest), DecodeError> {
        let flags = r.uint("request flags")?;
        let id = r.uint("request id")?;
        let fork = r.uint("request fork")?;
        let block = |r: &mut Reader| -> Result<RequestBlock, DecodeError> {
            Ok(RequestBlock {
                index: r.uint("request index")?,
                nodes: r.uint("request nodes")?,
            })
        };
        let block_part = part(flags & 1 != 0, r, block)?;
        let hash = part(flags & 2 != 0, r, block)?;
        let seek = part(flags & 4 != 0, r, |r| {
            Ok(RequestSeek {
                bytes: r.uint("seek bytes")?,
                padding: r.uint("seek padding")?,
            })
        })?;
        let upgrade = part(flags & 8 != 0, r, |r| {
            Ok(RequestUpgrade {
                start: r.uint("upgrade start")?,
                length: r.uint("upgrade length")?,
            })
        })?;
        let priority = part(flags & 32 != 0, r, |r| r.uint("priority"))?.unwrap_or(0);
        Ok((
            id,
            ProofRequest {
                fork,
                block: block_part,
                hash,
                seek,
                upgrade,
                manifest: flags & 16 != 0,
                priority,
            },
        ))
    }
}

impl Proof {
    /// Encodes as `wire.data` answering request `request_id`.
    pub fn encode(&self, request_id: u64) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(request_id, &mut out);
        out
    }

    /// Appends the `wire.data` body answering request `request_id` to `out`.
    pub fn write(&self, request_id: u64, out: &mut Vec<u8>) {
        let flags = u64::from(self.block.is_some())
            | u64::from(self.hash.is_some()) << 1
            | u64::from(self.seek.is_some()) << 2
            | u64::from(self.upgrade.is_some()) << 3
            | u64::from(self.manifest.is_some()) << 4;
        put_uint(out, flags);
        put_uint(out, request_id);
        put_uint(out, self.fork);
        if let Some(b) = &self.block {
            put_uint(out, b.index);
            put_buffer(out, &b.value);
            put_nodes(out, &b.nodes);
        }
        if let Some(h) = &self.hash {
            put_uint(out, h.index);
            put_nodes(out, &h.nodes);
        }
        if let Some(s) = &self.seek {
            put_uint(out, s.bytes);
            put_nodes(out, &s.nodes);
        }
        if let Some(u) = &self.upgrade {
            put_uint(out, u.start);
            put_uint(out, u.length);
            put_nodes(out, &u.nodes);
            put_nodes(out, &u.additional_nodes);
            put_buffer(out, &u.signature);
        }
        if let Some(m) = &self.manifest {
            let mut w = Writer {
                buf: std::mem::take(out),
            };
            m.encode(&mut w);
            *out = w.buf;
        }
    }

    /// Decodes `wire.data`, returning `(request id, proof)`.
    pub fn decode(buf: &[u8]) -> Result<(u64, Proof)> {
        Self::read(&mut Reader::new(buf)).map_err(|source| LogError::Decode {
            what: "proof",
            source,
        })
    }

    /// Reads a `wire.data` body, returning `(request id, proof)`; trailing bytes are left.
    pub fn read(r: &mut Reader) -> Result<(u64, Proof), DecodeError> {
        let flags = r.uint("data flags")?;
        let id = r.uint("data request")?;
        let fork = r.uint("data fork")?;
        let block = part(flags & 1 != 0, r, |r| {
            Ok(DataBlock {
                index: r.uint("block index")?,
                value: r.buffer("block value")?.to_vec(),
                nodes: read_nodes(r)?,
            })
        })?;
        let hash = part(flags & 2 != 0, r, |r| {
            Ok(DataHash {
                index: r.uint("hash index")?,
                nodes: read_nodes(r)?,
            })
        })?;
        let seek = part(flags & 4 != 0, r, |r| {
            Ok(DataSeek {
                bytes: r.uint("seek bytes")?,
                nodes: read_nodes(r)?,
            })
        })?;
        let upgrade = part(flags & 8 != 0, r, |r| {
            Ok(DataUpgrade {
                start: r.uint("upgrade start")?,
                length: r.uint("upgrade length")?,
                nodes: read_nodes(r)?,
                additional_nodes: read_nodes(r)?,
                signature: r.buffer("upgrade signature")?.to_vec(),
            })
        })?;
        let manifest = part(flags & 16 != 0, r, Manifest::decode)?;
        Ok((
            id,
            Proof {
                fork,
                block,
                hash,
                seek,
                upgrade,
                manifest,
            },
        ))
    }
}

// ---------------------------------------------------------------- verification

/// A tree being grown by a proof: starts as the verifier's roots.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    pub roots: Vec<Node>,
    pub length: u64,
    pub byte_length: u64,
    pub nodes: Vec<Node>,
}

fn bad(detail: impl Into<String>) -> String {
    detail.into()
}

struct NodeQueue<'a> {
    nodes: &'a [Node],
    i: usize,
    extra: Option<Node>,
}

impl NodeQueue<'_> {
    fn len(&self) -> usize {
        self.nodes.len() - self.i + usize::from(self.extra.is_some())
    }

    fn shift(&mut self, index: u64) -> Result<Node, String> {
        if let Some(e) = self.extra {
            if e.index == index {
                self.extra = None;
                return Ok(e);
            }
        }
        let n = self
            .nodes
            .get(self.i)
            .ok_or_else(|| bad(format!("expected node {index}, got none")))?;
        if n.index != index {
            return Err(bad(format!("expected node {index}, got node {}", n.index)));
        }
        self.i += 1;
        Ok(*n)
    }
}

fn parent_of(index: u64, a: &Node, b: &Node) -> Node {
    Node {
        index,
        size: a.size.wrapping_add(b.size),
        hash: crypto::parent_hash(a, b),
    }
}

/// Largest flat-tree index a proof may mention (keeps all arithmetic far from overflow).
const MAX_INDEX: u64 = 1 << 56;

fn check_indexes(proof: &Proof) -> Result<(), String> {
    let mut all: Vec<u64> = Vec::new();
    if let Some(b) = &proof.block {
        all.push(b.index.saturating_mul(2));
        all.extend(b.nodes.iter().map(|n| n.index));
    }
    if let Some(h) = &proof.hash {
        all.push(h.index);
        all.extend(h.nodes.iter().map(|n| n.index));
    }
    if let Some(s) = &proof.seek {
        all.extend(s.nodes.iter().map(|n| n.index));
    }
    if let Some(u) = &proof.upgrade {
        all.push(u.start.saturating_add(u.length).saturating_mul(2));
        all.extend(u.nodes.iter().map(|n| n.index));
        all.extend(u.additional_nodes.iter().map(|n| n.index));
    }
    match all.into_iter().find(|&i| i >= MAX_INDEX) {
        Some(i) => Err(bad(format!("index {i} out of range"))),
        None => Ok(()),
    }
}

fn climb(it: &mut Iter) -> Result<u64, String> {
    if it.factor >= MAX_INDEX {
        return Err(bad("proof path too long"));
    }
    Ok(it.parent())
}

/// Hashes the block/hash/seek parts up to one untrusted root (JS `verifyTree`).
fn verify_tree(proof: &Proof, out: &mut Vec<Node>) -> Result<Option<Node>, String> {
    check_indexes(proof)?;
    // (flat index, block bytes for a block proof, uncle nodes)
    type Untrusted<'a> = (u64, Option<&'a [u8]>, &'a [Node]);
    let untrusted: Option<Untrusted> = if let Some(b) = &proof.block {
        let index = b
            .index
            .checked_mul(2)
            .ok_or_else(|| bad("block index overflows"))?;
        Some((index, Some(&b.value), &b.nodes))
    } else {
        proof
            .hash
            .as_ref()
            .map(|h| (h.index, None, h.nodes.as_slice()))
    };
    let seek_nodes = proof
        .seek
        .as_ref()
        .map(|s| s.nodes.as_slice())
        .unwrap_or(&[]);
    if untrusted.is_none() && seek_nodes.is_empty() {
        return Ok(None);
    }
    let mut root = None;
    if let Some(first) = seek_nodes.first() {
        let mut it = Iter::new(first.index);
        let mut q = NodeQueue {
            nodes: seek_nodes,
            i: 0,
            extra: None,
        };
        let mut r = q.shift(it.index)?;
        out.push(r);
        while q.len() > 0 {
            let node = q.shift(it.sibling())?;
            r = parent_of(climb(&mut it)?, &r, &node);
            out.push(node);
            out.push(r);
        }
        root = Some(r);
    }
    let Some((index, value, nodes)) = untrusted else {
        return Ok(root);
    };
    let mut it = Iter::new(index);
    let mut q = NodeQueue {
        nodes,
        i: 0,
        extra: root,
    };
    let mut r = match value {
        Some(v) => Node {
            index,
            size: v.len() as u64,
            hash: crypto::leaf_hash(v),
        },
        None => q.shift(it.index)?,
    };
    out.push(r);
    while q.len() > 0 {
        let node = q.shift(it.sibling())?;
        r = parent_of(climb(&mut it)?, &r, &node);
        out.push(node);
        out.push(r);
    }
    Ok(Some(r))
}

/// `MerkleTreeBatch.appendRoot`: adds a root, merging siblings; moves `it` to the last root.
fn append_root_iter(batch: &mut Batch, node: Node, it: &mut Iter) {
    batch.length += it.factor / 2;
    batch.byte_length = batch.byte_length.wrapping_add(node.size);
    batch.roots.push(node);
    batch.nodes.push(node);
    while batch.roots.len() > 1 {
        let a = batch.roots[batch.roots.len() - 1];
        let b = batch.roots[batch.roots.len() - 2];
        if it.sibling() != b.index {
            it.sibling();
            break;
        }
        let p = parent_of(it.parent(), &a, &b);
        batch.nodes.push(p);
        batch.roots.pop();
        batch.roots.pop();
        batch.roots.push(p);
    }
}

/// Grows `batch` with the upgrade part (JS `verifyUpgrade`); true when the untrusted root from
/// [`verify_tree`] was consumed (so it is now covered by the signature).
fn verify_upgrade(
    upgrade: &DataUpgrade,
    block_root: Option<Node>,
    batch: &mut Batch,
) -> Result<bool, String> {
    let mut q = NodeQueue {
        nodes: &upgrade.nodes,
        i: 0,
        extra: block_root,
    };
    let mut grow = !batch.roots.is_empty();
    let mut i = 0usize;
    let to = upgrade
        .start
        .checked_add(upgrade.length)
        .and_then(|l| l.checked_mul(2))
        .filter(|&t| t < u64::MAX / 4)
        .ok_or_else(|| bad("upgrade length overflows"))?;
    if upgrade.start != batch.length {
        return Err(bad(format!(
            "upgrade starts at {}, verifier has {}",
            upgrade.start, batch.length
        )));
    }
    let mut it = Iter::new(0);
    while it.full_root(to) {
        if i < batch.roots.len() && batch.roots[i].index == it.index {
            i += 1;
            it.next_tree();
            continue;
        }
        if grow {
            grow = false;
            let root = it.index;
            if i < batch.roots.len() {
                let last = batch.roots[batch.roots.len() - 1].index;
                it.seek(last);
                let mut guard = 0;
                while it.index != root {
                    let sib = it.sibling();
                    let n = q.shift(sib)?;
                    append_root_iter(batch, n, &mut it);
                    guard += 1;
                    if guard > 128 {
                        return Err(bad("upgrade does not connect to the verifier's roots"));
                    }
                }
                it.next_tree();
                continue;
            }
        }
        let n = q.shift(it.index)?;
        append_root_iter(batch, n, &mut it);
        it.next_tree();
    }
    if batch.length * 2 != to {
        return Err(bad("upgrade nodes do not reach the upgrade length"));
    }
    let extra = &upgrade.additional_nodes;
    let last = batch
        .roots
        .last()
        .ok_or_else(|| bad("upgrade left no roots"))?
        .index;
    it.seek(last);
    let mut i = 0;
    while i < extra.len() && extra[i].index == it.sibling() {
        append_root_iter(batch, extra[i], &mut it);
        i += 1;
    }
    while i < extra.len() {
        let node = extra[i];
        i += 1;
        while node.index != it.index {
            if it.factor == 2 {
                return Err(bad(format!("unexpected node {}", node.index)));
            }
            it.left_child();
        }
        append_root_iter(batch, node, &mut it);
        it.sibling();
    }
    Ok(q.extra.is_none())
}

/// What a verified proof established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// The signed head the proof upgraded to (`None` for proofs without an upgrade).
    pub head: Option<SignedHead>,
    /// The block the proof carried, if any: `(seq, bytes)`.
    pub block: Option<(u64, Vec<u8>)>,
}

/// Verifies a self-contained proof (upgrade from length 0) for `public_key`, with no stored
/// state: the block (if any) is included in the signed head the proof carries.
pub fn verify_remote(public_key: &[u8; 32], proof: &Proof) -> Result<VerifiedProof> {
    let key = hex::encode(public_key);
    let invalid = |detail: String| LogError::InvalidProof {
        key: key.clone(),
        detail,
    };
    let upgrade = proof
        .upgrade
        .as_ref()
        .ok_or_else(|| invalid("a self-contained proof needs an upgrade".into()))?;
    let mut batch = Batch {
        roots: vec![],
        length: 0,
        byte_length: 0,
        nodes: vec![],
    };
    let root = verify_tree(proof, &mut batch.nodes).map_err(&invalid)?;
    let consumed = verify_upgrade(upgrade, root, &mut batch).map_err(&invalid)?;
    if !consumed {
        return Err(invalid(
            "block or hash part is not covered by the upgrade".into(),
        ));
    }
    let th = crypto::tree_hash(&batch.roots);
    let scheme = detect_scheme(
        public_key,
        &th,
        batch.length,
        proof.fork,
        &upgrade.signature,
    )
    .ok_or(LogError::SignatureInvalid {
        key: key.clone(),
        length: batch.length,
        fork: proof.fork,
    })?;
    let signature: [u8; 64] = upgrade
        .signature
        .as_slice()
        .try_into()
        .map_err(|_| invalid("signature is not 64 bytes".into()))?;
    Ok(VerifiedProof {
        head: Some(SignedHead {
            length: batch.length,
            fork: proof.fork,
            tree_hash: th,
            signature,
            scheme,
        }),
        block: proof.block.as_ref().map(|b| (b.index, b.value.clone())),
    })
}

/// [`verify_remote`] for a proof whose upgrade ends below the signed length (`start + length`
/// short of it, the rest of the tree given as additional nodes): also returns that length and
/// the tree hash of the peer's tree there. The signed head commits to it (its roots are built
/// on those roots), so a peer longer than us can be compared with the head we verified.
pub fn verify_remote_prefix(
    public_key: &[u8; 32],
    proof: &Proof,
) -> Result<(VerifiedProof, u64, [u8; 32])> {
    let verified = verify_remote(public_key, proof)?;
    let invalid = |detail: String| LogError::InvalidProof {
        key: hex::encode(public_key),
        detail,
    };
    let mut upgrade = proof
        .upgrade
        .clone()
        .ok_or_else(|| invalid("a self-contained proof needs an upgrade".into()))?;
    upgrade.additional_nodes.clear();
    let mut batch = Batch {
        roots: vec![],
        length: 0,
        byte_length: 0,
        nodes: vec![],
    };
    let root = verify_tree(proof, &mut batch.nodes).map_err(&invalid)?;
    verify_upgrade(&upgrade, root, &mut batch).map_err(&invalid)?;
    Ok((verified, batch.length, crypto::tree_hash(&batch.roots)))
}

// ---------------------------------------------------------------- creation

#[derive(Default)]
struct Parts {
    node: Option<Vec<u64>>,
    seek: Option<Vec<u64>>,
    upgrade: Option<Vec<u64>>,
    additional: Option<Vec<u64>>,
}

struct Indexed {
    value: bool,
    index: u64,
    nodes: u64,
    last_index: u64,
}

fn seek_proof(seek_root: u64, root: u64, p: &mut Parts) {
    let mut it = Iter::new(seek_root);
    let mut out = vec![it.index];
    while it.index != root {
        out.push(it.sibling());
        it.parent();
    }
    p.seek = Some(out);
}

fn block_and_seek_proof(
    node: Option<&Indexed>,
    seek: bool,
    seek_root: u64,
    root: u64,
    p: &mut Parts,
) {
    let Some(node) = node else {
        return seek_proof(seek_root, root, p);
    };
    let mut it = Iter::new(node.index);
    let mut out = Vec::new();
    if !node.value {
        out.push(it.index);
    }
    while it.index != root {
        it.sibling();
        if seek && it.contains(seek_root) && it.index != seek_root {
            seek_proof(seek_root, it.index, p);
        } else {
            out.push(it.index);
        }
        it.parent();
    }
    p.node = Some(out);
}

fn upgrade_proof(
    node: Option<&Indexed>,
    seek: bool,
    from: u64,
    to: u64,
    sub_tree: u64,
    p: &mut Parts,
) {
    if from == 0 {
        p.upgrade = Some(vec![]);
    }
    let mut it = Iter::new(0);
    while it.full_root(to) {
        if it.index + it.factor / 2 < from {
            it.next_tree();
            continue;
        }
        if p.upgrade.is_none() && from >= 2 && it.contains(from - 2) {
            let mut up = vec![];
            let root = it.index;
            let target = from - 2;
            it.seek(target);
            while it.index != root {
                it.sibling();
                if it.index > target {
                    if p.node.is_none() && p.seek.is_none() && it.contains(sub_tree) {
                        block_and_seek_proof(node, seek, sub_tree, it.index, p);
                    } else {
                        up.push(it.index);
                    }
                }
                it.parent();
            }
            p.upgrade = Some(up);
            it.next_tree();
            continue;
        }
        if p.upgrade.is_none() {
            p.upgrade = Some(vec![]);
        }
        if p.node.is_none() && p.seek.is_none() && it.contains(sub_tree) {
            block_and_seek_proof(node, seek, sub_tree, it.index, p);
            it.next_tree();
            continue;
        }
        if let Some(u) = p.upgrade.as_mut() {
            u.push(it.index);
        }
        it.next_tree();
    }
}

fn additional_upgrade_proof(from: u64, to: u64, p: &mut Parts) {
    let mut out: Option<Vec<u64>> = if from == 0 { Some(vec![]) } else { None };
    let mut it = Iter::new(0);
    while it.full_root(to) {
        if it.index + it.factor / 2 < from {
            it.next_tree();
            continue;
        }
        if out.is_none() && from >= 2 && it.contains(from - 2) {
            let mut v = vec![];
            let root = it.index;
            let target = from - 2;
            it.seek(target);
            while it.index != root {
                it.sibling();
                if it.index > target {
                    v.push(it.index);
                }
                it.parent();
            }
            out = Some(v);
            it.next_tree();
            continue;
        }
        out.get_or_insert_with(Vec::new).push(it.index);
        it.next_tree();
    }
    p.additional = out;
}

fn unpadded(node: &Node, padding: u64, leaves: u64) -> u64 {
    node.size.wrapping_sub(padding.wrapping_mul(leaves))
}

impl Log {
    fn seek_trusted_tree(&self, root: u64, mut bytes: u64, padding: u64) -> Result<u64> {
        if bytes == 0 {
            return Ok(root);
        }
        let mut it = Iter::new(root);
        while it.index & 1 == 1 {
            let l = it.left_child();
            match self.node_raw(l)? {
                Some(n) => {
                    let size = unpadded(&n, padding, it.count_leaves());
                    if size == bytes {
                        return Ok(it.index);
                    }
                    if size > bytes {
                        continue;
                    }
                    bytes -= size;
                    it.sibling();
                }
                None => {
                    it.parent();
                    return Ok(it.index);
                }
            }
        }
        Ok(it.index)
    }

    fn seek_untrusted_tree(&self, root: u64, bytes: u64, padding: u64) -> Result<u64> {
        let invalid = || LogError::InvalidRequest {
            detail: "invalid seek".into(),
        };
        let pad = if padding > 0 {
            padding.wrapping_mul(tree::left_span(root) / 2)
        } else {
            0
        };
        let offset = self.byte_offset(root)?.wrapping_sub(pad);
        if offset > bytes {
            return Err(invalid());
        }
        if offset == bytes {
            return Ok(root);
        }
        let bytes = bytes - offset;
        let node = self.required_node(root)?;
        if unpadded(&node, padding, tree::count_leaves(root)) <= bytes {
            return Err(invalid());
        }
        self.seek_trusted_tree(root, bytes, padding)
    }

    fn seek_from_head(&self, head: u64, mut bytes: u64, padding: u64) -> Result<u64> {
        for root in tree::full_roots(head) {
            let node = self.required_node(root)?;
            let size = unpadded(&node, padding, tree::count_leaves(root));
            if bytes == size {
                return Ok(root);
            }
            if bytes > size {
                bytes -= size;
                continue;
            }
            return self.seek_trusted_tree(root, bytes, padding);
        }
        Ok(head)
    }

    /// Answers a proof request as JS Hypercore's `generateProof` does (block values filled),
    /// against the current signed head.
    pub fn create_proof(&self, req: &ProofRequest) -> Result<Proof> {
        self.create_proof_at(req, self.length)
    }

    /// Answers a proof request against the older signed head at `length` of the current fork
    /// (from the signed-head history), so a proof can be anchored to an older signed length.
    pub fn create_proof_at(&self, req: &ProofRequest, length: u64) -> Result<Proof> {
        let invalid = |d: &str| LogError::InvalidRequest { detail: d.into() };
        let signature = if length == self.length {
            self.signature.clone()
        } else if length < self.length {
            self.signed_head_at(length)
                .map(|h| h.signature.to_vec())
                .ok_or_else(|| invalid("no signed head stored at that length"))?
        } else {
            return Err(invalid("length beyond the log"));
        };
        let head = 2 * length;
        let mut result = Proof {
            fork: self.fork,
            ..Default::default()
        };
        if req.manifest {
            result.manifest = self.header.manifest.clone();
        }
        if head == 0 {
            return Ok(result);
        }
        let (from, to) = match &req.upgrade {
            Some(u) => {
                let from = u
                    .start
                    .checked_mul(2)
                    .ok_or_else(|| invalid("upgrade start"))?;
                let to = u
                    .length
                    .checked_mul(2)
                    .and_then(|l| l.checked_add(from))
                    .ok_or_else(|| invalid("upgrade length"))?;
                (from, to)
            }
            None => (0, head),
        };
        if from >= to || to > head {
            return Err(invalid("invalid upgrade"));
        }
        let node = if let Some(b) = &req.block {
            if b.index >= length {
                return Err(invalid("block beyond length"));
            }
            Some(Indexed {
                value: true,
                index: 2 * b.index,
                nodes: b.nodes,
                last_index: b.index,
            })
        } else if let Some(h) = &req.hash {
            if tree::right_span(h.index) >= head {
                return Err(invalid("hash index beyond length"));
            }
            Some(Indexed {
                value: false,
                index: h.index,
                nodes: h.nodes,
                last_index: tree::right_span(h.index) / 2,
            })
        } else {
            None
        };
        if let (Some(_), Some(_), Some(n)) = (&req.seek, &req.upgrade, &node) {
            if n.index >= from {
                return Err(invalid(
                    "cannot both seek and request a block when upgrading",
                ));
            }
        }
        let mut p = Parts::default();
        let mut sub_tree = head;
        let seek = req.seek.is_some();
        if let Some(n) = node
            .as_ref()
            .filter(|n| req.upgrade.is_none_or(|u| n.last_index < u.start))
        {
            let mut it = Iter::new(n.index);
            for _ in 0..n.nodes {
                it.parent();
                if it.contains(to) {
                    return Err(invalid("nodes out of bounds"));
                }
            }
            sub_tree = it.index;
            let seek_root = match &req.seek {
                Some(s) => self.seek_untrusted_tree(sub_tree, s.bytes, s.padding)?,
                None => head,
            };
            block_and_seek_proof(Some(n), seek, seek_root, sub_tree, &mut p);
        } else if (node.is_some() || seek) && req.upgrade.is_some() {
            sub_tree = match (&req.seek, &node) {
                (Some(s), _) => self.seek_from_head(to, s.bytes, s.padding)?,
                (None, Some(n)) => n.index,
                (None, None) => head,
            };
        }
        if req.upgrade.is_some() {
            upgrade_proof(node.as_ref(), seek, from, to, sub_tree, &mut p);
            if head > to {
                additional_upgrade_proof(to, head, &mut p);
            }
        }
        let load = |v: &Option<Vec<u64>>| -> Result<Option<Vec<Node>>> {
            v.as_ref()
                .map(|ix| ix.iter().map(|&i| self.required_node(i)).collect())
                .transpose()
        };
        let p_node = load(&p.node)?;
        if let Some(b) = &req.block {
            let nodes = p_node.ok_or_else(|| invalid("invalid block request"))?;
            let value = self
                .get(b.index)?
                .ok_or_else(|| invalid("block not stored"))?;
            result.block = Some(DataBlock {
                index: b.index,
                value,
                nodes,
            });
        } else if let Some(h) = &req.hash {
            let nodes = p_node.ok_or_else(|| invalid("invalid hash request"))?;
            result.hash = Some(DataHash {
                index: h.index,
                nodes,
            });
        }
        if let (Some(s), Some(nodes)) = (&req.seek, load(&p.seek)?) {
            result.seek = Some(DataSeek {
                bytes: s.bytes,
                nodes,
            });
        }
        if let Some(u) = &req.upgrade {
            result.upgrade = Some(DataUpgrade {
                start: u.start,
                length: u.length,
                nodes: load(&p.upgrade)?.unwrap_or_default(),
                additional_nodes: load(&p.additional)?.unwrap_or_default(),
                signature,
            });
        }
        Ok(result)
    }

    /// How many levels above flat-tree `index` this log lacks (JS `missingNodes`): the
    /// `nodes` value to put in a block or hash request for it.
    pub fn missing_nodes(&self, index: u64) -> Result<u64> {
        let head = 2 * self.length;
        if index >= MAX_INDEX || tree::right_span(index) >= head {
            return Ok(0);
        }
        let mut it = Iter::new(index);
        let mut count = 0;
        while !it.contains(head) && self.node(it.index)?.is_none() {
            count += 1;
            it.parent();
        }
        Ok(count)
    }

    fn batch_node(&self, batch: &Batch, index: u64) -> Result<Node> {
        if let Some(n) = batch.nodes.iter().find(|n| n.index == index) {
            return Ok(*n);
        }
        self.required_node(index)
    }

    fn batch_byte_offset(&self, batch: &Batch, index: u64) -> Result<u64> {
        let mut head = 0u64;
        let mut offset = 0u64;
        for root in &batch.roots {
            head += 2 * ((root.index - head) + 1);
            if index >= head {
                offset += root.size;
                continue;
            }
            let mut it = Iter::new(root.index);
            while it.index != index {
                if index < it.index {
                    it.left_child();
                } else {
                    let l = it.left_child();
                    offset += self.batch_node(batch, l)?.size;
                    it.sibling();
                }
            }
            return Ok(offset);
        }
        Err(LogError::OutOfBounds {
            what: "tree index",
            requested: index,
            length: batch.length,
        })
    }

    /// Verifies `proof` against this log (its roots and stored nodes, its key) and stores what
    /// it proves: nodes, the block, and for an upgrade the new signed head. Durable on return.
    pub fn verify_and_apply_proof(&mut self, proof: &Proof) -> Result<VerifiedProof> {
        let key = hex::encode(self.key_pair.public_key);
        let invalid = |detail: String| LogError::InvalidProof {
            key: key.clone(),
            detail,
        };
        if proof.fork != self.fork && !(proof.upgrade.is_some() && self.length == 0) {
            return Err(invalid(format!(
                "proof is for fork {}, log is on fork {}",
                proof.fork, self.fork
            )));
        }
        let mut batch = Batch {
            roots: self.roots.clone(),
            length: self.length,
            byte_length: self.byte_length,
            nodes: vec![],
        };
        let mut unverified = verify_tree(proof, &mut batch.nodes).map_err(&invalid)?;
        if let Some(u) = &proof.upgrade {
            if verify_upgrade(u, unverified, &mut batch).map_err(&invalid)? {
                unverified = None;
            }
        }
        if let Some(u) = unverified {
            let trusted = self.node(u.index)?;
            if trusted.map(|t| t.hash) != Some(u.hash) {
                return Err(invalid(format!("checksum mismatch at node {}", u.index)));
            }
        }
        if let Some(b) = &proof.block {
            if b.index >= batch.length {
                return Err(invalid(format!(
                    "block {} beyond length {}",
                    b.index, batch.length
                )));
            }
        }
        let mut head = None;
        if let Some(u) = &proof.upgrade {
            let th = crypto::tree_hash(&batch.roots);
            let scheme = detect_scheme(
                &self.key_pair.public_key,
                &th,
                batch.length,
                proof.fork,
                &u.signature,
            )
            .ok_or(LogError::SignatureInvalid {
                key: key.clone(),
                length: batch.length,
                fork: proof.fork,
            })?;
            let signature: [u8; 64] = u
                .signature
                .as_slice()
                .try_into()
                .map_err(|_| invalid("signature is not 64 bytes".into()))?;
            head = Some(SignedHead {
                length: batch.length,
                fork: proof.fork,
                tree_hash: th,
                signature,
                scheme,
            });
        }
        let upgraded = head.as_ref().is_some_and(|h| h.length > self.length);
        // Durable writes: block and head record first, then the oplog entry.
        if let Some(b) = &proof.block {
            let off = self.batch_byte_offset(&batch, 2 * b.index)?;
            self.files.data.write_at(off, &b.value)?;
            if self.durability() == super::Durability::Synced {
                self.files.data.sync()?;
            }
        }
        let entry = Entry {
            user_data: None,
            tree_nodes: Some(batch.nodes.clone()),
            tree_upgrade: head.as_ref().filter(|_| upgraded).map(|h| TreeUpgrade {
                fork: h.fork,
                ancestors: self.length,
                length: h.length,
                signature: h.signature.to_vec(),
            }),
            bitfield: proof.block.as_ref().map(|b| BitfieldUpdate {
                drop: false,
                start: b.index,
                length: 1,
            }),
        };
        self.write_entry(&entry)?;
        for n in &batch.nodes {
            self.unflushed.insert(n.index, *n);
        }
        if let Some(b) = &proof.block {
            self.bitfield.set_range(b.index, 1, true);
            let mut c = self.header.hints.contiguous_length;
            while self.bitfield.get(c) {
                c += 1;
            }
            self.header.hints.contiguous_length = c;
        }
        if let (true, Some(h)) = (upgraded, &head) {
            self.adopt_head(batch.roots.clone(), batch.byte_length, h.clone());
        }
        if self.oplog_bytes >= self.checkpoint_bytes {
            self.flush()?;
        }
        Ok(VerifiedProof {
            head,
            block: proof.block.as_ref().map(|b| (b.index, b.value.clone())),
        })
    }
}

impl Log {
    /// Follows a writer that truncated: verifies a proof from a newer fork carrying an upgrade
    /// from length 0 (block/hash parts optional), keeps the blocks whose Merkle roots it shares
    /// with the new head, drops the rest and adopts the new signed head. Dropped blocks can be
    /// fetched again with block proofs. Durable on return.
    pub fn verify_and_apply_reorg(&mut self, proof: &Proof) -> Result<VerifiedProof> {
        let key = hex::encode(self.key_pair.public_key);
        let invalid = |detail: String| LogError::InvalidProof {
            key: key.clone(),
            detail,
        };
        if proof.fork <= self.fork {
            return Err(invalid(format!(
                "reorg proof fork {} is not newer than {}",
                proof.fork, self.fork
            )));
        }
        let verified = verify_remote(&self.key_pair.public_key, proof)?;
        let Some(head) = verified.head.clone() else {
            return Err(invalid("reorg proof has no upgrade".into()));
        };
        // Rebuild the proof's tree to get its nodes.
        let mut batch = Batch {
            roots: vec![],
            length: 0,
            byte_length: 0,
            nodes: vec![],
        };
        let root = verify_tree(proof, &mut batch.nodes).map_err(&invalid)?;
        if let Some(u) = &proof.upgrade {
            verify_upgrade(u, root, &mut batch).map_err(&invalid)?;
        }
        // Shared prefix: leading roots of the new head that this log stores identically.
        let mut ancestors = 0;
        for r in &batch.roots {
            match self.node(r.index)? {
                Some(n) if n.hash == r.hash && n.size == r.size => {
                    ancestors = tree::right_span(r.index) / 2 + 1;
                }
                _ => break,
            }
        }
        let old_length = self.length;
        let entry = Entry {
            user_data: None,
            tree_nodes: Some(batch.nodes.clone()),
            tree_upgrade: Some(TreeUpgrade {
                fork: head.fork,
                ancestors,
                length: head.length,
                signature: head.signature.to_vec(),
            }),
            bitfield: Some(BitfieldUpdate {
                drop: true,
                start: ancestors,
                length: old_length.saturating_sub(ancestors),
            }),
        };
        self.write_entry(&entry)?;
        self.bitfield
            .set_range(ancestors, old_length.saturating_sub(ancestors), false);
        super::push_reorg(
            &mut self.header.hints.reorgs,
            self.fork,
            head.fork,
            ancestors,
        );
        self.cut_tree(ancestors);
        for n in &batch.nodes {
            self.unflushed.insert(n.index, *n);
        }
        if self.header.hints.contiguous_length > ancestors {
            self.header.hints.contiguous_length = ancestors;
        }
        self.adopt_head(batch.roots.clone(), batch.byte_length, head);
        self.flush()?;
        // A block carried by the proof is stored like any other verified block.
        if let Some(b) = &proof.block {
            let off = self.batch_byte_offset(&batch, 2 * b.index)?;
            self.files.data.write_at(off, &b.value)?;
            if self.durability() == super::Durability::Synced {
                self.files.data.sync()?;
            }
            self.write_entry(&Entry {
                bitfield: Some(BitfieldUpdate {
                    drop: false,
                    start: b.index,
                    length: 1,
                }),
                ..Default::default()
            })?;
            self.bitfield.set_range(b.index, 1, true);
        }
        Ok(verified)
    }
}

/// A convenience for inclusion proofs: a proof of block `seq` anchored to the signed head at
/// `length` (which must be ≤ the log's length and have a stored signature).
pub fn inclusion_request(seq: u64, length: u64) -> ProofRequest {
    ProofRequest {
        block: Some(RequestBlock {
            index: seq,
            nodes: 0,
        }),
        upgrade: Some(RequestUpgrade { start: 0, length }),
        ..Default::default()
    }
}
