//! JS Vitra 0.1.3's storage: corestore 6 (pre-release) key derivation and its pre-release
//! cores. A core's key pair is not stored; it is derived from the 32-byte master seed in
//! `profiles/default` and the core's `@corestore/name` (user data in its oplog header):
//! `seed = BLAKE2b-256_key=master("@hyperspace/key-manager" ‖ namespace ‖ ascii(len + "\n" + name))`,
//! `namespace = BLAKE2b-256("@corestore/default")` (or the header's `@corestore/namespace`).
//! Heads of these cores are signed with the 48-byte pre-release signable
//! ([`SignatureScheme::Legacy`](super::SignatureScheme::Legacy)).

use std::path::Path;

use super::crypto::{hash, keyed_hash, KeyPair};
use super::{Log, LogError, OpenOptions, Result, Storage};

/// User data key holding a corestore core's name.
pub const NAME_KEY: &str = "@corestore/name";
/// User data key holding a corestore core's namespace.
pub const NAMESPACE_KEY: &str = "@corestore/namespace";

/// Corestore 6's default namespace: BLAKE2b-256 of `"@corestore/default"`.
pub fn default_namespace() -> [u8; 32] {
    hash(&[b"@corestore/default"])
}

/// `name` as JS `Buffer.from(len + "\n" + name, "ascii")` encodes it (UTF-16 length, low byte
/// of each UTF-16 unit).
fn ascii_name(name: &str) -> Vec<u8> {
    let units: Vec<u16> = name.encode_utf16().collect();
    let mut out = format!("{}\n", units.len()).into_bytes();
    out.extend(units.iter().map(|u| (u & 0xff) as u8));
    out
}

/// The 32-byte seed corestore 6's key manager derives for `name` in `namespace`.
pub fn derive_seed(master: &[u8; 32], namespace: &[u8; 32], name: &str) -> [u8; 32] {
    keyed_hash(
        master,
        &[b"@hyperspace/key-manager", namespace, &ascii_name(name)],
    )
}

/// The key pair corestore 6 derives for `name` in `namespace`.
pub fn derive_key_pair(master: &[u8; 32], namespace: &[u8; 32], name: &str) -> KeyPair {
    KeyPair::from_seed(&derive_seed(master, namespace, name))
}

/// Reads the master seed from `<dir>/profiles/default`.
pub fn read_profile(dir: &Path) -> Result<[u8; 32]> {
    let path = dir.join("profiles").join("default");
    let bytes = std::fs::read(&path).map_err(|source| LogError::Io {
        path: path.clone(),
        op: "read",
        source,
    })?;
    bytes
        .get(..32)
        .and_then(|b| b.try_into().ok())
        .ok_or(LogError::Corrupt {
            path,
            detail: format!("profile has {} bytes, expected 32", bytes.len()),
        })
}

/// Opens a core of a JS Vitra 0.1.3 directory, writable when the key pair derived from
/// `master` and the core's `@corestore/name` matches its key (read-only otherwise).
pub fn open_core(storage: Storage, master: &[u8; 32]) -> Result<Log> {
    let log = Log::open(storage.clone(), OpenOptions::default())?;
    if log.writable() {
        return Ok(log);
    }
    let Some(name) = log
        .user_data(NAME_KEY)
        .map(|v| String::from_utf8_lossy(v).into_owned())
    else {
        return Ok(log);
    };
    let namespace = log
        .user_data(NAMESPACE_KEY)
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .unwrap_or_else(default_namespace);
    let kp = derive_key_pair(master, &namespace, &name);
    if kp.public_key != log.public_key() {
        return Ok(log);
    }
    drop(log);
    Log::open(
        storage,
        OpenOptions {
            key_pair: Some(kp),
            ..Default::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_name_prefixes_the_length() {
        assert_eq!(ascii_name("1795634745496"), b"13\n1795634745496".to_vec());
    }
}
