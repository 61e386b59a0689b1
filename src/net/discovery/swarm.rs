//! Hyperswarm topics on a HyperDHT, through the `hyperswarm` crate 0.1.
//!
//! A [`Swarm`] owns one DHT node (a UDP socket). [`Swarm::join`] announces a topic
//! (`server`: peers looking it up connect to us) and/or looks it up (`client`: we connect to
//! the peers announcing it). A background task drives the crate (it only makes progress while
//! polled) and hands each established connection to [`Swarm::next_peer`] as a [`SwarmPeer`].
//! Each connection is pumped by a task of its own into a [`SwarmStream`], so a slow or dead
//! peer never stalls the DHT or another peer.
//!
//! What works (tested against JS Hyperswarm 4.17 / HyperDHT 6 on a local testnet): we find a
//! JS peer announcing a topic and it finds us announcing one; the connection carries
//! protomux and Hypercore replication (capabilities bound to its handshake hash).
//!
//! Limits of the crate, and what we do about them:
//! - It starts every lookup and announce from its bootstrap nodes only, and stops at an error
//!   reply, which JS bootstrap nodes give: we first walk the DHT with a throwaway node and
//!   give the swarm the nodes found as its starting points (`seed_nodes`).
//! - No hole punching and no relaying: only peers whose UDP address is reachable directly
//!   connect (same host or LAN, a public address, a forwarded port).
//! - `todo!()`/`unwrap` on some requests (PEER_HOLEPUNCH, unknown commands): one UDP packet
//!   stops the swarm (as [`DiscoveryError::SwarmPanicked`], never the process); our node is
//!   ephemeral so that strangers do not route such requests to it, but anyone knowing our
//!   address can still send one. After that, start a new [`Swarm`].
//! - It chooses the key pair (random per swarm; connections we dial use yet another key).
//! - Its connection stream wakes itself on every poll: the driver polls it every 5 ms instead.
//! - A connection it accepted drives the DHT node's RPC on every poll and throws away what
//!   that yields, which includes the next peers' PEER_HANDSHAKE requests; and it wakes itself,
//!   so its pump spins a core. While one accepted connection was open, a second JS peer took
//!   up to 40 s to get in. We detach the RPC from every connection we are handed
//!   (`detach_from_dht`): the driver alone serves the DHT.
//! - Each PEER_HANDSHAKE that reaches us becomes a connection, also a JS peer's retry of one
//!   and the copy it sent through a second relay (JS HyperDHT's server answers copies with its
//!   first reply). The peer uses one; the others never get a message and end after the UDX
//!   retransmits (about 13 s), but first send their secret-stream header to the same peer
//!   stream, and when one arrives before ours the peer fails the connection with "Invalid
//!   header received" (about 1 run in 30 of `js_finds_rust_peer_announcing_a_topic` here).
//! - An ended UDX stream is not reported: a vanished peer is noticed by the idle timeout
//!   (keep-alives are sent, as JS Hyperswarm does).
//! - Its debug assertions fire on what current JS sends: Cargo.toml builds the DHT crates
//!   without them in the dev profile too.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, SinkExt, StreamExt};
use hyperswarm::{DhtConfig, JoinOpts};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{guard, panic_message, DiscoveryError};
use crate::net::stream::StreamInfo;
use crate::net::NetError;

/// Which DHT to join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// The public HyperDHT (`node1..3.hyperdht.org:49737`, resolved by DNS). Only used when
    /// asked for explicitly.
    Public,
    /// A private DHT (e.g. `@hyperswarm/testnet`) reached through these nodes.
    Nodes(Vec<SocketAddr>),
}

/// Settings for a [`Swarm`].
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// The DHT to join.
    pub bootstrap: Bootstrap,
    /// Local UDP address of our DHT node (`0.0.0.0:0`: all interfaces, any port).
    pub bind: SocketAddr,
    /// A connection that receives nothing (not even a keep-alive) for this long ends with
    /// [`NetError::Timeout`].
    pub idle_timeout: Duration,
    /// Send an empty keep-alive message after this long without sending (JS Hyperswarm: 5 s).
    pub keep_alive: Duration,
    /// Most connections the swarm keeps at once.
    pub max_peers: usize,
    /// Messages buffered per connection and direction: received ones before we stop reading
    /// from the peer, and ones waiting to be sent before [`SwarmWriter::send`] waits.
    pub buffer: usize,
    /// [`Swarm::bind`] waits at most this long for its first walk of the DHT (see
    /// `seed_nodes`).
    pub bootstrap_timeout: Duration,
}

impl SwarmConfig {
    /// A private DHT reached through `bootstrap`, our node bound to all interfaces.
    pub fn new(bootstrap: Vec<SocketAddr>) -> SwarmConfig {
        SwarmConfig {
            bootstrap: Bootstrap::Nodes(bootstrap),
            bind: SocketAddr::from(([0, 0, 0, 0], 0)),
            idle_timeout: Duration::from_secs(20),
            keep_alive: Duration::from_secs(5),
            max_peers: 64,
            buffer: 256,
            bootstrap_timeout: Duration::from_secs(15),
        }
    }

    /// The public HyperDHT, our node bound to all interfaces.
    pub fn public() -> SwarmConfig {
        SwarmConfig {
            bootstrap: Bootstrap::Public,
            ..SwarmConfig::new(Vec::new())
        }
    }
}

/// One peer the swarm connected us to.
#[derive(Debug)]
pub struct SwarmPeer {
    /// The peer's static public key (authenticated by the Noise handshake).
    pub remote_public_key: [u8; 32],
    /// Whether we dialed (we looked the topic up) rather than accepted (we announced it).
    /// The side that dialed is the Noise initiator, as in JS.
    pub is_initiator: bool,
    /// The topics we found this peer on (empty for connections we accepted: the peer does not
    /// say which topic brought it).
    pub topics: Vec<[u8; 32]>,
    /// The encrypted message stream to the peer.
    pub stream: SwarmStream,
}

impl SwarmPeer {
    /// What the handshake established, in the form [`Connection::info`](crate::net::Connection::info)
    /// gives for a TCP connection (keys, role, handshake hash for Hypercore capabilities);
    /// `None` if the crate does not report the handshake hash or our key.
    pub fn stream_info(&self) -> Option<StreamInfo> {
        Some(StreamInfo {
            is_initiator: self.is_initiator,
            public_key: self.stream.local_public_key()?,
            remote_public_key: self.remote_public_key,
            handshake_hash: self.stream.handshake_hash()?,
        })
    }
}

/// The encrypted message stream of one swarm connection: the plaintext messages that JS
/// Hyperswarm's `connection` (a `@hyperswarm/secret-stream`) writes and reads, e.g. protomux
/// frames (see [`crate::net::protomux`]). Dropping it (or [`SwarmStream::close`]) ends the
/// connection. [`SwarmStream::into_split`] gives halves shaped like
/// [`SecretReader`](crate::net::stream::SecretReader) /
/// [`SecretWriter`](crate::net::stream::SecretWriter).
#[derive(Debug)]
pub struct SwarmStream {
    reader: SwarmReader,
    writer: SwarmWriter,
    /// Read when the connection was handed over: holding the crate's connection would keep
    /// its UDX stream open (and the peer connected) after we close.
    handshake_hash: Option<[u8; 64]>,
    local_public_key: Option<[u8; 32]>,
}

/// The receiving half of a [`SwarmStream`].
#[derive(Debug)]
pub struct SwarmReader {
    incoming: mpsc::Receiver<Result<Vec<u8>, NetError>>,
    ended: Option<String>,
}

/// The sending half of a [`SwarmStream`]; dropping it ends the connection.
#[derive(Debug)]
pub struct SwarmWriter {
    out: Option<mpsc::Sender<Vec<u8>>>,
}

impl SwarmReader {
    /// The next message (keep-alives are skipped). `Ok(None)`: the connection ended without
    /// an error (we closed it); after an error every call returns
    /// [`NetError::ConnectionClosed`] with the reason.
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>, NetError> {
        if let Some(reason) = &self.ended {
            return Err(NetError::ConnectionClosed {
                reason: reason.clone(),
            });
        }
        match self.incoming.recv().await {
            Some(Ok(msg)) => Ok(Some(msg)),
            Some(Err(e)) => {
                self.ended = Some(e.to_string());
                Err(e)
            }
            None => Ok(None),
        }
    }
}

impl SwarmWriter {
    /// Queues one message to send (an empty message is a keep-alive), waiting while the
    /// queue ([`SwarmConfig::buffer`] messages) is full. Fails with
    /// [`NetError::ConnectionClosed`] once the connection has ended.
    pub async fn send(&mut self, msg: &[u8]) -> Result<(), NetError> {
        let closed = || NetError::ConnectionClosed {
            reason: "the swarm connection has ended".to_string(),
        };
        let out = self.out.as_ref().ok_or_else(closed)?;
        out.send(msg.to_vec()).await.map_err(|_| closed())
    }

    /// Ends the connection once what is queued has been sent.
    pub async fn close(&mut self) -> Result<(), NetError> {
        self.out = None;
        Ok(())
    }
}

impl SwarmStream {
    /// See [`SwarmWriter::send`].
    pub async fn send(&mut self, msg: &[u8]) -> Result<(), NetError> {
        self.writer.send(msg).await
    }

    /// See [`SwarmReader::recv`].
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>, NetError> {
        self.reader.recv().await
    }

    /// Splits into halves that can be used from different tasks (read keys and the
    /// handshake hash first: [`SwarmPeer::stream_info`]).
    pub fn into_split(self) -> (SwarmReader, SwarmWriter) {
        (self.reader, self.writer)
    }

    /// The 64-byte Noise handshake hash (what Hypercore capabilities are bound to); `None`
    /// if the crate did not report it.
    pub fn handshake_hash(&self) -> Option<[u8; 64]> {
        self.handshake_hash
    }

    /// Our static public key on this connection, as the peer sees it. For connections we
    /// accepted it is [`Swarm::public_key`]; for connections we dialed the crate uses its DHT
    /// node's own key pair, which differs.
    pub fn local_public_key(&self) -> Option<[u8; 32]> {
        self.local_public_key
    }

    /// Ends the connection (what is queued is still sent); the peer sees it close.
    pub fn close(&mut self) {
        self.writer.out = None;
    }
}

/// A Hyperswarm node: join topics, get connected peers.
pub struct Swarm {
    inner: hyperswarm::Swarm,
    peers: tokio::sync::Mutex<mpsc::UnboundedReceiver<Result<SwarmPeer, DiscoveryError>>>,
    driver: JoinHandle<()>,
    public_key: [u8; 32],
    stopped: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for Swarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Swarm")
            .field("public_key", &hex::encode(self.public_key))
            .finish_non_exhaustive()
    }
}

impl Swarm {
    /// Binds our DHT node, starts bootstrapping (in the background) and the driver task.
    /// Must run inside a tokio runtime. Contacts only the nodes in `config.bootstrap` (and the
    /// DHT nodes they point us to).
    pub async fn bind(config: SwarmConfig) -> Result<Swarm, DiscoveryError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            DiscoveryError::Net(NetError::NoRuntime {
                reason: e.to_string(),
            })
        })?;
        let given: Vec<SocketAddr> = match &config.bootstrap {
            Bootstrap::Nodes(nodes) if nodes.is_empty() => {
                return Err(DiscoveryError::NoBootstrapNodes)
            }
            Bootstrap::Nodes(nodes) => nodes.clone(),
            Bootstrap::Public => {
                let mut nodes = Vec::new();
                for node in hyperswarm_public_bootstrap() {
                    nodes.extend(super::parse_address(node)?);
                }
                nodes
            }
        };
        // Never empty here: the crate would fall back to the public DHT on an empty list.
        let bind = config.bind;
        // Ephemeral: other DHT nodes do not put us in their routing tables, so strangers do
        // not send us DHT requests (mutable/immutable storage, holepunch relays) that reach
        // the crate's `todo!()` paths. Bound first, so that a taken port fails at once.
        let dht = DhtConfig::default()
            .set_ephemeral(true)
            .bind(bind)
            .map_err(|e| DiscoveryError::Bind {
                addr: bind,
                source: std::io::Error::other(e.to_string()),
            })?;
        let seeds = seed_nodes(&given, bind, config.bootstrap_timeout).await?;
        let dht = dht.set_bootstrap_nodes(&seeds);
        let swarm_config = hyperswarm::SwarmConfig::new(dht).max_peers(config.max_peers);
        let inner = std::panic::AssertUnwindSafe(hyperswarm::Swarm::with_config(swarm_config))
            .catch_unwind()
            .await
            .map_err(|p| DiscoveryError::SwarmPanicked {
                during: "starting the DHT node",
                message: panic_message(p.as_ref()),
            })?
            .map_err(|e| DiscoveryError::Dht {
                during: "starting the DHT node",
                reason: e.to_string(),
            })?;
        let public_key = guard("reading our public key", || inner.public_key())?.0;
        let (tx, rx) = mpsc::unbounded_channel();
        let stopped = Arc::new(Mutex::new(None));
        let driver = runtime.spawn(drive(inner.clone(), tx, config, stopped.clone()));
        Ok(Swarm {
            inner,
            peers: tokio::sync::Mutex::new(rx),
            driver,
            public_key,
            stopped,
        })
    }

    /// The static public key we announce topics under and accept connections with, chosen
    /// by the crate (connections we dial use another: see [`SwarmStream::local_public_key`]).
    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    /// Our DHT node's UDP address.
    pub fn local_addr(&self) -> Result<SocketAddr, DiscoveryError> {
        self.check()?;
        guard("reading the local address", || self.inner.local_addr())?.map_err(|e| {
            DiscoveryError::Dht {
                during: "reading the local address",
                reason: e.to_string(),
            }
        })
    }

    /// Joins `topic` (32 bytes, e.g. a log's discovery key): `server` announces us on it,
    /// `client` looks it up and connects to the peers found. Joining again replaces the
    /// previous mode; `server` and `client` both false leaves the topic.
    pub fn join(&self, topic: [u8; 32], server: bool, client: bool) -> Result<(), DiscoveryError> {
        self.check()?;
        let opts = match (server, client) {
            (true, true) => JoinOpts::Both,
            (true, false) => JoinOpts::Server,
            (false, true) => JoinOpts::Client,
            (false, false) => return self.leave(&topic),
        };
        guard("joining a topic", || self.inner.join(topic.into(), opts))
    }

    /// Stops announcing and looking up `topic` (connections already made stay open).
    pub fn leave(&self, topic: &[u8; 32]) -> Result<(), DiscoveryError> {
        self.check()?;
        let topic = hyperswarm::Topic::from(*topic);
        guard("leaving a topic", || self.inner.leave(&topic))
    }

    /// Waits until the first announce and lookup of every joined topic has finished (as JS
    /// `swarm.flush()`), at most `timeout`.
    pub async fn flush(&self, timeout: Duration) -> Result<(), DiscoveryError> {
        self.check()?;
        let flush = guard("flushing", || self.inner.flush())?;
        let run = std::panic::AssertUnwindSafe(flush).catch_unwind();
        match tokio::time::timeout(timeout, run).await {
            Err(_) => Err(DiscoveryError::Timeout {
                during: "flushing announces and lookups",
                after: timeout,
            }),
            Ok(Err(p)) => Err(DiscoveryError::SwarmPanicked {
                during: "flushing",
                message: panic_message(p.as_ref()),
            }),
            Ok(Ok(Err(e))) => Err(DiscoveryError::Dht {
                during: "flushing",
                reason: e.to_string(),
            }),
            Ok(Ok(Ok(()))) => Ok(()),
        }
    }

    /// The next peer the swarm connected (in either direction). Waits forever: bound it
    /// with [`Swarm::next_peer_within`] or `tokio::time::timeout`.
    pub async fn next_peer(&self) -> Result<SwarmPeer, DiscoveryError> {
        let mut peers = self.peers.lock().await;
        match peers.recv().await {
            Some(result) => result,
            None => Err(self.stopped_error()),
        }
    }

    /// [`Swarm::next_peer`], failing with [`DiscoveryError::Timeout`] after `timeout`.
    pub async fn next_peer_within(&self, timeout: Duration) -> Result<SwarmPeer, DiscoveryError> {
        tokio::time::timeout(timeout, self.next_peer())
            .await
            .map_err(|_| DiscoveryError::Timeout {
                during: "waiting for a peer",
                after: timeout,
            })?
    }

    fn stopped_error(&self) -> DiscoveryError {
        let reason = self
            .stopped
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .unwrap_or_else(|| "the swarm's driver ended".to_string());
        DiscoveryError::SwarmStopped { reason }
    }

    fn check(&self) -> Result<(), DiscoveryError> {
        if self.driver.is_finished() {
            return Err(self.stopped_error());
        }
        Ok(())
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Walks the DHT from the `given` bootstrap nodes with a short-lived node of our own and
/// returns the DHT nodes it found (plus `given`), to be the swarm's starting points.
///
/// Why: the crate starts every query (LOOKUP, ANNOUNCE) from its bootstrap nodes only, and
/// drops the closer nodes carried by an error reply. JS bootstrap nodes (the public ones, and
/// `@hyperswarm/testnet`'s first node) are not persistent DHT nodes: they answer LOOKUP and
/// ANNOUNCE with `UNKNOWN_COMMAND` (plus closer nodes, which JS follows and the crate does
/// not), so started from them alone every lookup and announce ends at once with nothing.
/// Starting from the nodes a FIND_NODE walk found (which answer normally) avoids it.
async fn seed_nodes(
    given: &[SocketAddr],
    bind: SocketAddr,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, DiscoveryError> {
    const DURING: &str = "bootstrapping the DHT";
    let local = SocketAddr::new(bind.ip(), 0);
    let config = DhtConfig::default()
        .set_bootstrap_nodes(given)
        .set_ephemeral(true)
        .bind(local)
        .map_err(|e| DiscoveryError::Bind {
            addr: local,
            source: std::io::Error::other(e.to_string()),
        })?;
    let walk = async {
        let rpc = dht_rpc::Rpc::with_config(config)
            .await
            .map_err(|e| DiscoveryError::Dht {
                during: DURING,
                reason: e.to_string(),
            })?;
        let done = guard(DURING, || rpc.bootstrap())?
            .await
            .map_err(|e| DiscoveryError::Dht {
                during: DURING,
                reason: e.to_string(),
            })?;
        if done.stats.num_successes() == 0 {
            return Err(DiscoveryError::BootstrapUnreachable {
                nodes: given.to_vec(),
            });
        }
        guard(DURING, || rpc.closer_nodes(rpc.id()))
    };
    let found = match tokio::time::timeout(
        timeout,
        std::panic::AssertUnwindSafe(walk).catch_unwind(),
    )
    .await
    {
        Err(_) => {
            return Err(DiscoveryError::Timeout {
                during: DURING,
                after: timeout,
            })
        }
        Ok(Err(p)) => {
            return Err(DiscoveryError::SwarmPanicked {
                during: DURING,
                message: panic_message(p.as_ref()),
            })
        }
        Ok(Ok(result)) => result?,
    };
    let mut seeds: Vec<SocketAddr> = found.into_iter().map(|peer| peer.addr).collect();
    for addr in given {
        if !seeds.contains(addr) {
            seeds.push(*addr);
        }
    }
    Ok(seeds)
}

/// The public HyperDHT bootstrap nodes (as `hyperdht`'s `DEFAULT_BOOTSTRAP`).
fn hyperswarm_public_bootstrap() -> &'static [&'static str] {
    &[
        "node1.hyperdht.org:49737",
        "node2.hyperdht.org:49737",
        "node3.hyperdht.org:49737",
    ]
}

/// How often the driver polls the crate when it had nothing to do (bounds the delay added to
/// DHT replies and new connections).
const DRIVER_POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Polls the crate's connection stream (which drives the DHT: bootstrap, announces, lookups,
/// connects) and turns each connection into a [`SwarmPeer`].
async fn drive(
    swarm: hyperswarm::Swarm,
    tx: mpsc::UnboundedSender<Result<SwarmPeer, DiscoveryError>>,
    config: SwarmConfig,
    stopped: Arc<Mutex<Option<String>>>,
) {
    let mut connections = swarm.connections();
    let reason = loop {
        // The crate's stream wakes itself on every poll (a busy loop that would hold a CPU
        // core): poll it once, and when it has nothing, wait a little before polling again.
        let next = match std::panic::AssertUnwindSafe(connections.next())
            .catch_unwind()
            .now_or_never()
        {
            Some(next) => next,
            None => {
                tokio::time::sleep(DRIVER_POLL_INTERVAL).await;
                continue;
            }
        };
        let event = match next {
            Err(p) => {
                let e = DiscoveryError::SwarmPanicked {
                    during: "running the swarm",
                    message: panic_message(p.as_ref()),
                };
                let reason = e.to_string();
                let _ = tx.send(Err(e));
                break reason;
            }
            Ok(None) => break "the swarm's connection stream ended".to_string(),
            // One failed connection does not stop the swarm.
            Ok(Some(Err(_))) => continue,
            Ok(Some(Ok(event))) => event,
        };
        let peer = SwarmPeer {
            remote_public_key: event.remote_public_key.0,
            is_initiator: event.client,
            topics: event.topics.iter().map(|t| t.0).collect(),
            stream: SwarmStream::start(event.connection, &config),
        };
        if tx.send(Ok(peer)).is_err() {
            break "the swarm was dropped".to_string();
        }
    };
    if let Ok(mut s) = stopped.lock() {
        *s = Some(reason);
    }
}

/// Stops `conn` from driving the DHT node's RPC.
///
/// The crate gives a connection it accepted a handle on the RPC (`ConnectionInner::rpc`, to
/// flush the handshake reply), and every poll of the connection then polls the RPC until it has
/// nothing more and drops what it got. That includes incoming DHT requests, which are answered
/// only when the crate's DHT node gets them, polled by our driver (`RpcEvent::CustomRequest`:
/// the PEER_HANDSHAKE of the next peer dialing us); and since the RPC's socket reader wakes
/// whoever polled it, the connection's pump never sleeps. The reply was sent before the crate
/// handed the connection over, so the handle has no use left.
fn detach_from_dht(conn: &hyperswarm::Connection) {
    let mut inner = conn.inner.write().unwrap_or_else(|e| e.into_inner());
    inner.rpc = None;
}

impl SwarmStream {
    fn start(conn: hyperswarm::Connection, config: &SwarmConfig) -> SwarmStream {
        detach_from_dht(&conn);
        let handshake_hash = guard("reading the handshake hash", || {
            hyperswarm::Connection::handshake_hash(&conn)
        })
        .ok()
        .flatten()
        .and_then(|h| <[u8; 64]>::try_from(h).ok());
        let local_public_key = guard("reading our public key", || {
            hypercore_handshake::CipherTrait::local_public_key(&conn)
        })
        .ok();
        let (out_tx, out_rx) = mpsc::channel(config.buffer.max(1));
        let (in_tx, in_rx) = mpsc::channel(config.buffer.max(1));
        tokio::spawn(pump(
            conn,
            out_rx,
            in_tx,
            config.idle_timeout,
            config.keep_alive,
        ));
        SwarmStream {
            reader: SwarmReader {
                incoming: in_rx,
                ended: None,
            },
            writer: SwarmWriter { out: Some(out_tx) },
            handshake_hash,
            local_public_key,
        }
    }
}

/// Moves messages between one crate connection and its [`SwarmStream`], with keep-alives and
/// the idle timeout; ends on error, on the stream being dropped or closed, or on a panic.
async fn pump(
    conn: hyperswarm::Connection,
    mut out_rx: mpsc::Receiver<Vec<u8>>,
    in_tx: mpsc::Sender<Result<Vec<u8>, NetError>>,
    idle_timeout: Duration,
    keep_alive: Duration,
) {
    use hyperswarm_cipher::Event;
    let mut reader = conn.clone();
    let mut writer = conn;
    let idle = tokio::time::sleep(idle_timeout);
    tokio::pin!(idle);
    let mut ticker = tokio::time::interval(keep_alive);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sent = tokio::time::Instant::now();
    let failure: Option<NetError> = loop {
        tokio::select! {
            next = std::panic::AssertUnwindSafe(reader.next()).catch_unwind() => {
                match next {
                    Err(p) => break Some(NetError::ConnectionClosed {
                        reason: format!("the hyperswarm crate panicked: {}", panic_message(p.as_ref())),
                    }),
                    Ok(None) => break None,
                    Ok(Some(Event::Message(msg))) => {
                        idle.as_mut().reset(tokio::time::Instant::now() + idle_timeout);
                        if msg.is_empty() {
                            continue; // keep-alive
                        }
                        if in_tx.send(Ok(msg)).await.is_err() {
                            break None; // the SwarmStream was dropped
                        }
                    }
                    Ok(Some(Event::HandshakePayload(_))) => {
                        idle.as_mut().reset(tokio::time::Instant::now() + idle_timeout);
                    }
                    Ok(Some(Event::ErrStuff(source))) => break Some(NetError::Io {
                        during: "reading from a swarm connection",
                        source,
                    }),
                }
            }
            msg = out_rx.recv() => {
                let Some(msg) = msg else {
                    let _ = std::panic::AssertUnwindSafe(writer.close()).catch_unwind().await;
                    break None;
                };
                if let Some(e) = send(&mut writer, msg).await {
                    break Some(e);
                }
                last_sent = tokio::time::Instant::now();
            }
            _ = ticker.tick() => {
                if last_sent.elapsed() >= keep_alive {
                    if let Some(e) = send(&mut writer, Vec::new()).await {
                        break Some(e);
                    }
                    last_sent = tokio::time::Instant::now();
                }
            }
            _ = &mut idle => break Some(NetError::Timeout {
                during: "reading from a swarm connection",
                after: idle_timeout,
            }),
        }
    };
    if let Some(e) = failure {
        let _ = in_tx.send(Err(e)).await;
    }
}

async fn send(writer: &mut hyperswarm::Connection, msg: Vec<u8>) -> Option<NetError> {
    match std::panic::AssertUnwindSafe(writer.send(msg))
        .catch_unwind()
        .await
    {
        Ok(Ok(())) => None,
        Ok(Err(source)) => Some(NetError::Io {
            during: "sending on a swarm connection",
            source,
        }),
        Err(p) => Some(NetError::ConnectionClosed {
            reason: format!(
                "the hyperswarm crate panicked: {}",
                panic_message(p.as_ref())
            ),
        }),
    }
}

/// The crate's cipher events (`hypercore_handshake::CipherEvent`, reached through the
/// `hyperswarm` crate's connection type).
mod hyperswarm_cipher {
    pub use hypercore_handshake::CipherEvent as Event;
}

impl crate::net::connection::MessageReader for SwarmReader {
    fn recv(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<Vec<u8>>, NetError>> + Send {
        SwarmReader::recv(self)
    }
}

impl crate::net::connection::MessageWriter for SwarmWriter {
    fn send(
        &mut self,
        msg: &[u8],
    ) -> impl std::future::Future<Output = Result<(), NetError>> + Send {
        SwarmWriter::send(self, msg)
    }
    fn close(&mut self) -> impl std::future::Future<Output = Result<(), NetError>> + Send {
        SwarmWriter::close(self)
    }
}

impl SwarmPeer {
    /// Starts a [`Connection`](crate::net::Connection) (protomux channels, Hypercore
    /// replication) over this swarm connection, as over a direct one. `None` when the crate
    /// did not report the handshake (keys and hash) that capabilities need.
    pub fn into_connection(
        self,
        config: crate::net::ConnectionConfig,
    ) -> Option<Result<crate::net::Connection, NetError>> {
        let info = self.stream_info()?;
        let (reader, writer) = self.stream.into_split();
        Some(crate::net::Connection::from_parts(
            reader, writer, info, config,
        ))
    }
}
