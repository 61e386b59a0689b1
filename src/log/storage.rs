//! Where a log's files live: a directory on disk (positioned reads and writes with `std::fs`)
//! or memory (shared buffers, so a log can be reopened from the same [`MemoryStorage`]).
//! Every I/O error names the file it happened on.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::LogError;

/// The storage of one log: a directory or a set of in-memory files.
#[derive(Debug, Clone)]
pub enum Storage {
    /// Files `oplog`, `tree`, `bitfield`, `data` (and our `heads`) in this directory.
    Disk(PathBuf),
    /// In-memory files.
    Memory(MemoryStorage),
}

/// In-memory files keyed by name; clones share the same files.
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    files: Arc<Mutex<HashMap<String, SharedFile>>>,
}

/// One in-memory file, shared between handles.
type SharedFile = Arc<Mutex<Vec<u8>>>;

impl MemoryStorage {
    /// An empty in-memory storage.
    pub fn new() -> Self {
        Self::default()
    }

    fn file(&self, name: &str) -> Arc<Mutex<Vec<u8>>> {
        let mut files = match self.files.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        files.entry(name.to_string()).or_default().clone()
    }

    /// A copy of one file's bytes (empty when absent).
    pub fn snapshot(&self, name: &str) -> Vec<u8> {
        let f = self.file(name);
        let g = match f.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.clone()
    }
}

enum Backing {
    Disk(File),
    Memory(Arc<Mutex<Vec<u8>>>),
}

/// One open file of a log.
pub struct StoreFile {
    backing: Backing,
    /// Path (or `memory:<name>`) for error messages.
    pub path: PathBuf,
}

impl std::fmt::Debug for StoreFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreFile({})", self.path.display())
    }
}

fn io_err(path: &Path, op: &'static str, source: std::io::Error) -> LogError {
    LogError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

impl Storage {
    /// Opens (creating if missing) the file `name`.
    pub fn open_file(&self, name: &str) -> Result<StoreFile, LogError> {
        match self {
            Storage::Disk(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| io_err(dir, "create directory", e))?;
                let path = dir.join(name);
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)
                    .map_err(|e| io_err(&path, "open", e))?;
                Ok(StoreFile {
                    backing: Backing::Disk(f),
                    path,
                })
            }
            Storage::Memory(m) => Ok(StoreFile {
                backing: Backing::Memory(m.file(name)),
                path: PathBuf::from(format!("memory:{name}")),
            }),
        }
    }

    /// Path (or `memory:<name>`) of file `name`, for messages.
    pub fn path_of(&self, name: &str) -> PathBuf {
        match self {
            Storage::Disk(dir) => dir.join(name),
            Storage::Memory(_) => PathBuf::from(format!("memory:{name}")),
        }
    }

    /// Whether a log is stored here (an `oplog` file exists and is not empty).
    pub fn exists(&self) -> bool {
        match self {
            Storage::Disk(dir) => std::fs::metadata(dir.join("oplog"))
                .map(|m| m.len() > 0)
                .unwrap_or(false),
            Storage::Memory(m) => !m.snapshot("oplog").is_empty(),
        }
    }
}

#[cfg(unix)]
fn pread(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    f.read_exact_at(buf, offset)
}

#[cfg(unix)]
fn pwrite(f: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    f.write_all_at(buf, offset)
}

#[cfg(windows)]
fn pread(f: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = f.seek_read(buf, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(windows)]
fn pwrite(f: &File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = f.seek_write(buf, offset)?;
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

fn lock(m: &Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl StoreFile {
    /// Current size in bytes.
    pub fn len(&self) -> Result<u64, LogError> {
        match &self.backing {
            Backing::Disk(f) => f
                .metadata()
                .map(|m| m.len())
                .map_err(|e| io_err(&self.path, "stat", e)),
            Backing::Memory(m) => Ok(lock(m).len() as u64),
        }
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> Result<bool, LogError> {
        Ok(self.len()? == 0)
    }

    /// Reads exactly `len` bytes at `offset`; `None` when the file is shorter.
    pub fn read_at(&self, offset: u64, len: usize) -> Result<Option<Vec<u8>>, LogError> {
        let end = offset.checked_add(len as u64);
        match &self.backing {
            Backing::Disk(f) => {
                let size = self.len()?;
                if end.is_none_or(|e| e > size) {
                    return Ok(None);
                }
                let mut buf = vec![0u8; len];
                pread(f, &mut buf, offset).map_err(|e| io_err(&self.path, "read", e))?;
                Ok(Some(buf))
            }
            Backing::Memory(m) => {
                let g = lock(m);
                let (Ok(s), Some(Ok(e))) = (usize::try_from(offset), end.map(usize::try_from))
                else {
                    return Ok(None);
                };
                Ok(g.get(s..e).map(|b| b.to_vec()))
            }
        }
    }

    /// Reads the whole file.
    pub fn read_all(&self) -> Result<Vec<u8>, LogError> {
        let len = self.len()?;
        let len = usize::try_from(len).map_err(|_| LogError::Corrupt {
            path: self.path.clone(),
            detail: "file too large to read".into(),
        })?;
        Ok(self.read_at(0, len)?.unwrap_or_default())
    }

    /// Writes `buf` at `offset`, growing the file as needed.
    pub fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), LogError> {
        match &self.backing {
            Backing::Disk(f) => pwrite(f, buf, offset).map_err(|e| io_err(&self.path, "write", e)),
            Backing::Memory(m) => {
                let mut g = lock(m);
                let s = offset as usize;
                let e = s + buf.len();
                if g.len() < e {
                    g.resize(e, 0);
                }
                g[s..e].copy_from_slice(buf);
                Ok(())
            }
        }
    }

    /// Sets the file size.
    pub fn truncate(&self, len: u64) -> Result<(), LogError> {
        match &self.backing {
            Backing::Disk(f) => f
                .set_len(len)
                .map_err(|e| io_err(&self.path, "truncate", e)),
            Backing::Memory(m) => {
                lock(m).resize(len as usize, 0);
                Ok(())
            }
        }
    }

    /// Makes written data durable (`fdatasync`).
    pub fn sync(&self) -> Result<(), LogError> {
        match &self.backing {
            Backing::Disk(f) => f.sync_data().map_err(|e| io_err(&self.path, "sync", e)),
            Backing::Memory(_) => Ok(()),
        }
    }
}

/// Makes the written data of several files durable, syncing disk files at the same time (one
/// thread each but the last), so the waits for the disk overlap instead of adding up. Every
/// file is synced even when one fails; the first error is returned.
pub fn sync_together(files: &[&StoreFile]) -> Result<(), LogError> {
    let disk: Vec<&StoreFile> = files
        .iter()
        .copied()
        .filter(|f| matches!(f.backing, Backing::Disk(_)))
        .collect();
    let Some((last, others)) = disk.split_last() else {
        return Ok(());
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = others
            .iter()
            .map(|file| scope.spawn(move || file.sync()))
            .collect();
        let mut result = last.sync();
        for handle in handles {
            // A panic in a sync thread is a bug: it goes on in this thread.
            let synced = handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            if result.is_ok() {
                result = synced;
            }
        }
        result
    })
}
