//! compact-encoding (npm `compact-encoding` 2.x/3.x) for the types the wire protocols use.
//!
//! Encoding appends to a `Vec<u8>`; decoding reads from a [`Reader`] over a byte slice and
//! returns [`NetError::Truncated`] / [`NetError::InvalidValue`] instead of running past the end.
//! Byte layouts (all little endian):
//!
//! - `uint`: one byte for 0..=0xfc; `0xfd` + u16; `0xfe` + u32; `0xff` + u64.
//! - `buffer` / `string`: `uint` length, then the bytes (an empty buffer and "no buffer" are
//!   both length 0, which is how `optionalBuffer` writes `null`).
//! - `fixed32`: 32 raw bytes; `uint32array`: `uint` element count, then 4 bytes per element.
//! - `raw`: the rest of the message, unprefixed.

use super::NetError;

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

/// Appends a length-prefixed byte buffer (`c.buffer`, and `c.optionalBuffer` for `Some`).
pub fn put_buffer(out: &mut Vec<u8>, bytes: &[u8]) {
    put_uint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends `c.optionalBuffer`: `None` (and an empty buffer) is a single zero byte.
pub fn put_optional_buffer(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => put_buffer(out, b),
        None => out.push(0),
    }
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

/// A bounds-checked cursor over one message.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader positioned at the start of `buf`.
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

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], NetError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(NetError::Truncated { what })?;
        let slice = self
            .buf
            .get(self.pos..end)
            .ok_or(NetError::Truncated { what })?;
        self.pos = end;
        Ok(slice)
    }

    /// Takes every byte left (`c.raw`).
    pub fn rest(&mut self) -> &'a [u8] {
        let slice = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        slice
    }

    /// Reads one byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, NetError> {
        let b = self.take(1, what)?;
        Ok(b.first().copied().unwrap_or(0))
    }

    /// Reads a compact-encoding `uint`.
    pub fn uint(&mut self, what: &'static str) -> Result<u64, NetError> {
        let first = self.u8(what)?;
        Ok(match first {
            0xfd => {
                let b = self.take(2, what)?;
                u16::from_le_bytes([b[0], b[1]]) as u64
            }
            0xfe => {
                let b = self.take(4, what)?;
                u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64
            }
            0xff => {
                let b = self.take(8, what)?;
                let mut w = [0u8; 8];
                w.copy_from_slice(b);
                u64::from_le_bytes(w)
            }
            n => n as u64,
        })
    }

    /// Reads a `uint` that must fit a `usize` (a length or an index into memory).
    pub fn len(&mut self, what: &'static str) -> Result<usize, NetError> {
        let n = self.uint(what)?;
        usize::try_from(n).map_err(|_| NetError::InvalidValue {
            what,
            reason: format!("{n} does not fit in memory"),
        })
    }

    /// Reads a length-prefixed buffer (`c.buffer`); a zero length gives an empty slice.
    pub fn buffer(&mut self, what: &'static str) -> Result<&'a [u8], NetError> {
        let len = self.len(what)?;
        self.take(len, what)
    }

    /// Reads `c.optionalBuffer`: length 0 is `None`.
    pub fn optional_buffer(&mut self, what: &'static str) -> Result<Option<&'a [u8]>, NetError> {
        let b = self.buffer(what)?;
        Ok(if b.is_empty() { None } else { Some(b) })
    }

    /// Reads a length-prefixed string. Invalid UTF-8 is replaced as JS `TextDecoder` does.
    pub fn string(&mut self, what: &'static str) -> Result<String, NetError> {
        let b = self.buffer(what)?;
        Ok(String::from_utf8_lossy(b).into_owned())
    }

    /// Reads 32 raw bytes (`c.fixed32`).
    pub fn fixed32(&mut self, what: &'static str) -> Result<[u8; 32], NetError> {
        let b = self.take(32, what)?;
        let mut out = [0u8; 32];
        out.copy_from_slice(b);
        Ok(out)
    }

    /// Reads a `c.uint32array`.
    pub fn uint32_array(&mut self, what: &'static str) -> Result<Vec<u32>, NetError> {
        let count = self.len(what)?;
        let bytes = count.checked_mul(4).ok_or(NetError::Truncated { what })?;
        let raw = self.take(bytes, what)?;
        Ok(raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// Reads a `uint` only if bytes remain (optional trailing fields), else 0.
    pub fn trailing_uint(&mut self, what: &'static str) -> Result<u64, NetError> {
        if self.is_empty() {
            Ok(0)
        } else {
            self.uint(what)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint_boundaries_match_compact_encoding() {
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
            let mut out = Vec::new();
            put_uint(&mut out, n);
            assert_eq!(hex::encode(&out), hex, "encoding {n}");
            assert_eq!(uint_len(n), out.len());
            assert_eq!(Reader::new(&out).uint("n").ok(), Some(n));
        }
    }

    #[test]
    fn truncated_input_is_an_error() {
        assert!(Reader::new(&[0xfe, 1, 2]).uint("x").is_err());
        assert!(Reader::new(&[5, 1, 2]).buffer("x").is_err());
        assert!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
                .uint32_array("x")
                .is_err()
        );
    }
}
