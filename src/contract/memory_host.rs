//! An in-memory [`ContractHost`]: an index on a `BTreeMap` with Hyperbee's key encoding and
//! block numbering, its history (for checkouts), and in-memory oplogs.
//!
//! It is a complete host, not a stand-in: keys are ordered as Hyperbee orders them (path
//! segments joined by `0x00`, compared as bytes), every write takes the next block number
//! (block 0 is Hyperbee's header), `checkout(version)` gives the index as it was before block
//! `version`, and shallow listings follow JS Vitra 0.1.3 (without its U+00FF cut-off).

use super::host::{path_segments, ContractHost, HostError, IndexEntry, ListEntry, ListOptions};
use super::tx::Change;
use crate::codec::Value;
use std::collections::BTreeMap;

/// One write in the index history.
#[derive(Debug, Clone)]
struct Write {
    seq: u64,
    key: Vec<u8>,
    value: Option<Value>,
}

/// An in-memory index, oplogs and writer identity.
#[derive(Debug, Clone, Default)]
pub struct MemoryHost {
    /// Current state: Hyperbee key bytes → (block number, value).
    entries: BTreeMap<Vec<u8>, (u64, Value)>,
    /// Every write in block order.
    history: Vec<Write>,
    /// The next block number (the index length).
    next_seq: u64,
    /// Oplogs by hex public key, each a list of operations.
    oplogs: BTreeMap<String, Vec<Value>>,
    /// Active participants, in the order they were added.
    participants: Vec<String>,
    /// The local writer's oplog, if any.
    local: Option<String>,
    /// The database key, if set.
    index_key: Option<String>,
}

/// The Hyperbee key of a path: non-empty segments joined by `0x00`.
pub fn path_to_key(path: &str) -> Vec<u8> {
    path_segments(path)
        .collect::<Vec<_>>()
        .join("\0")
        .into_bytes()
}

fn key_segments(key: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(key)
        .split('\0')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl MemoryHost {
    /// An empty index (length 1: the Hyperbee header) with no oplogs and no local writer.
    pub fn new() -> Self {
        MemoryHost {
            next_seq: 1,
            ..Default::default()
        }
    }

    /// Makes `pubkey` (hex) the local writer and an active participant with an empty oplog.
    pub fn with_local_writer(mut self, pubkey: &str) -> Self {
        self.add_oplog(pubkey);
        self.local = Some(pubkey.to_owned());
        self
    }

    /// Sets the database (index log) key that `index.pubkey` shows.
    pub fn with_index_pubkey(mut self, pubkey: &str) -> Self {
        self.index_key = Some(pubkey.to_owned());
        self
    }

    /// Adds an active participant oplog (empty unless it already exists).
    pub fn add_oplog(&mut self, pubkey: &str) {
        self.oplogs.entry(pubkey.to_owned()).or_default();
        if !self.participants.iter().any(|p| p == pubkey) {
            self.participants.push(pubkey.to_owned());
        }
    }

    /// Appends operations to an oplog (adding it as a participant if new); returns the seq of
    /// the first one.
    pub fn append_ops(&mut self, pubkey: &str, ops: impl IntoIterator<Item = Value>) -> u64 {
        self.add_oplog(pubkey);
        let log = self.oplogs.entry(pubkey.to_owned()).or_default();
        let first = log.len() as u64;
        log.extend(ops);
        first
    }

    /// The index length (next block number).
    pub fn version(&self) -> u64 {
        self.next_seq
    }

    /// Writes `value` at `path`; returns its block number.
    pub fn put(&mut self, path: &str, value: Value) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let key = path_to_key(path);
        self.history.push(Write {
            seq,
            key: key.clone(),
            value: Some(value.clone()),
        });
        self.entries.insert(key, (seq, value));
        seq
    }

    /// Deletes `path` (a delete takes a block even when the key is absent, as in Hyperbee);
    /// returns its block number.
    pub fn del(&mut self, path: &str) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let key = path_to_key(path);
        self.history.push(Write {
            seq,
            key: key.clone(),
            value: None,
        });
        self.entries.remove(&key);
        seq
    }

    /// Writes a list of changes in order, as one executor batch would (after its ack).
    pub fn apply_changes(&mut self, changes: &[Change]) {
        for c in changes {
            match c {
                Change::Put { path, value } => {
                    self.put(path, value.clone());
                }
                Change::Delete { path } => {
                    self.del(path);
                }
            }
        }
    }

    /// The index as it was at length `version` (every block `< version`), with the same
    /// oplogs and writer.
    pub fn checkout(&self, version: u64) -> MemoryHost {
        let mut at = MemoryHost {
            oplogs: self.oplogs.clone(),
            participants: self.participants.clone(),
            local: self.local.clone(),
            index_key: self.index_key.clone(),
            ..MemoryHost::new()
        };
        for w in self.history.iter().take_while(|w| w.seq < version) {
            match &w.value {
                Some(v) => {
                    at.entries.insert(w.key.clone(), (w.seq, v.clone()));
                }
                None => {
                    at.entries.remove(&w.key);
                }
            }
            at.history.push(w.clone());
            at.next_seq = w.seq + 1;
        }
        at
    }

    /// The full shallow listing of `prefix`, in key order.
    fn shallow_list(&self, prefix: &str) -> Vec<ListEntry> {
        let base: Vec<&str> = path_segments(prefix).collect();
        let mut start = base.join("\0").into_bytes();
        if !base.is_empty() {
            start.push(0);
        }
        let mut out: Vec<ListEntry> = Vec::new();
        for (key, (seq, value)) in self.entries.range(start.clone()..) {
            if !key.starts_with(&start) {
                break;
            }
            let segs = key_segments(key);
            if segs.len() <= base.len() {
                continue;
            }
            let child = &segs[..=base.len()];
            let path = format!("/{}", child.join("/"));
            let name = child[base.len()].clone();
            if segs.len() == base.len() + 1 {
                out.push(ListEntry {
                    container: false,
                    seq: Some(*seq),
                    name,
                    path,
                    value: value.clone(),
                });
            } else {
                match out.last_mut() {
                    Some(last) if last.path == path => last.container = true,
                    _ => out.push(ListEntry {
                        container: true,
                        seq: None,
                        name,
                        path,
                        value: Value::Undefined,
                    }),
                }
            }
        }
        out
    }

    fn oplog(&self, pubkey: &str) -> Result<&Vec<Value>, HostError> {
        if !self.participants.iter().any(|p| p == pubkey) {
            return Err(HostError::Refused(format!(
                "OpLog is not a participant (key={pubkey})"
            )));
        }
        self.oplogs
            .get(pubkey)
            .ok_or_else(|| HostError::Refused(format!("OpLog is not a participant (key={pubkey})")))
    }
}

impl ContractHost for MemoryHost {
    fn get(&self, path: &str) -> Result<Option<IndexEntry>, HostError> {
        let key = path_to_key(path);
        Ok(self.entries.get(&key).map(|(seq, value)| {
            let segs = key_segments(&key);
            IndexEntry {
                seq: *seq,
                name: segs.last().cloned().unwrap_or_default(),
                path: format!("/{}", segs.join("/")),
                value: value.clone(),
            }
        }))
    }

    fn list(&self, prefix: &str, opts: &ListOptions) -> Result<Vec<ListEntry>, HostError> {
        Ok(opts.apply(self.shallow_list(prefix)))
    }

    fn local_oplog(&self) -> Option<String> {
        self.local.clone()
    }

    fn index_pubkey(&self) -> Option<String> {
        self.index_key.clone()
    }

    fn oplog_length(&self, pubkey: &str) -> Result<u64, HostError> {
        Ok(self.oplog(pubkey)?.len() as u64)
    }

    fn oplog_get(&self, pubkey: &str, seq: u64) -> Result<Value, HostError> {
        let log = self.oplog(pubkey)?;
        usize::try_from(seq)
            .ok()
            .and_then(|i| log.get(i))
            .cloned()
            .ok_or_else(|| {
                HostError::Refused(format!(
                    "Block {seq} is not available in oplog {pubkey} (length {})",
                    log.len()
                ))
            })
    }

    fn list_oplogs(&self) -> Result<Vec<String>, HostError> {
        Ok(self.participants.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The shallow listing computed the slow, obvious way: every live path, its segments
    /// under `prefix`, grouped by first child segment, ordered by Hyperbee key bytes.
    fn reference_list(live: &BTreeMap<String, (u64, Value)>, prefix: &str) -> Vec<ListEntry> {
        let base: Vec<&str> = path_segments(prefix).collect();
        let mut by_child: BTreeMap<Vec<u8>, ListEntry> = BTreeMap::new();
        for (path, (seq, value)) in live {
            let segs: Vec<&str> = path_segments(path).collect();
            if segs.len() <= base.len() || segs[..base.len()] != base[..] {
                continue;
            }
            let child = &segs[..=base.len()];
            let key = child.join("\0").into_bytes();
            let e = by_child.entry(key).or_insert_with(|| ListEntry {
                container: false,
                seq: None,
                name: child[base.len()].to_owned(),
                path: format!("/{}", child.join("/")),
                value: Value::Undefined,
            });
            if segs.len() == base.len() + 1 {
                e.seq = Some(*seq);
                e.value = value.clone();
            } else {
                e.container = true;
            }
        }
        by_child.into_values().collect()
    }

    proptest! {
        #[test]
        fn shallow_list_matches_a_reference_model(
            writes in proptest::collection::vec(
                (proptest::collection::vec(prop_oneof!["a", "b", "ab", "a b", "Ω", "z"], 1..4), any::<bool>()),
                0..40,
            ),
            prefix in proptest::collection::vec(prop_oneof!["a", "b", "ab", "Ω"], 0..3),
        ) {
            let mut host = MemoryHost::new();
            let mut live: BTreeMap<String, (u64, Value)> = BTreeMap::new();
            for (i, (segs, is_put)) in writes.iter().enumerate() {
                let path = format!("/{}", segs.join("/"));
                if *is_put {
                    let seq = host.put(&path, Value::from(i as u32));
                    live.insert(path, (seq, Value::from(i as u32)));
                } else {
                    host.del(&path);
                    live.remove(&path);
                }
            }
            let prefix = format!("/{}", prefix.join("/"));
            let ours = host.list(&prefix, &ListOptions::default()).unwrap();
            prop_assert_eq!(ours, reference_list(&live, &prefix));
        }
    }

    fn names(v: &[ListEntry]) -> Vec<(String, bool)> {
        v.iter().map(|e| (e.path.clone(), e.container)).collect()
    }

    #[test]
    fn shallow_list_groups_deeper_keys_into_containers() {
        let mut h = MemoryHost::new();
        h.put("/.sys/contract/source", "x".into());
        h.put("/.sys/inputs/ab", Value::Null);
        h.put("/zoo/b", 1.into());
        h.put("/zoo/a", 2.into());
        h.put("/counter", 3.into());
        h.put("/counter/deeper", 4.into());
        h.put("/Ω", 5.into());
        let root = h.list("/", &ListOptions::default()).unwrap();
        assert_eq!(
            names(&root),
            [
                ("/.sys".to_string(), true),
                ("/counter".to_string(), true),
                ("/zoo".to_string(), true),
                ("/Ω".to_string(), false),
            ]
        );
        // A leaf with children keeps its seq and value.
        assert_eq!(root[1].seq, Some(5));
        assert_eq!(root[1].value, Value::from(3));
        let zoo = h.list("zoo/", &ListOptions::default()).unwrap();
        assert_eq!(
            names(&zoo),
            [("/zoo/a".to_string(), false), ("/zoo/b".to_string(), false)]
        );
        assert!(h
            .list("/nothing", &ListOptions::default())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn checkout_sees_the_index_before_a_block() {
        let mut h = MemoryHost::new();
        let s1 = h.put("/a", 1.into());
        h.put("/a", 2.into());
        h.del("/a");
        assert!(h.get("/a").unwrap().is_none());
        let at = h.checkout(s1 + 1);
        let e = at.get("a").unwrap().unwrap();
        assert_eq!(
            (e.seq, e.value, e.path, e.name),
            (1, Value::from(1), "/a".into(), "a".into())
        );
        assert_eq!(
            h.checkout(s1 + 2).get("/a").unwrap().unwrap().value,
            Value::from(2)
        );
        assert!(h.checkout(1).get("/a").unwrap().is_none());
    }

    #[test]
    fn oplogs_refuse_unknown_keys_and_blocks() {
        let mut h = MemoryHost::new().with_local_writer("aa");
        h.append_ops("aa", [Value::from(7)]);
        assert_eq!(h.oplog_length("aa").unwrap(), 1);
        assert_eq!(h.oplog_get("aa", 0).unwrap(), Value::from(7));
        assert!(matches!(h.oplog_get("aa", 1), Err(HostError::Refused(_))));
        assert!(matches!(h.oplog_length("bb"), Err(HostError::Refused(_))));
        assert_eq!(h.list_oplogs().unwrap(), ["aa"]);
    }
}
