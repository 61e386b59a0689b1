//! A directory of logs keeps each log at `cores/<dk[0:2]>/<dk[2:4]>/<dk-hex>/` (corestore
//! layout), opens them by public key or discovery key, lists them, and a JS Vitra 0.1.3 store
//! opens writable through its profile and accepts appends that survive a reopen.

#[path = "support/files.rs"]
mod files;
use files::copy_dir;

use std::path::Path;

use vitra::log::crypto::discovery_key;
use vitra::log::{KeyPair, LogError, LogStore, SignatureScheme};

#[test]
fn logs_live_under_their_discovery_key_and_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LogStore::new(tmp.path());
    let mut a = store.create(None).unwrap();
    let b = store.create(Some(KeyPair::from_seed(&[9; 32]))).unwrap();
    a.append_batch(&[b"x".to_vec(), b"y".to_vec()]).unwrap();
    let dk = hex::encode(discovery_key(&a.public_key()));
    let dir = tmp
        .path()
        .join("cores")
        .join(&dk[0..2])
        .join(&dk[2..4])
        .join(&dk);
    for f in ["oplog", "tree", "bitfield", "data", "heads"] {
        assert!(dir.join(f).exists(), "{f} missing in {}", dir.display());
    }
    let (ka, kb) = (a.public_key(), b.public_key());
    drop(a);
    drop(b);
    let mut listed = store.discovery_keys().unwrap();
    listed.sort();
    let mut want = vec![discovery_key(&ka), discovery_key(&kb)];
    want.sort();
    assert_eq!(listed, want);
    let a = store.open(&ka, None).unwrap();
    assert_eq!(a.get(1).unwrap(), Some(b"y".to_vec()));
    assert!(a.writable());
    let by_dk = store.open_by_discovery_key(&discovery_key(&kb)).unwrap();
    assert_eq!(by_dk.public_key(), kb);
    assert!(store.contains(&ka));
    let missing = store.open(&[1; 32], None).err().unwrap();
    assert!(matches!(missing, LogError::NotFound { .. }), "{missing}");
    assert_eq!(
        store.discovery_keys().unwrap().len(),
        2,
        "a failed open left files behind"
    );
    let dk1 = hex::encode(discovery_key(&[1; 32]));
    assert!(!tmp
        .path()
        .join("cores")
        .join(&dk1[0..2])
        .join(&dk1[2..4])
        .join(&dk1)
        .exists());
    let wrong = store
        .open(&ka, Some(KeyPair::from_seed(&[9; 32])))
        .err()
        .unwrap();
    assert!(matches!(wrong, LogError::KeyMismatch { .. }), "{wrong}");
}

#[test]
fn a_js_vitra_core_accepts_appends_and_keeps_its_legacy_history() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/js-vitra/counter"),
        tmp.path(),
    );
    let store = LogStore::new(tmp.path());
    let dks = store.discovery_keys().unwrap();
    assert_eq!(dks.len(), 2);
    let mut log = store.open_by_discovery_key(&dks[0]).unwrap();
    let key = log.public_key();
    let before = log.len();
    let old_blocks: Vec<_> = (0..before).map(|i| log.get(i).unwrap()).collect();
    log.append(b"appended by vitra").unwrap();
    log.flush().unwrap();
    drop(log);
    let log = store.open(&key, None).unwrap();
    assert_eq!(log.len(), before + 1);
    for (i, b) in old_blocks.iter().enumerate() {
        assert_eq!(&log.get(i as u64).unwrap(), b);
    }
    assert_eq!(
        log.get(before).unwrap(),
        Some(b"appended by vitra".to_vec())
    );
    let schemes: Vec<_> = log
        .signed_heads()
        .iter()
        .map(|h| (h.length, h.scheme))
        .collect();
    assert!(
        schemes.contains(&(before, SignatureScheme::Legacy)),
        "{schemes:?}"
    );
    assert!(
        schemes.contains(&(before + 1, SignatureScheme::Compat)),
        "{schemes:?}"
    );
    // The derived secret key is never written to disk.
    assert!(log.header().key_pair.is_none());
}
