//! Database replication: the index log and every participant oplog kept in step with peers
//! through a [`Replicator`], with participants declared later in the index added as they
//! appear. The database is the [`LogSet`]: the replicator applies verified proofs to its logs
//! on the thread that owns the database (these futures are not `Send`; run them on a
//! current-thread runtime or a `LocalSet`).
//!
//! What it must never do: store a block a peer sent without verifying it (the replicator
//! verifies every proof against the log's key), or follow a peer whose log forked (the fork is
//! kept as evidence, see [`replication_fraud_proofs`]).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::{Database, DatabaseError, OpResult, Options, Transaction};
use crate::log::{Log, LogStore};
use crate::net::replicate::{Download, LogSet, ReplicateError, Replicator, ReplicatorConfig};
use crate::proof::{FraudProof, LogForkFraudProof};

fn set_error(key: &[u8; 32], e: DatabaseError) -> ReplicateError {
    ReplicateError::LogSet {
        key: hex::encode(key),
        reason: e.to_string(),
    }
}

impl LogSet for Database {
    fn keys(&self) -> Vec<[u8; 32]> {
        let mut keys = vec![self.index_key];
        keys.extend(self.oplogs.keys().copied());
        keys
    }

    fn log(&self, key: &[u8; 32]) -> Option<&Log> {
        if *key == self.index_key {
            Some(self.index_log())
        } else {
            self.oplogs.get(key)
        }
    }

    fn log_mut(&mut self, key: &[u8; 32]) -> Option<&mut Log> {
        if *key == self.index_key {
            Some(self.index.log_mut().log_mut())
        } else {
            self.oplogs.get_mut(key)
        }
    }

    /// After the index changed: drop cached index nodes (a reorg may have replaced them) and,
    /// once every index block is local, re-read the participants; returns oplogs that joined.
    fn updated(&mut self, key: &[u8; 32]) -> Result<Vec<[u8; 32]>, ReplicateError> {
        if *key != self.index_key {
            return Ok(Vec::new());
        }
        self.index.clear_cache();
        let index = self.index_log();
        if !(0..index.len()).all(|i| index.has(i)) {
            return Ok(Vec::new());
        }
        let before: Vec<[u8; 32]> = self.oplogs.keys().copied().collect();
        self.refresh_participants().map_err(|e| set_error(key, e))?;
        Ok(self
            .oplogs
            .keys()
            .filter(|k| !before.contains(k))
            .copied()
            .collect())
    }
}

/// Fork evidence the replicator gathered (peers that moved to a higher fork), as Vitra
/// log-fork fraud proofs.
pub fn fork_fraud_proofs(rep: &Replicator) -> Vec<LogForkFraudProof> {
    rep.evidence()
        .iter()
        .filter(|e| e.is_fork())
        .map(|e| e.to_fraud_proof())
        .collect()
}

/// Every piece of evidence the replicator gathered as a Vitra fraud proof: a fork as
/// [`FraudProof::LogFork`], a split (the key signed two trees that disagree, at one length or
/// the longer not containing the shorter) as [`FraudProof::BlockRewrite`].
pub fn replication_fraud_proofs(rep: &Replicator) -> Vec<FraudProof> {
    rep.evidence()
        .iter()
        .filter_map(|e| {
            if e.is_fork() {
                Some(FraudProof::LogFork(e.to_fraud_proof()))
            } else {
                e.to_split_proof().map(FraudProof::BlockRewrite)
            }
        })
        .collect()
}

impl Database {
    /// Registers every log of this database with `rep`: logs this instance writes are served
    /// (and announced), the others are followed with `download` (the index always fully, since
    /// reading the database needs its blocks).
    pub fn add_to_replicator(&self, rep: &mut Replicator, download: Download) {
        for key in LogSet::keys(self) {
            let writable = LogSet::log(self, &key).is_some_and(Log::writable);
            let mode = if writable {
                Download::HeadOnly
            } else if key == self.index_key {
                Download::Full
            } else {
                download.clone()
            };
            rep.add_core_with(key, mode);
        }
    }

    /// Downloads the latest state: the index's newest signed head and all its blocks, and the
    /// newest signed head of every participant oplog (their blocks only as needed later).
    pub async fn sync_latest(
        &mut self,
        rep: &mut Replicator,
        timeout: Duration,
    ) -> Result<(), ReplicateError> {
        rep.set_default_download(Download::HeadOnly);
        self.add_to_replicator(rep, Download::HeadOnly);
        self.sync_participants(rep, Download::HeadOnly, timeout)
            .await
    }

    /// Downloads every block of the index and of every participant oplog, so the database can
    /// be verified ([`Database::verify`]).
    pub async fn sync_full_history(
        &mut self,
        rep: &mut Replicator,
        timeout: Duration,
    ) -> Result<(), ReplicateError> {
        rep.set_default_download(Download::Full);
        self.add_to_replicator(rep, Download::Full);
        self.sync_participants(rep, Download::Full, timeout).await
    }

    async fn sync_participants(
        &mut self,
        rep: &mut Replicator,
        download: Download,
        timeout: Duration,
    ) -> Result<(), ReplicateError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            rep.sync(self, left).await?;
            // Participants may have been declared by the blocks just fetched.
            let before = LogSet::keys(self).len();
            let key = self.index_key;
            LogSet::updated(self, &key)?;
            self.add_to_replicator(rep, download.clone());
            if LogSet::keys(self).len() == before {
                return Ok(());
            }
        }
    }

    /// Processes replication events for `duration` (forever with `None`), announcing appends
    /// this instance made meanwhile (its executor or calls) to every peer, and registering
    /// oplogs created or found since (see [`Database::add_to_replicator`]). A server runs this
    /// after [`Replicator::listen`].
    pub async fn run_replication(
        &mut self,
        rep: &mut Replicator,
        duration: Option<Duration>,
    ) -> Result<(), ReplicateError> {
        let start = tokio::time::Instant::now();
        let mut lengths: Vec<([u8; 32], u64, u64)> = Vec::new();
        loop {
            self.announce_changes(rep, &mut lengths);
            let tick = Duration::from_millis(200);
            let wait = match duration {
                Some(d) => {
                    let left = d.saturating_sub(start.elapsed());
                    if left.is_zero() {
                        return Ok(());
                    }
                    left.min(tick)
                }
                None => tick,
            };
            if let Ok(Some(ev)) = tokio::time::timeout(wait, rep.next_event()).await {
                rep.handle(self, ev);
            }
        }
    }

    /// Announces to `rep`'s peers every log whose length or fork differs from `announced`
    /// (appends this instance made: calls, executor runs), registers oplogs created or found
    /// since, and records the new lengths in `announced`.
    pub(crate) fn announce_changes(
        &self,
        rep: &mut Replicator,
        announced: &mut Vec<([u8; 32], u64, u64)>,
    ) {
        let now: Vec<([u8; 32], u64, u64)> = LogSet::keys(self)
            .into_iter()
            .filter_map(|k| LogSet::log(self, &k).map(|l| (k, l.len(), l.fork())))
            .collect();
        if now.len() != announced.len() {
            // Oplogs created or found since: serve / follow them too.
            self.add_to_replicator(rep, Download::Full);
        }
        for (k, len, fork) in &now {
            if !announced
                .iter()
                .any(|(k2, l2, f2)| k2 == k && l2 == len && f2 == fork)
            {
                rep.local_changed(self, k);
            }
        }
        *announced = now;
    }

    /// [`Database::when_processed`] for an instance that is not the executor: keeps
    /// replicating through `rep` (already connected to peers that reach the executor, with this
    /// database added: [`Database::add_to_replicator`]), serving this instance's oplogs so the
    /// executor can fetch the operations, until every operation of `tx` has an ack in the index.
    /// [`ReplicateError::Timeout`] when `timeout` passes first.
    pub async fn when_processed_replicated(
        &mut self,
        rep: &mut Replicator,
        tx: &Transaction,
        timeout: Duration,
    ) -> Result<Vec<OpResult>, ReplicateError> {
        self.when_processed_replicated_with(rep, tx, timeout, |_| {})
            .await
    }

    /// [`Database::when_processed_replicated`], calling `each_round` with the replicator
    /// before every round of replication (about every 200 ms): to report progress, or to find
    /// more peers while none is connected.
    pub async fn when_processed_replicated_with(
        &mut self,
        rep: &mut Replicator,
        tx: &Transaction,
        timeout: Duration,
        mut each_round: impl FnMut(&Replicator),
    ) -> Result<Vec<OpResult>, ReplicateError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            each_round(rep);
            // Blocks of the index may still be on their way (the new length arrives before
            // them): reading them fails until they are here.
            let state = match self.processed_results(tx) {
                Ok(Ok(results)) => return Ok(results),
                Ok(Err(unprocessed)) => {
                    format!("{unprocessed} of {} not processed", tx.operations.len())
                }
                Err(e) => format!("index not readable yet: {e}"),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(ReplicateError::Timeout {
                    after: timeout,
                    state: format!("transaction {}: {state}", tx.id()),
                });
            }
            self.run_replication(rep, Some(Duration::from_millis(200)))
                .await?;
        }
    }

    /// Starts serving this database on `addr` (HOST:PORT, port 0 for any): returns the
    /// replicator (keep calling [`Database::run_replication`] with it) and the bound address.
    pub async fn serve(&self, addr: &str) -> Result<(Replicator, SocketAddr), ReplicateError> {
        let mut rep = Replicator::new(ReplicatorConfig::default())?;
        self.add_to_replicator(&mut rep, Download::Full);
        let bound = rep.listen(addr).await?;
        Ok((rep, bound))
    }

    /// Connects to `peer` (HOST:PORT) once and brings this database up to date with it: the
    /// full history (`full`) or the latest state ([`Database::sync_latest`]). Returns the fraud
    /// proofs gathered on the way (a peer serving a forked or split log; its data is not taken).
    pub async fn sync_with_peer(
        &mut self,
        peer: &str,
        full: bool,
        timeout: Duration,
    ) -> Result<Vec<FraudProof>, ReplicateError> {
        let mut rep = Replicator::new(ReplicatorConfig::default())?;
        self.add_to_replicator(
            &mut rep,
            if full {
                Download::Full
            } else {
                Download::HeadOnly
            },
        );
        rep.connect(peer).await?;
        if full {
            self.sync_full_history(&mut rep, timeout).await?;
        } else {
            self.sync_latest(&mut rep, timeout).await?;
        }
        Ok(replication_fraud_proofs(&rep))
    }

    /// Opens the database `key` from `dir`, first creating an empty replica of its index there
    /// when the directory does not hold it (sync it with [`Database::sync_with_peer`]).
    pub fn open_replica(
        dir: &Path,
        key: &[u8; 32],
        options: Options,
    ) -> Result<Database, DatabaseError> {
        let store = LogStore::new(dir);
        if !store.contains(key) {
            Log::create_replica(store.storage_for(key), *key)?;
        }
        Database::load(dir, key, options)
    }

    /// Opens (creating an empty replica of the index when absent) the database `key` in
    /// `dir`, connects to `peer` (HOST:PORT) and downloads its full history. The returned
    /// database is ready to [`Database::verify`].
    pub async fn load_from_peer(
        dir: &Path,
        key: &[u8; 32],
        peer: &str,
        options: Options,
        rep: &mut Replicator,
        timeout: Duration,
    ) -> Result<Database, ReplicateError> {
        let mut db = Database::open_replica(dir, key, options).map_err(|e| set_error(key, e))?;
        db.add_to_replicator(rep, Download::Full);
        rep.connect(peer).await?;
        db.sync_full_history(rep, timeout).await?;
        Ok(db)
    }
}
