//! The bottom of the network layer: encrypted connections and channel multiplexing that JS
//! Hypercore peers understand, and the Hypercore replication messages carried on them.
//!
//! - [`noise`]: the Noise XX handshake of `@hyperswarm/secret-stream` (Ed25519 DH, BLAKE2b).
//! - [`secretstream`]: libsodium's xchacha20poly1305 secretstream (the transport cipher).
//! - [`stream`]: [`SecretStream`], uint24-framed encrypted messages over any tokio
//!   `AsyncRead + AsyncWrite`, with handshake and idle timeouts.
//! - messages are read and written with [`crate::compact`] (npm `compact-encoding`).
//! - [`protomux`]: npm `protomux` 3.12 framing (open / reject / close / batch / messages).
//! - [`wire`]: the `hypercore/alpha` messages of JS Hypercore 10.38 / 11 (`lib/messages.js`)
//!   and the capability of `lib/caps.js`.
//! - [`replicate`]: the replication engine ([`replicate::Replicator`]): proofs requested,
//!   verified and served over core channels.
//! - [`connection`]: [`Connection`], one multiplexed peer connection where each core gets
//!   one [`Channel`] carrying typed [`wire::Message`]s.
//!
//! ```no_run
//! use vitra::net::{wire, Connection, ConnectionConfig, KeyPair};
//! # async fn run(core_key: [u8; 32]) -> Result<(), vitra::net::NetError> {
//! let tcp = tokio::net::TcpStream::connect("127.0.0.1:4000").await.map_err(|source| {
//!     vitra::net::NetError::Io { during: "connecting", source }
//! })?;
//! let conn = Connection::connect(tcp, true, &KeyPair::generate()?, ConnectionConfig::default()).await?;
//! let mut channel = conn.open_core(&core_key).await?; // one channel per core
//! channel.send(&wire::Message::Sync(wire::Sync { uploading: true, ..Default::default() }))?;
//! let reply: wire::Message = channel.recv().await?;
//! # Ok(()) }
//! ```
//!
//! Threat model: the peer is untrusted until the handshake, and after it is only known by its
//! public key. Before authentication we accept handshake frames of at most 64 KiB; after it a
//! frame is at most 16 MiB (uint24). A capability proves the peer knows a core's key and is
//! bound to this connection's handshake hash, so it cannot be replayed elsewhere. Nothing here
//! checks that data is *true*: proofs are verified by the replication engine.
//!
//! This layer never panics on anything a peer sends, never lets one peer's failure touch
//! another connection, and never decides what to replicate: the replication engine above it
//! (built on the log engine) owns requests, proofs and storage.

pub mod connection;
pub mod discovery;
pub mod noise;
pub mod protomux;
pub mod replicate;
pub mod secretstream;
pub mod stream;
pub mod wire;

pub use connection::{Channel, Connection, ConnectionConfig, IncomingChannel, MuxChannel};
pub use noise::KeyPair;
pub use stream::{SecretStream, SecretStreamConfig};

use std::time::Duration;

/// Everything that can go wrong on a connection. Each error ends only the session it
/// happened on.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Reading from or writing to the underlying transport failed.
    #[error("I/O error while {during}: {source}")]
    Io {
        /// What we were doing (e.g. "reading a frame").
        during: &'static str,
        /// The transport's error.
        #[source]
        source: std::io::Error,
    },
    /// The peer closed the connection in the middle of something (a handshake or a frame).
    #[error("peer closed the connection while {during}")]
    PeerClosed {
        /// What we were waiting for.
        during: &'static str,
    },
    /// The peer sent nothing for longer than the configured timeout.
    #[error("peer stalled: nothing received for {after:?} while {during}")]
    Timeout {
        /// What we were waiting for.
        during: &'static str,
        /// The timeout that elapsed.
        after: Duration,
    },
    /// The Noise handshake failed (bad key, bad MAC, malformed message).
    #[error("Noise handshake failed: {reason}")]
    HandshakeFailed {
        /// Why.
        reason: &'static str,
    },
    /// The operating system's random source failed.
    #[error("random source failed: {reason}")]
    Random {
        /// The error text.
        reason: String,
    },
    /// The first message after the handshake was not a valid stream id + secretstream header.
    #[error("invalid secret-stream header: {reason}")]
    InvalidHeader {
        /// What was wrong.
        reason: &'static str,
    },
    /// An encrypted message was shorter than the 17 bytes of tag and MAC.
    #[error("encrypted message of {len} bytes is shorter than its tag and MAC")]
    MessageTooShort {
        /// Its length.
        len: usize,
    },
    /// An encrypted message failed authentication (tampered, or not from this peer).
    #[error("encrypted message failed authentication")]
    DecryptFailed,
    /// The cipher's keystream ran out (cannot happen below 256 GiB per message).
    #[error("cipher keystream exhausted")]
    CipherExhausted,
    /// A message is larger than one secret-stream frame can carry.
    #[error("message of {len} bytes exceeds the {max}-byte frame limit")]
    MessageTooLarge {
        /// Its length.
        len: usize,
        /// The largest allowed.
        max: usize,
    },
    /// A message could not be decoded (it ended early or held an impossible value).
    #[error("malformed message: {0}")]
    Decode(#[from] crate::compact::DecodeError),
    /// A field held a value we cannot accept.
    #[error("invalid {what}: {reason}")]
    InvalidValue {
        /// The field.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The peer broke the protomux protocol (e.g. reused a channel id).
    #[error("protomux protocol violation: {reason}")]
    ProtocolViolation {
        /// What it did.
        reason: String,
    },
    /// The peer rejected a channel we opened.
    #[error("peer rejected channel {protocol} for {id}")]
    ChannelRejected {
        /// The channel's protocol.
        protocol: String,
        /// The channel id (discovery key) in hex.
        id: String,
    },
    /// The channel was closed (by the peer, by us, or because the connection ended).
    #[error("channel {protocol} for {id} is closed")]
    ChannelClosed {
        /// The channel's protocol.
        protocol: String,
        /// The channel id (discovery key) in hex.
        id: String,
    },
    /// A channel for this protocol and id is already open on this connection.
    #[error("channel {protocol} for {id} is already open on this connection")]
    DuplicateChannel {
        /// The channel's protocol.
        protocol: String,
        /// The channel id (discovery key) in hex.
        id: String,
    },
    /// The connection has ended; carries why, when known.
    #[error("connection closed: {reason}")]
    ConnectionClosed {
        /// Why it ended.
        reason: String,
    },
    /// The peer's replication capability did not prove it knows the core's key.
    #[error("peer sent an invalid replication capability for core {discovery_key}")]
    CapabilityMismatch {
        /// The core's discovery key in hex.
        discovery_key: String,
    },
    /// Too many bytes are waiting to be sent (the peer reads slower than we send).
    #[error("send queue full: {queued} bytes queued, limit {max}")]
    SendQueueFull {
        /// Bytes that would be queued.
        queued: usize,
        /// The configured limit.
        max: usize,
    },
    /// A connection was started outside a tokio runtime.
    #[error("no tokio runtime to run the connection on: {reason}")]
    NoRuntime {
        /// tokio's explanation.
        reason: String,
    },
    /// A Hypercore message of a type this implementation does not know.
    #[error("unknown hypercore message type {kind}")]
    UnknownMessageType {
        /// The type number.
        kind: u64,
    },
}
