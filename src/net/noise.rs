//! The Noise XX handshake as `@hyperswarm/secret-stream` runs it (npm `noise-handshake` with
//! `noise-curve-ed`): protocol `Noise_XX_Ed25519_ChaChaPoly_BLAKE2b`, empty prologue, empty
//! payloads, Diffie-Hellman on Ed25519 points with the clamped SHA-512 scalar of the signing
//! seed, HKDF over HMAC-BLAKE2b-512. Sans-IO: it turns handshake messages into handshake
//! messages and finally into transport keys and the handshake hash.
//!
//! Message sizes: initiator `-> e` (32 bytes), responder `<- e, ee, s, es` (96), initiator
//! `-> s, se` (64).

use blake2::digest::Digest;
use blake2::Blake2b512;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::traits::IsIdentity;
use sha2::Sha512;

use super::NetError;

const PROTOCOL_NAME: &[u8] = b"Noise_XX_Ed25519_ChaChaPoly_BLAKE2b";
const HASHLEN: usize = 64;
const BLOCKLEN: usize = 128;
const MACLEN: usize = 16;

/// An Ed25519 key pair as `@hyperswarm/secret-stream` (and Hypercore) use it: a 32-byte seed
/// (the first half of libsodium's 64-byte secret key) and its public key.
#[derive(Clone)]
pub struct KeyPair {
    seed: [u8; 32],
    public: [u8; 32],
    scalar: [u8; 32],
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &hex::encode(self.public))
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// The key pair libsodium's `crypto_sign_seed_keypair(seed)` makes.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let digest = Sha512::digest(seed);
        let mut scalar = [0u8; 32];
        scalar.copy_from_slice(&digest[..32]);
        scalar[0] &= 248;
        scalar[31] &= 127;
        scalar[31] |= 64;
        let public = ED25519_BASEPOINT_POINT
            .mul_clamped(scalar)
            .compress()
            .to_bytes();
        KeyPair {
            seed,
            public,
            scalar,
        }
    }

    /// A fresh random key pair (from the operating system's random source).
    pub fn generate() -> Result<Self, NetError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| NetError::Random {
            reason: e.to_string(),
        })?;
        Ok(Self::from_seed(seed))
    }

    /// The 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// The 32-byte seed (libsodium's secret key is `seed || public key`).
    pub fn seed(&self) -> [u8; 32] {
        self.seed
    }

    /// libsodium's 64-byte secret key, `seed || public key`.
    pub fn secret_key(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.seed);
        out[32..].copy_from_slice(&self.public);
        out
    }

    /// `crypto_scalarmult_ed25519_noclamp(scalar, remote)`, rejecting what libsodium rejects:
    /// encodings that are not a point, points of small order, points outside the prime-order
    /// subgroup and an identity result.
    fn dh(&self, remote: &[u8; 32]) -> Result<[u8; 32], NetError> {
        let point = CompressedEdwardsY(*remote)
            .decompress()
            .ok_or(NetError::HandshakeFailed {
                reason: "remote key is not an Ed25519 point",
            })?;
        if point.compress().to_bytes() != *remote {
            return Err(NetError::HandshakeFailed {
                reason: "remote key is not canonically encoded",
            });
        }
        if point.is_small_order() || !point.is_torsion_free() {
            return Err(NetError::HandshakeFailed {
                reason: "remote key is a weak point",
            });
        }
        let shared = point.mul_clamped(self.scalar);
        if shared.is_identity() {
            return Err(NetError::HandshakeFailed {
                reason: "shared secret is the identity",
            });
        }
        Ok(shared.compress().to_bytes())
    }
}

/// What a completed handshake gives the transport.
#[derive(Clone)]
pub struct HandshakeOutcome {
    /// Key for what we send (32 bytes of the first/second split key).
    pub tx: [u8; 32],
    /// Key for what we receive.
    pub rx: [u8; 32],
    /// The 64-byte handshake hash both sides share.
    pub hash: [u8; 64],
    /// The remote static public key.
    pub remote_public_key: [u8; 32],
}

fn hmac_blake2b(key: &[u8], parts: &[&[u8]]) -> [u8; HASHLEN] {
    let mut k = [0u8; BLOCKLEN];
    if key.len() > BLOCKLEN {
        let digest = Blake2b512::digest(key);
        k[..HASHLEN].copy_from_slice(&digest);
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut ipad = [0u8; BLOCKLEN];
    let mut opad = [0u8; BLOCKLEN];
    for i in 0..BLOCKLEN {
        ipad[i] = k[i] ^ 0x36;
        opad[i] = k[i] ^ 0x5c;
    }
    let mut inner = Blake2b512::new();
    inner.update(ipad);
    for p in parts {
        inner.update(p);
    }
    let inner = inner.finalize();
    let mut outer = Blake2b512::new();
    outer.update(opad);
    outer.update(inner);
    let mut out = [0u8; HASHLEN];
    out.copy_from_slice(&outer.finalize());
    out
}

/// HKDF with two outputs, as `noise-handshake`'s `hkdf(salt, ikm)`.
fn hkdf2(chaining_key: &[u8], ikm: &[u8]) -> ([u8; HASHLEN], [u8; HASHLEN]) {
    let prk = hmac_blake2b(chaining_key, &[ikm]);
    let t1 = hmac_blake2b(&prk, &[&[1u8]]);
    let t2 = hmac_blake2b(&prk, &[&t1, &[2u8]]);
    (t1, t2)
}

fn first32(b: &[u8; HASHLEN]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&b[..32]);
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Initiator: write `e`. Responder: read `e`.
    First,
    /// Initiator: read `e, ee, s, es`. Responder: write them.
    Second,
    /// Initiator: write `s, se`. Responder: read them.
    Third,
    Done,
}

/// One side of a Noise XX handshake.
pub struct Handshake {
    initiator: bool,
    s: KeyPair,
    e: Option<KeyPair>,
    re: Option<[u8; 32]>,
    rs: Option<[u8; 32]>,
    h: [u8; HASHLEN],
    ck: [u8; HASHLEN],
    k: Option<[u8; 32]>,
    n: u64,
    step: Step,
}

impl Handshake {
    /// Starts a handshake with our static key pair (empty prologue, as secret-stream uses).
    pub fn new(initiator: bool, static_key: KeyPair) -> Self {
        let mut h = [0u8; HASHLEN];
        h[..PROTOCOL_NAME.len()].copy_from_slice(PROTOCOL_NAME);
        let mut hs = Handshake {
            initiator,
            s: static_key,
            e: None,
            re: None,
            rs: None,
            h,
            ck: h,
            k: None,
            n: 0,
            step: Step::First,
        };
        hs.mix_hash(&[]);
        hs
    }

    /// True when it is our turn to write a message.
    pub fn is_write_turn(&self) -> bool {
        match self.step {
            Step::First | Step::Third => self.initiator,
            Step::Second => !self.initiator,
            Step::Done => false,
        }
    }

    /// True once all three messages were exchanged.
    pub fn is_done(&self) -> bool {
        self.step == Step::Done
    }

    fn mix_hash(&mut self, data: &[u8]) {
        let mut hasher = Blake2b512::new();
        hasher.update(self.h);
        hasher.update(data);
        self.h.copy_from_slice(&hasher.finalize());
    }

    fn mix_key(&mut self, shared: &[u8; 32]) {
        let (ck, k) = hkdf2(&self.ck, shared);
        self.ck = ck;
        self.k = Some(first32(&k));
        self.n = 0;
    }

    fn nonce(&self) -> [u8; 12] {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&self.n.to_le_bytes());
        nonce
    }

    fn encrypt_and_hash(&mut self, plain: &[u8]) -> Result<Vec<u8>, NetError> {
        let out = match self.k {
            None => plain.to_vec(),
            Some(key) => {
                let cipher = ChaCha20Poly1305::new(&key.into());
                let nonce = self.nonce();
                let ct = cipher
                    .encrypt(
                        &nonce.into(),
                        Payload {
                            msg: plain,
                            aad: &self.h,
                        },
                    )
                    .map_err(|_| NetError::HandshakeFailed {
                        reason: "could not encrypt a handshake field",
                    })?;
                self.n += 1;
                ct
            }
        };
        self.mix_hash(&out);
        Ok(out)
    }

    fn decrypt_and_hash(&mut self, ct: &[u8]) -> Result<Vec<u8>, NetError> {
        let out = match self.k {
            None => ct.to_vec(),
            Some(key) => {
                let cipher = ChaCha20Poly1305::new(&key.into());
                let nonce = self.nonce();
                let pt = cipher
                    .decrypt(
                        &nonce.into(),
                        Payload {
                            msg: ct,
                            aad: &self.h,
                        },
                    )
                    .map_err(|_| NetError::HandshakeFailed {
                        reason: "a handshake message failed authentication",
                    })?;
                self.n += 1;
                pt
            }
        };
        self.mix_hash(ct);
        Ok(out)
    }

    fn dh_with(&self, local_static: bool, remote_static: bool) -> Result<[u8; 32], NetError> {
        let local = if local_static {
            Some(&self.s)
        } else {
            self.e.as_ref()
        };
        let remote = if remote_static { self.rs } else { self.re };
        match (local, remote) {
            (Some(l), Some(r)) => l.dh(&r),
            _ => Err(NetError::HandshakeFailed {
                reason: "handshake key missing",
            }),
        }
    }

    /// Writes our next handshake message (unframed).
    pub fn write_message(&mut self) -> Result<Vec<u8>, NetError> {
        if !self.is_write_turn() {
            return Err(NetError::HandshakeFailed {
                reason: "not our turn to write a handshake message",
            });
        }
        let mut out = Vec::new();
        match self.step {
            Step::First => {
                let e = KeyPair::generate()?;
                let epub = e.public_key();
                self.mix_hash(&epub);
                out.extend_from_slice(&epub);
                self.e = Some(e);
                self.step = Step::Second;
            }
            Step::Second => {
                // responder: e, ee, s, es
                let e = KeyPair::generate()?;
                let epub = e.public_key();
                self.mix_hash(&epub);
                out.extend_from_slice(&epub);
                self.e = Some(e);
                let ee = self.dh_with(false, false)?;
                self.mix_key(&ee);
                let spub = self.s.public_key();
                let s = self.encrypt_and_hash(&spub)?;
                out.extend_from_slice(&s);
                let es = self.dh_with(true, false)?;
                self.mix_key(&es);
                self.step = Step::Third;
            }
            Step::Third => {
                // initiator: s, se
                let spub = self.s.public_key();
                let s = self.encrypt_and_hash(&spub)?;
                out.extend_from_slice(&s);
                let se = self.dh_with(true, false)?;
                self.mix_key(&se);
                self.step = Step::Done;
            }
            Step::Done => {}
        }
        let payload = self.encrypt_and_hash(&[])?;
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// Reads the remote's next handshake message (unframed). The payload must be empty
    /// apart from its MAC, as secret-stream sends it; any other payload is ignored as JS does.
    pub fn read_message(&mut self, msg: &[u8]) -> Result<(), NetError> {
        if self.is_write_turn() || self.step == Step::Done {
            return Err(NetError::HandshakeFailed {
                reason: "unexpected handshake message",
            });
        }
        let mut r = crate::compact::Reader::new(msg);
        let short = |_| NetError::HandshakeFailed {
            reason: "handshake message too short",
        };
        match self.step {
            Step::First => {
                // responder reads e
                let re = r.fixed32("e").map_err(short)?;
                self.mix_hash(&re);
                self.re = Some(re);
                self.step = Step::Second;
            }
            Step::Second => {
                // initiator reads e, ee, s, es
                let re = r.fixed32("e").map_err(short)?;
                self.mix_hash(&re);
                self.re = Some(re);
                let ee = self.dh_with(false, false)?;
                self.mix_key(&ee);
                let s_ct = r.bytes(32 + MACLEN, "s").map_err(short)?;
                let rs = self.decrypt_and_hash(s_ct)?;
                self.rs = Some(to32(&rs)?);
                let es = self.dh_with(false, true)?;
                self.mix_key(&es);
                self.step = Step::Third;
            }
            Step::Third => {
                // responder reads s, se
                let s_ct = r.bytes(32 + MACLEN, "s").map_err(short)?;
                let rs = self.decrypt_and_hash(s_ct)?;
                self.rs = Some(to32(&rs)?);
                let se = self.dh_with(false, true)?;
                self.mix_key(&se);
                self.step = Step::Done;
            }
            Step::Done => {}
        }
        let rest = r.rest();
        self.decrypt_and_hash(rest)?;
        Ok(())
    }

    /// The transport keys and handshake hash, once [`Handshake::is_done`].
    pub fn outcome(&self) -> Result<HandshakeOutcome, NetError> {
        let remote_public_key = match (self.step, self.rs) {
            (Step::Done, Some(rs)) => rs,
            _ => {
                return Err(NetError::HandshakeFailed {
                    reason: "handshake not complete",
                })
            }
        };
        let (k1, k2) = hkdf2(&self.ck, &[]);
        let (tx, rx) = if self.initiator {
            (first32(&k1), first32(&k2))
        } else {
            (first32(&k2), first32(&k1))
        };
        Ok(HandshakeOutcome {
            tx,
            rx,
            hash: self.h,
            remote_public_key,
        })
    }
}

fn to32(b: &[u8]) -> Result<[u8; 32], NetError> {
    <[u8; 32]>::try_from(b).map_err(|_| NetError::HandshakeFailed {
        reason: "remote static key has the wrong length",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(a: &mut Handshake, b: &mut Handshake) -> Result<(), NetError> {
        let m1 = a.write_message()?;
        assert_eq!(m1.len(), 32);
        b.read_message(&m1)?;
        let m2 = b.write_message()?;
        assert_eq!(m2.len(), 96);
        a.read_message(&m2)?;
        let m3 = a.write_message()?;
        assert_eq!(m3.len(), 64);
        b.read_message(&m3)
    }

    #[test]
    fn both_sides_agree_on_keys_and_hash() -> Result<(), NetError> {
        let ka = KeyPair::from_seed([1; 32]);
        let kb = KeyPair::from_seed([2; 32]);
        let mut a = Handshake::new(true, ka.clone());
        let mut b = Handshake::new(false, kb.clone());
        run(&mut a, &mut b)?;
        let oa = a.outcome()?;
        let ob = b.outcome()?;
        assert_eq!(oa.tx, ob.rx);
        assert_eq!(oa.rx, ob.tx);
        assert_eq!(oa.hash, ob.hash);
        assert_eq!(oa.remote_public_key, kb.public_key());
        assert_eq!(ob.remote_public_key, ka.public_key());
        Ok(())
    }

    #[test]
    fn seed_keypair_matches_libsodium() {
        // crypto_sign_seed_keypair(32 zero bytes), public key (RFC 8032 test 1 uses another
        // seed; this value is what sodium-native prints for the all-zero seed).
        let kp = KeyPair::from_seed([0; 32]);
        assert_eq!(
            hex::encode(kp.public_key()),
            "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"
        );
    }

    #[test]
    fn tampered_message_fails_without_panic() {
        let mut a = Handshake::new(true, KeyPair::from_seed([1; 32]));
        let mut b = Handshake::new(false, KeyPair::from_seed([2; 32]));
        let m1 = a.write_message().ok().unwrap_or_default();
        assert!(b.read_message(&m1).is_ok());
        let mut m2 = b.write_message().ok().unwrap_or_default();
        if let Some(x) = m2.get_mut(40) {
            *x ^= 1;
        }
        assert!(a.read_message(&m2).is_err());
        assert!(a.read_message(&[]).is_err());
    }
}
