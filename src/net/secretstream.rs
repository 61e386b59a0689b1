//! libsodium's `crypto_secretstream_xchacha20poly1305` (what npm `sodium-secretstream` wraps):
//! the transport cipher of `@hyperswarm/secret-stream` after the Noise handshake.
//!
//! Each message becomes `encrypted tag byte || ciphertext || 16-byte MAC` (17 bytes more than
//! the plaintext). The state is a subkey from HChaCha20(key, header[..16]) and a 12-byte nonce
//! `counter (4 bytes LE, from 1) || header[16..24]`; after each message the MAC's first 8 bytes
//! are XORed into the nonce's last 8 and the counter is incremented (rekeying when it wraps or
//! the tag asks for it).

use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use chacha20::{hchacha, ChaCha20, R20};
use poly1305::universal_hash::{KeyInit, UniversalHash};
use poly1305::Poly1305;
use subtle::ConstantTimeEq;

use super::NetError;

/// Bytes a message grows by: tag byte + MAC.
pub const ABYTES: usize = 17;
/// Header length (sent once, after the stream id).
pub const HEADERBYTES: usize = 24;
/// Tag of an ordinary message.
pub const TAG_MESSAGE: u8 = 0;
const TAG_REKEY: u8 = 2;

#[derive(Clone)]
struct State {
    key: [u8; 32],
    nonce: [u8; 12],
}

impl State {
    fn new(key: &[u8; 32], header: &[u8; HEADERBYTES]) -> Self {
        let mut input = [0u8; 16];
        input.copy_from_slice(&header[..16]);
        let subkey = hchacha::<R20>(&(*key).into(), &input.into());
        let mut k = [0u8; 32];
        k.copy_from_slice(subkey.as_slice());
        let mut nonce = [0u8; 12];
        nonce[0] = 1;
        nonce[4..].copy_from_slice(&header[16..]);
        State { key: k, nonce }
    }

    fn cipher_at(&self, block: u64) -> Result<ChaCha20, NetError> {
        let mut c = ChaCha20::new(&self.key.into(), &self.nonce.into());
        c.try_seek(block * 64)
            .map_err(|_| NetError::CipherExhausted)?;
        Ok(c)
    }

    fn xor(&self, block: u64, buf: &mut [u8]) -> Result<(), NetError> {
        self.cipher_at(block)?
            .try_apply_keystream(buf)
            .map_err(|_| NetError::CipherExhausted)
    }

    /// Poly1305 over the tag block and the ciphertext, as libsodium computes it (no AD).
    /// libsodium pads the ciphertext with `mlen % 16` zero bytes (not up to a multiple of
    /// 16), so the MAC input is streamed rather than block-padded.
    fn mac(&self, tag_block: &[u8; 64], ciphertext: &[u8]) -> Result<[u8; 16], NetError> {
        let mut otk = [0u8; 64];
        self.xor(0, &mut otk)?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&otk[..32]);
        let mut poly = PolyStream::new(&key);
        poly.update(tag_block);
        poly.update(ciphertext);
        poly.update(&[0u8; 16][..ciphertext.len() % 16]);
        poly.update(&0u64.to_le_bytes());
        poly.update(&(64u64 + ciphertext.len() as u64).to_le_bytes());
        Ok(poly.finish())
    }

    fn advance(&mut self, mac: &[u8; 16], tag: u8) -> Result<(), NetError> {
        for (n, m) in self.nonce[4..].iter_mut().zip(mac) {
            *n ^= m;
        }
        let counter =
            u32::from_le_bytes([self.nonce[0], self.nonce[1], self.nonce[2], self.nonce[3]])
                .wrapping_add(1);
        self.nonce[..4].copy_from_slice(&counter.to_le_bytes());
        if tag & TAG_REKEY != 0 || counter == 0 {
            self.rekey()?;
        }
        Ok(())
    }

    fn rekey(&mut self) -> Result<(), NetError> {
        let mut buf = [0u8; 40];
        buf[..32].copy_from_slice(&self.key);
        buf[32..].copy_from_slice(&self.nonce[4..]);
        self.xor(0, &mut buf)?;
        self.key.copy_from_slice(&buf[..32]);
        self.nonce[4..].copy_from_slice(&buf[32..]);
        self.nonce[..4].copy_from_slice(&1u32.to_le_bytes());
        Ok(())
    }
}

/// Poly1305 over a byte stream fed in arbitrary pieces (libsodium's incremental API).
struct PolyStream {
    poly: Poly1305,
    carry: [u8; 16],
    carried: usize,
}

impl PolyStream {
    fn new(key: &[u8; 32]) -> Self {
        PolyStream {
            poly: Poly1305::new(&(*key).into()),
            carry: [0u8; 16],
            carried: 0,
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        if self.carried > 0 {
            let take = (16 - self.carried).min(data.len());
            self.carry[self.carried..self.carried + take].copy_from_slice(&data[..take]);
            self.carried += take;
            data = &data[take..];
            if self.carried < 16 {
                return;
            }
            self.poly.update(&[self.carry.into()]);
            self.carried = 0;
        }
        let mut chunks = data.chunks_exact(16);
        for chunk in &mut chunks {
            let mut block = [0u8; 16];
            block.copy_from_slice(chunk);
            self.poly.update(&[block.into()]);
        }
        let rest = chunks.remainder();
        self.carry[..rest.len()].copy_from_slice(rest);
        self.carried = rest.len();
    }

    fn finish(self) -> [u8; 16] {
        let tag = self.poly.compute_unpadded(&self.carry[..self.carried]);
        let mut out = [0u8; 16];
        out.copy_from_slice(tag.as_slice());
        out
    }
}

/// The sending half (`Push`).
#[derive(Clone)]
pub struct Push {
    state: State,
    header: [u8; HEADERBYTES],
}

impl Push {
    /// A push state with a random header.
    pub fn new(key: &[u8; 32]) -> Result<Self, NetError> {
        let mut header = [0u8; HEADERBYTES];
        getrandom::fill(&mut header).map_err(|e| NetError::Random {
            reason: e.to_string(),
        })?;
        Ok(Self::with_header(key, header))
    }

    /// A push state with a given header (for tests and vectors).
    pub fn with_header(key: &[u8; 32], header: [u8; HEADERBYTES]) -> Self {
        Push {
            state: State::new(key, &header),
            header,
        }
    }

    /// The header the receiver needs.
    pub fn header(&self) -> [u8; HEADERBYTES] {
        self.header
    }

    /// Encrypts one message with [`TAG_MESSAGE`], appending `plain.len() + ABYTES` bytes.
    pub fn push(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), NetError> {
        let mut block = [0u8; 64];
        block[0] = TAG_MESSAGE;
        self.state.xor(1, &mut block)?;
        let start = out.len();
        out.push(block[0]);
        out.extend_from_slice(plain);
        let body = out.get_mut(start + 1..).unwrap_or_default();
        self.state.xor(2, body)?;
        let mac = self
            .state
            .mac(&block, out.get(start + 1..).unwrap_or_default())?;
        out.extend_from_slice(&mac);
        self.state.advance(&mac, TAG_MESSAGE)
    }
}

/// The receiving half (`Pull`).
#[derive(Clone)]
pub struct Pull {
    state: State,
}

impl Pull {
    /// A pull state from the key and the sender's header.
    pub fn new(key: &[u8; 32], header: &[u8; HEADERBYTES]) -> Self {
        Pull {
            state: State::new(key, header),
        }
    }

    /// Decrypts one message, returning the plaintext and its tag. A message that fails
    /// authentication leaves the state unchanged and is an error.
    pub fn pull(&mut self, msg: &[u8]) -> Result<(Vec<u8>, u8), NetError> {
        if msg.len() < ABYTES {
            return Err(NetError::MessageTooShort { len: msg.len() });
        }
        let (first, rest) = msg.split_at(1);
        let (ciphertext, mac) = rest.split_at(rest.len() - 16);
        let mut block = [0u8; 64];
        block[0] = first[0];
        self.state.xor(1, &mut block)?;
        let tag = block[0];
        block[0] = first[0];
        let expected = self.state.mac(&block, ciphertext)?;
        if !bool::from(expected.ct_eq(mac)) {
            return Err(NetError::DecryptFailed);
        }
        let mut plain = ciphertext.to_vec();
        self.state.xor(2, &mut plain)?;
        self.state.advance(&expected, tag)?;
        Ok((plain, tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with npm sodium-secretstream: `new Push(Buffer.alloc(32, 7))`, then
    // next('hello'), next(empty), next(100 x 0x01).
    const HEADER: &str = "cc210daeaee9d78c961f16edfeebea14c7ea3810cdb22e6b";
    const C1: &str = "cb6a488611b50a69b8422a957841bf6572175c166685";
    const C2: &str = "2538fb12452579685b551af71462ff2803";

    fn header() -> [u8; 24] {
        let mut h = [0u8; 24];
        h.copy_from_slice(&hex::decode(HEADER).unwrap_or_default());
        h
    }

    #[test]
    fn push_matches_libsodium_vectors() -> Result<(), NetError> {
        let mut p = Push::with_header(&[7; 32], header());
        let mut out = Vec::new();
        p.push(b"hello", &mut out)?;
        assert_eq!(hex::encode(&out), C1);
        out.clear();
        p.push(b"", &mut out)?;
        assert_eq!(hex::encode(&out), C2);
        Ok(())
    }

    #[test]
    fn pull_reads_libsodium_and_rejects_tampering() -> Result<(), NetError> {
        let mut pull = Pull::new(&[7; 32], &header());
        let c1 = hex::decode(C1).unwrap_or_default();
        let mut bad = c1.clone();
        bad[3] ^= 1;
        assert!(matches!(pull.pull(&bad), Err(NetError::DecryptFailed)));
        assert_eq!(pull.pull(&c1)?, (b"hello".to_vec(), TAG_MESSAGE));
        assert_eq!(
            pull.pull(&hex::decode(C2).unwrap_or_default())?.0,
            b"".to_vec()
        );
        assert!(pull.pull(&[1, 2, 3]).is_err());
        Ok(())
    }
}
