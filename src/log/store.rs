//! Many logs in one directory, laid out as corestore does it:
//!
//! ```text
//! <root>/
//!   profiles/default                     32-byte master seed (JS Vitra 0.1.3 / corestore 6)
//!   cores/<dk[0:2]>/<dk[2:4]>/<dk-hex>/  one log per discovery key (64 lowercase hex)
//!     oplog tree bitfield data           JS Hypercore 10 files
//!     heads                              our signed-head history (120-byte records)
//! ```
//!
//! `dk` is the log's discovery key in lowercase hex, so `cores/45/ba/45ba52…` holds the log
//! whose discovery key starts `45ba`. JS Hypercore ignores the `heads` file.

use std::path::{Path, PathBuf};

use super::crypto::{discovery_key, KeyPair};
use super::{legacy, Log, LogError, OpenOptions, Result, Storage};

/// A directory of logs (the database's cores).
#[derive(Debug, Clone)]
pub struct LogStore {
    root: PathBuf,
}

impl LogStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LogStore { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of the log with this discovery key.
    pub fn dir_for_discovery_key(&self, dk: &[u8; 32]) -> PathBuf {
        let h = hex::encode(dk);
        self.root
            .join("cores")
            .join(&h[0..2])
            .join(&h[2..4])
            .join(&h)
    }

    /// The storage of the log with this public key.
    pub fn storage_for(&self, public_key: &[u8; 32]) -> Storage {
        Storage::Disk(self.dir_for_discovery_key(&discovery_key(public_key)))
    }

    /// Creates a new log (fresh key pair when `None`).
    pub fn create(&self, key_pair: Option<KeyPair>) -> Result<Log> {
        let kp = match key_pair {
            Some(kp) => kp,
            None => KeyPair::generate().map_err(|e| LogError::Random(e.to_string()))?,
        };
        Log::create_with_key_pair(self.storage_for(&kp.public_key), kp)
    }

    /// Opens the log with this public key (writable when its secret key is stored, given, or
    /// derivable from `profiles/default` as JS Vitra 0.1.3 derived it).
    pub fn open(&self, public_key: &[u8; 32], key_pair: Option<KeyPair>) -> Result<Log> {
        let storage = self.storage_for(public_key);
        if let Some(kp) = key_pair {
            if &kp.public_key != public_key {
                return Err(LogError::KeyMismatch {
                    expected: hex::encode(public_key),
                    stored: hex::encode(kp.public_key),
                });
            }
            return Log::open(
                storage,
                OpenOptions {
                    key_pair: Some(kp),
                    ..Default::default()
                },
            );
        }
        let log = match self.profile()? {
            Some(master) => legacy::open_core(storage, &master)?,
            None => Log::open(storage, OpenOptions::default())?,
        };
        if &log.public_key() != public_key {
            return Err(LogError::KeyMismatch {
                expected: hex::encode(public_key),
                stored: hex::encode(log.public_key()),
            });
        }
        Ok(log)
    }

    /// Whether a log with this public key is stored.
    pub fn contains(&self, public_key: &[u8; 32]) -> bool {
        self.storage_for(public_key).exists()
    }

    /// The master seed in `profiles/default`, if present.
    pub fn profile(&self) -> Result<Option<[u8; 32]>> {
        if !self.root.join("profiles").join("default").exists() {
            return Ok(None);
        }
        legacy::read_profile(&self.root).map(Some)
    }

    /// Discovery keys of every stored log.
    pub fn discovery_keys(&self) -> Result<Vec<[u8; 32]>> {
        let mut out = Vec::new();
        let cores = self.root.join("cores");
        if !cores.exists() {
            return Ok(out);
        }
        let read = |p: &Path| -> Result<Vec<PathBuf>> {
            let rd = std::fs::read_dir(p).map_err(|source| LogError::Io {
                path: p.to_path_buf(),
                op: "list",
                source,
            })?;
            let mut v = Vec::new();
            for e in rd {
                let e = e.map_err(|source| LogError::Io {
                    path: p.to_path_buf(),
                    op: "list",
                    source,
                })?;
                v.push(e.path());
            }
            Ok(v)
        };
        for a in read(&cores)? {
            for b in read(&a)? {
                for c in read(&b)? {
                    let name = c.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                    if let Ok(bytes) = hex::decode(name) {
                        if let Ok(dk) = <[u8; 32]>::try_from(bytes.as_slice()) {
                            if Storage::Disk(c.clone()).exists() {
                                out.push(dk);
                            }
                        }
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Opens the log stored under a discovery key (its key is read from its header).
    pub fn open_by_discovery_key(&self, dk: &[u8; 32]) -> Result<Log> {
        let storage = Storage::Disk(self.dir_for_discovery_key(dk));
        match self.profile()? {
            Some(master) => legacy::open_core(storage, &master),
            None => Log::open(storage, OpenOptions::default()),
        }
    }
}
