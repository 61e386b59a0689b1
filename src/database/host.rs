//! The contract host of a database: index reads from a bee snapshot (the head for calls and
//! the executor, a checkout for a monitor's replay), oplog reads from the local logs.

use super::index_log::IndexLog;
use crate::bee::{path_to_key, ListOptions as BeeListOptions, Snapshot};
use crate::codec::{self, Value};
use crate::contract::{ContractHost, HostError, IndexEntry, ListEntry, ListOptions};
use crate::log::Log;
use std::collections::BTreeMap;

/// What a contract sees of a database at one index version.
pub(crate) struct DbHost<'a> {
    pub index_key: [u8; 32],
    pub index: Snapshot<'a, IndexLog>,
    pub oplogs: &'a BTreeMap<[u8; 32], Log>,
    pub participants: &'a [[u8; 32]],
    pub local_oplog: Option<[u8; 32]>,
}

fn failed(e: impl std::fmt::Display) -> HostError {
    HostError::Failed(e.to_string())
}

/// The last segment of a path.
pub(crate) fn path_name(path: &str) -> &str {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
}

/// `/a/b` from any form of a path (`a/b`, `/a/b/`).
pub(crate) fn normalize_path(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    format!("/{}", segments.join("/"))
}

impl DbHost<'_> {
    fn participant(&self, pubkey: &str) -> Result<&Log, HostError> {
        let key = parse_key(pubkey)
            .ok_or_else(|| HostError::Refused(format!("Invalid oplog key: {pubkey}")))?;
        if !self.participants.contains(&key) {
            return Err(HostError::Refused(format!(
                "Oplog is not a participant: {pubkey}"
            )));
        }
        self.oplogs
            .get(&key)
            .ok_or_else(|| HostError::Refused(format!("Oplog not available: {pubkey}")))
    }
}

/// Parses 64 hex characters into a key.
pub(crate) fn parse_key(hex_key: &str) -> Option<[u8; 32]> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(hex_key, &mut key).ok()?;
    Some(key)
}

impl ContractHost for DbHost<'_> {
    fn get(&self, path: &str) -> Result<Option<IndexEntry>, HostError> {
        let path = normalize_path(path);
        let Some(entry) = self.index.get(&path_to_key(&path)).map_err(failed)? else {
            return Ok(None);
        };
        let value = entry.decode_value().map_err(failed)?;
        Ok(Some(IndexEntry {
            seq: entry.seq,
            name: path_name(&path).to_owned(),
            path,
            value,
        }))
    }

    fn list(&self, prefix: &str, opts: &ListOptions) -> Result<Vec<ListEntry>, HostError> {
        let bee_opts = BeeListOptions {
            reverse: opts.reverse,
            offset: (opts.offset > 0).then_some(opts.offset),
            limit: (opts.limit > 0).then_some(opts.limit),
        };
        let entries = self
            .index
            .list_with(&normalize_path(prefix), &bee_opts)
            .map_err(failed)?;
        entries
            .into_iter()
            .map(|e| {
                let value = if e.seq.is_some() {
                    e.decode_value().map_err(failed)?
                } else {
                    Value::Undefined
                };
                Ok(ListEntry {
                    container: e.container,
                    seq: e.seq,
                    name: e.name,
                    path: e.path,
                    value,
                })
            })
            .collect()
    }

    fn local_oplog(&self) -> Option<String> {
        self.local_oplog.map(hex::encode)
    }

    fn index_pubkey(&self) -> Option<String> {
        Some(hex::encode(self.index_key))
    }

    fn oplog_length(&self, pubkey: &str) -> Result<u64, HostError> {
        Ok(self.participant(pubkey)?.len())
    }

    fn oplog_get(&self, pubkey: &str, seq: u64) -> Result<Value, HostError> {
        let log = self.participant(pubkey)?;
        match log.get(seq).map_err(failed)? {
            Some(bytes) => codec::decode(&bytes)
                .map_err(|e| HostError::Refused(format!("Operation {seq} is malformed: {e}"))),
            None => Err(HostError::Refused(format!(
                "Operation {seq} of oplog {pubkey} is not available"
            ))),
        }
    }

    fn list_oplogs(&self) -> Result<Vec<String>, HostError> {
        Ok(self.participants.iter().map(hex::encode).collect())
    }
}
