//! The host seam: what a contract may ask of the database that runs it.
//!
//! A [`ContractHost`] answers the contract's reads synchronously: index reads (`index.get`,
//! `index.list`, served at whatever index version the host was built for, so a monitor
//! replays against a checkout), the oplogs (`oplog.getLength()`, `oplog.get(seq)`,
//! `listOplogs()`) and the identity of the local writer (`isWriter`, `oplog.pubkey`).
//!
//! The runtime enforces restricted mode itself: during `process` and `apply` it only forwards
//! index reads, so a host never needs to know which phase is running.

use crate::codec::{Object, Value};
use std::fmt;

/// Why a host could not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostError {
    /// The request is wrong (an oplog that is not a participant, a block past the end): the
    /// contract sees a rejected promise with `Error(message)`, as JS Vitra reports it.
    Refused(String),
    /// The host itself failed (storage, I/O): the whole call is abandoned with
    /// [`ContractError::Host`](super::ContractError::Host), whatever the contract does with
    /// the error, so a broken disk never becomes a recorded contract failure.
    Failed(String),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Refused(m) | HostError::Failed(m) => f.write_str(m),
        }
    }
}

/// One index entry as `index.get(path)` returns it: `{seq, container: false, name, path, value}`.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexEntry {
    /// The index block that wrote this entry.
    pub seq: u64,
    /// The entry's path, normalised (`/a/b`).
    pub path: String,
    /// The last path segment.
    pub name: String,
    /// The stored value.
    pub value: Value,
}

impl IndexEntry {
    /// The JS object `index.get` resolves to, keys in JS Vitra's order.
    pub fn to_value(&self) -> Value {
        Value::Object(
            Object::new()
                .with("seq", Value::Number(self.seq as f64))
                .with("container", false)
                .with("name", self.name.as_str())
                .with("path", self.path.as_str())
                .with("value", self.value.clone()),
        )
    }

    /// The same object as JSON (`{"seq", "container", "name", "path", "value"}`), in vitra's
    /// JSON convention for values.
    pub fn to_json(&self) -> serde_json::Value {
        crate::codec::to_json(&self.to_value())
    }
}

/// One entry of a shallow listing (`index.list(prefix)`), as JS Vitra 0.1.3 builds it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListEntry {
    /// Whether deeper keys exist under this path. A leaf that also has children is one entry
    /// with `container: true` and its own `seq` and `value`.
    pub container: bool,
    /// The index block of the leaf; `None` for a pure container.
    pub seq: Option<u64>,
    /// The last path segment.
    pub name: String,
    /// The full path (`/a/b`).
    pub path: String,
    /// The leaf's value; `Undefined` for a pure container.
    pub value: Value,
}

impl ListEntry {
    /// The JS object `index.list` yields: `{container, seq, name, path, value}`.
    pub fn to_value(&self) -> Value {
        Value::Object(
            Object::new()
                .with("container", self.container)
                .with(
                    "seq",
                    self.seq
                        .map_or(Value::Undefined, |s| Value::Number(s as f64)),
                )
                .with("name", self.name.as_str())
                .with("path", self.path.as_str())
                .with("value", self.value.clone()),
        )
    }
}

/// The options of `index.list(prefix, opts)`, as JS Vitra 0.1.3 reads them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// List in reverse key order.
    pub reverse: bool,
    /// Skip this many entries (0 = none).
    pub offset: usize,
    /// Return at most this many entries (0 = no limit, as JS Vitra treats a falsy limit).
    pub limit: usize,
}

impl ListOptions {
    /// Applies `reverse`, then `offset` and `limit`, to a complete listing in key order:
    /// what a host that builds the whole listing first should return.
    pub fn apply(&self, mut entries: Vec<ListEntry>) -> Vec<ListEntry> {
        if self.reverse {
            entries.reverse();
        }
        let start = self.offset.min(entries.len());
        let mut entries = entries.split_off(start);
        if self.limit > 0 {
            entries.truncate(self.limit);
        }
        entries
    }
}

/// What the contract runtime reads from the database. Every method is synchronous.
///
/// Implementations: the database's Hyperbee-backed host (at the head for calls and the
/// executor, at a checkout for a monitor's replay) and [`MemoryHost`](super::MemoryHost).
pub trait ContractHost {
    /// The entry at `path` (any form: `a/b`, `/a/b/`), or `None`.
    fn get(&self, path: &str) -> Result<Option<IndexEntry>, HostError>;

    /// The shallow listing of `prefix` (direct children in key order, one container entry per
    /// deeper child segment), with `opts` applied.
    fn list(&self, prefix: &str, opts: &ListOptions) -> Result<Vec<ListEntry>, HostError>;

    /// The local oplog's public key (64 lowercase hex) when this instance is a writer. Decides
    /// `isWriter` and `oplog` in the `contract` module; read once when the contract loads.
    fn local_oplog(&self) -> Option<String>;

    /// The database's (index log's) public key, hex: `index.pubkey` in the `contract`
    /// module. Read once when the contract loads. The default is none.
    fn index_pubkey(&self) -> Option<String> {
        None
    }

    /// The length of the participant oplog `pubkey` (hex).
    fn oplog_length(&self, pubkey: &str) -> Result<u64, HostError>;

    /// Operation `seq` of the participant oplog `pubkey` (hex), decoded.
    fn oplog_get(&self, pubkey: &str, seq: u64) -> Result<Value, HostError>;

    /// The public keys (hex) of the active participant oplogs.
    fn list_oplogs(&self) -> Result<Vec<String>, HostError>;
}

/// The Hyperbee key segments of a path: its non-empty `/`-separated parts.
pub fn path_segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(name: &str) -> ListEntry {
        ListEntry {
            container: false,
            seq: Some(1),
            name: name.into(),
            path: format!("/{name}"),
            value: Value::Null,
        }
    }

    #[test]
    fn list_options_reverse_then_slice() {
        let all: Vec<ListEntry> = ["a", "b", "c", "d"].iter().map(|n| leaf(n)).collect();
        let names = |v: Vec<ListEntry>| v.into_iter().map(|e| e.name).collect::<Vec<_>>();
        let o = ListOptions {
            reverse: true,
            offset: 1,
            limit: 2,
        };
        assert_eq!(names(o.apply(all.clone())), ["c", "b"]);
        let o = ListOptions {
            offset: 9,
            ..Default::default()
        };
        assert!(o.apply(all.clone()).is_empty());
        assert_eq!(names(ListOptions::default().apply(all)).len(), 4);
    }
}
