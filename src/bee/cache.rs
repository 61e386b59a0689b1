//! Decoded blocks by block number. Blocks never change once written, so a cached decode is
//! valid for as long as the log is not truncated. Two generations approximate an LRU: when the
//! hot map is full it becomes the cold map, and a hit in the cold map moves the block back.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use super::Block;

/// A multiplicative hasher for `u64` block numbers (SipHash is needlessly slow here and the
/// keys are not attacker-chosen in a way that matters: a bad spread only slows the cache).
#[derive(Default)]
pub(crate) struct SeqHasher(u64);

impl Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (n ^ (n >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Map = HashMap<u64, Arc<Block>, BuildHasherDefault<SeqHasher>>;

struct Generations {
    hot: Map,
    cold: Map,
    half: usize,
}

pub(crate) struct BlockCache {
    inner: Mutex<Generations>,
}

impl BlockCache {
    pub(crate) fn new(capacity: usize) -> Self {
        BlockCache {
            inner: Mutex::new(Generations {
                hot: Map::default(),
                cold: Map::default(),
                half: (capacity / 2).max(16),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Generations> {
        // A panic elsewhere cannot leave the maps inconsistent (every update is one call).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, seq: u64) -> Option<Arc<Block>> {
        let mut g = self.lock();
        if let Some(b) = g.hot.get(&seq) {
            return Some(b.clone());
        }
        let b = g.cold.remove(&seq)?;
        g.put(seq, b.clone());
        Some(b)
    }

    pub(crate) fn insert(&self, seq: u64, block: Arc<Block>) {
        self.lock().put(seq, block);
    }

    pub(crate) fn clear(&self) {
        let mut g = self.lock();
        g.hot.clear();
        g.cold.clear();
    }
}

impl Generations {
    fn put(&mut self, seq: u64, block: Arc<Block>) {
        if self.hot.len() >= self.half {
            self.cold = std::mem::take(&mut self.hot);
        }
        self.hot.insert(seq, block);
    }
}
