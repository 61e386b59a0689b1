//! The `bitfield` file: one bit per block (bit `i` is bit `i % 8` of byte `i / 8`, the
//! little-endian layout of JS's `Uint32Array` pages), written in 4096-byte pages. A set bit
//! means the block is stored locally.

use std::collections::BTreeSet;

/// Bytes per bitfield page.
pub const PAGE_BYTES: usize = 4096;

/// The in-memory bitfield with its dirty pages.
#[derive(Debug, Default, Clone)]
pub struct Bitfield {
    bytes: Vec<u8>,
    dirty: BTreeSet<usize>,
}

impl Bitfield {
    /// A bitfield loaded from the file's bytes.
    pub fn from_bytes(mut bytes: Vec<u8>) -> Self {
        bytes.truncate(bytes.len() - bytes.len() % 4);
        Bitfield {
            bytes,
            dirty: BTreeSet::new(),
        }
    }

    /// Whether block `i` is present.
    pub fn get(&self, i: u64) -> bool {
        let Ok(byte) = usize::try_from(i / 8) else {
            return false;
        };
        self.bytes
            .get(byte)
            .is_some_and(|b| b & (1 << (i % 8)) != 0)
    }

    /// Sets or clears `len` bits from `start`.
    pub fn set_range(&mut self, start: u64, len: u64, value: bool) {
        if len == 0 {
            return;
        }
        let end = start.saturating_add(len);
        if !value {
            // Nothing to clear past what is stored.
            let stored = self.bytes.len() as u64 * 8;
            if start >= stored {
                return;
            }
        }
        let last_byte = ((end - 1) / 8) as usize;
        if value && self.bytes.len() <= last_byte {
            let new_len = (last_byte / PAGE_BYTES + 1) * PAGE_BYTES;
            self.bytes.resize(new_len, 0);
        }
        let end = end.min(self.bytes.len() as u64 * 8);
        let mut i = start;
        while i < end {
            let byte = (i / 8) as usize;
            if i.is_multiple_of(8) && end - i >= 8 {
                self.bytes[byte] = if value { 0xff } else { 0 };
                i += 8;
            } else {
                if value {
                    self.bytes[byte] |= 1 << (i % 8);
                } else {
                    self.bytes[byte] &= !(1 << (i % 8));
                }
                i += 1;
            }
            self.dirty.insert(byte / PAGE_BYTES);
        }
    }

    /// The dirty pages as `(byte offset, bytes)`; clears the dirty set.
    pub fn take_dirty(&mut self) -> Vec<(u64, Vec<u8>)> {
        let pages: Vec<usize> = std::mem::take(&mut self.dirty).into_iter().collect();
        pages
            .into_iter()
            .filter_map(|p| {
                let s = p * PAGE_BYTES;
                let e = (s + PAGE_BYTES).min(self.bytes.len());
                self.bytes.get(s..e).map(|b| (s as u64, b.to_vec()))
            })
            .collect()
    }

    /// Marks a page dirty again (after a failed write).
    pub fn mark_dirty(&mut self, byte_offset: u64) {
        self.dirty.insert(byte_offset as usize / PAGE_BYTES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_land_where_js_uint32_pages_put_them() {
        let mut b = Bitfield::default();
        b.set_range(0, 3, true);
        b.set_range(9, 1, true);
        let pages = b.take_dirty();
        assert_eq!(pages.len(), 1);
        assert_eq!(&pages[0].1[..2], &[0b0000_0111, 0b0000_0010]);
        assert!(b.get(9) && !b.get(8) && !b.get(1_000_000));
        b.set_range(1, 20, false);
        assert!(b.get(0) && !b.get(1) && !b.get(9));
    }
}
