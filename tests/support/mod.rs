//! Shared helpers for integration tests: running the JS reference peers in `compat-tests/`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod files;
pub mod node;

/// The `fixtures/` directory of this checkout.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Runs `node compat-tests/<script> args...` and parses its stdout as JSON.
pub fn node_json(script: &str, args: &[&str], timeout: Duration) -> serde_json::Value {
    let stdout = node::run(script, args, None, timeout);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("JS side ({script}) printed invalid JSON ({e}): {stdout:.200}"))
}

/// A small deterministic PRNG (SplitMix64) so generated cases replay from their seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// Copies `fixtures/js-vitra/<name>` into a fresh temporary directory (tests must never
/// write to the fixtures).
pub fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    files::copy_dir(&fixtures_dir().join("js-vitra").join(name), dir.path());
    dir
}

/// The manifest of a JS Vitra fixture.
pub fn manifest(name: &str) -> serde_json::Value {
    let path = fixtures_dir()
        .join("js-vitra")
        .join(name)
        .join("manifest.json");
    serde_json::from_slice(&std::fs::read(&path).expect("manifest")).expect("manifest json")
}

/// The recorded blocks of a JS Vitra fixture.
pub fn blocks(name: &str) -> serde_json::Value {
    let path = fixtures_dir()
        .join("js-vitra")
        .join(name)
        .join("blocks.json");
    serde_json::from_slice(&std::fs::read(&path).expect("blocks")).expect("blocks json")
}

/// A 32-byte key from hex.
pub fn key(hex_key: &str) -> [u8; 32] {
    let mut k = [0u8; 32];
    hex::decode_to_slice(hex_key, &mut k).expect("64 hex characters");
    k
}
