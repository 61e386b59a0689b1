//! The data directory, as JS Vitra's CLI keeps it:
//!
//! ```text
//! <dir>/
//!   vitra.json      {"vitraConfig": 1, "pubkey": hex, "createdOplogPubkeys": [hex…], "monitor": bool,
//!                    "peers": ["HOST:PORT"…], "swarm": true, "bootstrap": ["HOST:PORT"…]}
//!                   (peers, swarm, bootstrap: how `vitra load` found the replica's source; JS ignores them)
//!   cores/          the log store root (a corestore: cores/<dk[0:2]>/<dk[2:4]>/<dk>/…)
//!   tx/<id>.json    transactions made by `call`, with results
//!   fraud/<id>.json fraud proofs found by verify/monitor
//!   vitra.lock      held by the process that has the storage open (its pid inside)
//!   server.sock     the host process's socket, while `vitra serve` runs
//! ```
//!
//! A bare JS Vitra corestore (`cores/`, `profiles/default`, no `vitra.json`) is also accepted:
//! its root is the directory itself and the database is chosen with `--key` (or found when
//! the directory holds exactly one).

use super::{io_err, CliError, Result};
use crate::database::{parse_key, Database, Options};
use crate::log::LogStore;
use serde_json::{json, Value as Json};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The config file's name.
pub const CONFIG_FILE: &str = "vitra.json";
/// The lock file's name.
pub const LOCK_FILE: &str = "vitra.lock";
/// The host socket's name.
pub const SOCKET_FILE: &str = "server.sock";

/// `vitra.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The database's key, hex.
    pub pubkey: String,
    /// Oplogs this directory created, hex.
    pub created_oplog_pubkeys: Vec<String>,
    /// Whether the host process monitors the database.
    pub monitor: bool,
    /// Peers (`HOST:PORT`) this replica syncs from (`vitra load` / `vitra sync`); written only
    /// when not empty, so a JS Vitra directory keeps its shape.
    pub peers: Vec<String>,
    /// Whether this replica finds peers on Hyperswarm (`"swarm": true`), with the DHT's
    /// bootstrap nodes (`"bootstrap"`; empty: the public DHT). Written only when swarming.
    pub swarm: Option<Vec<String>>,
}

impl Config {
    /// Reads `<dir>/vitra.json`; `None` when absent.
    pub fn read(dir: &Path) -> Result<Option<Config>> {
        let path = dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let bad = |reason: &str| CliError::BadFile {
            path: path.clone(),
            reason: reason.to_owned(),
        };
        let doc: Json = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
        // JS Vitra reads any version field; only a different explicit version is refused.
        if let Some(version) = doc.get("vitraConfig") {
            if version.as_u64() != Some(1) {
                return Err(bad("unsupported \"vitraConfig\" version (expected 1)"));
            }
        }
        let pubkey = doc
            .get("pubkey")
            .and_then(Json::as_str)
            .filter(|k| parse_key(k).is_some())
            .ok_or_else(|| bad("\"pubkey\" must be 64 hex characters"))?
            .to_owned();
        let created_oplog_pubkeys = string_list(doc.get("createdOplogPubkeys"));
        Ok(Some(Config {
            pubkey,
            created_oplog_pubkeys,
            monitor: doc.get("monitor").and_then(Json::as_bool).unwrap_or(false),
            peers: string_list(doc.get("peers")),
            swarm: (doc.get("swarm").and_then(Json::as_bool) == Some(true))
                .then(|| string_list(doc.get("bootstrap"))),
        }))
    }

    /// Writes `<dir>/vitra.json` (whole file replaced through a rename).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let mut doc = json!({
            "vitraConfig": 1,
            "pubkey": self.pubkey,
            "createdOplogPubkeys": self.created_oplog_pubkeys,
            "monitor": self.monitor,
        });
        if !self.peers.is_empty() {
            doc["peers"] = json!(self.peers);
        }
        if let Some(bootstrap) = &self.swarm {
            doc["swarm"] = json!(true);
            if !bootstrap.is_empty() {
                doc["bootstrap"] = json!(bootstrap);
            }
        }
        write_json(&dir.join(CONFIG_FILE), &doc)
    }
}

/// The strings of a JSON array (other items skipped); empty when absent.
pub(crate) fn string_list(value: Option<&Json>) -> Vec<String> {
    value
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Json::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Writes a JSON file atomically (temp file + rename).
pub fn write_json(path: &Path, doc: &Json) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(doc).unwrap_or_default() + "\n";
    std::fs::write(&tmp, text).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// The log store root of a directory: `<dir>/cores` for a data directory (JS Vitra's CLI puts
/// its corestore there), `<dir>` for a bare corestore.
pub fn store_root(dir: &Path) -> PathBuf {
    let nested = dir.join("cores");
    if nested.join("cores").is_dir() {
        return nested;
    }
    if dir.join("profiles").is_dir() || looks_like_store(&nested) {
        return dir.to_path_buf();
    }
    nested
}

/// Whether `cores` holds corestore's two-hex-digit fan-out directories.
fn looks_like_store(cores: &Path) -> bool {
    std::fs::read_dir(cores).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.len() == 2 && name.chars().all(|c| c.is_ascii_hexdigit())
        })
    })
}

/// Parses a hex public key argument.
pub fn key_arg(text: &str) -> Result<[u8; 32]> {
    parse_key(text.trim()).ok_or_else(|| CliError::BadKey {
        key: text.to_owned(),
    })
}

/// Which database of `dir` to open: `--key`, else vitra.json's, else the only database in the
/// store.
pub fn resolve_key(dir: &Path, key: Option<&str>) -> Result<[u8; 32]> {
    if let Some(k) = key {
        return key_arg(k);
    }
    if let Some(config) = Config::read(dir)? {
        return key_arg(&config.pubkey);
    }
    let found = find_databases(&store_root(dir))?;
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(CliError::NoDatabase {
            dir: dir.to_path_buf(),
            hint: "no vitra.json and no database in its cores; create one with `vitra init CONTRACT.js`"
                .into(),
        }),
        many => Err(CliError::NoDatabase {
            dir: dir.to_path_buf(),
            hint: format!(
                "it holds {} databases; choose one with --key ({})",
                many.len(),
                many.iter().map(hex::encode).collect::<Vec<_>>().join(", ")
            ),
        }),
    }
}

/// The keys of the logs in a store whose index holds a contract source.
pub fn find_databases(root: &Path) -> Result<Vec<[u8; 32]>> {
    let store = LogStore::new(root);
    let Ok(dks) = store.discovery_keys() else {
        return Ok(Vec::new());
    };
    let mut keys = Vec::new();
    for dk in dks {
        let Ok(log) = store.open_by_discovery_key(&dk) else {
            continue;
        };
        let key = log.public_key();
        drop(log);
        if let Ok(db) = Database::load(root, &key, Options::default()) {
            if db.source().is_ok() {
                keys.push(key);
            }
        }
    }
    Ok(keys)
}

/// An exclusive hold on a directory's storage (`vitra.lock`, flock), released on drop.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Takes the lock of `dir`, or says which process holds it.
    pub fn acquire(dir: &Path) -> Result<Lock> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let pid = lock_holder(dir)
                .map(|(p, _)| format!(" (pid {p})"))
                .unwrap_or_default();
            return Err(CliError::Locked {
                dir: dir.to_path_buf(),
                pid,
            });
        }
        let lock = Lock { _file: file };
        lock.set_role(dir, "")?;
        Ok(lock)
    }

    /// Records the holder's pid and what it is doing (`serve` makes clients wait for its
    /// socket), in one fixed-size write so that readers never see an empty file.
    pub fn set_role(&self, dir: &Path, role: &str) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let path = dir.join(LOCK_FILE);
        let record = format!("{:<39}\n", format!("{} {role}", std::process::id()));
        self._file
            .write_all_at(record.as_bytes(), 0)
            .map_err(io_err(&path))?;
        self._file
            .set_len(record.len() as u64)
            .map_err(io_err(&path))
    }
}

/// The pid and role written in a directory's lock file.
pub fn lock_holder(dir: &Path) -> Option<(u32, String)> {
    let text = std::fs::read_to_string(dir.join(LOCK_FILE)).ok()?;
    let mut words = text.split_whitespace();
    let pid = words.next()?.parse().ok()?;
    Some((pid, words.next().unwrap_or_default().to_owned()))
}

/// Reads a saved JSON document.
pub fn read_json(path: &Path) -> Result<Json> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    serde_json::from_str(&text).map_err(|e| CliError::BadFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The `.json` files of a sub-directory, sorted by name, as (id, path).
pub fn json_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(id) = name.strip_suffix(".json") {
            out.push((id.to_owned(), path));
        }
    }
    out.sort();
    Ok(out)
}
