//! The replication engine: keeps signed logs in step with peers over [`Connection`]s, speaking
//! the `hypercore/alpha` protocol of JS Hypercore 10.38 / 11 (compat cores).
//!
//! Shape: the network runs on tokio tasks (one per connection for accepting channels, one per
//! channel moving [`wire::Message`]s), and every log mutation happens in
//! [`Replicator::handle`] on the thread that owns the logs, through a [`LogSet`]. The engine
//! never holds a log itself, so a `!Send` owner (a [`crate::database::Database`]) can drive it
//! from a current-thread runtime.
//!
//! What it does: answers pipelined requests with proofs, asks peers for signed upgrades and for
//! blocks (many requests in flight per peer, full or sparse download), follows live appends on
//! either side (sync + range announcements), serves wants with bitfields.
//!
//! ```no_run
//! use std::time::Duration;
//! use vitra::log::{Log, MemoryStorage, Storage};
//! use vitra::net::replicate::{Download, Logs, Replicator, ReplicatorConfig};
//! # async fn run(key: [u8; 32]) -> Result<(), vitra::net::replicate::ReplicateError> {
//! let mut logs = Logs::new();
//! logs.insert(Log::create_replica(Storage::Memory(MemoryStorage::new()), key)?);
//! let mut rep = Replicator::new(ReplicatorConfig::default())?;
//! rep.add_core_with(key, Download::Full);
//! rep.connect("127.0.0.1:4000").await?;
//! rep.sync(&mut logs, Duration::from_secs(30)).await?; // every block, verified
//! // Keep following: handle events as they come (appends on either side).
//! while let Some(event) = rep.next_event().await {
//!     rep.handle(&mut logs, event);
//! }
//! # Ok(()) }
//! ```
//!
//! What it must never do: store anything a peer sent before [`Log::verify_and_apply_proof`]
//! accepted it; follow a peer whose fork id for a core is higher than ours once we hold
//! verified blocks, or whose signed tree disagrees with ours on the same fork (it keeps both
//! signed heads as [`ForkEvidence`] instead; a peer whose data fails against our tree is asked
//! for its signed head at our length before its channel closes, and [`Replicator::sync`]
//! waits for that answer); or let one peer's bad message end anything but that peer's channel.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::wire::{self, Message};
use super::{Connection, ConnectionConfig, IncomingChannel, KeyPair, NetError};
use crate::log::proof::{self as lproof, Proof, ProofRequest};
use crate::log::{Log, LogError, SignedHead};
use crate::proof::{BlockInclusionProof, BlockRewriteFraudProof, LogForkFraudProof};

/// Requests in flight to one peer for one core (JS allows a few hundred).
pub const DEFAULT_MAX_INFLIGHT: usize = 256;

/// How long a sync waits for a peer's signed head asked to compare with ours (possible
/// evidence) before it stops waiting for that peer.
pub const HEAD_CHECK_WAIT: Duration = Duration::from_secs(5);

/// Blocks per `want` segment (as JS).
const SEGMENT: u64 = 32768;

/// Most single blocks remembered per peer outside its contiguous range (a peer cannot make us
/// grow without bound).
const MAX_REMOTE_BITS: usize = 1 << 20;

/// Everything that can go wrong in replication.
#[derive(Debug, thiserror::Error)]
pub enum ReplicateError {
    /// The connection layer failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A log failed (storage) while applying or answering.
    #[error(transparent)]
    Log(#[from] LogError),
    /// Connecting to or listening on an address failed.
    #[error("I/O error while {during} {addr}: {source}")]
    Io {
        /// What we were doing.
        during: &'static str,
        /// The address.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The caller's log set failed to react to a replicated update (e.g. the database could
    /// not read new participants from its index).
    #[error("the log set failed after replicating {key}: {reason}")]
    LogSet {
        /// The core's key, hex.
        key: String,
        /// What failed.
        reason: String,
    },
    /// The wait ran past its deadline before the goal was reached.
    #[error("replication did not reach its goal within {after:?}: {state}")]
    Timeout {
        /// The deadline.
        after: Duration,
        /// Where replication stood.
        state: String,
    },
    /// Every connection ended before the goal was reached.
    #[error("no peer left before the goal was reached: {state}")]
    NoPeers {
        /// Where replication stood.
        state: String,
    },
}

/// The logs a [`Replicator`] keeps in step, owned by the caller.
pub trait LogSet {
    /// The public keys of every log to replicate.
    fn keys(&self) -> Vec<[u8; 32]>;
    /// One log.
    fn log(&self, key: &[u8; 32]) -> Option<&Log>;
    /// One log, to apply verified proofs.
    fn log_mut(&mut self, key: &[u8; 32]) -> Option<&mut Log>;
    /// Called after a log grew or changed fork through replication; returns keys of logs
    /// that joined the set because of it (e.g. participants declared in a database index).
    fn updated(&mut self, key: &[u8; 32]) -> Result<Vec<[u8; 32]>, ReplicateError> {
        let _ = key;
        Ok(Vec::new())
    }
}

/// A plain set of logs keyed by public key.
#[derive(Default)]
pub struct Logs {
    logs: BTreeMap<[u8; 32], Log>,
}

impl Logs {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a log (replacing one with the same key).
    pub fn insert(&mut self, log: Log) {
        self.logs.insert(log.public_key(), log);
    }
    /// One log.
    pub fn get(&self, key: &[u8; 32]) -> Option<&Log> {
        self.logs.get(key)
    }
    /// One log, mutable (to append; then call [`Replicator::local_changed`]).
    pub fn get_mut(&mut self, key: &[u8; 32]) -> Option<&mut Log> {
        self.logs.get_mut(key)
    }
    /// Takes a log out.
    pub fn remove(&mut self, key: &[u8; 32]) -> Option<Log> {
        self.logs.remove(key)
    }
}

impl LogSet for Logs {
    fn keys(&self) -> Vec<[u8; 32]> {
        self.logs.keys().copied().collect()
    }
    fn log(&self, key: &[u8; 32]) -> Option<&Log> {
        self.logs.get(key)
    }
    fn log_mut(&mut self, key: &[u8; 32]) -> Option<&mut Log> {
        self.logs.get_mut(key)
    }
}

/// What to download for a core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Download {
    /// Only follow the signed head (upgrades); blocks are served, not fetched.
    HeadOnly,
    /// Every block, including blocks appended later (live).
    Full,
    /// These blocks only (plus the head).
    Sparse(BTreeSet<u64>),
}

/// A peer published a signed head that contradicts one we verified: the two heads, both
/// signed by the log's key. On one fork their lengths may differ: the longer head's tree
/// does not contain the shorter one (the peer's proof spelled out its tree at the shorter
/// length, and it differed from ours).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkEvidence {
    /// The log's public key.
    pub key: [u8; 32],
    /// The head we had verified (and keep following).
    pub ours: SignedHead,
    /// The conflicting head the peer proved.
    pub theirs: SignedHead,
}

impl ForkEvidence {
    /// Whether the peer moved to another fork (else: the same fork split, two different
    /// trees signed at the same length).
    pub fn is_fork(&self) -> bool {
        self.theirs.fork != self.ours.fork
    }

    /// A split log as a Vitra block-rewrite fraud proof: the inclusion proofs of the two
    /// signed heads of one fork that disagree (`None` for a fork, see
    /// [`ForkEvidence::to_fraud_proof`]). At one length they are two trees signed for the same
    /// block; at two lengths, the longer signed tree does not contain the shorter one (checking
    /// that takes the log's nodes, which the replica keeps for its side).
    pub fn to_split_proof(&self) -> Option<BlockRewriteFraudProof> {
        if self.is_fork() || self.ours.length == 0 || self.theirs.length == 0 {
            return None;
        }
        let inclusion = |h: &SignedHead| BlockInclusionProof {
            log_pubkey: self.key,
            block_seq: h.length - 1,
            root_hash_at_block: h.tree_hash,
            root_hash_signature: h.signature,
        };
        let description = if self.ours.length == self.theirs.length {
            "Checksums do not match".to_owned()
        } else {
            format!(
                "The log signed trees at lengths {} and {} that differ in their first {} blocks",
                self.ours.length,
                self.theirs.length,
                self.ours.length.min(self.theirs.length)
            )
        };
        Some(BlockRewriteFraudProof {
            description,
            given_inclusion_proof: inclusion(&self.ours),
            violating_inclusion_proof: inclusion(&self.theirs),
        })
    }

    /// The evidence as a Vitra log-fork fraud proof: the block and signed tree hash that the
    /// peer's fork contradicts.
    pub fn to_fraud_proof(&self) -> LogForkFraudProof {
        LogForkFraudProof {
            log_pubkey: self.key,
            fork_number: self.theirs.fork,
            block_seq: self.ours.length.saturating_sub(1),
            root_hash_at_block: self.ours.tree_hash,
            root_hash_signature: self.ours.signature,
        }
    }
}

/// Something the engine noticed that a caller may want to act on.
#[derive(Debug)]
pub enum Notice {
    /// A peer's channel ended with an error (bad proof, protocol violation).
    PeerFailed {
        /// Connection id.
        peer: u64,
        /// The core, when the error concerned one.
        key: Option<[u8; 32]>,
        /// What happened.
        error: String,
    },
    /// New fork or split evidence (also kept in [`Replicator::evidence`]).
    Fork(Box<ForkEvidence>),
}

/// Events from the network tasks to the engine.
#[derive(Debug)]
pub enum Event {
    /// A connection finished its handshake.
    Connected(Connection),
    /// A core channel opened.
    Opened {
        /// Connection id.
        peer: u64,
        /// The core.
        key: [u8; 32],
        /// Where to queue outgoing messages.
        out: mpsc::UnboundedSender<Vec<Message>>,
    },
    /// The peer opened a channel we did not.
    Incoming {
        /// Connection id.
        peer: u64,
        /// Its request.
        channel: IncomingChannel,
    },
    /// A message on a core channel.
    Message {
        /// Connection id.
        peer: u64,
        /// The core.
        key: [u8; 32],
        /// The message.
        message: Message,
    },
    /// A core channel ended (or failed to open).
    Closed {
        /// Connection id.
        peer: u64,
        /// The core.
        key: [u8; 32],
        /// Why.
        reason: String,
    },
    /// A connection ended.
    Disconnected {
        /// Connection id.
        peer: u64,
    },
    /// A listener or dialer failed to set up a connection.
    ConnectFailed {
        /// Why.
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReqKind {
    Upgrade,
    Block(u64),
    Conflict,
}

struct Inflight {
    peer: u64,
    key: [u8; 32],
    kind: ReqKind,
    /// When it was sent.
    sent: Instant,
}

struct PeerCore {
    out: mpsc::UnboundedSender<Vec<Message>>,
    synced: bool,
    remote_fork: u64,
    remote_length: u64,
    remote_contiguous: u64,
    remote_bits: BTreeSet<u64>,
    /// The remote's length we last acknowledged in a sync.
    acked: Option<u64>,
    /// Our (length, fork) last announced.
    announced: Option<(u64, u64)>,
    inflight: usize,
    /// The (fork, length) at which we last compared the peer's signed head with ours.
    checked: Option<(u64, u64)>,
    /// Following is refused (fork conflict).
    refused: bool,
    conflict_asked: bool,
}

struct CoreState {
    download: Download,
    /// Blocks below this are had or requested (full mode).
    cursor: u64,
    requested: BTreeSet<u64>,
    retry: BTreeSet<u64>,
    upgrade_inflight: bool,
    /// Our contiguous length as last computed.
    contiguous: u64,
}

struct PeerConn {
    conn: Arc<Connection>,
    opening: BTreeSet<[u8; 32]>,
}

/// Limits and behaviour of a [`Replicator`].
#[derive(Debug, Clone)]
pub struct ReplicatorConfig {
    /// Connection settings.
    pub connection: ConnectionConfig,
    /// Requests in flight per peer and core.
    pub max_inflight: usize,
    /// What to download for cores added without an explicit mode.
    pub default_download: Download,
}

impl Default for ReplicatorConfig {
    fn default() -> Self {
        ReplicatorConfig {
            connection: ConnectionConfig::default(),
            max_inflight: DEFAULT_MAX_INFLIGHT,
            default_download: Download::Full,
        }
    }
}

/// The replication engine (see the module docs).
pub struct Replicator {
    config: ReplicatorConfig,
    key_pair: KeyPair,
    tx: mpsc::UnboundedSender<Event>,
    rx: mpsc::UnboundedReceiver<Event>,
    conns: HashMap<u64, PeerConn>,
    next_peer: u64,
    next_request: u64,
    cores: BTreeMap<[u8; 32], CoreState>,
    channels: BTreeMap<([u8; 32], u64), PeerCore>,
    inflight: HashMap<u64, Inflight>,
    evidence: Vec<ForkEvidence>,
    notices: Vec<Notice>,
}

impl std::fmt::Debug for Replicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicator")
            .field("peers", &self.conns.len())
            .field("cores", &self.cores.len())
            .field("inflight", &self.inflight.len())
            .finish_non_exhaustive()
    }
}

/// A `wire.request` for an upgrade from `start` covering `length` blocks, on `fork`.
fn upgrade_request(id: u64, fork: u64, start: u64, length: u64) -> Message {
    Message::Request(wire::Request {
        id,
        proof: ProofRequest {
            fork,
            upgrade: Some(lproof::RequestUpgrade { start, length }),
            ..Default::default()
        },
    })
}

async fn channel_task(
    peer: u64,
    conn: Arc<Connection>,
    key: [u8; 32],
    tx: mpsc::UnboundedSender<Event>,
) {
    let mut channel = match conn.open_core(&key).await {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(Event::Closed {
                peer,
                key,
                reason: e.to_string(),
            });
            return;
        }
    };
    drop(conn);
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Vec<Message>>();
    if tx
        .send(Event::Opened {
            peer,
            key,
            out: out_tx,
        })
        .is_err()
    {
        return;
    }
    let reason = loop {
        tokio::select! {
            msg = channel.recv() => match msg {
                Ok(message) => {
                    if tx.send(Event::Message { peer, key, message }).is_err() {
                        break "replicator dropped".to_string();
                    }
                }
                Err(e) => break e.to_string(),
            },
            out = out_rx.recv() => match out {
                Some(batch) => {
                    let r = if batch.len() == 1 {
                        channel.send(&batch[0])
                    } else {
                        channel.send_batch(&batch)
                    };
                    if let Err(e) = r {
                        break e.to_string();
                    }
                }
                None => break "closed locally".to_string(),
            },
        }
    };
    channel.close();
    let _ = tx.send(Event::Closed { peer, key, reason });
}

async fn accept_task(peer: u64, conn: Arc<Connection>, tx: mpsc::UnboundedSender<Event>) {
    while let Some(channel) = conn.accept().await {
        if tx.send(Event::Incoming { peer, channel }).is_err() {
            return;
        }
    }
    let _ = tx.send(Event::Disconnected { peer });
}

impl Replicator {
    /// A replicator with its own identity key pair.
    pub fn new(config: ReplicatorConfig) -> Result<Replicator, ReplicateError> {
        let (tx, rx) = mpsc::unbounded_channel();
        Ok(Replicator {
            config,
            key_pair: KeyPair::generate()?,
            tx,
            rx,
            conns: HashMap::new(),
            next_peer: 1,
            next_request: 1,
            cores: BTreeMap::new(),
            channels: BTreeMap::new(),
            inflight: HashMap::new(),
            evidence: Vec::new(),
            notices: Vec::new(),
        })
    }

    /// Replicates the log `key` (which `set` must hold) with the default download mode, on
    /// every connection.
    pub fn add_core(&mut self, key: [u8; 32]) {
        let mode = self.config.default_download.clone();
        self.add_core_with(key, mode);
    }

    /// Replicates the log `key` with an explicit download mode (replacing an earlier mode).
    pub fn add_core_with(&mut self, key: [u8; 32], download: Download) {
        if let Some(c) = self.cores.get_mut(&key) {
            c.download = download;
            return;
        }
        self.cores.insert(
            key,
            CoreState {
                download,
                cursor: 0,
                requested: BTreeSet::new(),
                retry: BTreeSet::new(),
                upgrade_inflight: false,
                contiguous: 0,
            },
        );
        let peers: Vec<u64> = self.conns.keys().copied().collect();
        for peer in peers {
            self.open(peer, key);
        }
    }

    /// The download mode of cores added later without one (e.g. oplogs a database finds in
    /// its index while replicating).
    pub fn set_default_download(&mut self, download: Download) {
        self.config.default_download = download;
    }

    /// Adds `blocks` to a sparse core's wanted set (switching a head-only core to sparse).
    /// Requests go out at once to peers that have them.
    pub fn want_blocks(
        &mut self,
        set: &dyn LogSet,
        key: &[u8; 32],
        blocks: impl IntoIterator<Item = u64>,
    ) {
        if let Some(c) = self.cores.get_mut(key) {
            match &mut c.download {
                Download::Sparse(wanted) => wanted.extend(blocks),
                Download::HeadOnly => c.download = Download::Sparse(blocks.into_iter().collect()),
                Download::Full => {}
            }
        }
        self.update(set, key);
    }

    /// Fork evidence gathered so far.
    pub fn evidence(&self) -> &[ForkEvidence] {
        &self.evidence
    }

    /// Takes the notices gathered since the last call.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    /// Connections currently up.
    pub fn peer_count(&self) -> usize {
        self.conns.len()
    }

    /// Peers with an open channel for `key`, and the length each announced.
    pub fn remote_lengths(&self, key: &[u8; 32]) -> Vec<(u64, u64)> {
        self.channels
            .range((*key, 0)..=(*key, u64::MAX))
            .filter(|(_, pc)| pc.synced)
            .map(|((_, p), pc)| (*p, pc.remote_length))
            .collect()
    }

    /// Sends `Event`s into this replicator (listeners and dialers use it).
    pub fn event_sender(&self) -> mpsc::UnboundedSender<Event> {
        self.tx.clone()
    }

    /// Dials `addr` over TCP, runs the handshake as initiator and adds the connection.
    pub async fn connect(&mut self, addr: &str) -> Result<u64, ReplicateError> {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|source| ReplicateError::Io {
                during: "connecting to",
                addr: addr.to_string(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let conn =
            Connection::connect(tcp, true, &self.key_pair, self.config.connection.clone()).await?;
        Ok(self.add_connection(conn))
    }

    /// Listens on `addr` (e.g. `127.0.0.1:0`); every peer that connects is added (as
    /// responder). Returns the bound address.
    pub async fn listen(&mut self, addr: &str) -> Result<SocketAddr, ReplicateError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ReplicateError::Io {
                during: "listening on",
                addr: addr.to_string(),
                source,
            })?;
        let local = listener.local_addr().map_err(|source| ReplicateError::Io {
            during: "reading the address of",
            addr: addr.to_string(),
            source,
        })?;
        let tx = self.tx.clone();
        let key_pair = self.key_pair.clone();
        let config = self.config.connection.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = tx.closed() => return,
                };
                let Ok((tcp, _)) = accepted else {
                    // e.g. out of file descriptors: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let tx2 = tx.clone();
                let key_pair = key_pair.clone();
                let config = config.clone();
                tokio::spawn(async move {
                    let tx = tx2;
                    let ev = match Connection::connect(tcp, false, &key_pair, config).await {
                        Ok(conn) => Event::Connected(conn),
                        Err(e) => Event::ConnectFailed {
                            reason: e.to_string(),
                        },
                    };
                    let _ = tx.send(ev);
                });
            }
        });
        Ok(local)
    }

    /// Adds an established connection: opens a channel for every core. Returns its id.
    pub fn add_connection(&mut self, conn: Connection) -> u64 {
        let peer = self.next_peer;
        self.next_peer += 1;
        let conn = Arc::new(conn);
        tokio::spawn(accept_task(peer, conn.clone(), self.tx.clone()));
        self.conns.insert(
            peer,
            PeerConn {
                conn,
                opening: BTreeSet::new(),
            },
        );
        let keys: Vec<[u8; 32]> = self.cores.keys().copied().collect();
        for key in keys {
            self.open(peer, key);
        }
        peer
    }

    fn open(&mut self, peer: u64, key: [u8; 32]) {
        let Some(pc) = self.conns.get_mut(&peer) else {
            return;
        };
        if !pc.opening.insert(key) {
            return;
        }
        tokio::spawn(channel_task(peer, pc.conn.clone(), key, self.tx.clone()));
    }

    /// Waits for the next network event (`None` never happens while the replicator lives,
    /// since it holds a sender itself).
    pub async fn next_event(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// Tells peers that a log changed locally (an append by its writer).
    pub fn local_changed(&mut self, set: &dyn LogSet, key: &[u8; 32]) {
        self.announce(set, key);
        self.update(set, key);
    }

    fn send(&mut self, key: &[u8; 32], peer: u64, messages: Vec<Message>) {
        if let Some(pc) = self.channels.get(&(*key, peer)) {
            let _ = pc.out.send(messages);
        }
    }

    fn contiguous(&mut self, set: &dyn LogSet, key: &[u8; 32]) -> u64 {
        let (Some(log), Some(core)) = (set.log(key), self.cores.get_mut(key)) else {
            return 0;
        };
        if core.contiguous > log.len() {
            core.contiguous = 0;
        }
        while core.contiguous < log.len() && log.has(core.contiguous) {
            core.contiguous += 1;
        }
        core.contiguous
    }

    /// Sends sync (and a range of what we hold) to every peer of `key` whose view is stale.
    fn announce(&mut self, set: &dyn LogSet, key: &[u8; 32]) {
        let Some(log) = set.log(key) else { return };
        let (length, fork) = (log.len(), log.fork());
        let contiguous = self.contiguous(set, key);
        for ((_, _), pc) in self.channels.range_mut((*key, 0)..=(*key, u64::MAX)) {
            let mut batch = Vec::new();
            let ack = if pc.remote_fork == fork {
                pc.remote_length
            } else {
                0
            };
            if pc.announced != Some((length, fork)) || pc.acked != Some(ack) {
                batch.push(sync_message(fork, length, pc, ack));
                pc.acked = Some(ack);
            }
            if pc
                .announced
                .is_none_or(|(l, f)| f != fork || l < contiguous)
                && contiguous > 0
            {
                let start = match pc.announced {
                    Some((l, f)) if f == fork => l.min(contiguous),
                    _ => 0,
                };
                if contiguous > start {
                    batch.push(Message::Range(wire::Range {
                        drop: false,
                        start,
                        length: contiguous - start,
                    }));
                }
            }
            pc.announced = Some((length, fork));
            if !batch.is_empty() {
                let _ = pc.out.send(batch);
            }
        }
    }

    /// Handles one network event, mutating logs in `set` only with verified proofs.
    pub fn handle(&mut self, set: &mut dyn LogSet, event: Event) {
        match event {
            Event::Connected(conn) => {
                self.add_connection(conn);
            }
            Event::ConnectFailed { reason } => self.notices.push(Notice::PeerFailed {
                peer: 0,
                key: None,
                error: reason,
            }),
            Event::Opened { peer, key, out } => {
                self.channels.insert(
                    (key, peer),
                    PeerCore {
                        out,
                        synced: false,
                        remote_fork: 0,
                        remote_length: 0,
                        remote_contiguous: 0,
                        remote_bits: BTreeSet::new(),
                        acked: None,
                        announced: None,
                        inflight: 0,
                        checked: None,
                        refused: false,
                        conflict_asked: false,
                    },
                );
                self.announce(set, &key);
            }
            Event::Incoming { peer, channel } => {
                let known = channel
                    .discovery_key()
                    .and_then(|dk| {
                        self.cores
                            .keys()
                            .find(|k| wire::discovery_key(k) == dk)
                            .copied()
                    })
                    .filter(|k| set.log(k).is_some());
                match known {
                    Some(key) => self.open(peer, key),
                    None => {
                        if let Some(pc) = self.conns.get(&peer) {
                            let _ = pc.conn.reject(&channel);
                        }
                    }
                }
            }
            Event::Message { peer, key, message } => {
                if let Err(e) = self.on_message(set, peer, key, message) {
                    self.notices.push(Notice::PeerFailed {
                        peer,
                        key: Some(key),
                        error: e.to_string(),
                    });
                    // A refused peer keeps its channel while we wait for its signed head (the
                    // evidence); nothing more is requested from it.
                    let refused = self.channels.get(&(key, peer)).is_some_and(|pc| pc.refused);
                    if !refused || !self.conflict_pending(&key, Some(peer)) {
                        self.drop_channel(&key, peer);
                    }
                }
            }
            Event::Closed {
                peer,
                key,
                reason: _,
            } => {
                self.drop_channel(&key, peer);
                if let Some(pc) = self.conns.get_mut(&peer) {
                    pc.opening.remove(&key);
                }
            }
            Event::Disconnected { peer } => {
                let keys: Vec<[u8; 32]> = self
                    .channels
                    .keys()
                    .filter(|(_, p)| *p == peer)
                    .map(|(k, _)| *k)
                    .collect();
                for k in keys {
                    self.drop_channel(&k, peer);
                }
                self.conns.remove(&peer);
            }
        }
    }

    fn drop_channel(&mut self, key: &[u8; 32], peer: u64) {
        self.channels.remove(&(*key, peer));
        let ids: Vec<u64> = self
            .inflight
            .iter()
            .filter(|(_, r)| r.peer == peer && r.key == *key)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.request_failed(id);
        }
    }

    fn request_failed(&mut self, id: u64) {
        let Some(r) = self.inflight.remove(&id) else {
            return;
        };
        if let Some(pc) = self.channels.get_mut(&(r.key, r.peer)) {
            pc.inflight = pc.inflight.saturating_sub(1);
        }
        if let Some(core) = self.cores.get_mut(&r.key) {
            match r.kind {
                ReqKind::Upgrade => core.upgrade_inflight = false,
                ReqKind::Block(i) => {
                    core.requested.remove(&i);
                    core.retry.insert(i);
                }
                ReqKind::Conflict => {}
            }
        }
    }

    fn on_message(
        &mut self,
        set: &mut dyn LogSet,
        peer: u64,
        key: [u8; 32],
        message: Message,
    ) -> Result<(), ReplicateError> {
        match message {
            Message::Sync(s) => {
                if let Some(pc) = self.channels.get_mut(&(key, peer)) {
                    pc.synced = true;
                    pc.remote_fork = s.fork;
                    pc.remote_length = s.length;
                }
                self.announce(set, &key);
                self.update(set, &key);
            }
            Message::Range(r) => {
                if let Some(pc) = self.channels.get_mut(&(key, peer)) {
                    let end = r.start.saturating_add(r.length);
                    if r.drop {
                        if r.start < pc.remote_contiguous {
                            pc.remote_contiguous = r.start;
                        }
                        let drop: Vec<u64> = pc.remote_bits.range(r.start..end).copied().collect();
                        for i in drop {
                            pc.remote_bits.remove(&i);
                        }
                    } else if r.start <= pc.remote_contiguous {
                        pc.remote_contiguous = pc.remote_contiguous.max(end);
                    } else if r.length <= 4 * SEGMENT
                        && pc.remote_bits.len() + r.length as usize <= MAX_REMOTE_BITS
                    {
                        pc.remote_bits.extend(r.start..end);
                    }
                }
                self.update(set, &key);
            }
            Message::Bitfield(b) => {
                if let Some(pc) = self.channels.get_mut(&(key, peer)) {
                    // At most one segment per message, and a bounded set per peer.
                    for (w, word) in b.bitfield.iter().take((SEGMENT / 32) as usize).enumerate() {
                        for bit in 0..32u64 {
                            if word & (1 << bit) == 0 || pc.remote_bits.len() >= MAX_REMOTE_BITS {
                                continue;
                            }
                            if let Some(i) = b.start.checked_add(32 * w as u64 + bit) {
                                pc.remote_bits.insert(i);
                            }
                        }
                    }
                }
                self.update(set, &key);
            }
            Message::Want(w) => {
                if let Some(log) = set.log(&key) {
                    let start = w.start - w.start % 32;
                    let len = w.length.min(SEGMENT);
                    let mut words = vec![0u32; len.div_ceil(32) as usize];
                    for (wi, word) in words.iter_mut().enumerate() {
                        for bit in 0..32u64 {
                            let has = start
                                .checked_add(32 * wi as u64 + bit)
                                .is_some_and(|i| i < log.len() && log.has(i));
                            if has {
                                *word |= 1 << bit;
                            }
                        }
                    }
                    self.send(
                        &key,
                        peer,
                        vec![Message::Bitfield(wire::Bitfield {
                            start,
                            bitfield: words,
                        })],
                    );
                }
            }
            Message::Request(r) => {
                let reply = match set.log(&key) {
                    Some(log) if r.proof.fork == log.fork() => match log.create_proof(&r.proof) {
                        Ok(proof) => Message::Data(wire::Data {
                            request: r.id,
                            proof,
                        }),
                        Err(_) => Message::NoData(wire::NoData {
                            request: r.id,
                            reason: 0,
                        }),
                    },
                    _ => Message::NoData(wire::NoData {
                        request: r.id,
                        reason: 0,
                    }),
                };
                self.send(&key, peer, vec![reply]);
            }
            Message::NoData(n) => {
                self.request_failed(n.request);
                self.update(set, &key);
            }
            Message::Data(d) => self.on_data(set, peer, key, d)?,
            Message::Cancel(_) | Message::Unwant(_) | Message::Extension(_) => {}
        }
        Ok(())
    }

    fn on_data(
        &mut self,
        set: &mut dyn LogSet,
        peer: u64,
        key: [u8; 32],
        d: wire::Data,
    ) -> Result<(), ReplicateError> {
        let Some(req) = self.inflight.remove(&d.request) else {
            // Unsolicited (or cancelled) data: nothing is stored.
            return Ok(());
        };
        if let Some(pc) = self.channels.get_mut(&(key, peer)) {
            pc.inflight = pc.inflight.saturating_sub(1);
        }
        if let Some(core) = self.cores.get_mut(&key) {
            match req.kind {
                ReqKind::Upgrade => core.upgrade_inflight = false,
                ReqKind::Block(i) => {
                    core.requested.remove(&i);
                }
                ReqKind::Conflict => {}
            }
        }
        // A manifest (which compat cores do not use) is not taken from a peer.
        let proof = Proof {
            manifest: None,
            ..d.proof
        };
        if req.kind == ReqKind::Conflict {
            return self.on_conflict(set, peer, key, &proof);
        }
        let Some(log) = set.log_mut(&key) else {
            return Ok(());
        };
        let before = (log.len(), log.fork());
        if let Err(e) = log.verify_and_apply_proof(&proof) {
            if let ReqKind::Block(i) = req.kind {
                if let Some(core) = self.cores.get_mut(&key) {
                    core.retry.insert(i);
                }
            }
            self.ask_for_split_evidence(key, peer, log.fork(), log.len());
            return Err(e.into());
        }
        let after = (log.len(), log.fork());
        let contiguous = self.contiguous(set, &key);
        let completed = proof.block.is_some() && contiguous == after.0;
        if after != before || completed {
            let added = set.updated(&key)?;
            for k in added {
                if !self.cores.contains_key(&k) {
                    self.add_core(k);
                }
            }
            self.announce(set, &key);
        }
        self.update(set, &key);
        Ok(())
    }

    /// The peer's signed head arrived (a proof from length 0, its upgrade ending at the length
    /// to compare): evidence when it moved to another fork, or when its tree at that length
    /// differs from ours on the same fork. A refused peer (its data failed against our tree)
    /// whose head agrees with ours merely sent corrupt data: its channel is closed, no evidence.
    fn on_conflict(
        &mut self,
        set: &mut dyn LogSet,
        peer: u64,
        key: [u8; 32],
        proof: &Proof,
    ) -> Result<(), ReplicateError> {
        let (verified, at, their_hash) = lproof::verify_remote_prefix(&key, proof)?;
        let (Some(theirs), Some(log)) = (verified.head, set.log(&key)) else {
            return Ok(());
        };
        let (ours, conflicts) = if theirs.fork == log.fork() {
            // Same fork: compare their tree at `at` with the head we verified that covers it.
            let ours = log
                .signed_heads()
                .iter()
                .rev()
                .find(|h| h.fork == theirs.fork && h.length >= at && at > 0)
                .cloned();
            let our_hash = match &ours {
                Some(h) if h.length == at => Some(h.tree_hash),
                Some(_) => log.tree_hash(at).ok(),
                None => None,
            };
            (ours, our_hash.is_some_and(|h| h != their_hash))
        } else {
            (log.signed_heads().last().cloned(), true)
        };
        let refused = self.channels.get(&(key, peer)).is_some_and(|pc| pc.refused);
        let Some(ours) = ours.filter(|_| conflicts) else {
            if refused {
                self.drop_channel(&key, peer);
            }
            return Ok(());
        };
        if let Some(pc) = self.channels.get_mut(&(key, peer)) {
            pc.refused = true;
        }
        if !self.evidence.iter().any(|e| e.theirs == theirs) {
            let ev = ForkEvidence { key, ours, theirs };
            self.evidence.push(ev.clone());
            self.notices.push(Notice::Fork(Box::new(ev)));
        }
        Ok(())
    }

    /// Whether a signed head asked of `peer` (any peer with `None`) to compare with ours is
    /// still on its way for `key`; a peer that leaves it unanswered for [`HEAD_CHECK_WAIT`]
    /// no longer holds a sync up (the request stays open for a late answer).
    fn conflict_pending(&self, key: &[u8; 32], peer: Option<u64>) -> bool {
        self.inflight.values().any(|r| {
            r.kind == ReqKind::Conflict
                && r.key == *key
                && peer.is_none_or(|p| p == r.peer)
                && (peer.is_some() || r.sent.elapsed() < HEAD_CHECK_WAIT)
        })
    }

    /// A peer on our fork sent a proof that does not fit what we verified: ask it for its
    /// signed head with its tree at our length (or at its own, when shorter) spelled out (a
    /// proof from 0 whose upgrade ends there), so a split (the key signed trees that disagree)
    /// becomes evidence. The peer is refused from then on: nothing more is requested from it.
    fn ask_for_split_evidence(&mut self, key: [u8; 32], peer: u64, fork: u64, length: u64) {
        let Some(pc) = self.channels.get_mut(&(key, peer)) else {
            return;
        };
        let length = length.min(pc.remote_length);
        if pc.conflict_asked || pc.remote_fork != fork || length == 0 {
            return;
        }
        pc.conflict_asked = true;
        pc.refused = true;
        pc.inflight += 1;
        let id = self.track(peer, key, ReqKind::Conflict);
        self.send(&key, peer, vec![upgrade_request(id, fork, 0, length)]);
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_request;
        self.next_request += 1;
        id
    }

    /// Records a request of `kind` about to go to `peer` for `key`; returns its id.
    fn track(&mut self, peer: u64, key: [u8; 32], kind: ReqKind) -> u64 {
        let id = self.next_id();
        self.inflight.insert(
            id,
            Inflight {
                peer,
                key,
                kind,
                sent: Instant::now(),
            },
        );
        id
    }

    /// Sends whatever requests `key` needs to the peers that can answer them.
    fn update(&mut self, set: &dyn LogSet, key: &[u8; 32]) {
        let Some(log) = set.log(key) else { return };
        let (length, fork) = (log.len(), log.fork());
        let peers: Vec<u64> = self
            .channels
            .range((*key, 0)..=(*key, u64::MAX))
            .map(|((_, p), _)| *p)
            .collect();
        for peer in peers {
            let mut batch = Vec::new();
            // Fork check: a higher fork from a peer when we hold verified data.
            let (remote_fork, remote_length, conflict_asked, synced) = {
                let Some(pc) = self.channels.get(&(*key, peer)) else {
                    continue;
                };
                (
                    pc.remote_fork,
                    pc.remote_length,
                    pc.conflict_asked,
                    pc.synced,
                )
            };
            if !synced {
                continue;
            }
            if self
                .channels
                .get(&(*key, peer))
                .is_some_and(|pc| pc.refused)
            {
                continue;
            }
            if remote_fork != fork && length > 0 {
                if remote_fork > fork && !conflict_asked && remote_length > 0 {
                    let id = self.track(peer, *key, ReqKind::Conflict);
                    if let Some(pc) = self.channels.get_mut(&(*key, peer)) {
                        pc.conflict_asked = true;
                        pc.refused = true;
                        pc.inflight += 1;
                    }
                    batch.push(upgrade_request(id, remote_fork, 0, remote_length));
                    self.send(key, peer, batch);
                }
                continue;
            }
            // Same fork and length: compare the peer's signed head with ours once (a split log
            // signs two trees at one length).
            let unchecked = self
                .channels
                .get(&(*key, peer))
                .is_some_and(|pc| pc.checked != Some((fork, length)));
            if remote_length == length && length > 0 && unchecked {
                let id = self.track(peer, *key, ReqKind::Conflict);
                if let Some(pc) = self.channels.get_mut(&(*key, peer)) {
                    pc.checked = Some((fork, length));
                    pc.inflight += 1;
                }
                batch.push(upgrade_request(id, fork, 0, length));
            }
            // Upgrade.
            let upgrade_busy = self.cores.get(key).is_none_or(|c| c.upgrade_inflight);
            if remote_length > length && !upgrade_busy {
                let id = self.track(peer, *key, ReqKind::Upgrade);
                if let Some(c) = self.cores.get_mut(key) {
                    c.upgrade_inflight = true;
                }
                if let Some(pc) = self.channels.get_mut(&(*key, peer)) {
                    pc.inflight += 1;
                }
                let on_fork = if length == 0 { remote_fork } else { fork };
                batch.push(upgrade_request(id, on_fork, length, remote_length - length));
            }
            // Blocks.
            if length > 0 {
                let candidates = self.block_candidates(log, key, peer, length);
                for i in candidates {
                    let nodes = log.missing_nodes(2 * i).unwrap_or(0);
                    let id = self.track(peer, *key, ReqKind::Block(i));
                    batch.push(Message::Request(wire::Request {
                        id,
                        proof: ProofRequest {
                            fork,
                            block: Some(lproof::RequestBlock { index: i, nodes }),
                            ..Default::default()
                        },
                    }));
                }
            }
            if !batch.is_empty() {
                self.send(key, peer, batch);
            }
        }
    }

    /// Picks blocks to ask `peer` for, marking them requested.
    fn block_candidates(&mut self, log: &Log, key: &[u8; 32], peer: u64, length: u64) -> Vec<u64> {
        let max = self.config.max_inflight;
        let Some(pc) = self.channels.get_mut(&(*key, peer)) else {
            return Vec::new();
        };
        let Some(core) = self.cores.get_mut(key) else {
            return Vec::new();
        };
        let remote_has = |pc: &PeerCore, i: u64| {
            i < pc.remote_contiguous.min(pc.remote_length) || pc.remote_bits.contains(&i)
        };
        let mut out = Vec::new();
        let budget = max.saturating_sub(pc.inflight);
        if budget == 0 {
            return out;
        }
        // Retries first.
        let retry: Vec<u64> = core.retry.iter().copied().collect();
        for i in retry {
            if out.len() >= budget {
                break;
            }
            if i >= length || log.has(i) {
                core.retry.remove(&i);
                continue;
            }
            if remote_has(pc, i) && !core.requested.contains(&i) {
                core.retry.remove(&i);
                core.requested.insert(i);
                out.push(i);
            }
        }
        match &core.download {
            Download::HeadOnly => {}
            Download::Full => {
                while out.len() < budget && core.cursor < length {
                    let i = core.cursor;
                    if log.has(i) || core.requested.contains(&i) {
                        core.cursor += 1;
                        continue;
                    }
                    if !remote_has(pc, i) {
                        // Another peer may have it; remember and move on.
                        core.retry.insert(i);
                        core.cursor += 1;
                        continue;
                    }
                    core.requested.insert(i);
                    core.cursor += 1;
                    out.push(i);
                }
            }
            Download::Sparse(wanted) => {
                for &i in wanted.range(..length) {
                    if out.len() >= budget {
                        break;
                    }
                    if log.has(i) || core.requested.contains(&i) || !remote_has(pc, i) {
                        continue;
                    }
                    core.requested.insert(i);
                    out.push(i);
                }
            }
        }
        pc.inflight += out.len();
        out
    }

    /// Whether `key` is complete by its download mode: every wanted block below the log's
    /// length is stored, no connected, synced peer on our fork announces a longer log, and no
    /// peer's signed head is still on its way to be compared with ours (it may be evidence).
    pub fn is_synced(&self, set: &dyn LogSet, key: &[u8; 32]) -> bool {
        let (Some(log), Some(core)) = (set.log(key), self.cores.get(key)) else {
            return false;
        };
        if self.conflict_pending(key, None) {
            return false;
        }
        let longer = self
            .channels
            .range((*key, 0)..=(*key, u64::MAX))
            .any(|(_, pc)| {
                !pc.refused && pc.remote_fork == log.fork() && pc.remote_length > log.len()
            });
        if longer {
            return false;
        }
        match &core.download {
            Download::HeadOnly => true,
            Download::Full => (core.contiguous.min(log.len())..log.len()).all(|i| log.has(i)),
            Download::Sparse(w) => w.range(..log.len()).all(|&i| log.has(i)),
        }
    }

    /// Whether at least one channel for `key` has received the peer's sync.
    pub fn has_synced_peer(&self, key: &[u8; 32]) -> bool {
        self.channels
            .range((*key, 0)..=(*key, u64::MAX))
            .any(|(_, pc)| pc.synced)
    }

    /// Runs the engine until `done(set, self)` holds, or `timeout` passes.
    pub async fn run_until<S: LogSet + ?Sized>(
        &mut self,
        set: &mut S,
        timeout: Duration,
        mut done: impl FnMut(&S, &Replicator) -> bool,
    ) -> Result<(), ReplicateError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if done(set, self) {
                return Ok(());
            }
            // Wake at least every second: waits such as HEAD_CHECK_WAIT end without an event.
            let wake = deadline.min(tokio::time::Instant::now() + Duration::from_secs(1));
            let ev = match tokio::time::timeout_at(wake, self.rx.recv()).await {
                Ok(Some(ev)) => ev,
                Ok(None) => {
                    return Err(ReplicateError::NoPeers {
                        state: self.describe(set),
                    })
                }
                Err(_) if tokio::time::Instant::now() < deadline => continue,
                Err(_) => {
                    return Err(ReplicateError::Timeout {
                        after: timeout,
                        state: self.describe(set),
                    })
                }
            };
            self.handle_dyn(set, ev);
            // Drain what is already queued before re-checking.
            while let Ok(ev) = self.rx.try_recv() {
                self.handle_dyn(set, ev);
            }
        }
    }

    fn handle_dyn<S: LogSet + ?Sized>(&mut self, set: &mut S, ev: Event) {
        struct Wrap<'a, S: ?Sized>(&'a mut S);
        impl<S: LogSet + ?Sized> LogSet for Wrap<'_, S> {
            fn keys(&self) -> Vec<[u8; 32]> {
                self.0.keys()
            }
            fn log(&self, key: &[u8; 32]) -> Option<&Log> {
                self.0.log(key)
            }
            fn log_mut(&mut self, key: &[u8; 32]) -> Option<&mut Log> {
                self.0.log_mut(key)
            }
            fn updated(&mut self, key: &[u8; 32]) -> Result<Vec<[u8; 32]>, ReplicateError> {
                self.0.updated(key)
            }
        }
        self.handle(&mut Wrap(set), ev);
    }

    /// Runs until every core we do not write is synced (see [`Replicator::is_synced`]) with
    /// at least one synced peer each, or `timeout` passes (a core no peer serves ends in
    /// [`ReplicateError::Timeout`], naming where each core stood).
    pub async fn sync<S: LogSet + ?Sized>(
        &mut self,
        set: &mut S,
        timeout: Duration,
    ) -> Result<(), ReplicateError> {
        self.run_until(set, timeout, |set, r| {
            let keys: Vec<[u8; 32]> = r.cores.keys().copied().collect();
            keys.iter().all(|k| {
                struct Ro<'a, S: ?Sized>(&'a S);
                impl<S: LogSet + ?Sized> LogSet for Ro<'_, S> {
                    fn keys(&self) -> Vec<[u8; 32]> {
                        self.0.keys()
                    }
                    fn log(&self, key: &[u8; 32]) -> Option<&Log> {
                        self.0.log(key)
                    }
                    fn log_mut(&mut self, _key: &[u8; 32]) -> Option<&mut Log> {
                        None
                    }
                }
                // Our own writable logs need no peer.
                set.log(k).is_some_and(Log::writable)
                    || (r.has_synced_peer(k) && r.is_synced(&Ro(set), k))
            })
        })
        .await
    }

    fn describe<S: LogSet + ?Sized>(&self, set: &S) -> String {
        let mut parts = Vec::new();
        for key in self.cores.keys() {
            let len = set.log(key).map_or(0, Log::len);
            let remote: Vec<String> = self
                .channels
                .range((*key, 0)..=(*key, u64::MAX))
                .map(|((_, p), pc)| {
                    format!(
                        "peer {p}: fork {} length {} synced {}",
                        pc.remote_fork, pc.remote_length, pc.synced
                    )
                })
                .collect();
            parts.push(format!(
                "core {}: local length {len}, {} peers [{}]",
                &hex::encode(key)[..8],
                remote.len(),
                remote.join("; ")
            ));
        }
        format!(
            "{} connections, {} requests in flight; {}",
            self.conns.len(),
            self.inflight.len(),
            parts.join(" | ")
        )
    }
}

fn sync_message(fork: u64, length: u64, pc: &PeerCore, ack: u64) -> Message {
    Message::Sync(wire::Sync {
        fork,
        length,
        remote_length: ack,
        can_upgrade: pc.remote_fork == fork && length > pc.remote_length,
        uploading: true,
        downloading: true,
        has_manifest: false,
        allow_push: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{MemoryStorage, Storage};

    #[test]
    fn proofs_cross_the_wire_unchanged() {
        let mut log = Log::create(Storage::Memory(MemoryStorage::new())).expect("log");
        let blocks: Vec<Vec<u8>> = (0..13u8).map(|i| vec![i; 10]).collect();
        log.append_batch(&blocks).expect("append");
        let req = ProofRequest {
            block: Some(lproof::RequestBlock { index: 5, nodes: 0 }),
            upgrade: Some(lproof::RequestUpgrade {
                start: 0,
                length: 13,
            }),
            ..Default::default()
        };
        let request = Message::Request(wire::Request {
            id: 7,
            proof: req.clone(),
        });
        assert_eq!(request.encode(), req.encode(7));
        assert_eq!(Message::decode(1, &req.encode(7)).expect("decode"), request);
        // Data: log -> bytes -> wire message, and it still verifies.
        let proof = log.create_proof(&req).expect("proof");
        let back = match Message::decode(3, &proof.encode(7)).expect("decode") {
            Message::Data(d) => d,
            other => panic!("decoded as {other:?}"),
        };
        assert_eq!((back.request, &back.proof), (7, &proof));
        let verified = lproof::verify_remote(&log.public_key(), &back.proof).expect("verifies");
        assert_eq!(verified.block, Some((5, vec![5u8; 10])));
        assert_eq!(verified.head.map(|h| h.length), Some(13));
    }
}
