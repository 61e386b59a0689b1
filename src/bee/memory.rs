//! In-memory block logs: `Vec<Vec<u8>>` for single-threaded use and tests, and
//! [`SharedMemoryLog`], a cloneable handle that several bees (say a writer and a live history
//! reader on another thread) can share.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{BlockError, BlockLog};

impl BlockLog for Vec<Vec<u8>> {
    fn len(&self) -> u64 {
        Vec::len(self) as u64
    }

    fn get(&self, seq: u64) -> Result<Vec<u8>, BlockError> {
        usize::try_from(seq)
            .ok()
            .and_then(|i| self.as_slice().get(i))
            .cloned()
            .ok_or_else(|| {
                BlockError::msg(format!(
                    "block {seq} not in log of length {}",
                    Vec::len(self)
                ))
            })
    }

    fn append_batch(&mut self, blocks: &[Vec<u8>]) -> Result<(), BlockError> {
        self.extend_from_slice(blocks);
        Ok(())
    }
}

/// An in-memory log shared between clones; appends wake threads waiting in
/// [`BlockLog::wait_for_append`].
#[derive(Clone, Default)]
pub struct SharedMemoryLog {
    inner: Arc<(Mutex<Vec<Vec<u8>>>, Condvar)>,
}

impl SharedMemoryLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A log holding `blocks`.
    pub fn from_blocks(blocks: Vec<Vec<u8>>) -> Self {
        SharedMemoryLog {
            inner: Arc::new((Mutex::new(blocks), Condvar::new())),
        }
    }

    fn blocks(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of every block.
    pub fn to_vec(&self) -> Vec<Vec<u8>> {
        self.blocks().clone()
    }
}

impl BlockLog for SharedMemoryLog {
    fn len(&self) -> u64 {
        self.blocks().len() as u64
    }

    fn get(&self, seq: u64) -> Result<Vec<u8>, BlockError> {
        BlockLog::get(&*self.blocks(), seq)
    }

    fn append_batch(&mut self, blocks: &[Vec<u8>]) -> Result<(), BlockError> {
        self.blocks().extend_from_slice(blocks);
        self.inner.1.notify_all();
        Ok(())
    }

    fn wait_for_append(&self, known_len: u64, timeout: Duration) -> Result<u64, BlockError> {
        let deadline = Instant::now() + timeout;
        let mut g = self.blocks();
        loop {
            let now = Instant::now();
            if g.len() as u64 > known_len || now >= deadline {
                return Ok(g.len() as u64);
            }
            g = self
                .inner
                .1
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A bee can borrow its log mutably: `Bee::new(&mut log)`.
impl<T: BlockLog + ?Sized> BlockLog for &mut T {
    fn len(&self) -> u64 {
        (**self).len()
    }

    fn get(&self, seq: u64) -> Result<Vec<u8>, BlockError> {
        (**self).get(seq)
    }

    fn append_batch(&mut self, blocks: &[Vec<u8>]) -> Result<(), BlockError> {
        (**self).append_batch(blocks)
    }

    fn wait_for_append(&self, known_len: u64, timeout: Duration) -> Result<u64, BlockError> {
        (**self).wait_for_append(known_len, timeout)
    }
}
