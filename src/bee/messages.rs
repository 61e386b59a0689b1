//! The three protobuf messages of Hyperbee 1.x (`Header`, `Node`, `YoloIndex`), encoded and
//! decoded by hand exactly as the `protocol-buffers` output in JS Hyperbee's `lib/messages.js`
//! writes them.
//!
//! Encoding rules that matter for byte identity:
//! - `Node`: `index` (1) and `key` (2) are always written, even when empty; `value` (3) only
//!   when present (JS `null`/`undefined` leave it out).
//! - `YoloIndex.Level`: `keys` (1) and `children` (2) are packed varints, each written only when
//!   the list is non-empty. An empty level is a zero-length message.

use thiserror::Error;

/// What is wrong with a protobuf message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtoError {
    /// The message ends inside a field.
    #[error("message truncated at byte {at}")]
    Truncated {
        /// Byte offset where more bytes were needed.
        at: usize,
    },
    /// A varint is longer than 10 bytes or overflows 64 bits.
    #[error("varint too long at byte {at}")]
    VarintOverflow {
        /// Byte offset of the varint.
        at: usize,
    },
    /// A field uses a wire type protobuf does not define (3, 4, 6 or 7).
    #[error("unsupported wire type {wire_type} at byte {at}")]
    BadWireType {
        /// The wire type found.
        wire_type: u8,
        /// Byte offset of the field tag.
        at: usize,
    },
    /// A known field has the wrong wire type.
    #[error("field {field} has wire type {wire_type}")]
    WrongWireType {
        /// Field number.
        field: u64,
        /// The wire type found.
        wire_type: u8,
    },
    /// A required field is missing.
    #[error("required field `{0}` missing")]
    MissingField(&'static str),
    /// A string field is not UTF-8.
    #[error("field `{0}` is not utf-8")]
    NotUtf8(&'static str),
    /// A level's `children` list has an odd number of integers (it holds (seq, offset) pairs).
    #[error("children list has an odd length {0}")]
    OddChildren(usize),
}

/// The Hyperbee header (block 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Always `"hyperbee"` for a Hyperbee.
    pub protocol: String,
    /// Optional metadata (JS Vitra writes none).
    pub metadata: Option<Metadata>,
}

/// `Header.Metadata`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    /// Key of a content feed (Hyperdrive uses this).
    pub content_feed: Option<Vec<u8>>,
    /// Free-form user data.
    pub user_data: Option<Vec<u8>>,
}

/// One tree node inside a block's index: keys are block numbers whose node holds the key;
/// children are `(block, offset)` pointers to another level of some block's index.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Level {
    /// Block numbers of this node's keys, in key order.
    pub keys: Vec<u64>,
    /// `(seq, offset)` pointers to the children: empty for a leaf, else `keys.len() + 1`.
    pub children: Vec<(u64, u64)>,
}

/// A decoded Hyperbee `Node` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeMessage {
    /// The encoded `YoloIndex` (may be empty).
    pub index: Vec<u8>,
    /// The key.
    pub key: Vec<u8>,
    /// The value; `None` for a delete and for a put of JS `null`.
    pub value: Option<Vec<u8>>,
}

// ---------------------------------------------------------------- writing

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_bytes_field(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Encodes a header as JS Hyperbee does.
pub fn encode_header(header: &Header) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    put_bytes_field(&mut out, 0x0a, header.protocol.as_bytes());
    if let Some(meta) = &header.metadata {
        let mut inner = Vec::new();
        if let Some(cf) = &meta.content_feed {
            put_bytes_field(&mut inner, 0x0a, cf);
        }
        if let Some(ud) = &meta.user_data {
            put_bytes_field(&mut inner, 0x12, ud);
        }
        put_bytes_field(&mut out, 0x12, &inner);
    }
    out
}

fn level_len(keys: &[u64], children: &[(u64, u64)]) -> usize {
    let kl: usize = keys.iter().map(|k| varint_len(*k)).sum();
    let cl: usize = children
        .iter()
        .map(|(s, o)| varint_len(*s) + varint_len(*o))
        .sum();
    let mut n = 0;
    if kl > 0 {
        n += 1 + varint_len(kl as u64) + kl;
    }
    if cl > 0 {
        n += 1 + varint_len(cl as u64) + cl;
    }
    n
}

/// Appends one encoded `YoloIndex.Level` entry (tag, length, body) to `out`.
pub(crate) fn encode_level_into(out: &mut Vec<u8>, keys: &[u64], children: &[(u64, u64)]) {
    out.push(0x0a);
    put_varint(out, level_len(keys, children) as u64);
    let kl: usize = keys.iter().map(|k| varint_len(*k)).sum();
    if kl > 0 {
        out.push(0x0a);
        put_varint(out, kl as u64);
        for k in keys {
            put_varint(out, *k);
        }
    }
    let cl: usize = children
        .iter()
        .map(|(s, o)| varint_len(*s) + varint_len(*o))
        .sum();
    if cl > 0 {
        out.push(0x12);
        put_varint(out, cl as u64);
        for (s, o) in children {
            put_varint(out, *s);
            put_varint(out, *o);
        }
    }
}

/// Encodes a `YoloIndex` from its levels.
pub fn encode_index(levels: &[Level]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in levels {
        encode_level_into(&mut out, &l.keys, &l.children);
    }
    out
}

/// Encodes a `Node` block.
pub fn encode_node(index: &[u8], key: &[u8], value: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(index.len() + key.len() + value.map_or(0, |v| v.len()) + 12);
    put_bytes_field(&mut out, 0x0a, index);
    put_bytes_field(&mut out, 0x12, key);
    if let Some(v) = value {
        put_bytes_field(&mut out, 0x1a, v);
    }
    out
}

// ---------------------------------------------------------------- reading

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, ProtoError> {
        let start = self.pos;
        let mut v: u64 = 0;
        let mut shift = 0u32;
        loop {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or(ProtoError::Truncated { at: self.pos })?;
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(ProtoError::VarintOverflow { at: start });
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
            if shift > 63 {
                return Err(ProtoError::VarintOverflow { at: start });
            }
        }
    }

    fn bytes(&mut self) -> Result<&'a [u8], ProtoError> {
        let len = self.varint()?;
        let start = self.pos;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|e| *e <= self.buf.len())
            .ok_or(ProtoError::Truncated { at: start })?;
        self.pos = end;
        Ok(&self.buf[start..end])
    }

    /// Reads a field tag: (field number, wire type).
    fn tag(&mut self) -> Result<(u64, u8), ProtoError> {
        let at = self.pos;
        let t = self.varint()?;
        let wt = (t & 7) as u8;
        if !matches!(wt, 0 | 1 | 2 | 5) {
            return Err(ProtoError::BadWireType { wire_type: wt, at });
        }
        Ok((t >> 3, wt))
    }

    fn skip(&mut self, wire_type: u8) -> Result<(), ProtoError> {
        match wire_type {
            0 => {
                self.varint()?;
            }
            1 | 5 => {
                let n = if wire_type == 1 { 8 } else { 4 };
                if self.pos + n > self.buf.len() {
                    return Err(ProtoError::Truncated { at: self.pos });
                }
                self.pos += n;
            }
            _ => {
                self.bytes()?;
            }
        }
        Ok(())
    }
}

fn expect_len(field: u64, wt: u8) -> Result<(), ProtoError> {
    if wt == 2 {
        Ok(())
    } else {
        Err(ProtoError::WrongWireType {
            field,
            wire_type: wt,
        })
    }
}

/// Decodes a header block.
pub fn decode_header(buf: &[u8]) -> Result<Header, ProtoError> {
    let mut r = Reader::new(buf);
    let mut protocol = None;
    let mut metadata = None;
    while !r.done() {
        let (f, wt) = r.tag()?;
        match f {
            1 => {
                expect_len(f, wt)?;
                let b = r.bytes()?;
                protocol = Some(
                    std::str::from_utf8(b)
                        .map_err(|_| ProtoError::NotUtf8("protocol"))?
                        .to_owned(),
                );
            }
            2 => {
                expect_len(f, wt)?;
                let mut m = Reader::new(r.bytes()?);
                let mut meta = Metadata::default();
                while !m.done() {
                    let (mf, mwt) = m.tag()?;
                    match mf {
                        1 => {
                            expect_len(mf, mwt)?;
                            meta.content_feed = Some(m.bytes()?.to_vec());
                        }
                        2 => {
                            expect_len(mf, mwt)?;
                            meta.user_data = Some(m.bytes()?.to_vec());
                        }
                        _ => m.skip(mwt)?,
                    }
                }
                metadata = Some(meta);
            }
            _ => r.skip(wt)?,
        }
    }
    Ok(Header {
        protocol: protocol.ok_or(ProtoError::MissingField("protocol"))?,
        metadata,
    })
}

/// A node block decoded without copying: slices into the block bytes.
pub(crate) struct NodeRef<'a> {
    pub index: &'a [u8],
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
}

pub(crate) fn decode_node_ref(buf: &[u8]) -> Result<NodeRef<'_>, ProtoError> {
    let mut r = Reader::new(buf);
    let mut index = None;
    let mut key = None;
    let mut value = None;
    while !r.done() {
        let (f, wt) = r.tag()?;
        match f {
            1 => {
                expect_len(f, wt)?;
                index = Some(r.bytes()?);
            }
            2 => {
                expect_len(f, wt)?;
                key = Some(r.bytes()?);
            }
            3 => {
                expect_len(f, wt)?;
                value = Some(r.bytes()?);
            }
            _ => r.skip(wt)?,
        }
    }
    Ok(NodeRef {
        index: index.ok_or(ProtoError::MissingField("index"))?,
        key: key.ok_or(ProtoError::MissingField("key"))?,
        value,
    })
}

/// Decodes a `Node` block.
pub fn decode_node(buf: &[u8]) -> Result<NodeMessage, ProtoError> {
    let n = decode_node_ref(buf)?;
    Ok(NodeMessage {
        index: n.index.to_vec(),
        key: n.key.to_vec(),
        value: n.value.map(<[u8]>::to_vec),
    })
}

fn read_ints(r: &mut Reader<'_>, wt: u8, out: &mut Vec<u64>) -> Result<(), ProtoError> {
    if wt == 0 {
        out.push(r.varint()?);
        return Ok(());
    }
    if wt != 2 {
        return Err(ProtoError::WrongWireType {
            field: 1,
            wire_type: wt,
        });
    }
    let mut p = Reader::new(r.bytes()?);
    while !p.done() {
        out.push(p.varint()?);
    }
    Ok(())
}

/// Decodes a `YoloIndex` into its levels.
pub fn decode_index(buf: &[u8]) -> Result<Vec<Level>, ProtoError> {
    let mut r = Reader::new(buf);
    let mut levels = Vec::new();
    while !r.done() {
        let (f, wt) = r.tag()?;
        if f != 1 {
            r.skip(wt)?;
            continue;
        }
        expect_len(f, wt)?;
        let mut l = Reader::new(r.bytes()?);
        let mut keys = Vec::new();
        let mut flat = Vec::new();
        while !l.done() {
            let (lf, lwt) = l.tag()?;
            match lf {
                1 => read_ints(&mut l, lwt, &mut keys)?,
                2 => read_ints(&mut l, lwt, &mut flat)?,
                _ => l.skip(lwt)?,
            }
        }
        if flat.len() % 2 != 0 {
            return Err(ProtoError::OddChildren(flat.len()));
        }
        let children = flat.chunks_exact(2).map(|c| (c[0], c[1])).collect();
        levels.push(Level { keys, children });
    }
    Ok(levels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_match_js() {
        let h = Header {
            protocol: "hyperbee".into(),
            metadata: None,
        };
        assert_eq!(hex::encode(encode_header(&h)), "0a086879706572626565");
        assert_eq!(decode_header(&encode_header(&h)).unwrap(), h);
        let h2 = Header {
            protocol: "hyperbee".into(),
            metadata: Some(Metadata {
                content_feed: Some(vec![1, 2]),
                user_data: None,
            }),
        };
        assert_eq!(
            hex::encode(encode_header(&h2)),
            "0a08687970657262656512040a020102"
        );
        assert_eq!(decode_header(&encode_header(&h2)).unwrap(), h2);
    }

    #[test]
    fn index_from_fixture_round_trips() {
        // counter fixture block 13: root [12] -> (12,0), (13,1); leaf [3,1,2,13]
        let raw = hex::decode("0a090a010c12040c000d010a060a040301020d").unwrap();
        let levels = decode_index(&raw).unwrap();
        assert_eq!(
            levels,
            vec![
                Level {
                    keys: vec![12],
                    children: vec![(12, 0), (13, 1)]
                },
                Level {
                    keys: vec![3, 1, 2, 13],
                    children: vec![]
                }
            ]
        );
        assert_eq!(encode_index(&levels), raw);
    }

    #[test]
    fn empty_level_and_empty_index() {
        assert_eq!(encode_index(&[]), Vec::<u8>::new());
        assert_eq!(hex::encode(encode_index(&[Level::default()])), "0a00");
        assert_eq!(decode_index(&[0x0a, 0x00]).unwrap(), vec![Level::default()]);
    }

    #[test]
    fn node_without_value_has_no_value_field() {
        assert_eq!(hex::encode(encode_node(&[], b"a", None)), "0a00120161");
        assert_eq!(
            hex::encode(encode_node(&[], b"a", Some(&[]))),
            "0a001201611a00"
        );
        let n = decode_node(&hex::decode("0a00120161").unwrap()).unwrap();
        assert_eq!(n.value, None);
        assert_eq!(n.key, b"a");
    }

    #[test]
    fn hostile_messages_are_errors() {
        assert!(matches!(
            decode_node(&[0x0a, 0x05, 0x01]),
            Err(ProtoError::Truncated { .. })
        ));
        assert_eq!(
            decode_node(&[0x12, 0x00]),
            Err(ProtoError::MissingField("index"))
        );
        assert!(matches!(
            decode_node(&[0x0b]),
            Err(ProtoError::BadWireType { .. })
        ));
        assert!(matches!(
            decode_index(&[
                0x0a, 0x0d, 0x0a, 0x0b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0x01
            ]),
            Err(ProtoError::VarintOverflow { .. })
        ));
        assert_eq!(
            decode_index(&[0x0a, 0x03, 0x12, 0x01, 0x05]),
            Err(ProtoError::OddChildren(1))
        );
        // a length prefix far past the end
        assert!(decode_node(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }
}
