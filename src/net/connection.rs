//! [`Connection`]: one peer connection (a [`SecretStream`]) multiplexed with protomux into
//! channels, and [`Channel`], one Hypercore core's replication channel on it.
//!
//! Two tasks run per connection: a reader that decrypts frames, decodes protomux and routes
//! each message to its channel (waiting when a channel's buffer is full, which stops reading
//! from the socket: backpressure, as JS pauses the stream), and a writer that encrypts and
//! sends queued frames in order. When the peer goes away, stalls past the idle timeout or
//! sends garbage, both tasks stop, every channel's `recv` returns
//! [`NetError::ConnectionClosed`] with the reason, and nothing else is affected.
//!
//! Channels opened by the peer that match none of ours wait in [`Connection::accept`] until
//! the application opens the same protocol and id (which pairs them) or rejects them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use super::noise::KeyPair;
use super::protomux::{self, Frame};
use super::stream::{SecretReader, SecretStream, SecretStreamConfig, SecretWriter, StreamInfo};
use super::wire::{self, Message};
use super::NetError;

/// The receiving half of an encrypted message stream a [`Connection`] can run on: the secret
/// stream of a direct connection, or a Hyperswarm connection.
pub trait MessageReader: Send + 'static {
    /// The next message; `Ok(None)` when the peer ended the stream cleanly.
    fn recv(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<Vec<u8>>, NetError>> + Send;
}

/// The sending half of an encrypted message stream a [`Connection`] can run on.
pub trait MessageWriter: Send + 'static {
    /// Sends one message (an empty one is a keep-alive).
    fn send(
        &mut self,
        msg: &[u8],
    ) -> impl std::future::Future<Output = Result<(), NetError>> + Send;
    /// Ends our direction of the stream.
    fn close(&mut self) -> impl std::future::Future<Output = Result<(), NetError>> + Send;
}

impl<R: AsyncRead + Unpin + Send + 'static> MessageReader for SecretReader<R> {
    fn recv(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<Vec<u8>>, NetError>> + Send {
        SecretReader::recv(self)
    }
}

impl<W: AsyncWrite + Unpin + Send + 'static> MessageWriter for SecretWriter<W> {
    fn send(
        &mut self,
        msg: &[u8],
    ) -> impl std::future::Future<Output = Result<(), NetError>> + Send {
        SecretWriter::send(self, msg)
    }
    fn close(&mut self) -> impl std::future::Future<Output = Result<(), NetError>> + Send {
        SecretWriter::close(self)
    }
}

/// Settings for a [`Connection`].
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Handshake and idle timeouts of the secret stream.
    pub stream: SecretStreamConfig,
    /// Messages buffered per channel before the reader stops reading the socket.
    pub channel_buffer: usize,
    /// Bytes buffered for channels the peer opened that we have not answered yet; beyond
    /// this the peer is violating the protocol and the connection ends.
    pub max_pending_bytes: usize,
    /// Send an empty keep-alive message after this long without sending (JS Hyperswarm
    /// peers use 5 s); `None` sends none.
    pub keep_alive: Option<Duration>,
    /// How long [`Connection::open_core`] waits for the peer to open its side.
    pub open_timeout: Duration,
    /// Writing one frame may take at most this long; a peer that stops reading longer ends
    /// the connection with [`NetError::Timeout`].
    pub write_timeout: Duration,
    /// Bytes that may wait in the send queue; sends beyond it fail with
    /// [`NetError::SendQueueFull`] (a single frame larger than this is still accepted when the
    /// queue is empty). Poll [`Connection::queued_bytes`] to pace sending.
    pub max_queued_bytes: usize,
}

impl Default for ConnectionConfig {
    /// Keep-alive every 5 s and an idle timeout of 20 s: JS Hypercore's `replicate()` also
    /// sends keep-alives every 5 s, so a live peer is never idle that long.
    fn default() -> Self {
        ConnectionConfig {
            stream: SecretStreamConfig {
                idle_timeout: Some(Duration::from_secs(20)),
                ..SecretStreamConfig::default()
            },
            channel_buffer: 256,
            max_pending_bytes: 4 * 1024 * 1024,
            keep_alive: Some(Duration::from_secs(5)),
            open_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(20),
            max_queued_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What the reader hands a channel.
#[derive(Debug)]
enum Event {
    Opened { handshake: Vec<u8> },
    Message { kind: u64, payload: Vec<u8> },
    Rejected,
    Closed,
    ConnectionEnded { reason: String },
}

struct LocalChannel {
    protocol: String,
    aliases: Vec<String>,
    id: Option<Vec<u8>>,
    remote_id: Option<u64>,
    events: mpsc::UnboundedSender<Event>,
    permits: Arc<Semaphore>,
}

impl LocalChannel {
    fn matches(&self, protocol: &str, id: &Option<Vec<u8>>) -> bool {
        (self.protocol == protocol || self.aliases.iter().any(|a| a == protocol)) && self.id == *id
    }
}

enum RemoteSlot {
    Paired(u64),
    Pending {
        protocol: String,
        id: Option<Vec<u8>>,
        handshake: Vec<u8>,
        buffered: Vec<(u64, Vec<u8>)>,
        /// Bytes this slot counts against `max_pending_bytes` (512 per open, as JS's
        /// `byteSize`, plus what it holds).
        cost: usize,
    },
}

#[derive(Default)]
struct MuxState {
    next_local: u64,
    local: HashMap<u64, LocalChannel>,
    remote: HashMap<u64, RemoteSlot>,
    pending_bytes: usize,
    ended: Option<String>,
    /// Where unmatched opens from the peer go; dropped when the connection ends so that
    /// [`Connection::accept`] returns `None`.
    incoming: Option<mpsc::UnboundedSender<IncomingChannel>>,
}

enum Outgoing {
    Frame(Vec<u8>),
    Shutdown,
}

struct Shared {
    state: Mutex<MuxState>,
    out: mpsc::UnboundedSender<Outgoing>,
    /// Bytes queued for the writer and not yet written.
    queued: AtomicUsize,
    config: ConnectionConfig,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, MuxState> {
        // A poisoned lock means a panic elsewhere; the state is still consistent enough to
        // shut down, so recover it rather than panic again.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send_frame(&self, frame: Vec<u8>) -> Result<(), NetError> {
        let len = frame.len();
        let max = self.config.max_queued_bytes;
        let queued = self.queued.fetch_add(len, Ordering::AcqRel) + len;
        if queued > max && queued != len {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return Err(NetError::SendQueueFull { queued, max });
        }
        self.out.send(Outgoing::Frame(frame)).map_err(|_| {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            self.closed_error()
        })
    }

    fn closed_error(&self) -> NetError {
        NetError::ConnectionClosed {
            reason: self
                .lock()
                .ended
                .clone()
                .unwrap_or_else(|| "connection closed".into()),
        }
    }

    /// Ends the connection: every channel learns why.
    fn end(&self, reason: String) {
        let mut st = self.lock();
        if st.ended.is_some() {
            return;
        }
        for ch in st.local.values() {
            let _ = ch.events.send(Event::ConnectionEnded {
                reason: reason.clone(),
            });
            ch.permits.close();
        }
        st.local.clear();
        st.remote.clear();
        st.incoming = None;
        st.ended = Some(reason);
        drop(st);
        let _ = self.out.send(Outgoing::Shutdown);
    }
}

/// A channel the peer opened that none of ours matched yet.
#[derive(Debug, Clone)]
pub struct IncomingChannel {
    /// Its protocol name.
    pub protocol: String,
    /// Its id (for Hypercore, the discovery key).
    pub id: Option<Vec<u8>>,
    /// The peer's handshake bytes.
    pub handshake: Vec<u8>,
    remote_id: u64,
}

impl IncomingChannel {
    /// The discovery key, when this is a Hypercore replication channel.
    pub fn discovery_key(&self) -> Option<[u8; 32]> {
        if self.protocol != wire::PROTOCOL && self.protocol != wire::PROTOCOL_ALIAS {
            return None;
        }
        self.id
            .as_deref()
            .and_then(|id| <[u8; 32]>::try_from(id).ok())
    }
}

/// A multiplexed connection to one peer.
pub struct Connection {
    shared: Arc<Shared>,
    incoming: tokio::sync::Mutex<mpsc::UnboundedReceiver<IncomingChannel>>,
    info: StreamInfo,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field(
                "remote_public_key",
                &hex::encode(self.info.remote_public_key),
            )
            .finish_non_exhaustive()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Channels outliving the connection must see it end rather than wait forever.
        self.shared.end("connection dropped".into());
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Connection {
    /// Runs the secret-stream handshake on `io` and starts multiplexing.
    pub async fn connect<S>(
        io: S,
        is_initiator: bool,
        key_pair: &KeyPair,
        config: ConnectionConfig,
    ) -> Result<Connection, NetError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let stream = SecretStream::connect(io, is_initiator, key_pair, &config.stream).await?;
        Connection::new(stream, config)
    }

    /// Starts multiplexing over an established secret stream. Must be called inside a tokio
    /// runtime with timers enabled (an error, not a panic, when there is no runtime).
    pub fn new<S>(stream: SecretStream<S>, config: ConnectionConfig) -> Result<Connection, NetError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (reader, writer, info) = stream.into_split();
        Connection::from_parts(reader, writer, info, config)
    }

    /// Starts multiplexing over the two halves of any encrypted message stream whose
    /// handshake established `info` (e.g. a Hyperswarm connection:
    /// `SwarmPeer::stream_info` and `SwarmStream::into_split`). Must be called inside a tokio
    /// runtime with timers enabled.
    pub fn from_parts<R: MessageReader, W: MessageWriter>(
        reader: R,
        writer: W,
        info: StreamInfo,
        config: ConnectionConfig,
    ) -> Result<Connection, NetError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| NetError::NoRuntime {
            reason: e.to_string(),
        })?;
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let keep_alive = config.keep_alive;
        let shared = Arc::new(Shared {
            state: Mutex::new(MuxState {
                next_local: 1,
                incoming: Some(in_tx),
                ..MuxState::default()
            }),
            out: out_tx,
            queued: AtomicUsize::new(0),
            config,
        });
        let r = runtime.spawn(read_loop(reader, shared.clone()));
        let w = runtime.spawn(write_loop(writer, out_rx, shared.clone(), keep_alive));
        Ok(Connection {
            shared,
            incoming: tokio::sync::Mutex::new(in_rx),
            info,
            tasks: vec![r, w],
        })
    }

    /// What the handshake established (keys, handshake hash, role).
    pub fn info(&self) -> &StreamInfo {
        &self.info
    }

    /// The peer's authenticated public key.
    pub fn remote_public_key(&self) -> [u8; 32] {
        self.info.remote_public_key
    }

    /// Bytes queued for sending and not yet written to the socket.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }

    /// Why the connection ended, once it has.
    pub fn ended(&self) -> Option<String> {
        self.shared.lock().ended.clone()
    }

    /// The next channel the peer opened that we have not opened ourselves; `None` once the
    /// connection has ended. Answer it with [`Connection::open_channel`] /
    /// [`Connection::open_core`] (same protocol and id) or [`Connection::reject`].
    pub async fn accept(&self) -> Option<IncomingChannel> {
        let mut rx = self.incoming.lock().await;
        loop {
            let ch = rx.recv().await?;
            // Skip channels the peer closed meanwhile or that we already paired.
            let st = self.shared.lock();
            if matches!(
                st.remote.get(&ch.remote_id),
                Some(RemoteSlot::Pending { .. })
            ) {
                return Some(ch);
            }
        }
    }

    /// Refuses a channel the peer opened (protomux reject).
    pub fn reject(&self, channel: &IncomingChannel) -> Result<(), NetError> {
        let mut st = self.shared.lock();
        if let Some(RemoteSlot::Pending { cost, .. }) = st.remote.get(&channel.remote_id) {
            st.pending_bytes = st.pending_bytes.saturating_sub(*cost);
            st.remote.remove(&channel.remote_id);
            drop(st);
            self.shared
                .send_frame(protomux::encode_reject(channel.remote_id))?;
        }
        Ok(())
    }

    /// Opens a protomux channel (or answers the peer's pending open of the same protocol and
    /// id). Only one channel per protocol and id may be open at a time.
    pub fn open_channel(
        &self,
        protocol: &str,
        aliases: &[&str],
        id: Option<&[u8]>,
        handshake: &[u8],
    ) -> Result<MuxChannel, NetError> {
        let id = id.map(<[u8]>::to_vec);
        let describe = || hex::encode(id.as_deref().unwrap_or_default());
        let mut st = self.shared.lock();
        if let Some(reason) = &st.ended {
            return Err(NetError::ConnectionClosed {
                reason: reason.clone(),
            });
        }
        let names: Vec<&str> = std::iter::once(protocol)
            .chain(aliases.iter().copied())
            .collect();
        if st
            .local
            .values()
            .any(|c| names.iter().any(|n| c.matches(n, &id)))
        {
            return Err(NetError::DuplicateChannel {
                protocol: protocol.to_string(),
                id: describe(),
            });
        }
        let local_id = st.next_local;
        st.next_local += 1;
        let (tx, rx) = mpsc::unbounded_channel();
        let permits = Arc::new(Semaphore::new(
            self.shared
                .config
                .channel_buffer
                .clamp(1, Semaphore::MAX_PERMITS),
        ));
        let mut channel = LocalChannel {
            protocol: protocol.to_string(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            id: id.clone(),
            remote_id: None,
            events: tx,
            permits: permits.clone(),
        };
        // Pair with the oldest pending open from the peer, if any.
        let pending = st
            .remote
            .iter()
            .filter_map(|(rid, slot)| match slot {
                RemoteSlot::Pending {
                    protocol: p, id: i, ..
                } if channel.matches(p, i) => Some(*rid),
                _ => None,
            })
            .min();
        if let Some(rid) = pending {
            if let Some(RemoteSlot::Pending {
                handshake,
                buffered,
                cost,
                ..
            }) = st.remote.insert(rid, RemoteSlot::Paired(local_id))
            {
                st.pending_bytes = st.pending_bytes.saturating_sub(cost);
                channel.remote_id = Some(rid);
                let _ = channel.events.send(Event::Opened { handshake });
                for (kind, payload) in buffered {
                    let _ = channel.events.send(Event::Message { kind, payload });
                }
            }
        }
        st.local.insert(local_id, channel);
        drop(st);
        self.shared.send_frame(protomux::encode_open(
            local_id,
            protocol,
            id.as_deref(),
            handshake,
        ))?;
        Ok(MuxChannel {
            shared: self.shared.clone(),
            local_id,
            protocol: protocol.to_string(),
            id,
            events: rx,
            permits,
            remote_handshake: None,
            closed: false,
        })
    }

    /// Opens the replication channel for the core with public key `key`: protocol
    /// `hypercore/alpha`, id = its discovery key, handshake = our capability. Waits (up to
    /// `open_timeout`) for the peer to open its side, then checks the peer's capability.
    pub async fn open_core(&self, key: &[u8; 32]) -> Result<Channel, NetError> {
        let discovery_key = wire::discovery_key(key);
        let ours = wire::Handshake {
            seeks: true,
            capability: wire::capability(self.info.is_initiator, key, &self.info.handshake_hash),
        };
        let mut mux = self.open_channel(
            wire::PROTOCOL,
            &[wire::PROTOCOL_ALIAS],
            Some(&discovery_key),
            &ours.encode(),
        )?;
        let after = self.shared.config.open_timeout;
        let theirs = match tokio::time::timeout(after, mux.opened()).await {
            Ok(r) => r?,
            Err(_) => {
                mux.close();
                return Err(NetError::Timeout {
                    during: "waiting for the peer to open the core's channel",
                    after,
                });
            }
        };
        let remote = wire::Handshake::decode(&theirs)?;
        let expected = wire::capability(!self.info.is_initiator, key, &self.info.handshake_hash);
        if remote.capability != expected {
            mux.close();
            return Err(NetError::CapabilityMismatch {
                discovery_key: hex::encode(discovery_key),
            });
        }
        Ok(Channel {
            mux,
            key: *key,
            discovery_key,
            remote_handshake: remote,
        })
    }

    /// Ends the connection gracefully: queued frames are sent, then our direction is closed.
    pub fn close(&self) {
        self.shared.end("closed locally".into());
    }
}

/// One protomux channel on a [`Connection`]. Dropping it closes it.
#[derive(Debug)]
pub struct MuxChannel {
    shared: Arc<Shared>,
    local_id: u64,
    protocol: String,
    id: Option<Vec<u8>>,
    events: mpsc::UnboundedReceiver<Event>,
    permits: Arc<Semaphore>,
    remote_handshake: Option<Vec<u8>>,
    closed: bool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

impl MuxChannel {
    fn closed_error(&self) -> NetError {
        NetError::ChannelClosed {
            protocol: self.protocol.clone(),
            id: hex::encode(self.id.as_deref().unwrap_or_default()),
        }
    }

    fn handle_terminal(&mut self, ev: Event) -> NetError {
        self.closed = true;
        match ev {
            Event::Rejected => NetError::ChannelRejected {
                protocol: self.protocol.clone(),
                id: hex::encode(self.id.as_deref().unwrap_or_default()),
            },
            Event::ConnectionEnded { reason } => NetError::ConnectionClosed { reason },
            _ => self.closed_error(),
        }
    }

    /// Waits until the peer has opened its side; returns its handshake bytes. Fails with
    /// [`NetError::ChannelRejected`] if the peer refused.
    pub async fn opened(&mut self) -> Result<Vec<u8>, NetError> {
        if let Some(h) = &self.remote_handshake {
            return Ok(h.clone());
        }
        if self.closed {
            return Err(self.closed_error());
        }
        match self.events.recv().await {
            Some(Event::Opened { handshake }) => {
                self.remote_handshake = Some(handshake.clone());
                Ok(handshake)
            }
            Some(Event::Message { .. }) => Err(NetError::ProtocolViolation {
                reason: "message before open".into(),
            }),
            Some(ev) => Err(self.handle_terminal(ev)),
            None => Err(self.shared.closed_error()),
        }
    }

    /// Sends one message of type `kind`.
    pub fn send(&self, kind: u64, payload: &[u8]) -> Result<(), NetError> {
        if self.closed {
            return Err(self.closed_error());
        }
        self.shared
            .send_frame(protomux::encode_message(self.local_id, kind, payload))
    }

    /// Sends several messages as one protomux batch frame (what a corked JS channel sends).
    pub fn send_batch(&self, messages: &[(u64, Vec<u8>)]) -> Result<(), NetError> {
        if self.closed {
            return Err(self.closed_error());
        }
        let items: Vec<(u64, u64, &[u8])> = messages
            .iter()
            .map(|(k, p)| (self.local_id, *k, p.as_slice()))
            .collect();
        self.shared.send_frame(protomux::encode_batch(&items))
    }

    /// The next message `(type, payload)`. Errors once the channel or connection closed.
    pub async fn recv(&mut self) -> Result<(u64, Vec<u8>), NetError> {
        loop {
            if self.closed {
                return Err(self.closed_error());
            }
            match self.events.recv().await {
                Some(Event::Opened { handshake }) => self.remote_handshake = Some(handshake),
                Some(Event::Message { kind, payload }) => {
                    self.permits.add_permits(1);
                    return Ok((kind, payload));
                }
                Some(ev) => return Err(self.handle_terminal(ev)),
                None => {
                    self.closed = true;
                    return Err(self.shared.closed_error());
                }
            }
        }
    }

    /// Closes the channel (protomux close); the peer's side closes too.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let mut st = self.shared.lock();
        if let Some(ch) = st.local.remove(&self.local_id) {
            if let Some(rid) = ch.remote_id {
                st.remote.remove(&rid);
            }
            ch.permits.close();
        }
        let ended = st.ended.is_some();
        drop(st);
        if !ended {
            let _ = self
                .shared
                .send_frame(protomux::encode_close(self.local_id));
        }
    }
}

impl Drop for MuxChannel {
    fn drop(&mut self) {
        self.close();
    }
}

/// A Hypercore replication channel for one core on a [`Connection`].
#[derive(Debug)]
pub struct Channel {
    mux: MuxChannel,
    key: [u8; 32],
    discovery_key: [u8; 32],
    remote_handshake: wire::Handshake,
}

impl Channel {
    /// The core's public key.
    pub fn key(&self) -> [u8; 32] {
        self.key
    }

    /// The core's discovery key (the channel id).
    pub fn discovery_key(&self) -> [u8; 32] {
        self.discovery_key
    }

    /// The peer's verified handshake.
    pub fn remote_handshake(&self) -> &wire::Handshake {
        &self.remote_handshake
    }

    /// Sends one message.
    pub fn send(&self, message: &Message) -> Result<(), NetError> {
        self.mux.send(message.kind(), &message.encode())
    }

    /// Sends several messages in one protomux batch.
    pub fn send_batch(&self, messages: &[Message]) -> Result<(), NetError> {
        let encoded: Vec<(u64, Vec<u8>)> =
            messages.iter().map(|m| (m.kind(), m.encode())).collect();
        self.mux.send_batch(&encoded)
    }

    /// The next message. Message types this implementation does not know are skipped (as
    /// JS does); a known type that fails to decode is an error for that message only.
    pub async fn recv(&mut self) -> Result<Message, NetError> {
        loop {
            let (kind, payload) = self.mux.recv().await?;
            match Message::decode(kind, &payload) {
                Err(NetError::UnknownMessageType { .. }) => continue,
                other => return other,
            }
        }
    }

    /// Closes the channel.
    pub fn close(&mut self) {
        self.mux.close();
    }
}

async fn read_loop<R: MessageReader>(mut reader: R, shared: Arc<Shared>) {
    let reason = loop {
        match reader.recv().await {
            Ok(Some(msg)) => {
                let frames = match protomux::decode_frame(&msg) {
                    Ok(f) => f,
                    Err(e) => break format!("peer sent an invalid protomux frame: {e}"),
                };
                let mut failed = None;
                for frame in frames {
                    if let Err(e) = handle_frame(&shared, frame).await {
                        failed = Some(e.to_string());
                        break;
                    }
                }
                if let Some(reason) = failed {
                    break reason;
                }
            }
            Ok(None) => break "peer ended the connection".to_string(),
            Err(e) => break e.to_string(),
        }
    };
    shared.end(reason);
}

async fn handle_frame(shared: &Shared, frame: Frame) -> Result<(), NetError> {
    match frame {
        Frame::Open {
            remote_id,
            protocol,
            id,
            handshake,
        } => {
            let mut st = shared.lock();
            if remote_id == 0 {
                drop(st);
                return shared.send_frame(protomux::encode_reject(0));
            }
            if st.remote.contains_key(&remote_id) {
                return Err(NetError::ProtocolViolation {
                    reason: format!("peer reopened channel id {remote_id}"),
                });
            }
            let local = st
                .local
                .iter()
                .filter(|(_, c)| c.remote_id.is_none() && c.matches(&protocol, &id))
                .map(|(lid, _)| *lid)
                .min();
            match local.and_then(|lid| st.local.get_mut(&lid).map(|c| (lid, c))) {
                Some((lid, ch)) => {
                    ch.remote_id = Some(remote_id);
                    let _ = ch.events.send(Event::Opened { handshake });
                    st.remote.insert(remote_id, RemoteSlot::Paired(lid));
                }
                None => {
                    let cost =
                        512 + protocol.len() + handshake.len() + id.as_ref().map_or(0, |i| i.len());
                    st.pending_bytes += cost;
                    let max = shared.config.max_pending_bytes;
                    if st.pending_bytes > max {
                        return Err(NetError::ProtocolViolation {
                            reason: format!(
                                "peer opened channels we did not answer worth more than {max} bytes"
                            ),
                        });
                    }
                    st.remote.insert(
                        remote_id,
                        RemoteSlot::Pending {
                            protocol: protocol.clone(),
                            id: id.clone(),
                            handshake: handshake.clone(),
                            buffered: Vec::new(),
                            cost,
                        },
                    );
                    if let Some(tx) = &st.incoming {
                        let _ = tx.send(IncomingChannel {
                            protocol,
                            id,
                            handshake,
                            remote_id,
                        });
                    }
                }
            }
            Ok(())
        }
        Frame::Reject { local_id } => {
            let mut st = shared.lock();
            let rejectable = st
                .local
                .get(&local_id)
                .is_some_and(|c| c.remote_id.is_none());
            if rejectable {
                if let Some(ch) = st.local.remove(&local_id) {
                    let _ = ch.events.send(Event::Rejected);
                    ch.permits.close();
                }
            }
            Ok(())
        }
        Frame::Close { remote_id } => {
            let mut st = shared.lock();
            match st.remote.remove(&remote_id) {
                Some(RemoteSlot::Paired(lid)) => {
                    if let Some(ch) = st.local.remove(&lid) {
                        let _ = ch.events.send(Event::Closed);
                        ch.permits.close();
                    }
                }
                Some(RemoteSlot::Pending { cost, .. }) => {
                    st.pending_bytes = st.pending_bytes.saturating_sub(cost);
                }
                None => {}
            }
            Ok(())
        }
        Frame::Message {
            remote_id,
            kind,
            payload,
        } => {
            let target = {
                let mut st = shared.lock();
                let paired = match st.remote.get(&remote_id) {
                    Some(RemoteSlot::Paired(lid)) => Some(*lid),
                    Some(RemoteSlot::Pending { .. }) => None,
                    None => return Ok(()), // closed channel: ignore, as JS does
                };
                match paired {
                    Some(lid) => st
                        .local
                        .get(&lid)
                        .map(|c| (c.events.clone(), c.permits.clone())),
                    None => {
                        let max = shared.config.max_pending_bytes;
                        let add = payload.len() + 16;
                        st.pending_bytes += add;
                        if st.pending_bytes > max {
                            return Err(NetError::ProtocolViolation {
                                reason: format!(
                                    "peer buffered more than {max} bytes on channels we did not open"
                                ),
                            });
                        }
                        if let Some(RemoteSlot::Pending { buffered, cost, .. }) =
                            st.remote.get_mut(&remote_id)
                        {
                            buffered.push((kind, payload));
                            *cost += add;
                        }
                        return Ok(());
                    }
                }
            };
            let Some((events, permits)) = target else {
                return Ok(());
            };
            // Backpressure: wait for room in the channel (a closed semaphore means the
            // channel is gone, so the message is dropped).
            if let Ok(permit) = permits.acquire().await {
                permit.forget();
                let _ = events.send(Event::Message { kind, payload });
            }
            Ok(())
        }
    }
}

async fn write_loop<W: MessageWriter>(
    mut writer: W,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    shared: Arc<Shared>,
    keep_alive: Option<Duration>,
) {
    loop {
        let next = match keep_alive {
            Some(every) => match tokio::time::timeout(every, rx.recv()).await {
                Ok(o) => o,
                Err(_) => Some(Outgoing::Frame(Vec::new())), // keep-alive, 0 bytes queued
            },
            None => rx.recv().await,
        };
        match next {
            Some(Outgoing::Frame(frame)) => {
                let after = shared.config.write_timeout;
                let result = match tokio::time::timeout(after, writer.send(&frame)).await {
                    Ok(r) => r,
                    Err(_) => Err(NetError::Timeout {
                        during: "sending (the peer stopped reading)",
                        after,
                    }),
                };
                shared.queued.fetch_sub(frame.len(), Ordering::AcqRel);
                if let Err(e) = result {
                    shared.end(e.to_string());
                    return;
                }
            }
            Some(Outgoing::Shutdown) => {
                // Send what was queued before the shutdown, then close our direction.
                while let Ok(Outgoing::Frame(frame)) = rx.try_recv() {
                    if writer.send(&frame).await.is_err() {
                        break;
                    }
                }
                let _ = writer.close().await;
                return;
            }
            None => {
                let _ = writer.close().await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pair() -> Result<(Connection, Connection), NetError> {
        let (a, b) = tokio::io::duplex(1 << 16);
        let cfg = ConnectionConfig::default();
        let (ka, kb) = (KeyPair::from_seed([1; 32]), KeyPair::from_seed([2; 32]));
        let (ca, cb) = tokio::join!(
            Connection::connect(a, true, &ka, cfg.clone()),
            Connection::connect(b, false, &kb, cfg.clone())
        );
        Ok((ca?, cb?))
    }

    #[tokio::test]
    async fn rust_peers_open_the_same_core_once_and_exchange_messages() -> Result<(), NetError> {
        let (ca, cb) = pair().await?;
        let key = [7u8; 32];
        let (a, b) = tokio::join!(ca.open_core(&key), cb.open_core(&key));
        let (mut a, mut b) = (a?, b?);
        assert_eq!(a.discovery_key(), wire::discovery_key(&key));
        let sync = Message::Sync(wire::Sync {
            length: 3,
            uploading: true,
            ..wire::Sync::default()
        });
        a.send(&sync)?;
        a.send_batch(&[
            Message::Cancel(wire::Cancel { request: 1 }),
            Message::Cancel(wire::Cancel { request: 2 }),
        ])?;
        assert_eq!(b.recv().await?, sync);
        assert_eq!(
            b.recv().await?,
            Message::Cancel(wire::Cancel { request: 1 })
        );
        assert_eq!(
            b.recv().await?,
            Message::Cancel(wire::Cancel { request: 2 })
        );
        b.send(&Message::NoData(wire::NoData {
            request: 9,
            reason: 0,
        }))?;
        assert_eq!(
            a.recv().await?,
            Message::NoData(wire::NoData {
                request: 9,
                reason: 0
            })
        );
        // A remote close ends the peer's channel; dropping a connection ends its channels.
        a.close();
        assert!(matches!(
            b.recv().await,
            Err(NetError::ChannelClosed { .. })
        ));
        let mut other = ca.open_channel("x", &[], None, &[])?;
        drop(ca);
        assert!(matches!(
            other.recv().await,
            Err(NetError::ConnectionClosed { .. })
        ));
        // The peer notices the connection went away.
        assert!(tokio::time::timeout(Duration::from_secs(5), async {
            while cb.accept().await.is_some() {}
        })
        .await
        .is_ok());
        Ok(())
    }

    #[tokio::test]
    async fn peer_that_stops_reading_ends_the_connection() -> Result<(), NetError> {
        let (a, b) = tokio::io::duplex(1 << 16);
        let cfg = ConnectionConfig {
            write_timeout: Duration::from_millis(200),
            max_queued_bytes: 1 << 20,
            ..ConnectionConfig::default()
        };
        let (ka, kb) = (KeyPair::from_seed([1; 32]), KeyPair::from_seed([2; 32]));
        let peer_cfg = SecretStreamConfig::default();
        let (conn, peer) = tokio::join!(
            Connection::connect(a, true, &ka, cfg),
            SecretStream::responder(b, &kb, &peer_cfg)
        );
        let (conn, _peer_never_reads) = (conn?, peer?);
        let ch = conn.open_channel("x", &[], None, &[])?;
        let chunk = vec![1u8; 100_000];
        let mut full = false;
        for _ in 0..1000 {
            match ch.send(0, &chunk) {
                Ok(()) => tokio::task::yield_now().await,
                Err(NetError::SendQueueFull { .. }) => {
                    full = true;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        assert!(full, "the send queue is bounded");
        tokio::time::sleep(Duration::from_millis(400)).await;
        let ended = conn.ended().unwrap_or_default();
        assert!(ended.contains("stopped reading"), "{ended}");
        assert!(ch.send(0, b"more").is_err());
        Ok(())
    }

    #[tokio::test]
    async fn unanswered_open_flood_ends_the_connection() -> Result<(), NetError> {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (ka, kb) = (KeyPair::from_seed([1; 32]), KeyPair::from_seed([2; 32]));
        let peer_cfg = SecretStreamConfig::default();
        let (conn, peer) = tokio::join!(
            Connection::connect(a, true, &ka, ConnectionConfig::default()),
            SecretStream::responder(b, &kb, &peer_cfg)
        );
        let (conn, mut peer) = (conn?, peer?);
        for i in 1..20_000u64 {
            if peer
                .send(&protomux::encode_open(i, "flood", None, &[]))
                .await
                .is_err()
            {
                break;
            }
        }
        let ended = tokio::time::timeout(Duration::from_secs(10), async {
            while conn.accept().await.is_some() {}
        })
        .await;
        assert!(ended.is_ok());
        let reason = conn.ended().unwrap_or_default();
        assert!(reason.contains("did not answer"), "{reason}");
        Ok(())
    }

    #[tokio::test]
    async fn wrong_capability_is_refused() -> Result<(), NetError> {
        let (ca, cb) = pair().await?;
        // The peer opens the core's channel with a capability for another key.
        let dk = wire::discovery_key(&[7; 32]);
        let forged = wire::Handshake {
            seeks: true,
            capability: wire::capability(false, &[8; 32], &cb.info().handshake_hash),
        };
        let _theirs = cb.open_channel(wire::PROTOCOL, &[], Some(&dk), &forged.encode())?;
        let r = ca.open_core(&[7; 32]).await;
        assert!(
            matches!(r, Err(NetError::CapabilityMismatch { .. })),
            "{r:?}"
        );
        Ok(())
    }
}
