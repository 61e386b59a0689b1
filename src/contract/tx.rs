//! The `tx` transactor of `apply(tx, op, ack)`: queued actions keyed by normalised path, and
//! their conversion into the sorted list of index changes (VITRA-FORMAT.md section 6).
//!
//! Messages of refused actions are JS Vitra 0.1.3's own, because they end up in acks
//! (`"Error: Cannot modify values with /.sys/ prefix"`).

use crate::codec::{sort_by_locale, Object, Value};
use std::collections::HashMap;

/// Where the contract source lives in the index.
pub const CONTRACT_SOURCE_PATH: &str = "/.sys/contract/source";
/// Where participant declarations live in the index.
pub const PARTICIPANT_PATH_PREFIX: &str = "/.sys/inputs/";

/// One queued action of a transactor.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `tx.put(path, value)`.
    Put(Value),
    /// `tx.delete(path)`.
    Delete,
    /// `tx.addOplog({pubkey})`.
    AddOplog(String),
    /// `tx.removeOplog({pubkey})`.
    RemoveOplog(String),
    /// `tx.setContractSource({code})`.
    SetContractSource(String),
}

impl Action {
    /// What `tx.get(path)` returns for this action: `{type, value}` as 0.1.3 stores it.
    pub fn to_value(&self) -> Value {
        let o = Object::new();
        Value::Object(match self {
            Action::Put(v) => o.with("type", "put").with("value", v.clone()),
            Action::Delete => o.with("type", "del"),
            Action::AddOplog(k) => o
                .with("type", "addOplog")
                .with("value", Object::new().with("pubkey", k.as_str())),
            Action::RemoveOplog(k) => o
                .with("type", "removeOplog")
                .with("value", Object::new().with("pubkey", k.as_str())),
            Action::SetContractSource(c) => o
                .with("type", "setContractSource")
                .with("value", Object::new().with("code", c.as_str())),
        })
    }
}

/// One change to the index, ready to be written in a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Write `value` at `path`.
    Put {
        /// The path (as normalised by the transactor).
        path: String,
        /// The value.
        value: Value,
    },
    /// Delete `path`.
    Delete {
        /// The path.
        path: String,
    },
}

impl Change {
    /// The change's path.
    pub fn path(&self) -> &str {
        match self {
            Change::Put { path, .. } | Change::Delete { path } => path,
        }
    }
}

/// The actions of one `apply`, in first-insertion order (a JS object keyed by path).
#[derive(Debug, Clone, Default)]
pub struct Actions {
    order: Vec<(String, Action)>,
    index: HashMap<String, usize>,
    next_system: u32,
}

impl Actions {
    /// No actions.
    pub fn new() -> Self {
        Actions::default()
    }

    /// Queues `action` under `key`; a later action on a key replaces the earlier one in place.
    fn set(&mut self, key: String, action: Action) {
        match self.index.get(&key) {
            Some(&i) => {
                if let Some(slot) = self.order.get_mut(i) {
                    slot.1 = action;
                }
            }
            None => {
                self.index.insert(key.clone(), self.order.len());
                self.order.push((key, action));
            }
        }
    }

    /// `tx.put(path, value)`.
    pub fn put(&mut self, path: &str, value: Value) -> Result<(), String> {
        let key = normalize_key(path)?;
        assert_unprotected(&key)?;
        self.set(key, Action::Put(value));
        Ok(())
    }

    /// `tx.delete(path)`.
    pub fn delete(&mut self, path: &str) -> Result<(), String> {
        let key = normalize_key(path)?;
        assert_unprotected(&key)?;
        self.set(key, Action::Delete);
        Ok(())
    }

    /// `tx.get(path)`: the queued action at the normalised path.
    pub fn get(&self, path: &str) -> Result<Option<&Action>, String> {
        let key = normalize_key(path)?;
        Ok(self
            .index
            .get(&key)
            .and_then(|&i| self.order.get(i))
            .map(|(_, a)| a))
    }

    /// Queues a system action under the next internal key (`/.sys/_action<n>`).
    pub fn system(&mut self, action: Action) {
        let key = format!("/.sys/_action{}", self.next_system);
        self.next_system += 1;
        self.set(key, action);
    }

    /// The number of queued actions.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The actions in order, with their keys.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Action)> {
        self.order.iter().map(|(k, a)| (k.as_str(), a))
    }

    /// The index changes these actions make, sorted by path with `localeCompare` (stable).
    pub fn into_changes(self) -> Vec<Change> {
        let mut changes: Vec<Change> = self
            .order
            .into_iter()
            .map(|(path, action)| match action {
                Action::Put(value) => Change::Put { path, value },
                Action::Delete => Change::Delete { path },
                Action::AddOplog(k) => participant(k, true),
                Action::RemoveOplog(k) => participant(k, false),
                Action::SetContractSource(code) => Change::Put {
                    path: CONTRACT_SOURCE_PATH.to_owned(),
                    value: Value::String(code),
                },
            })
            .collect();
        sort_by_locale(&mut changes, |c| c.path());
        changes
    }
}

fn participant(pubkey: String, active: bool) -> Change {
    // The transactor only queues 64-hex keys, so this decodes; keep the bytes that decode.
    let bytes = hex::decode(&pubkey).unwrap_or_default();
    Change::Put {
        path: format!("{PARTICIPANT_PATH_PREFIX}{pubkey}"),
        value: Value::Object(
            Object::new()
                .with("pubkey", Value::Bytes(bytes))
                .with("active", active),
        ),
    }
}

/// JS Vitra's `normalizeKey`: `/` prefixed when missing, trailing `/` removed, `/` refused.
pub fn normalize_key(key: &str) -> Result<String, String> {
    if key.is_empty() {
        return Err("A key string parameter must be supplied".into());
    }
    let mut key = if key.starts_with('/') {
        key.to_owned()
    } else {
        format!("/{key}")
    };
    while key.ends_with('/') {
        key.pop();
    }
    if key.is_empty() {
        return Err("Cannot modify /".into());
    }
    Ok(key)
}

fn assert_unprotected(key: &str) -> Result<(), String> {
    if key.starts_with("/.sys/") {
        return Err("Cannot modify values with /.sys/ prefix".into());
    }
    Ok(())
}

/// Whether `s` is a 64-character lowercase hex key, as `addOplog`/`removeOplog` require.
pub fn is_hex_key(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::locale_compare;
    use proptest::prelude::*;

    proptest! {
        /// Against a model: the last action per normalised path wins, the result is sorted
        /// with localeCompare, and nothing under /.sys/ is ever written by put/delete.
        #[test]
        fn changes_match_a_last_write_wins_model(
            ops in proptest::collection::vec(
                (prop_oneof!["a", "/a", "a/", "/b", "B", "/é", "/.sys/x", "/", "/c/d"], proptest::option::of(0u32..5)),
                0..30,
            ),
        ) {
            let mut actions = Actions::new();
            let mut model: Vec<(String, Option<u32>)> = Vec::new();
            for (path, put) in &ops {
                let r = match put {
                    Some(v) => actions.put(path, Value::from(*v)),
                    None => actions.delete(path),
                };
                let key = normalize_key(path);
                match key {
                    Ok(k) if !k.starts_with("/.sys/") => {
                        prop_assert!(r.is_ok());
                        match model.iter_mut().find(|(p, _)| *p == k) {
                            Some(slot) => slot.1 = *put,
                            None => model.push((k, *put)),
                        }
                    }
                    _ => prop_assert!(r.is_err()),
                }
            }
            model.sort_by(|a, b| locale_compare(&a.0, &b.0));
            let expected: Vec<Change> = model
                .into_iter()
                .map(|(path, v)| match v {
                    Some(v) => Change::Put { path, value: Value::from(v) },
                    None => Change::Delete { path },
                })
                .collect();
            prop_assert_eq!(actions.into_changes(), expected);
        }
    }

    #[test]
    fn normalization_follows_js_vitra() {
        assert_eq!(normalize_key("foo/").unwrap(), "/foo");
        assert_eq!(normalize_key("/a/b//").unwrap(), "/a/b");
        assert_eq!(normalize_key("//a").unwrap(), "//a");
        assert_eq!(normalize_key("/").unwrap_err(), "Cannot modify /");
        assert_eq!(normalize_key("///").unwrap_err(), "Cannot modify /");
        assert_eq!(
            normalize_key("").unwrap_err(),
            "A key string parameter must be supplied"
        );
    }

    #[test]
    fn sys_paths_are_protected_but_sys_prefix_lookalikes_are_not() {
        let mut a = Actions::new();
        assert_eq!(
            a.put(".sys/x", Value::Null).unwrap_err(),
            "Cannot modify values with /.sys/ prefix"
        );
        assert!(a.delete("/.sys/inputs/x").is_err());
        assert!(a.put("/.sysx", Value::Null).is_ok());
        assert!(a.put("/.sys", Value::Null).is_ok());
    }

    #[test]
    fn later_actions_replace_earlier_and_changes_sort_by_locale() {
        let mut a = Actions::new();
        a.put("/b", 1.into()).unwrap();
        a.put("/a", 2.into()).unwrap();
        a.delete("b").unwrap();
        a.put("/B", 3.into()).unwrap();
        a.system(Action::SetContractSource("code".into()));
        let k = "ab".repeat(32);
        a.system(Action::AddOplog(k.clone()));
        assert_eq!(a.get("/b/").unwrap(), Some(&Action::Delete));
        assert_eq!(a.len(), 5);
        let changes = a.into_changes();
        let paths: Vec<&str> = changes.iter().map(Change::path).collect();
        let input = format!("/.sys/inputs/{k}");
        // localeCompare: punctuation first, then letters case-insensitively (a < b < B).
        assert_eq!(
            paths,
            [CONTRACT_SOURCE_PATH, input.as_str(), "/a", "/b", "/B"]
        );
        assert_eq!(changes[3], Change::Delete { path: "/b".into() });
        assert_eq!(
            changes[1],
            Change::Put {
                path: input.clone(),
                value: Value::Object(
                    Object::new()
                        .with("pubkey", Value::Bytes(vec![0xab; 32]))
                        .with("active", true)
                )
            }
        );
    }
}
