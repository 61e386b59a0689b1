//! Networking of the command line: `vitra load` (a replica from a peer), `vitra sync` (catch
//! up with peers) and the replication side of `vitra serve --listen` ([`Network`]). Peers
//! come by address (`--peer`, `--listen`) or from Hyperswarm (`--swarm`, see [`super::swarm`]).
//!
//! Replication futures are not `Send` (the database holds a QuickJS runtime), so each runs
//! `block_on` on the thread that owns the database; the runtime has one worker thread of its
//! own for the connections' tasks and the swarm, which then keep running (UDX timers, DHT
//! replies) while that thread executes contracts or answers the host socket. Fork or split
//! evidence a peer gives us is saved under `fraud/` like any fraud proof and reported.
//!
//! What it must never do: write `vitra.json` for a replica whose download failed, or keep a
//! replica's storage open while another process holds the directory.

use super::commands::{dir_of, options, save_fraud_in, Session};
use super::datadir::{key_arg, Config, Lock};
use super::swarm::CliSwarm;
use super::{io_err, CliError, GlobalArgs, Output, Result, EXIT_FRAUD, EXIT_OK};
use crate::database::replication_fraud_proofs;
use crate::database::Database;
use crate::database::Transaction;
use crate::log::Log;
use crate::net::replicate::{
    Download, Event, LogSet, Notice, ReplicateError, Replicator, ReplicatorConfig,
};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long `vitra serve` waits for a peer it dials, and between attempts while it is down.
const REDIAL: Duration = Duration::from_secs(5);

/// How long `load`/`sync` wait with no working swarm peer before looking the index up again
/// (a peer that announced late, or whose connection died, is dialed anew).
const SWARM_RETRY: Duration = Duration::from_secs(5);

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(io_err("the network runtime"))
}

/// Prints each log's length: `index <key> <length>`, then `oplog <key> <length>` per
/// participant (and other oplogs the database holds).
fn print_lengths(db: &Database, out: &mut Output) {
    let index = db.key();
    for key in LogSet::keys(db) {
        let len = LogSet::log(db, &key).map_or(0, Log::len);
        let kind = if key == index { "index" } else { "oplog" };
        out.line(format!("{kind} {} {len}", hex::encode(key)));
    }
}

/// Prints a warning for each peer channel that failed (a refused proof, a protocol error)
/// since the last call, naming dialed peers by address (`names`: connection id, address);
/// returns the connection ids that failed.
fn warn_failed_peers(
    rep: &mut Replicator,
    names: &[(u64, String)],
    out: &mut Output,
) -> BTreeSet<u64> {
    let mut failed = BTreeSet::new();
    for notice in rep.take_notices() {
        if let Notice::PeerFailed { peer, key, error } = notice {
            failed.insert(peer);
            let name = names
                .iter()
                .find(|(id, _)| *id == peer)
                .map_or_else(|| format!("peer {peer}"), |(_, a)| format!("peer {a}"));
            let log = key
                .map(|k| format!(" on log {}", hex::encode(k)))
                .unwrap_or_default();
            out.eline(format!("warning: {name}{log}: {}", super::one_line(&error)));
        }
    }
    failed
}

/// Saves the evidence `rep` gathered under `<dir>/fraud/` and reports each piece on stderr
/// (its JSON on stdout); returns how many there were.
fn report_evidence(dir: &Path, rep: &Replicator, out: &mut Output) -> Result<usize> {
    let proofs = replication_fraud_proofs(rep);
    for proof in &proofs {
        let id = save_fraud_in(dir, proof)?;
        out.line(proof.to_json().to_string());
        out.eline(format!(
            "fraud: {} (saved as fraud/{id}.json)",
            proof.summary()
        ));
    }
    Ok(proofs.len())
}

/// `vitra load --key K (--peer HOST:PORT | --swarm)`: creates a replica of database K in the
/// directory from the peer (or the peers Hyperswarm finds by the index's discovery key when
/// `swarm` names the DHT's bootstrap nodes), downloads its full history, writes `vitra.json`
/// (with the peer and swarm setting) and prints the key and the logs' lengths. Exit 3 when
/// the peer's logs fork.
pub fn load(
    global: &GlobalArgs,
    peer: Option<&str>,
    swarm: Option<Vec<String>>,
    timeout: u64,
    out: &mut Output,
) -> Result<u8> {
    let dir = dir_of(global)?;
    let key_text = global.key.as_deref().ok_or_else(|| {
        CliError::Refused("load needs the database's public key: --key PUBKEY".into())
    })?;
    let key = key_arg(key_text)?;
    if peer.is_none() && swarm.is_none() {
        return Err(CliError::Refused(
            "load needs a peer: --peer HOST:PORT or --swarm".into(),
        ));
    }
    let lock = Lock::acquire(&dir)?;
    lock.set_role(&dir, "load")?;
    if let Some(config) = Config::read(&dir)? {
        return Err(CliError::AlreadyInitialized {
            dir: dir.clone(),
            key: config.pubkey,
        });
    }
    let root = dir.join("cores");
    std::fs::create_dir_all(&root).map_err(io_err(&root))?;
    let rt = runtime()?;
    let mut rep = Replicator::new(ReplicatorConfig::default())?;
    let what = match (peer, &swarm) {
        (Some(peer), _) => format!("downloading from {peer}"),
        (None, Some(bootstrap)) => {
            format!("looking for peers on {}", super::swarm::describe(bootstrap))
        }
        (None, None) => String::new(),
    };
    let spinner = super::commands::progress(out, None, &what);
    let options = options(global)?;
    let loaded: Result<Database> = rt.block_on(async {
        let mut db = Database::open_replica(&root, &key, options)?;
        db.add_to_replicator(&mut rep, Download::Full);
        if let Some(peer) = peer {
            rep.connect(peer).await?;
        }
        let mut found = match &swarm {
            Some(bootstrap) => Some(CliSwarm::start(bootstrap, &db, &rep, false, out).await?),
            None => None,
        };
        download(
            &mut db,
            &mut rep,
            found.as_mut(),
            true,
            Duration::from_secs(timeout),
            out,
        )
        .await?;
        Ok(db)
    });
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    warn_failed_peers(&mut rep, &[], out);
    if report_evidence(&dir, &rep, out)? > 0 {
        return Ok(EXIT_FRAUD);
    }
    let db = loaded?;
    Config {
        pubkey: hex::encode(key),
        created_oplog_pubkeys: Vec::new(),
        monitor: false,
        peers: peer.map(str::to_owned).into_iter().collect(),
        swarm,
    }
    .write(&dir)?;
    print_lengths(&db, out);
    Ok(EXIT_OK)
}

/// The error of a swarm sync that found no peer serving the database.
fn no_source(sw: &CliSwarm, db: &Database, timeout: Duration) -> CliError {
    CliError::Refused(format!(
        "no peer found on {} for database {} within {} s (is a `vitra serve --swarm` on that \
         DHT serving it, with a UDP port we can reach?)",
        sw.dht,
        hex::encode(db.key()),
        timeout.as_secs()
    ))
}

/// Downloads the full history (`full`) or the latest state of `db` from the peers connected
/// to `rep` and those `swarm` finds, within `timeout`. With a swarm, the topics are looked up
/// again every [`SWARM_RETRY`] while no peer is connected; finding none at all is a
/// [`CliError::Refused`] naming the DHT.
async fn download(
    db: &mut Database,
    rep: &mut Replicator,
    mut swarm: Option<&mut CliSwarm>,
    full: bool,
    timeout: Duration,
    out: &mut Output,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let slice = match swarm {
            Some(_) => left.min(SWARM_RETRY),
            None => left,
        };
        let result = if full {
            db.sync_full_history(rep, slice).await
        } else {
            db.sync_latest(rep, slice).await
        };
        let Some(sw) = swarm.as_deref_mut() else {
            return Ok(result?);
        };
        sw.report("", false, out);
        match result {
            // A peer that has no block of the index yet (another replica being loaded, a JS
            // peer that joined the topic) is not a source: wait for one that has.
            Ok(()) if db.index_len() == 0 => {
                let wait = deadline
                    .saturating_duration_since(tokio::time::Instant::now())
                    .min(SWARM_RETRY);
                match rep.run_until(db, wait, |db, _| db.index_len() > 0).await {
                    Ok(()) => {}
                    Err(ReplicateError::Timeout { .. }) => sw.refresh(),
                    Err(e) => return Err(e.into()),
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(no_source(sw, db, timeout));
                }
            }
            Ok(()) => return Ok(()),
            Err(ReplicateError::Timeout { .. }) if tokio::time::Instant::now() < deadline => {
                // No connection, or none that got as far as the index's sync (a swarm
                // connection can die silently): dial what the lookup finds again.
                if rep.peer_count() == 0 || !rep.has_synced_peer(&db.key()) {
                    sw.refresh();
                }
            }
            Err(ReplicateError::Timeout { .. }) if sw.connections == 0 || db.index_len() == 0 => {
                return Err(no_source(sw, db, timeout))
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// `vitra sync [--peer HOST:PORT]… [--full]`: downloads the latest state (or, with `full`,
/// every block) of the session's database from the given peers, else from those stored in
/// `vitra.json`; prints the logs' lengths. Exit 3 when a peer's logs fork.
pub fn sync(
    s: &mut Session,
    peers: &[String],
    swarm: Option<Vec<String>>,
    full: bool,
    timeout: u64,
    out: &mut Output,
) -> Result<u8> {
    let (peers, swarm) = if peers.is_empty() && swarm.is_none() {
        let stored = Config::read(&s.dir)?;
        (
            stored.as_ref().map(|c| c.peers.clone()).unwrap_or_default(),
            stored.and_then(|c| c.swarm),
        )
    } else {
        (peers.to_vec(), swarm)
    };
    if peers.is_empty() && swarm.is_none() {
        return Err(CliError::Refused(
            "no peer to sync from: give --peer HOST:PORT or --swarm (vitra load stores what it used)"
                .into(),
        ));
    }
    let rt = runtime()?;
    let mut rep = Replicator::new(ReplicatorConfig::default())?;
    let timeout = Duration::from_secs(timeout);
    let db = &mut s.db;
    let mut connected: Vec<(u64, String)> = Vec::new();
    let what = if full {
        "syncing the full history"
    } else {
        "syncing the latest state"
    };
    let spinner = super::commands::progress(out, None, what);
    let result: Result<()> = rt.block_on(async {
        let mut failures = Vec::new();
        for peer in &peers {
            match rep.connect(peer).await {
                Ok(id) => connected.push((id, peer.clone())),
                Err(e) => failures.push(format!("{peer}: {e}")),
            }
        }
        if !peers.is_empty() && failures.len() == peers.len() && swarm.is_none() {
            return Err(CliError::Refused(format!(
                "no peer reachable ({})",
                failures.join("; ")
            )));
        }
        for failure in &failures {
            out.eline(format!("warning: {failure}"));
        }
        let mut found = match &swarm {
            Some(bootstrap) => Some(CliSwarm::start(bootstrap, db, &rep, false, out).await?),
            None => None,
        };
        download(db, &mut rep, found.as_mut(), full, timeout, out).await
    });
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    let failed = warn_failed_peers(&mut rep, &connected, out);
    if report_evidence(&s.dir, &rep, out)? > 0 {
        return Ok(EXIT_FRAUD);
    }
    result?;
    if !connected.is_empty() && connected.iter().all(|(id, _)| failed.contains(id)) {
        return Err(CliError::Refused(
            "every peer was refused (see the warnings); nothing was synced".into(),
        ));
    }
    print_lengths(&s.db, out);
    Ok(EXIT_OK)
}

/// The replication side of `vitra serve`: a listener (`--listen`), peers it dials and
/// re-dials (`--peer`, or the peers of a replica's `vitra.json`), the replicator serving and
/// following the session's logs, and a snapshot of their lengths to announce what changed.
pub struct Network {
    rt: tokio::runtime::Runtime,
    rep: Replicator,
    /// (key, length, fork) of every log at the last announcement.
    lengths: Vec<([u8; 32], u64, u64)>,
    /// How many pieces of evidence were already saved.
    reported: usize,
    /// Peers to stay connected to: address, connection id while up, last attempt.
    dialed: Vec<(String, Option<u64>, Option<Instant>)>,
    /// The Hyperswarm announcing and looking up the logs' discovery keys (`--swarm`).
    swarm: Option<CliSwarm>,
}

impl Network {
    /// Starts replicating the session's database: listens on `listen` when given (returning
    /// the bound address), dials `peers` (now and whenever their connection drops) and, with
    /// `swarm` (the DHT's bootstrap nodes; empty: the public DHT), announces and looks up the
    /// discovery keys of its logs on Hyperswarm.
    pub fn start(
        session: &Session,
        listen: Option<&str>,
        peers: &[String],
        swarm: Option<&[String]>,
        out: &mut Output,
    ) -> Result<(Network, Option<SocketAddr>)> {
        let rt = runtime()?;
        let mut rep = Replicator::new(ReplicatorConfig::default())?;
        {
            let _entered = rt.enter();
            session.db.add_to_replicator(&mut rep, Download::Full);
        }
        let bound = match listen {
            Some(addr) => Some(rt.block_on(rep.listen(addr))?),
            None => None,
        };
        let swarm = match swarm {
            Some(bootstrap) => {
                Some(rt.block_on(CliSwarm::start(bootstrap, &session.db, &rep, true, out))?)
            }
            None => None,
        };
        let mut net = Network {
            rt,
            rep,
            lengths: Vec::new(),
            reported: 0,
            dialed: peers.iter().map(|p| (p.clone(), None, None)).collect(),
            swarm,
        };
        net.lengths = net.snapshot(&session.db);
        net.redial(out);
        Ok((net, bound))
    }

    /// `swarm: announced N discovery keys, looking up M on DHT as KEY (UDP ADDR)` when
    /// swarming.
    pub fn swarm_summary(&self, db: &Database) -> Option<String> {
        self.swarm.as_ref().map(|sw| {
            let modes: Vec<(bool, bool)> = LogSet::keys(db)
                .iter()
                .map(|k| super::swarm::modes(db, k, true))
                .collect();
            format!(
                "swarm: announced {} discovery keys, looking up {} on {} as {}{}",
                modes.iter().filter(|m| m.0).count(),
                modes.iter().filter(|m| m.1).count(),
                sw.dht,
                sw.public_key,
                sw.local_addr
                    .map(|a| format!(" (UDP {a})"))
                    .unwrap_or_default()
            )
        })
    }

    /// Dials the peers that are down and were not tried for [`REDIAL`].
    fn redial(&mut self, out: &mut Output) {
        let Network {
            rt, rep, dialed, ..
        } = self;
        for (addr, id, last) in dialed.iter_mut() {
            if id.is_some() || last.is_some_and(|t| t.elapsed() < REDIAL) {
                continue;
            }
            let first = last.is_none();
            *last = Some(Instant::now());
            // The timer needs the runtime's context: create it inside.
            match rt.block_on(async { tokio::time::timeout(REDIAL, rep.connect(addr)).await }) {
                Ok(Ok(peer)) => {
                    *id = Some(peer);
                    out.eline(format!("host: connected to peer {addr}"));
                }
                Ok(Err(e)) if first => out.eline(format!("host: peer {addr}: {e}")),
                Err(_) if first => out.eline(format!(
                    "host: peer {addr}: no answer within {} s",
                    REDIAL.as_secs()
                )),
                _ => {}
            }
        }
    }

    fn snapshot(&self, db: &Database) -> Vec<([u8; 32], u64, u64)> {
        LogSet::keys(db)
            .into_iter()
            .filter_map(|k| LogSet::log(db, &k).map(|l| (k, l.len(), l.fork())))
            .collect()
    }

    /// Announces logs that changed since the last call (appends by the executor or by calls,
    /// blocks downloaded from a peer) and registers logs that appeared (new participants,
    /// created oplogs); then handles network events for up to `slot`; then saves new fork
    /// evidence under `fraud/` and re-dials dropped peers.
    pub fn work(&mut self, session: &mut Session, slot: Duration, out: &mut Output) {
        // Announcing and opening channels spawn tasks on the runtime.
        let handle = self.rt.handle().clone();
        let _entered = handle.enter();
        let now = self.snapshot(&session.db);
        if now.len() != self.lengths.len()
            || now
                .iter()
                .any(|(k, _, _)| !self.lengths.iter().any(|(k2, _, _)| k2 == k))
        {
            session.db.add_to_replicator(&mut self.rep, Download::Full);
            if let Some(sw) = self.swarm.as_mut() {
                sw.join_new(&session.db);
            }
        }
        for (key, len, fork) in &now {
            if !self.lengths.contains(&(*key, *len, *fork)) {
                self.rep.local_changed(&session.db, key);
            }
        }
        self.lengths = now;
        let Network {
            rt, rep, dialed, ..
        } = self;
        let db = &mut session.db;
        rt.block_on(async {
            let deadline = tokio::time::Instant::now() + slot;
            while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, rep.next_event()).await {
                if let Event::Disconnected { peer } = &ev {
                    for (_, id, _) in dialed.iter_mut() {
                        if *id == Some(*peer) {
                            *id = None;
                        }
                    }
                }
                rep.handle(db, ev);
            }
        });
        let names: Vec<(u64, String)> = self
            .dialed
            .iter()
            .filter_map(|(a, id, _)| id.map(|id| (id, a.clone())))
            .collect();
        warn_failed_peers(&mut self.rep, &names, out);
        if let Some(sw) = self.swarm.as_mut() {
            sw.report("host: ", true, out);
        }
        let proofs = replication_fraud_proofs(&self.rep);
        if proofs.len() > self.reported {
            for proof in proofs.iter().skip(self.reported) {
                match session.save_fraud(proof) {
                    Ok(id) => {
                        out.eline(format!("violation: {} (fraud/{id}.json)", proof.summary()))
                    }
                    Err(e) => out.eline(format!("host: saving a fraud proof failed: {e}")),
                }
            }
            self.reported = proofs.len();
        }
        self.redial(out);
    }
}

/// `vitra call --wait` on a replica that is not the executor: connects to the peers stored in
/// `vitra.json` (and to those Hyperswarm finds when it says `"swarm"`), serves this
/// instance's oplog to them (the executor downloads the new operations from it) and follows
/// the index until every operation of `tx` is acked, or `timeout` passes. `Ok(false)` when
/// there is no stored peer.
pub fn wait_processed(
    s: &mut Session,
    tx: &Transaction,
    timeout: Duration,
    out: &mut Output,
) -> Result<bool> {
    let stored = Config::read(&s.dir)?;
    let peers = stored.as_ref().map(|c| c.peers.clone()).unwrap_or_default();
    let swarm = stored.and_then(|c| c.swarm);
    if peers.is_empty() && swarm.is_none() {
        return Ok(false);
    }
    let rt = runtime()?;
    let mut rep = Replicator::new(ReplicatorConfig::default())?;
    let spinner = super::commands::progress(out, None, "waiting for the executor");
    let db = &mut s.db;
    let result: Result<bool> = rt.block_on(async {
        db.add_to_replicator(&mut rep, Download::Full);
        let mut connected = false;
        for peer in &peers {
            match rep.connect(peer).await {
                Ok(_) => connected = true,
                Err(e) => out.eline(format!("warning: peer {peer}: {e}")),
            }
        }
        if !connected && swarm.is_none() {
            return Err(CliError::Refused(format!(
                "cannot wait for transaction {}: no stored peer answered ({})",
                tx.id(),
                peers.join(", ")
            )));
        }
        let mut found = match &swarm {
            Some(bootstrap) => Some(CliSwarm::start(bootstrap, db, &rep, false, out).await?),
            None => None,
        };
        let mut looked_up = tokio::time::Instant::now();
        let waited = db.when_processed_replicated_with(&mut rep, tx, timeout, |rep| {
            if let Some(sw) = found.as_mut() {
                sw.report("", false, out);
                if rep.peer_count() == 0 && looked_up.elapsed() >= SWARM_RETRY {
                    sw.refresh();
                    looked_up = tokio::time::Instant::now();
                }
            }
        });
        match waited.await {
            Ok(_) => Ok(true),
            Err(ReplicateError::Timeout { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    });
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    let processed = result?;
    if !processed {
        return Err(CliError::Refused(format!(
            "transaction {} was not processed within {} s",
            tx.id(),
            timeout.as_secs()
        )));
    }
    Ok(true)
}
