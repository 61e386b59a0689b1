//! compact-encoding, the byte format of every Hypercore structure: varints (`uint`), length
//! prefixed buffers and strings, fixed 32/64-byte fields, arrays. A [`Reader`] never panics: a
//! short or malformed input is a [`DecodeError`].

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

/// Reads compact-encoding values from a byte slice.
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
        self.buf.len() - self.pos
    }

    /// Reads `n` raw bytes.
    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let out = &self.buf[self.pos..end];
                self.pos = end;
                Ok(out)
            }
            None => Err(DecodeError::Truncated { what, at: self.pos }),
        }
    }

    /// Reads one byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.bytes(1, what)?[0])
    }

    /// Reads a little-endian u32 (`c.uint32`).
    pub fn u32le(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a little-endian u64 (`c.uint64`).
    pub fn u64le(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let b = self.bytes(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// Reads a varint (`c.uint`).
    pub fn uint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let first = self.u8(what)?;
        Ok(match first {
            0xfd => {
                let b = self.bytes(2, what)?;
                u16::from_le_bytes([b[0], b[1]]) as u64
            }
            0xfe => self.u32le(what)? as u64,
            0xff => self.u64le(what)?,
            n => n as u64,
        })
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

    /// Reads a length-prefixed UTF-8 string (`c.string`).
    pub fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let b = self.buffer(what)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::Invalid {
            what,
            detail: "not UTF-8".into(),
        })
    }

    /// Reads 32 raw bytes (`c.fixed32`).
    pub fn fixed32(&mut self, what: &'static str) -> Result<[u8; 32], DecodeError> {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.bytes(32, what)?);
        Ok(out)
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
        if n < 0xfd {
            self.buf.push(n as u8);
        } else if n <= 0xffff {
            self.buf.push(0xfd);
            self.buf.extend_from_slice(&(n as u16).to_le_bytes());
        } else if n <= 0xffff_ffff {
            self.buf.push(0xfe);
            self.buf.extend_from_slice(&(n as u32).to_le_bytes());
        } else {
            self.buf.push(0xff);
            self.buf.extend_from_slice(&n.to_le_bytes());
        }
    }

    /// Writes a length-prefixed buffer.
    pub fn buffer(&mut self, b: &[u8]) {
        self.uint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    /// Writes a length-prefixed UTF-8 string.
    pub fn string(&mut self, s: &str) {
        self.buffer(s.as_bytes());
    }

    /// Writes raw bytes.
    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// Writes a little-endian u64.
    pub fn u64le(&mut self, n: u64) {
        self.buf.extend_from_slice(&n.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint_boundaries_round_trip_as_compact_encoding_writes_them() {
        for (n, hex) in [
            (0u64, "00"),
            (0xfc, "fc"),
            (0xfd, "fdfd00"),
            (0x10000, "fe00000100"),
            (0x1_0000_0000, "ff0000000001000000"),
        ] {
            let mut w = Writer::new();
            w.uint(n);
            assert_eq!(hex::encode(&w.buf), hex);
            assert_eq!(Reader::new(&w.buf).uint("n").unwrap(), n);
        }
    }

    #[test]
    fn truncated_input_is_an_error() {
        assert!(Reader::new(&[0xfe, 1]).uint("n").is_err());
        assert!(Reader::new(&[5, 1, 2]).buffer("b").is_err());
        assert!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
                .buffer("b")
                .is_err()
        );
    }
}
