//! Vitra paths on Hyperbee keys, and JS Vitra's shallow listing.
//!
//! A path like `/a/b/c` is the key `a\0b\0c`: the non-empty segments joined by one `0x00`
//! byte. [`shallow_list`] returns the direct children of a path, in key order: one leaf entry
//! per key exactly one segment deeper, and one container entry per deeper child segment.
//! Unlike JS Vitra 0.1.3 (which bounds its scan with the string `"\xff"`), children whose name
//! starts at or above U+00FF are included, and each container appears once.

use super::{decode_value, BeeError, BlockLog, RangeOptions, Snapshot};
use crate::codec::Value;

/// The Hyperbee key of a Vitra path.
pub fn path_to_key(path: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        if !out.is_empty() {
            out.push(0);
        }
        out.extend_from_slice(seg.as_bytes());
    }
    out
}

fn segments(key: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(key)
        .split('\0')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The Vitra path of a Hyperbee key (`/` + segments; invalid UTF-8 is replaced by U+FFFD, as
/// JS's utf-8 key decoding does).
pub fn key_to_path(key: &[u8]) -> String {
    format!("/{}", segments(key).join("/"))
}

/// One entry of a shallow listing (JS Vitra `IndexLogEntry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// Block number of a leaf's value; `None` for a pure container.
    pub seq: Option<u64>,
    /// True when deeper keys exist under this name (a leaf can be a container too).
    pub container: bool,
    /// Last path segment.
    pub name: String,
    /// Full path, starting with `/`.
    pub path: String,
    /// A leaf's stored value bytes (`None` for containers and puts of JS `null`).
    pub value: Option<Vec<u8>>,
}

impl ListEntry {
    /// The value decoded as msgpack (`None` is `Value::Null`).
    pub fn decode_value(&self) -> Result<Value, BeeError> {
        decode_value(self.seq.unwrap_or(0), self.value.as_deref())
    }
}

/// JS Vitra's `list()` options, applied after the listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Reverse the order.
    pub reverse: bool,
    /// Skip this many entries.
    pub offset: Option<usize>,
    /// Keep at most this many.
    pub limit: Option<usize>,
}

impl ListOptions {
    pub(crate) fn apply(&self, mut arr: Vec<ListEntry>) -> Vec<ListEntry> {
        if self.reverse {
            arr.reverse();
        }
        let offset = self.offset.unwrap_or(0).min(arr.len());
        let mut arr = arr.split_off(offset);
        if let Some(l) = self.limit.filter(|l| *l > 0) {
            arr.truncate(l);
        }
        arr
    }
}

/// Byte length of the first `n` non-empty segments of `key` (the container's key prefix).
fn prefix_len(key: &[u8], n: usize) -> usize {
    let mut seen = 0;
    let mut i = 0;
    while i < key.len() {
        if key[i] == 0 {
            i += 1;
            continue;
        }
        let end = key[i..]
            .iter()
            .position(|b| *b == 0)
            .map_or(key.len(), |p| i + p);
        seen += 1;
        if seen == n {
            return end;
        }
        i = end;
    }
    key.len()
}

pub(crate) fn shallow_list<L: BlockLog>(
    snap: &Snapshot<'_, L>,
    prefix: &str,
) -> Result<Vec<ListEntry>, BeeError> {
    let base = path_to_key(prefix);
    let depth = prefix.split('/').filter(|s| !s.is_empty()).count();
    // JS: gt `prefix\0\0` (gt `\0` at the root); our upper bound is every key under `prefix\0`.
    let (mut lower, upper) = if depth == 0 {
        ((vec![0u8], false), None)
    } else {
        let mut lo = base.clone();
        lo.extend_from_slice(&[0, 0]);
        let mut up = base.clone();
        up.push(1);
        ((lo, false), Some(up))
    };
    let mut arr: Vec<ListEntry> = Vec::new();
    loop {
        let (lower_now, incl_now) = lower.clone();
        let opts = RangeOptions {
            gt: (!incl_now).then(|| lower_now.clone()),
            gte: incl_now.then(|| lower_now.clone()),
            lt: upper.clone(),
            ..RangeOptions::default()
        };
        let Some(item) = snap.peek(opts)? else {
            return Ok(arr);
        };
        // A damaged tree can return keys out of order; never loop on them.
        let ordered = if incl_now {
            item.key >= lower_now
        } else {
            item.key > lower_now
        };
        if !ordered {
            return Err(BeeError::KeysOutOfOrder { seq: item.seq });
        }
        let segs = segments(&item.key);
        if segs.len() > depth + 1 {
            let cpath = format!("/{}", segs[..=depth].join("/"));
            match arr.last_mut() {
                Some(last) if last.path == cpath => last.container = true,
                _ => arr.push(ListEntry {
                    seq: None,
                    container: true,
                    name: segs[depth].clone(),
                    path: cpath,
                    value: None,
                }),
            }
            // skip every key under the container: next key >= container ++ 0x01
            let mut next = item.key[..prefix_len(&item.key, depth + 1)].to_vec();
            next.push(1);
            lower = (next, true);
        } else {
            arr.push(ListEntry {
                seq: Some(item.seq),
                container: false,
                name: segs.last().cloned().unwrap_or_default(),
                path: format!("/{}", segs.join("/")),
                value: item.value,
            });
            lower = (item.key, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_key_mapping() {
        assert_eq!(
            path_to_key("/.sys/acks/ab/000000000000004"),
            b".sys\x00acks\x00ab\x00000000000000004"
        );
        assert_eq!(path_to_key("a//b/"), b"a\0b");
        assert_eq!(path_to_key("/"), b"");
        assert_eq!(key_to_path(b".sys\0acks\0genesis"), "/.sys/acks/genesis");
        assert_eq!(key_to_path("中文\0Ω".as_bytes()), "/中文/Ω");
    }

    #[test]
    fn prefix_len_counts_segments() {
        assert_eq!(prefix_len(b"a\0bb\0c", 1), 1);
        assert_eq!(prefix_len(b"a\0bb\0c", 2), 4);
        assert_eq!(prefix_len(b"\0a\0b", 1), 2);
    }
}
