//! The `oplog` file: two CRC'd header slots (bytes 0 and 4096) and, from byte 8192, a run of
//! CRC'd entries that are replayed over the header on open. Two header versions are read:
//! version 1 (JS Hypercore 10.x: key, manifest, key pair, user data, tree, hints) and version 0
//! (the pre-release layout JS Vitra 0.1.3 wrote: types, user data, tree, signer, hints). We
//! always write version 1.
//!
//! Frame layout: `u32le(crc32(rest)) ‖ u32le(len << 2 | partial << 1 | header_bit) ‖ payload`.
//! An entry counts only if its header bit equals the active slot and no later entry of its
//! atomic group is missing.

use super::tree::Node;
use crate::compact::{DecodeError, Reader, Writer};

/// Size of one header slot.
pub const PAGE_SIZE: u64 = 4096;
/// Where the entries start.
pub const ENTRY_OFFSET: u64 = 2 * PAGE_SIZE;

/// One signer of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestSigner {
    /// Signature algorithm id (0 = ed25519).
    pub signature: u64,
    /// Signer namespace.
    pub namespace: [u8; 32],
    /// Signer public key.
    pub public_key: [u8; 32],
}

/// A Hypercore manifest (who may sign the log), version 0 (10.31 layout) or 1 (10.38).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Manifest version (0 or 1).
    pub version: u64,
    /// Hash algorithm id (0 = blake2b).
    pub hash: u64,
    /// Whether signers may patch.
    pub allow_patch: bool,
    /// Signatures needed.
    pub quorum: u64,
    /// The signers.
    pub signers: Vec<ManifestSigner>,
    /// A fixed prologue (tree hash and length), if any.
    pub prologue: Option<([u8; 32], u64)>,
}

impl Manifest {
    /// The single-signer manifest of a compat core, in the version-0 layout both JS 10.31
    /// and 10.38 read.
    pub fn compat(public_key: [u8; 32]) -> Self {
        Manifest {
            version: 0,
            hash: 0,
            allow_patch: false,
            quorum: 1,
            signers: vec![ManifestSigner {
                signature: 0,
                namespace: super::crypto::default_namespace(),
                public_key,
            }],
            prologue: None,
        }
    }

    /// Whether a log with this manifest and `key` is a compat core (key = signer's key).
    pub fn is_compat(&self, key: &[u8; 32]) -> bool {
        self.signers.len() == 1 && &self.signers[0].public_key == key
    }

    fn encode_signer(w: &mut Writer, s: &ManifestSigner) {
        w.uint(s.signature);
        w.raw(&s.namespace);
        w.raw(&s.public_key);
    }

    fn decode_signer(r: &mut Reader) -> Result<ManifestSigner, DecodeError> {
        let signature = r.uint("manifest signer signature")?;
        if signature != 0 {
            return Err(DecodeError::Invalid {
                what: "manifest signer",
                detail: format!("unknown signature id {signature}"),
            });
        }
        Ok(ManifestSigner {
            signature,
            namespace: r.fixed32("manifest signer namespace")?,
            public_key: r.fixed32("manifest signer public key")?,
        })
    }

    /// Encodes as `messages.manifest`.
    pub fn encode(&self, w: &mut Writer) {
        w.uint(self.version);
        if self.version == 0 {
            w.uint(self.hash);
            if let (Some((hash, _)), true) = (&self.prologue, self.signers.is_empty()) {
                w.uint(0);
                w.raw(hash);
            } else if self.quorum == 1 && self.signers.len() == 1 && !self.allow_patch {
                w.uint(1);
                Self::encode_signer(w, &self.signers[0]);
            } else {
                w.uint(2);
                w.uint(u64::from(self.allow_patch));
                w.uint(self.quorum);
                w.uint(self.signers.len() as u64);
                for s in &self.signers {
                    Self::encode_signer(w, s);
                }
            }
            return;
        }
        w.uint(u64::from(self.allow_patch) | if self.prologue.is_some() { 2 } else { 0 });
        w.uint(self.hash);
        w.uint(self.quorum);
        w.uint(self.signers.len() as u64);
        for s in &self.signers {
            Self::encode_signer(w, s);
        }
        if let Some((hash, length)) = &self.prologue {
            w.raw(hash);
            w.uint(*length);
        }
    }

    /// Decodes `messages.manifest` (versions 0 and 1).
    pub fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let version = r.uint("manifest version")?;
        let hash_id = |r: &mut Reader| -> Result<u64, DecodeError> {
            let h = r.uint("manifest hash")?;
            if h != 0 {
                return Err(DecodeError::Invalid {
                    what: "manifest",
                    detail: format!("unknown hash id {h}"),
                });
            }
            Ok(h)
        };
        match version {
            0 => {
                let hash = hash_id(r)?;
                let kind = r.uint("manifest type")?;
                match kind {
                    0 => Ok(Manifest {
                        version,
                        hash,
                        allow_patch: false,
                        quorum: 0,
                        signers: vec![],
                        prologue: Some((r.fixed32("manifest static hash")?, 0)),
                    }),
                    1 => Ok(Manifest {
                        version,
                        hash,
                        allow_patch: false,
                        quorum: 1,
                        signers: vec![Self::decode_signer(r)?],
                        prologue: None,
                    }),
                    2 => {
                        let flags = r.uint("manifest flags")?;
                        let quorum = r.uint("manifest quorum")?;
                        let n = r.count("manifest signers", 65)?;
                        let mut signers = Vec::with_capacity(n);
                        for _ in 0..n {
                            signers.push(Self::decode_signer(r)?);
                        }
                        Ok(Manifest {
                            version,
                            hash,
                            allow_patch: flags & 1 != 0,
                            quorum,
                            signers,
                            prologue: None,
                        })
                    }
                    t => Err(DecodeError::Invalid {
                        what: "manifest",
                        detail: format!("unknown type {t}"),
                    }),
                }
            }
            1 => {
                let flags = r.uint("manifest flags")?;
                let hash = hash_id(r)?;
                let quorum = r.uint("manifest quorum")?;
                let n = r.count("manifest signers", 65)?;
                let mut signers = Vec::with_capacity(n);
                for _ in 0..n {
                    signers.push(Self::decode_signer(r)?);
                }
                let prologue = if flags & 2 != 0 {
                    Some((r.fixed32("prologue hash")?, r.uint("prologue length")?))
                } else {
                    None
                };
                Ok(Manifest {
                    version,
                    hash,
                    allow_patch: flags & 1 != 0,
                    quorum,
                    signers,
                    prologue,
                })
            }
            v => Err(DecodeError::Invalid {
                what: "manifest",
                detail: format!("unknown version {v}"),
            }),
        }
    }
}

/// The signed head recorded in a header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TreeHeader {
    /// Fork id.
    pub fork: u64,
    /// Length.
    pub length: u64,
    /// Tree hash at `length` (empty when length is 0).
    pub root_hash: Vec<u8>,
    /// Signature of the head (empty when none).
    pub signature: Vec<u8>,
}

/// A reorg hint (`from` fork, `to` fork, common ancestors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReorgHint {
    /// Fork before.
    pub from: u64,
    /// Fork after.
    pub to: u64,
    /// Blocks kept.
    pub ancestors: u64,
}

/// Header hints.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hints {
    /// Recent truncations.
    pub reorgs: Vec<ReorgHint>,
    /// Blocks present from 0 without a gap.
    pub contiguous_length: u64,
}

/// The pre-release header's `types` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Types {
    /// Tree hash name (`blake2b`).
    pub tree: String,
    /// Bitfield kind (`raw`).
    pub bitfield: String,
    /// Signer kind (`ed25519`).
    pub signer: String,
}

/// Which header layout a header was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderVersion {
    /// Version 0: the pre-release layout of JS Vitra 0.1.3's cores.
    Alpha,
    /// Version 1: JS Hypercore 10.x.
    Current,
}

/// A decoded oplog header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The layout it was read from.
    pub version: HeaderVersion,
    /// The log's key.
    pub key: [u8; 32],
    /// The manifest, if known.
    pub manifest: Option<Manifest>,
    /// Stored key pair: public key and, when writable, the 64-byte secret key.
    pub key_pair: Option<(Vec<u8>, Vec<u8>)>,
    /// User data key/values in insertion order.
    pub user_data: Vec<(String, Vec<u8>)>,
    /// The signed head.
    pub tree: TreeHeader,
    /// Hints.
    pub hints: Hints,
    /// `types` of a version-0 header.
    pub types: Option<Types>,
}

fn decode_user_data(r: &mut Reader) -> Result<Vec<(String, Vec<u8>)>, DecodeError> {
    let n = r.count("user data", 2)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let k = r.string("user data key")?;
        let v = r.buffer("user data value")?.to_vec();
        out.push((k, v));
    }
    Ok(out)
}

fn decode_tree(r: &mut Reader) -> Result<TreeHeader, DecodeError> {
    Ok(TreeHeader {
        fork: r.uint("tree fork")?,
        length: r.uint("tree length")?,
        root_hash: r.buffer("tree root hash")?.to_vec(),
        signature: r.buffer("tree signature")?.to_vec(),
    })
}

fn decode_hints(r: &mut Reader) -> Result<Hints, DecodeError> {
    let n = r.count("reorg hints", 3)?;
    let mut reorgs = Vec::with_capacity(n);
    for _ in 0..n {
        reorgs.push(ReorgHint {
            from: r.uint("reorg from")?,
            to: r.uint("reorg to")?,
            ancestors: r.uint("reorg ancestors")?,
        });
    }
    let contiguous_length = if r.remaining() > 0 {
        r.uint("contiguous length")?
    } else {
        0
    };
    Ok(Hints {
        reorgs,
        contiguous_length,
    })
}

fn to32(b: &[u8], what: &'static str) -> Result<[u8; 32], DecodeError> {
    b.try_into().map_err(|_| DecodeError::Invalid {
        what,
        detail: format!("expected 32 bytes, got {}", b.len()),
    })
}

impl Header {
    /// Decodes a header payload (either version).
    pub fn decode(buf: &[u8]) -> Result<Header, DecodeError> {
        let mut r = Reader::new(buf);
        let version = r.uint("header version")?;
        match version {
            0 => {
                let types = Types {
                    tree: r.string("types.tree")?,
                    bitfield: r.string("types.bitfield")?,
                    signer: r.string("types.signer")?,
                };
                let user_data = decode_user_data(&mut r)?;
                let tree = decode_tree(&mut r)?;
                let pk = r.buffer("signer public key")?.to_vec();
                let sk = r.buffer("signer secret key")?.to_vec();
                let hints = decode_hints(&mut r)?;
                let key = to32(&pk, "signer public key")?;
                let mut manifest = Manifest::compat(key);
                manifest.version = 0;
                Ok(Header {
                    version: HeaderVersion::Alpha,
                    key,
                    manifest: Some(manifest),
                    key_pair: Some((pk, sk)),
                    user_data,
                    tree,
                    hints,
                    types: Some(types),
                })
            }
            1 => {
                let flags = r.uint("header flags")?;
                if flags & 1 != 0 {
                    return Err(DecodeError::Invalid {
                        what: "header",
                        detail: "external (big) headers are not supported".into(),
                    });
                }
                let key = r.fixed32("key")?;
                let manifest = if flags & 2 != 0 {
                    Some(Manifest::decode(&mut r)?)
                } else {
                    None
                };
                let key_pair = if flags & 4 != 0 {
                    let pk = r.buffer("key pair public key")?.to_vec();
                    let sk = r.buffer("key pair secret key")?.to_vec();
                    Some((pk, sk))
                } else {
                    None
                };
                let user_data = decode_user_data(&mut r)?;
                let tree = decode_tree(&mut r)?;
                let hints = decode_hints(&mut r)?;
                Ok(Header {
                    version: HeaderVersion::Current,
                    key,
                    manifest,
                    key_pair,
                    user_data,
                    tree,
                    hints,
                    types: None,
                })
            }
            v => Err(DecodeError::Invalid {
                what: "header",
                detail: format!("unknown header version {v}"),
            }),
        }
    }

    /// Encodes as a version-1 header.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.uint(1);
        let flags = if self.manifest.is_some() { 2 } else { 0 }
            | if self.key_pair.is_some() { 4 } else { 0 };
        w.uint(flags);
        w.raw(&self.key);
        if let Some(m) = &self.manifest {
            m.encode(&mut w);
        }
        if let Some((pk, sk)) = &self.key_pair {
            w.buffer(pk);
            w.buffer(sk);
        }
        w.uint(self.user_data.len() as u64);
        for (k, v) in &self.user_data {
            w.string(k);
            w.buffer(v);
        }
        w.uint(self.tree.fork);
        w.uint(self.tree.length);
        w.buffer(&self.tree.root_hash);
        w.buffer(&self.tree.signature);
        w.uint(self.hints.reorgs.len() as u64);
        for h in &self.hints.reorgs {
            w.uint(h.from);
            w.uint(h.to);
            w.uint(h.ancestors);
        }
        w.uint(self.hints.contiguous_length);
        w.buf
    }

    /// Sets (or with `None` removes) one user data key, as JS does.
    pub fn set_user_data(&mut self, key: &str, value: Option<&[u8]>) {
        if let Some(pos) = self.user_data.iter().position(|(k, _)| k == key) {
            match value {
                Some(v) if !v.is_empty() => self.user_data[pos].1 = v.to_vec(),
                _ => {
                    self.user_data.remove(pos);
                }
            }
        } else if let Some(v) = value.filter(|v| !v.is_empty()) {
            self.user_data.push((key.to_string(), v.to_vec()));
        }
    }
}

/// A tree upgrade recorded in an entry: the new head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeUpgrade {
    /// Fork id of the new head.
    pub fork: u64,
    /// Blocks shared with the previous head.
    pub ancestors: u64,
    /// New length.
    pub length: u64,
    /// Signature of the new head (empty when none).
    pub signature: Vec<u8>,
}

/// A bitfield change recorded in an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitfieldUpdate {
    /// True when the blocks were removed.
    pub drop: bool,
    /// First block.
    pub start: u64,
    /// Number of blocks.
    pub length: u64,
}

/// One oplog entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// A user data change.
    pub user_data: Option<(String, Vec<u8>)>,
    /// Tree nodes to store.
    pub tree_nodes: Option<Vec<Node>>,
    /// A new head.
    pub tree_upgrade: Option<TreeUpgrade>,
    /// A bitfield change.
    pub bitfield: Option<BitfieldUpdate>,
}

impl Entry {
    /// Encodes as `messages.oplog.entry`.
    pub fn encode(&self, w: &mut Writer) {
        let flags = u64::from(self.user_data.is_some())
            | if self.tree_nodes.is_some() { 2 } else { 0 }
            | if self.tree_upgrade.is_some() { 4 } else { 0 }
            | if self.bitfield.is_some() { 8 } else { 0 };
        w.uint(flags);
        if let Some((k, v)) = &self.user_data {
            w.string(k);
            w.buffer(v);
        }
        if let Some(nodes) = &self.tree_nodes {
            w.uint(nodes.len() as u64);
            for n in nodes {
                w.uint(n.index);
                w.uint(n.size);
                w.raw(&n.hash);
            }
        }
        if let Some(u) = &self.tree_upgrade {
            w.uint(u.fork);
            w.uint(u.ancestors);
            w.uint(u.length);
            w.buffer(&u.signature);
        }
        if let Some(b) = &self.bitfield {
            w.uint(u64::from(b.drop));
            w.uint(b.start);
            w.uint(b.length);
        }
    }

    /// Decodes `messages.oplog.entry`.
    pub fn decode(buf: &[u8]) -> Result<Entry, DecodeError> {
        let mut r = Reader::new(buf);
        let flags = r.uint("entry flags")?;
        let user_data = if flags & 1 != 0 {
            Some((
                r.string("entry user data key")?,
                r.buffer("entry user data value")?.to_vec(),
            ))
        } else {
            None
        };
        let tree_nodes = if flags & 2 != 0 {
            let n = r.count("entry tree nodes", 34)?;
            let mut nodes = Vec::with_capacity(n);
            for _ in 0..n {
                nodes.push(Node {
                    index: r.uint("node index")?,
                    size: r.uint("node size")?,
                    hash: r.fixed32("node hash")?,
                });
            }
            Some(nodes)
        } else {
            None
        };
        let tree_upgrade = if flags & 4 != 0 {
            Some(TreeUpgrade {
                fork: r.uint("upgrade fork")?,
                ancestors: r.uint("upgrade ancestors")?,
                length: r.uint("upgrade length")?,
                signature: r.buffer("upgrade signature")?.to_vec(),
            })
        } else {
            None
        };
        let bitfield = if flags & 8 != 0 {
            Some(BitfieldUpdate {
                drop: r.uint("bitfield flags")? & 1 != 0,
                start: r.uint("bitfield start")?,
                length: r.uint("bitfield length")?,
            })
        } else {
            None
        };
        Ok(Entry {
            user_data,
            tree_nodes,
            tree_upgrade,
            bitfield,
        })
    }
}

/// Wraps `payload` in a frame.
pub fn frame(payload: &[u8], header_bit: u8, partial: bool, out: &mut Vec<u8>) {
    let len_field =
        ((payload.len() as u32) << 2) | u32::from(header_bit & 1) | if partial { 2 } else { 0 };
    let mut h = crc32fast::Hasher::new();
    h.update(&len_field.to_le_bytes());
    h.update(payload);
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(&len_field.to_le_bytes());
    out.extend_from_slice(payload);
}

/// A frame read back: its bits and payload, and the bytes it took.
pub struct Frame<'a> {
    /// Header bit.
    pub header_bit: u8,
    /// Partial (non-final member of an atomic group).
    pub partial: bool,
    /// Payload.
    pub payload: &'a [u8],
    /// Total bytes including the 8-byte prefix.
    pub byte_length: usize,
}

/// Reads a frame at the start of `buf`; `None` when incomplete or its CRC fails.
pub fn read_frame(buf: &[u8]) -> Option<Frame<'_>> {
    if buf.len() < 8 {
        return None;
    }
    let crc = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let len_field = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let len = (len_field >> 2) as usize;
    let end = 8usize.checked_add(len)?;
    if buf.len() < end {
        return None;
    }
    if crc32fast::hash(&buf[4..end]) != crc {
        return None;
    }
    Some(Frame {
        header_bit: (len_field & 1) as u8,
        partial: len_field & 2 != 0,
        payload: &buf[8..end],
        byte_length: end,
    })
}

/// What opening an oplog file found.
pub struct OplogState {
    /// Header bits of slots 0 and 1.
    pub headers: [u8; 2],
    /// The active header, `None` for an empty file.
    pub header: Option<Header>,
    /// Replayed entries, in order.
    pub entries: Vec<Entry>,
    /// For each entry, the file offset where its atomic group starts (where the file is cut
    /// to drop it and everything after it).
    pub group_starts: Vec<u64>,
    /// Bytes of valid entries after [`ENTRY_OFFSET`].
    pub entries_byte_length: u64,
}

/// Why an oplog file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OplogReadError {
    /// Neither header slot holds a valid header but the file has entries.
    NoValidHeader,
    /// A header slot passed its CRC but could not be decoded.
    BadHeader {
        /// Slot 0 or 1.
        slot: usize,
        /// Why.
        error: DecodeError,
    },
}

/// Parses a whole oplog file.
pub fn read_oplog(buf: &[u8]) -> Result<OplogState, OplogReadError> {
    let slot = |i: usize| -> Option<Frame<'_>> {
        let start = i * PAGE_SIZE as usize;
        buf.get(start..).and_then(read_frame)
    };
    let h1 = slot(0);
    let h2 = slot(1);
    let headers = match (&h1, &h2) {
        (None, None) => {
            if buf.len() as u64 >= ENTRY_OFFSET {
                return Err(OplogReadError::NoValidHeader);
            }
            return Ok(OplogState {
                headers: [1, 0],
                header: None,
                entries: vec![],
                group_starts: vec![],
                entries_byte_length: 0,
            });
        }
        (Some(a), None) => [a.header_bit, a.header_bit],
        (None, Some(b)) => [(b.header_bit + 1) & 1, b.header_bit],
        (Some(a), Some(b)) => [a.header_bit, b.header_bit],
    };
    let active = ((headers[0] + headers[1]) & 1) as usize;
    let frame = if active == 1 { &h2 } else { &h1 };
    let Some(frame) = frame else {
        return Err(OplogReadError::NoValidHeader);
    };
    let header = Header::decode(frame.payload).map_err(|error| OplogReadError::BadHeader {
        slot: active,
        error,
    })?;
    let mut entries = Vec::new();
    let mut group_starts = Vec::new();
    let mut pending: Vec<(Entry, usize)> = Vec::new();
    let mut pos = ENTRY_OFFSET as usize;
    let mut byte_length = 0usize;
    while let Some(f) = buf.get(pos..).and_then(read_frame) {
        if f.header_bit as usize != active {
            break;
        }
        let Ok(e) = Entry::decode(f.payload) else {
            break;
        };
        pos += f.byte_length;
        pending.push((e, f.byte_length));
        if !f.partial {
            let group_start = ENTRY_OFFSET + byte_length as u64;
            for (e, n) in pending.drain(..) {
                entries.push(e);
                group_starts.push(group_start);
                byte_length += n;
            }
        }
    }
    Ok(OplogState {
        headers,
        header: Some(header),
        entries,
        group_starts,
        entries_byte_length: byte_length as u64,
    })
}

/// Where the next header goes and with which bit: `(slot, bit)`.
pub fn next_header_slot(headers: [u8; 2]) -> (usize, u8) {
    let i = if headers[0] == headers[1] { 1 } else { 0 };
    (i, (headers[i] + 1) & 1)
}

/// The header bit entries written now must carry.
pub fn entry_bit(headers: [u8; 2]) -> u8 {
    (headers[0] + headers[1]) & 1
}
