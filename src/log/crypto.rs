//! Hashing and signing as JS Hypercore does it: BLAKE2b-256 leaf/parent/root hashes with the
//! type prefixes 0/1/2, the `hypercore` namespaces, discovery keys, Ed25519 key pairs, and the
//! two signable layouts (current "compat" and the pre-release 48-byte one JS Vitra 0.1.3 used).

use blake2::digest::consts::U32;
use blake2::digest::{FixedOutput, KeyInit, Update};
use blake2::{Blake2b, Blake2bMac, Digest};
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};

use super::tree::Node;

type Blake2b256 = Blake2b<U32>;

/// BLAKE2b-256 of the concatenation of `parts`.
pub fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Blake2b256::new();
    for p in parts {
        Digest::update(&mut h, p);
    }
    h.finalize().into()
}

/// BLAKE2b-256 keyed with `key` (1..=64 bytes) of the concatenation of `parts`
/// (libsodium `crypto_generichash` with a key).
pub fn keyed_hash(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // Key lengths outside 1..=64 cannot come from our callers (32-byte keys only).
    let mut h = match Blake2bMac::<U32>::new_from_slice(key) {
        Ok(h) => h,
        Err(_) => return hash(parts),
    };
    for p in parts {
        Update::update(&mut h, p);
    }
    h.finalize_fixed().into()
}

/// Hash of a leaf (one block): `BLAKE2b(0x00 ‖ u64le(len) ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> [u8; 32] {
    hash(&[&[0], &(data.len() as u64).to_le_bytes(), data])
}

/// Hash of a parent node: `BLAKE2b(0x01 ‖ u64le(a.size + b.size) ‖ left.hash ‖ right.hash)`,
/// left being the node with the smaller index.
pub fn parent_hash(a: &Node, b: &Node) -> [u8; 32] {
    let (l, r) = if a.index <= b.index { (a, b) } else { (b, a) };
    let size = l.size.wrapping_add(r.size);
    hash(&[&[1], &size.to_le_bytes(), &l.hash, &r.hash])
}

/// The tree hash of a set of roots: `BLAKE2b(0x02 ‖ (hash ‖ u64le(index) ‖ u64le(size))*)`.
pub fn tree_hash(roots: &[Node]) -> [u8; 32] {
    let mut h = Blake2b256::new();
    Digest::update(&mut h, [2u8]);
    for r in roots {
        Digest::update(&mut h, r.hash);
        Digest::update(&mut h, r.index.to_le_bytes());
        Digest::update(&mut h, r.size.to_le_bytes());
    }
    h.finalize().into()
}

/// The discovery key of a log: BLAKE2b-256 of `"hypercore"` keyed with the public key.
pub fn discovery_key(public_key: &[u8; 32]) -> [u8; 32] {
    keyed_hash(public_key, &[b"hypercore"])
}

/// The `i`-th namespace of `name` as `hypercore-crypto`'s `namespace(name, n)` derives it:
/// `BLAKE2b(BLAKE2b(name) ‖ byte(i))`.
pub fn namespace(name: &str, i: u8) -> [u8; 32] {
    let ns = hash(&[name.as_bytes()]);
    hash(&[&ns, &[i]])
}

/// The `TREE` namespace (`hypercore` namespace 0) that prefixes current signables.
pub fn tree_namespace() -> [u8; 32] {
    namespace("hypercore", 0)
}

/// The default signer namespace (`hypercore` namespace 4) stored in manifests.
pub fn default_namespace() -> [u8; 32] {
    namespace("hypercore", 4)
}

/// The `MANIFEST` namespace (`hypercore` namespace 3) that prefixes a manifest hash.
pub fn manifest_namespace() -> [u8; 32] {
    namespace("hypercore", 3)
}

/// Which bytes a head signature covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureScheme {
    /// Current Hypercore 10/11 "compat" cores (key = public key): the 80 bytes
    /// `TREE(32) ‖ treeHash(32) ‖ u64le(length) ‖ u64le(fork)`.
    Compat,
    /// Pre-release Hypercore 10 as JS Vitra 0.1.3 wrote it: the 48 bytes
    /// `treeHash(32) ‖ u64le(length) ‖ u64le(fork)`, no namespace.
    Legacy,
}

impl SignatureScheme {
    /// The bytes that get signed for a head.
    pub fn signable(self, tree_hash: &[u8; 32], length: u64, fork: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(80);
        if self == SignatureScheme::Compat {
            out.extend_from_slice(&tree_namespace());
        }
        out.extend_from_slice(tree_hash);
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(&fork.to_le_bytes());
        out
    }

    /// One byte naming the scheme in our own files.
    pub fn to_byte(self) -> u8 {
        match self {
            SignatureScheme::Compat => 0,
            SignatureScheme::Legacy => 1,
        }
    }

    /// The scheme named by [`Self::to_byte`].
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(SignatureScheme::Compat),
            1 => Some(SignatureScheme::Legacy),
            _ => None,
        }
    }
}

/// An Ed25519 key pair; `secret_key` is absent for a read-only log.
#[derive(Clone)]
pub struct KeyPair {
    /// The 32-byte public key (the log's key).
    pub public_key: [u8; 32],
    /// The 64-byte libsodium secret key (seed ‖ public key), when this side may write.
    pub secret_key: Option<[u8; 64]>,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public_key", &hex::encode(self.public_key))
            .field("secret_key", &self.secret_key.map(|_| "<secret>"))
            .finish()
    }
}

impl KeyPair {
    /// A fresh random key pair.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)?;
        Ok(Self::from_seed(&seed))
    }

    /// The key pair libsodium's `crypto_sign_seed_keypair` derives from a 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let sk = SigningKey::from_bytes(seed);
        let public_key = sk.verifying_key().to_bytes();
        let mut secret = [0u8; 64];
        secret[..32].copy_from_slice(seed);
        secret[32..].copy_from_slice(&public_key);
        KeyPair {
            public_key,
            secret_key: Some(secret),
        }
    }

    /// A read-only key pair (public key only).
    pub fn public_only(public_key: [u8; 32]) -> Self {
        KeyPair {
            public_key,
            secret_key: None,
        }
    }

    /// Whether the secret key (if any) belongs to the public key.
    pub fn is_consistent(&self) -> bool {
        match &self.secret_key {
            None => true,
            Some(sk) => {
                let mut seed = [0u8; 32];
                seed.copy_from_slice(&sk[..32]);
                SigningKey::from_bytes(&seed).verifying_key().to_bytes() == self.public_key
            }
        }
    }

    /// Signs `message`; `None` without a secret key. Each call derives the signing key
    /// anew; to sign many messages, keep a [`Signer`].
    pub fn sign(&self, message: &[u8]) -> Option<[u8; 64]> {
        Some(Signer::new(self)?.sign(message))
    }
}

/// A secret key ready to sign. Deriving an Ed25519 signing key from its seed costs a base
/// point multiplication, as much as the signature itself; a signer does it once.
#[derive(Clone)]
pub struct Signer(SigningKey);

impl Signer {
    /// The signer of `key_pair`; `None` without a secret key.
    pub fn new(key_pair: &KeyPair) -> Option<Signer> {
        let sk = key_pair.secret_key.as_ref()?;
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&sk[..32]);
        Some(Signer(SigningKey::from_bytes(&seed)))
    }

    /// The Ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

/// Whether `signature` is a valid Ed25519 signature of `message` by `public_key`.
pub fn verify(public_key: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
        return false;
    };
    let Ok(vk) = VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    vk.verify(message, &sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_keys_match_hypercore_crypto() {
        // Values printed by JS hypercore-crypto 3.7 / hypercore 10.38 `lib/caps.js`.
        assert_eq!(
            hex::encode(tree_namespace()),
            "9fac70b50ca14efc4e91c833b204e75b8b5aad8b5881bfc0adb5ef38a3275b9c"
        );
        assert_eq!(
            hex::encode(default_namespace()),
            "4144eea531e483d54e0c14f4ca68e0644f355343ff6fcb0f005200e12cd747cb"
        );
        let kp = KeyPair::from_seed(&[7u8; 32]);
        assert_eq!(
            hex::encode(kp.public_key),
            "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"
        );
        assert_eq!(
            hex::encode(discovery_key(&kp.public_key)),
            "e3ac68a2145739cf48b8c0c43ad54595216b4bcbd5914c35dab942fb8c0c571b"
        );
        assert_eq!(
            hex::encode(leaf_hash(b"abc")),
            "cf7315a0fc0e5d6ef3292bb080af8126e66fc8e73e2d2158204c8b158eb24759"
        );
    }

    #[test]
    fn seed_key_pair_signs_and_verifies() {
        let kp = KeyPair::from_seed(&[7u8; 32]);
        assert!(kp.is_consistent());
        let sig = kp.sign(b"hello").unwrap();
        assert!(verify(&kp.public_key, b"hello", &sig));
        assert!(!verify(&kp.public_key, b"hellp", &sig));
    }
}
