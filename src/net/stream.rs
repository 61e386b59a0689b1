//! [`SecretStream`]: `@hyperswarm/secret-stream` 6.x over any tokio byte stream.
//!
//! Every frame on the wire is a 3-byte little-endian length and that many bytes. The three
//! Noise handshake messages are frames; then each side sends one frame of 56 bytes, its
//! stream id (BLAKE2b-256 of its role's namespace keyed with the handshake hash) and its
//! secretstream header; every later frame is one secretstream-encrypted message.
//!
//! A peer that closes the connection ends the stream ([`SecretReader::recv`] gives `None` at a
//! frame boundary, [`NetError::PeerClosed`] inside one); a peer silent past the idle timeout
//! gives [`NetError::Timeout`]; bytes that fail to decrypt give [`NetError::DecryptFailed`].
//! After any error the reader stays failed.

use std::time::Duration;

use crate::log::crypto::{keyed_hash, namespace};
use tokio::io::{
    split, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
    ReadHalf, WriteHalf,
};

use super::noise::{Handshake, KeyPair};
use super::secretstream::{Pull, Push, ABYTES, HEADERBYTES};
use super::NetError;

/// Largest frame body (uint24).
pub const MAX_FRAME: usize = 0xff_ffff;
/// Largest plaintext message one frame can carry.
pub const MAX_MESSAGE: usize = MAX_FRAME - ABYTES;
/// Largest handshake frame we accept before the peer is authenticated.
const MAX_HANDSHAKE_FRAME: usize = 65_535;

/// Timeouts for a secret stream.
#[derive(Debug, Clone)]
pub struct SecretStreamConfig {
    /// The whole handshake (three Noise messages and both headers) must finish within this.
    pub handshake_timeout: Duration,
    /// After the handshake, a peer that sends nothing for this long ends the stream. `None`
    /// waits forever (JS's default; Hyperswarm peers send keep-alives).
    pub idle_timeout: Option<Duration>,
}

impl Default for SecretStreamConfig {
    fn default() -> Self {
        SecretStreamConfig {
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: None,
        }
    }
}

/// What the handshake established about this connection.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// Whether we started the handshake.
    pub is_initiator: bool,
    /// Our static public key.
    pub public_key: [u8; 32],
    /// The peer's static public key (authenticated by the handshake).
    pub remote_public_key: [u8; 32],
    /// The 64-byte Noise handshake hash (what Hypercore capabilities are bound to).
    pub handshake_hash: [u8; 64],
}

impl StreamInfo {
    /// The stream id a side sends: BLAKE2b-256 keyed by the handshake hash over the
    /// initiator's or responder's `hyperswarm/secret-stream` namespace.
    pub fn stream_id(&self, initiator: bool) -> [u8; 32] {
        stream_id(&self.handshake_hash, initiator)
    }
}

fn stream_id(handshake_hash: &[u8; 64], initiator: bool) -> [u8; 32] {
    let ns = namespace("hyperswarm/secret-stream", if initiator { 0 } else { 1 });
    keyed_hash(handshake_hash, &[&ns])
}

/// Reads one uint24-framed frame. `Ok(None)` is a clean end of stream at a frame boundary.
async fn read_frame<R: AsyncRead + Unpin>(
    io: &mut BufReader<R>,
    max: usize,
    during: &'static str,
) -> Result<Option<Vec<u8>>, NetError> {
    let available = io
        .fill_buf()
        .await
        .map_err(|source| NetError::Io { during, source })?;
    if available.is_empty() {
        return Ok(None);
    }
    let mut len = [0u8; 3];
    read_exact(io, &mut len, during).await?;
    let len = u32::from_le_bytes([len[0], len[1], len[2], 0]) as usize;
    if len > max {
        return Err(NetError::MessageTooLarge { len, max });
    }
    let mut body = vec![0u8; len];
    read_exact(io, &mut body, during).await?;
    Ok(Some(body))
}

async fn read_exact<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut [u8],
    during: &'static str,
) -> Result<(), NetError> {
    match io.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(NetError::PeerClosed { during })
        }
        Err(source) => Err(NetError::Io { during, source }),
    }
}

async fn write_frame<W: AsyncWrite + Unpin>(
    io: &mut W,
    body: &[u8],
    during: &'static str,
) -> Result<(), NetError> {
    let mut frame = Vec::with_capacity(body.len() + 3);
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes()[..3]);
    frame.extend_from_slice(body);
    io.write_all(&frame)
        .await
        .map_err(|source| NetError::Io { during, source })?;
    io.flush()
        .await
        .map_err(|source| NetError::Io { during, source })
}

/// The receiving half of a secret stream.
#[derive(Debug)]
pub struct SecretReader<R> {
    io: BufReader<R>,
    pull: Pull,
    idle_timeout: Option<Duration>,
    failed: Option<String>,
}

impl std::fmt::Debug for Pull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pull")
    }
}

impl std::fmt::Debug for Push {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Push")
    }
}

impl<R: AsyncRead + Unpin> SecretReader<R> {
    /// The next message. `Ok(None)`: the peer ended the stream cleanly. Empty messages
    /// (JS keep-alives) are returned as empty vectors.
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>, NetError> {
        if let Some(reason) = &self.failed {
            return Err(NetError::ConnectionClosed {
                reason: reason.clone(),
            });
        }
        let result = self.recv_inner().await;
        if let Err(e) = &result {
            self.failed = Some(e.to_string());
        }
        result
    }

    async fn recv_inner(&mut self) -> Result<Option<Vec<u8>>, NetError> {
        const DURING: &str = "reading a message";
        let frame = match self.idle_timeout {
            Some(after) => {
                match tokio::time::timeout(after, read_frame(&mut self.io, MAX_FRAME, DURING)).await
                {
                    Ok(r) => r?,
                    Err(_) => {
                        return Err(NetError::Timeout {
                            during: DURING,
                            after,
                        })
                    }
                }
            }
            None => read_frame(&mut self.io, MAX_FRAME, DURING).await?,
        };
        match frame {
            None => Ok(None),
            Some(frame) => {
                let (plain, _tag) = self.pull.pull(&frame)?;
                Ok(Some(plain))
            }
        }
    }
}

/// The sending half of a secret stream.
#[derive(Debug)]
pub struct SecretWriter<W> {
    io: W,
    push: Push,
}

impl<W: AsyncWrite + Unpin> SecretWriter<W> {
    /// Encrypts and sends one message (at most [`MAX_MESSAGE`] bytes).
    pub async fn send(&mut self, msg: &[u8]) -> Result<(), NetError> {
        if msg.len() > MAX_MESSAGE {
            return Err(NetError::MessageTooLarge {
                len: msg.len(),
                max: MAX_MESSAGE,
            });
        }
        let len = msg.len() + ABYTES;
        let mut frame = Vec::with_capacity(len + 3);
        frame.extend_from_slice(&(len as u32).to_le_bytes()[..3]);
        self.push.push(msg, &mut frame)?;
        const DURING: &str = "sending a message";
        self.io
            .write_all(&frame)
            .await
            .map_err(|source| NetError::Io {
                during: DURING,
                source,
            })?;
        self.io.flush().await.map_err(|source| NetError::Io {
            during: DURING,
            source,
        })
    }

    /// Ends our direction of the stream (TCP FIN); the peer sees end-of-stream.
    pub async fn close(&mut self) -> Result<(), NetError> {
        self.io.shutdown().await.map_err(|source| NetError::Io {
            during: "closing the stream",
            source,
        })
    }
}

/// An authenticated, encrypted, message-framed connection compatible with
/// `@hyperswarm/secret-stream`.
#[derive(Debug)]
pub struct SecretStream<S> {
    reader: SecretReader<ReadHalf<S>>,
    writer: SecretWriter<WriteHalf<S>>,
    info: StreamInfo,
}

impl<S: AsyncRead + AsyncWrite> SecretStream<S> {
    /// Runs the handshake as the initiator (the side that dialed).
    pub async fn initiator(
        io: S,
        key_pair: &KeyPair,
        config: &SecretStreamConfig,
    ) -> Result<Self, NetError> {
        Self::connect(io, true, key_pair, config).await
    }

    /// Runs the handshake as the responder (the side that accepted).
    pub async fn responder(
        io: S,
        key_pair: &KeyPair,
        config: &SecretStreamConfig,
    ) -> Result<Self, NetError> {
        Self::connect(io, false, key_pair, config).await
    }

    /// Runs the handshake in either role, bounded by `config.handshake_timeout`.
    pub async fn connect(
        io: S,
        is_initiator: bool,
        key_pair: &KeyPair,
        config: &SecretStreamConfig,
    ) -> Result<Self, NetError> {
        let (r, w) = split(io);
        let mut r = BufReader::with_capacity(64 * 1024, r);
        let mut w = w;
        let after = config.handshake_timeout;
        let hs = tokio::time::timeout(
            after,
            handshake(&mut r, &mut w, is_initiator, key_pair.clone()),
        )
        .await
        .map_err(|_| NetError::Timeout {
            during: "the handshake",
            after,
        })??;
        let (info, push, pull) = hs;
        Ok(SecretStream {
            reader: SecretReader {
                io: r,
                pull,
                idle_timeout: config.idle_timeout,
                failed: None,
            },
            writer: SecretWriter { io: w, push },
            info,
        })
    }

    /// What the handshake established.
    pub fn info(&self) -> &StreamInfo {
        &self.info
    }

    /// The peer's authenticated static public key.
    pub fn remote_public_key(&self) -> [u8; 32] {
        self.info.remote_public_key
    }

    /// The Noise handshake hash.
    pub fn handshake_hash(&self) -> [u8; 64] {
        self.info.handshake_hash
    }

    /// Whether we were the initiator.
    pub fn is_initiator(&self) -> bool {
        self.info.is_initiator
    }

    /// Sends one message.
    pub async fn send(&mut self, msg: &[u8]) -> Result<(), NetError> {
        self.writer.send(msg).await
    }

    /// Receives one message; `Ok(None)` when the peer ended the stream.
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>, NetError> {
        self.reader.recv().await
    }

    /// Ends our direction of the stream.
    pub async fn close(&mut self) -> Result<(), NetError> {
        self.writer.close().await
    }

    /// Splits into halves that can be used from different tasks.
    pub fn into_split(
        self,
    ) -> (
        SecretReader<ReadHalf<S>>,
        SecretWriter<WriteHalf<S>>,
        StreamInfo,
    ) {
        (self.reader, self.writer, self.info)
    }
}

async fn handshake<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    r: &mut BufReader<R>,
    w: &mut W,
    is_initiator: bool,
    key_pair: KeyPair,
) -> Result<(StreamInfo, Push, Pull), NetError> {
    const DURING: &str = "the handshake";
    let public_key = key_pair.public_key();
    let mut hs = Handshake::new(is_initiator, key_pair);
    while !hs.is_done() {
        if hs.is_write_turn() {
            let msg = hs.write_message()?;
            write_frame(w, &msg, DURING).await?;
        } else {
            let msg = read_frame(r, MAX_HANDSHAKE_FRAME, DURING)
                .await?
                .ok_or(NetError::PeerClosed { during: DURING })?;
            hs.read_message(&msg)?;
        }
    }
    let outcome = hs.outcome()?;
    let info = StreamInfo {
        is_initiator,
        public_key,
        remote_public_key: outcome.remote_public_key,
        handshake_hash: outcome.hash,
    };
    let push = Push::new(&outcome.tx)?;
    let mut header_msg = Vec::with_capacity(32 + HEADERBYTES);
    header_msg.extend_from_slice(&info.stream_id(is_initiator));
    header_msg.extend_from_slice(&push.header());
    write_frame(w, &header_msg, DURING).await?;

    let remote = read_frame(r, MAX_HANDSHAKE_FRAME, DURING)
        .await?
        .ok_or(NetError::PeerClosed { during: DURING })?;
    if remote.len() != 32 + HEADERBYTES {
        return Err(NetError::InvalidHeader {
            reason: "header message has the wrong length",
        });
    }
    let (id, header) = remote.split_at(32);
    if id != info.stream_id(!is_initiator) {
        return Err(NetError::InvalidHeader {
            reason: "stream id does not match the handshake",
        });
    }
    let mut h = [0u8; HEADERBYTES];
    h.copy_from_slice(header);
    let pull = Pull::new(&outcome.rx, &h);
    Ok((info, push, pull))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_match_hypercore_crypto() {
        // crypto.namespace('hyperswarm/secret-stream', 2) as quoted by other implementations.
        assert_eq!(
            hex::encode(namespace("hyperswarm/secret-stream", 0)),
            "a931a0155b5c09e6d28628236af83c4b8a6af9af60986edeede9dc5d63192bf7"
        );
        assert_eq!(
            hex::encode(namespace("hyperswarm/secret-stream", 1)),
            "742c9d833d430af4c48a8705e91631eecf295442bbca18996e597097723b1061"
        );
    }

    #[tokio::test]
    async fn two_rust_peers_talk_and_end_cleanly() -> Result<(), NetError> {
        let (a, b) = tokio::io::duplex(1 << 16);
        let cfg = SecretStreamConfig::default();
        let ka = KeyPair::from_seed([1; 32]);
        let kb = KeyPair::from_seed([2; 32]);
        let (sa, sb) = tokio::join!(
            SecretStream::initiator(a, &ka, &cfg),
            SecretStream::responder(b, &kb, &cfg)
        );
        let (mut sa, mut sb) = (sa?, sb?);
        assert_eq!(sa.handshake_hash(), sb.handshake_hash());
        assert_eq!(sa.remote_public_key(), kb.public_key());
        assert_eq!(sb.remote_public_key(), ka.public_key());
        sa.send(b"hi").await?;
        assert_eq!(sb.recv().await?, Some(b"hi".to_vec()));
        let big = vec![9u8; 300_000];
        let (sent, got) = tokio::join!(sa.send(&big), sb.recv());
        sent?;
        assert_eq!(got?, Some(big));
        sa.close().await?;
        assert_eq!(sb.recv().await?, None);
        Ok(())
    }

    #[tokio::test]
    async fn largest_message_passes_and_larger_is_refused() -> Result<(), NetError> {
        let (a, b) = tokio::io::duplex(1 << 20);
        let cfg = SecretStreamConfig::default();
        let (ka, kb) = (KeyPair::from_seed([1; 32]), KeyPair::from_seed([2; 32]));
        let (sa, sb) = tokio::join!(
            SecretStream::initiator(a, &ka, &cfg),
            SecretStream::responder(b, &kb, &cfg)
        );
        let (mut sa, mut sb) = (sa?, sb?);
        let too_big = vec![0u8; MAX_MESSAGE + 1];
        assert!(matches!(
            sa.send(&too_big).await,
            Err(NetError::MessageTooLarge { .. })
        ));
        let largest = vec![3u8; MAX_MESSAGE];
        let (sent, got) = tokio::join!(sa.send(&largest), sb.recv());
        sent?;
        assert_eq!(got?.map(|m| m.len()), Some(MAX_MESSAGE));
        Ok(())
    }

    #[tokio::test]
    async fn handshake_times_out_on_silent_peer() {
        let (a, _b) = tokio::io::duplex(1024);
        let cfg = SecretStreamConfig {
            handshake_timeout: Duration::from_millis(100),
            idle_timeout: None,
        };
        let r = SecretStream::initiator(a, &KeyPair::from_seed([1; 32]), &cfg).await;
        assert!(matches!(r, Err(NetError::Timeout { .. })), "{r:?}");
    }

    #[tokio::test]
    async fn garbage_ends_the_handshake_with_an_error() {
        let (a, mut b) = tokio::io::duplex(1024);
        let cfg = SecretStreamConfig::default();
        let peer = async move {
            let mut buf = [0u8; 35];
            let _ = b.read_exact(&mut buf).await;
            let _ = b.write_all(&[5, 0, 0, 1, 2, 3, 4, 5]).await;
            let _ = b.shutdown().await;
            b
        };
        let kp = KeyPair::from_seed([1; 32]);
        let (r, _b) = tokio::join!(SecretStream::initiator(a, &kp, &cfg), peer);
        assert!(matches!(r, Err(NetError::HandshakeFailed { .. })), "{r:?}");
    }
}
