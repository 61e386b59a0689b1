//! Networking of the command line: `vitra load` (a replica from a peer), `vitra sync` (catch
//! up with peers) and the replication side of `vitra serve --listen` ([`Network`]).
//!
//! Replication futures are not `Send` (the database holds a QuickJS runtime), so each runs on
//! a current-thread runtime, `block_on` on the thread that owns the database. Fork or split
//! evidence a peer gives us is saved under `fraud/` like any fraud proof and reported.
//!
//! What it must never do: write `vitra.json` for a replica whose download failed, or keep a
//! replica's storage open while another process holds the directory.

use super::commands::{dir_of, options, save_fraud_in, Session};
use super::datadir::{key_arg, Config, Lock};
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

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
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

/// `vitra load --key K --peer HOST:PORT`: creates a replica of database K in the directory
/// from the peer, downloads its full history, writes `vitra.json` (with the peer) and prints
/// the key and the logs' lengths. Exit 3 when the peer's logs fork.
pub fn load(global: &GlobalArgs, peer: &str, timeout: u64, out: &mut Output) -> Result<u8> {
    let dir = dir_of(global)?;
    let key_text = global.key.as_deref().ok_or_else(|| {
        CliError::Refused("load needs the database's public key: --key PUBKEY".into())
    })?;
    let key = key_arg(key_text)?;
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
    let spinner = super::commands::progress(out, None, &format!("downloading from {peer}"));
    let loaded = rt.block_on(Database::load_from_peer(
        &root,
        &key,
        peer,
        options(global)?,
        &mut rep,
        Duration::from_secs(timeout),
    ));
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
        peers: vec![peer.to_owned()],
    }
    .write(&dir)?;
    print_lengths(&db, out);
    Ok(EXIT_OK)
}

/// `vitra sync [--peer HOST:PORT]… [--full]`: downloads the latest state (or, with `full`,
/// every block) of the session's database from the given peers, else from those stored in
/// `vitra.json`; prints the logs' lengths. Exit 3 when a peer's logs fork.
pub fn sync(
    s: &mut Session,
    peers: &[String],
    full: bool,
    timeout: u64,
    out: &mut Output,
) -> Result<u8> {
    let peers: Vec<String> = if peers.is_empty() {
        Config::read(&s.dir)?.map(|c| c.peers).unwrap_or_default()
    } else {
        peers.to_vec()
    };
    if peers.is_empty() {
        return Err(CliError::Refused(
            "no peer to sync from: give --peer HOST:PORT (vitra load stores its peer)".into(),
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
        if failures.len() == peers.len() {
            return Err(CliError::Refused(format!(
                "no peer reachable ({})",
                failures.join("; ")
            )));
        }
        for failure in &failures {
            out.eline(format!("warning: {failure}"));
        }
        if full {
            db.sync_full_history(&mut rep, timeout).await?;
        } else {
            db.sync_latest(&mut rep, timeout).await?;
        }
        Ok(())
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
}

impl Network {
    /// Starts replicating the session's database: listens on `listen` when given (returning
    /// the bound address) and dials `peers` (now and whenever their connection drops).
    pub fn start(
        session: &Session,
        listen: Option<&str>,
        peers: &[String],
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
        let mut net = Network {
            rt,
            rep,
            lengths: Vec::new(),
            reported: 0,
            dialed: peers.iter().map(|p| (p.clone(), None, None)).collect(),
        };
        net.lengths = net.snapshot(&session.db);
        net.redial(out);
        Ok((net, bound))
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
/// `vitra.json`, serves this instance's oplog to them (the executor downloads the new
/// operations from it) and follows the index until every operation of `tx` is acked, or
/// `timeout` passes. `Ok(false)` when there is no stored peer.
pub fn wait_processed(
    s: &mut Session,
    tx: &Transaction,
    timeout: Duration,
    out: &mut Output,
) -> Result<bool> {
    let peers = Config::read(&s.dir)?.map(|c| c.peers).unwrap_or_default();
    if peers.is_empty() {
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
        if !connected {
            return Err(CliError::Refused(format!(
                "cannot wait for transaction {}: no stored peer answered ({})",
                tx.id(),
                peers.join(", ")
            )));
        }
        match db.when_processed_replicated(&mut rep, tx, timeout).await {
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
