//! compact-encoding (npm `compact-encoding` 2.x/3.x), the byte format of every Hypercore
//! structure on disk (oplog headers and entries, proofs) and on the wire (protomux frames,
//! replication messages, the Noise payload).
//!
//! Encoding appends to a `Vec<u8>` (the `put_*` functions, or a [`Writer`]); decoding reads
//! from a [`Reader`] over a byte slice, which never panics and never allocates on a hostile
//! length: a short or malformed input is a [`DecodeError`]. Byte layouts (little endian):
//!
//! - `uint`: one byte for 0..=0xfc; `0xfd` + u16; `0xfe` + u32; `0xff` + u64.
//! - `buffer` / `string`: `uint` length, then the bytes (an empty buffer and "no buffer" are
//!   both length 0, which is how `optionalBuffer` writes `null`).
//! - `fixed32`: 32 raw bytes; `uint32array`: `uint` element count, then 4 bytes per element.
//! - `raw`: the rest of the message, unprefixed.

/// Why bytes could not be decoded as compact-encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended before the value did.
    #[error("input ended at byte {at} while reading {what}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Offset where the input ran out.
        at: usize,
    },
    /// A value is outside what the format allows.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was being read.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
}

/// Appends `n` as a compact-encoding `uint`.
pub fn put_uint(out: &mut Vec<u8>, n: u64) {
    if n <= 0xfc {
        out.push(n as u8);
    } else if n <= 0xffff {
        out.push(0xfd);
        out.extend_from_slice(&(n as u16).to_le_bytes());
    } else if n <= 0xffff_ffff {
        out.push(0xfe);
        out.extend_from_slice(&(n as u32).to_le_bytes());
    } else {
        out.push(0xff);
        out.extend_from_slice(&n.to_le_bytes());
    }
}

/// The number of bytes [`put_uint`] writes for `n`.
pub fn uint_len(n: u64) -> usize {
    if n <= 0xfc {
        1
    } else if n <= 0xffff {
        3
    } else if n <= 0xffff_ffff {
        5
    } else {
        9
    }
}

/// Appends a length-prefixed byte buffer (`c.buffer`, and `c.optionalBuffer` for `Some`).
pub fn put_buffer(out: &mut Vec<u8>, bytes: &[u8]) {
    put_uint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends `c.optionalBuffer`: `None` (and an empty buffer) is a single zero byte.
pub fn put_optional_buffer(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    put_buffer(out, bytes.unwrap_or_default());
}

/// Appends a length-prefixed UTF-8 string (`c.string`).
pub fn put_string(out: &mut Vec<u8>, s: &str) {
    put_buffer(out, s.as_bytes());
}

/// Appends a `c.uint32array`: element count, then each element as 4 little-endian bytes.
pub fn put_uint32_array(out: &mut Vec<u8>, words: &[u32]) {
    put_uint(out, words.len() as u64);
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

/// Writes compact-encoding values into a growable buffer.
#[derive(Default)]
pub struct Writer {
    /// The bytes written so far.
    pub buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Writer { buf: Vec::new() }
    }

    /// Writes a varint (`c.uint`).
    pub fn uint(&mut self, n: u64) {
        put_uint(&mut self.buf, n);
    }

    /// Writes a length-prefixed buffer.
    pub fn buffer(&mut self, b: &[u8]) {
        put_buffer(&mut self.buf, b);
    }

    /// Writes a length-prefixed UTF-8 string.
    pub fn string(&mut self, s: &str) {
        put_string(&mut self.buf, s);
    }

    /// Writes raw bytes.
    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// Writes a little-endian u64 (`c.uint64`).
    pub fn u64le(&mut self, n: u64) {
        self.buf.extend_from_slice(&n.to_le_bytes());
    }
}

/// A bounds-checked cursor over one encoded value or message.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// True when every byte was read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Reads `n` raw bytes.
    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match (end, end.and_then(|end| self.buf.get(self.pos..end))) {
            (Some(end), Some(out)) => {
                self.pos = end;
                Ok(out)
            }
            _ => Err(DecodeError::Truncated { what, at: self.pos }),
        }
    }

    /// Reads `N` raw bytes into an array.
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N, what)?);
        Ok(out)
    }

    /// Takes every byte left (`c.raw`).
    pub fn rest(&mut self) -> &'a [u8] {
        let slice = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        slice
    }

    /// Reads one byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// Reads a little-endian u32 (`c.uint32`).
    pub fn u32le(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// Reads a little-endian u64 (`c.uint64`).
    pub fn u64le(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Reads a varint (`c.uint`).
    pub fn uint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(match self.u8(what)? {
            0xfd => u16::from_le_bytes(self.array(what)?) as u64,
            0xfe => self.u32le(what)? as u64,
            0xff => self.u64le(what)?,
            n => n as u64,
        })
    }

    /// Reads a `uint` only if bytes remain (an optional trailing field), else 0.
    pub fn trailing_uint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        if self.is_empty() {
            Ok(0)
        } else {
            self.uint(what)
        }
    }

    /// Reads a varint that must fit a `usize` count or length.
    pub fn len(&mut self, what: &'static str) -> Result<usize, DecodeError> {
        let n = self.uint(what)?;
        usize::try_from(n).map_err(|_| DecodeError::Invalid {
            what,
            detail: format!("length {n} too large"),
        })
    }

    /// Reads a length-prefixed buffer (`c.buffer`; an empty buffer stands for `null`).
    pub fn buffer(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.len(what)?;
        self.bytes(n, what)
    }

    /// Reads `c.optionalBuffer`: length 0 is `None`.
    pub fn optional_buffer(&mut self, what: &'static str) -> Result<Option<&'a [u8]>, DecodeError> {
        let b = self.buffer(what)?;
        Ok(if b.is_empty() { None } else { Some(b) })
    }

    /// Reads a length-prefixed UTF-8 string (`c.string`), refusing invalid UTF-8.
    pub fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let b = self.buffer(what)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::Invalid {
            what,
            detail: "not UTF-8".into(),
        })
    }

    /// Reads a length-prefixed string, replacing invalid UTF-8 as JS `TextDecoder` does (for
    /// names a peer sends, which JS would accept).
    pub fn string_lossy(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let b = self.buffer(what)?;
        Ok(String::from_utf8_lossy(b).into_owned())
    }

    /// Reads 32 raw bytes (`c.fixed32`).
    pub fn fixed32(&mut self, what: &'static str) -> Result<[u8; 32], DecodeError> {
        self.array(what)
    }

    /// Reads an array count, refusing counts that cannot fit in the remaining input
    /// (each item takes at least `min_item` bytes), so hostile counts never allocate.
    pub fn count(&mut self, what: &'static str, min_item: usize) -> Result<usize, DecodeError> {
        let n = self.len(what)?;
        if n.saturating_mul(min_item.max(1)) > self.remaining() {
            return Err(DecodeError::Truncated { what, at: self.pos });
        }
        Ok(n)
    }

    /// Reads a `c.uint32array`.
    pub fn uint32_array(&mut self, what: &'static str) -> Result<Vec<u32>, DecodeError> {
        let count = self.count(what, 4)?;
        let raw = self.bytes(count * 4, what)?;
        Ok(raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint_boundaries_round_trip_as_compact_encoding_writes_them() {
        let cases: [(u64, &str); 7] = [
            (0, "00"),
            (0xfc, "fc"),
            (0xfd, "fdfd00"),
            (0xffff, "fdffff"),
            (0x10000, "fe00000100"),
            (0xffff_ffff, "feffffffff"),
            (0x1_0000_0000, "ff0000000001000000"),
        ];
        for (n, hex) in cases {
            let mut w = Writer::new();
            w.uint(n);
            assert_eq!(hex::encode(&w.buf), hex, "encoding {n}");
            assert_eq!(uint_len(n), w.buf.len());
            assert_eq!(Reader::new(&w.buf).uint("n"), Ok(n));
        }
    }

    #[test]
    fn truncated_input_is_an_error() {
        assert!(Reader::new(&[0xfe, 1, 2]).uint("n").is_err());
        assert!(Reader::new(&[5, 1, 2]).buffer("b").is_err());
        let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(Reader::new(&huge).buffer("b").is_err());
        assert!(Reader::new(&huge).uint32_array("a").is_err());
    }

    #[test]
    fn strings_are_strict_unless_asked_to_be_lossy() {
        let mut out = Vec::new();
        put_buffer(&mut out, &[0x61, 0xff]);
        assert!(Reader::new(&out).string("s").is_err());
        assert_eq!(
            Reader::new(&out).string_lossy("s"),
            Ok("a\u{fffd}".to_owned())
        );
    }

    #[test]
    fn optional_buffer_writes_none_as_zero_length() {
        let mut out = Vec::new();
        put_optional_buffer(&mut out, None);
        put_optional_buffer(&mut out, Some(b"xy"));
        assert_eq!(out, [0, 2, b'x', b'y']);
        let mut r = Reader::new(&out);
        assert_eq!(r.optional_buffer("a"), Ok(None));
        assert_eq!(r.optional_buffer("b"), Ok(Some(&b"xy"[..])));
        assert!(r.is_empty());
    }
}
