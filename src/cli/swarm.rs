//! Hyperswarm on the command line (`--swarm`, `--bootstrap`): which DHT to join, which topics
//! a database joins, and the bridge that hands every swarm connection to the replicator.
//!
//! Topics are the discovery keys of the database's logs, as JS Vitra 0.1.3 joins them
//! (`Database.swarm()`: the index's and every oplog's `core.discoveryKey`), but not all of
//! them both ways ([`modes`]): a host (`vitra serve --swarm`) announces the logs it writes
//! (the executor its index and oplog, a participant its oplog); the executor's host looks up
//! the other oplogs (to reach participants), a replica's host the index; `load`, `sync` and
//! `call --wait` look up the index only. Measured on the testnet with the `hyperswarm` crate:
//! a swarm that announces and looks up one topic dials its own announcement, after which JS
//! peers could no longer connect to it; and a client looking up two topics served by the
//! same host took 13 to 32 s to connect instead of about one. Both were measured while the
//! crate's accepted connections still polled its DHT node and dropped the PEER_HANDSHAKE
//! requests of the peers dialing next (the accepted half of a self-dial, or of the first
//! connection, did): [`crate::net::discovery::swarm`] now detaches them, and those loads and
//! syncs take under a second on the testnet. Connections go through
//! [`SwarmPeer::into_connection`](crate::net::discovery::SwarmPeer::into_connection) into the
//! replicator's event queue, so they replicate exactly like TCP ones.
//!
//! What it must never do: contact the public DHT unless `--swarm` was asked for without
//! `--bootstrap` (or vitra.json says so); let the swarm stopping end the command that runs it.

use super::{Output, Result};
use crate::database::Database;
use crate::net::discovery::{
    parse_address, DiscoveryError, SupervisedSwarm, Swarm, SwarmConfig, SwarmPeer, SwarmStatus,
};
use crate::net::replicate::{Event, LogSet, Replicator, ReplicatorConfig};
use crate::net::wire::discovery_key;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

/// How long announcing and looking up the first topics may take before a host says it is
/// ready anyway.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(20);

/// The swarm settings for `bootstrap` (`HOST:PORT`s; empty: the public HyperDHT). A DHT
/// reached only through loopback addresses (a local testnet) gets our node bound to loopback
/// too, since it could not reach another interface's address.
pub fn config(bootstrap: &[String]) -> Result<SwarmConfig> {
    if bootstrap.is_empty() {
        return Ok(SwarmConfig::public());
    }
    let mut nodes: Vec<SocketAddr> = Vec::new();
    for given in bootstrap {
        for addr in parse_address(given)? {
            if !nodes.contains(&addr) {
                nodes.push(addr);
            }
        }
    }
    let mut config = SwarmConfig::new(nodes.clone());
    if nodes.iter().all(|a| a.ip().is_loopback()) {
        config.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    }
    Ok(config)
}

/// Which DHT, in words (for messages).
pub fn describe(bootstrap: &[String]) -> String {
    if bootstrap.is_empty() {
        "the public HyperDHT".to_owned()
    } else {
        format!("the DHT of {}", bootstrap.join(", "))
    }
}

/// How many times a bootstrap walk that no node answered is tried before giving up: a node
/// that just joined a small DHT (a testnet) can make one walk come back empty.
const BIND_ATTEMPTS: u32 = 3;

/// Binds a swarm, trying again (after a second) when no DHT node answered.
async fn bind(config: &SwarmConfig) -> Result<Swarm> {
    let mut attempt = 1;
    loop {
        match Swarm::bind(config.clone()).await {
            Err(DiscoveryError::BootstrapUnreachable { .. }) if attempt < BIND_ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            other => return Ok(other?),
        }
    }
}

/// How to join the discovery key of log `key` of `db`: (announce, look up). A host
/// (`server`) announces what it writes; its executor looks up the other oplogs, a replica's
/// host the index. Others look up the index only.
pub fn modes(db: &Database, key: &[u8; 32], server: bool) -> (bool, bool) {
    let writes = LogSet::log(db, key).is_some_and(crate::log::Log::writable);
    let index = *key == db.key();
    if !server {
        return (false, index);
    }
    if writes {
        return (true, false);
    }
    (false, index || db.is_executor())
}

/// A supervised swarm feeding a replicator, and the topics it joined.
pub struct CliSwarm {
    swarm: SupervisedSwarm,
    joined: BTreeSet<[u8; 32]>,
    /// Whether we announce the logs we write (host) or only look up (load, sync).
    server: bool,
    /// Peers the swarm connected so far.
    pub connections: usize,
    /// The first swarm's public key (hex), as peers see it when they dial us.
    pub public_key: String,
    /// Where the DHT is, in words.
    pub dht: String,
    /// The first swarm's DHT node (UDP), when known.
    pub local_addr: Option<SocketAddr>,
}

impl CliSwarm {
    /// Binds a swarm on the DHT of `bootstrap`, joins the discovery key of every log of `db`
    /// (when `server`, announcing those it writes instead of looking them up), waits for the
    /// first announce and lookup when `server` (at most `FLUSH_TIMEOUT`, then goes on), and
    /// hands every connection to `rep`. Must run inside the runtime that drives `rep`.
    pub async fn start(
        bootstrap: &[String],
        db: &Database,
        rep: &Replicator,
        server: bool,
        out: &mut Output,
    ) -> Result<CliSwarm> {
        let config = config(bootstrap)?;
        let dht = describe(bootstrap);
        let swarm = bind(&config).await?;
        let public_key = hex::encode(swarm.public_key());
        let local_addr = swarm.local_addr().ok();
        let mut joined = Vec::new();
        for key in LogSet::keys(db) {
            let (announce, look_up) = modes(db, &key, server);
            if announce || look_up {
                let topic = discovery_key(&key);
                swarm.join(topic, announce, look_up)?;
                joined.push((topic, announce, look_up));
            }
        }
        if server {
            if let Err(e) = swarm.flush(FLUSH_TIMEOUT).await {
                out.eline(format!(
                    "warning: swarm: {}",
                    super::one_line(&e.to_string())
                ));
            }
        }
        let events = rep.event_sender();
        let connection = ReplicatorConfig::default().connection;
        let supervised =
            SupervisedSwarm::start(swarm, config, joined.clone(), move |peer: SwarmPeer| {
                let event = match peer.into_connection(connection.clone()) {
                    Some(Ok(conn)) => Event::Connected(conn),
                    Some(Err(e)) => Event::ConnectFailed {
                        reason: format!("swarm connection: {e}"),
                    },
                    None => Event::ConnectFailed {
                        reason: "a swarm connection without a handshake hash".to_owned(),
                    },
                };
                let _ = events.send(event);
            });
        Ok(CliSwarm {
            swarm: supervised,
            joined: joined.into_iter().map(|(t, _, _)| t).collect(),
            server,
            connections: 0,
            public_key,
            dht,
            local_addr,
        })
    }

    /// Joins the discovery keys of logs of `db` not joined yet (new participants, created
    /// oplogs); returns how many.
    pub fn join_new(&mut self, db: &Database) -> usize {
        let mut added = 0;
        for key in LogSet::keys(db) {
            let (announce, look_up) = modes(db, &key, self.server);
            let topic = discovery_key(&key);
            if (announce || look_up) && self.joined.insert(topic) {
                self.swarm.join(topic, announce, look_up);
                added += 1;
            }
        }
        added
    }

    /// Looks every topic up again (see [`SupervisedSwarm::refresh`]).
    pub fn refresh(&self) {
        self.swarm.refresh();
    }

    /// Reports on stderr what the swarm did since the last call (each line starting with
    /// `prefix`; each new connection only when `connections`), counting the connections.
    pub fn report(&mut self, prefix: &str, connections: bool, out: &mut Output) {
        for status in self.swarm.take_status() {
            match status {
                SwarmStatus::Connected {
                    remote_public_key,
                    is_initiator,
                } => {
                    self.connections += 1;
                    if !connections {
                        continue;
                    }
                    let how = if is_initiator { "dialed" } else { "accepted" };
                    out.eline(format!(
                        "{prefix}swarm: {how} peer {}",
                        hex::encode(remote_public_key)
                    ));
                }
                SwarmStatus::Failed { error, retry_in } => out.eline(format!(
                    "{prefix}swarm stopped: {}; binding a new one in {} s",
                    super::one_line(&error.to_string()),
                    retry_in.as_secs()
                )),
                SwarmStatus::Rebound {
                    local_addr,
                    public_key,
                } => out.eline(format!(
                    "{prefix}swarm: bound again{} as {}, joined {} topics",
                    local_addr.map(|a| format!(" on {a}")).unwrap_or_default(),
                    hex::encode(public_key),
                    self.joined.len()
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::discovery::Bootstrap;

    #[test]
    fn no_bootstrap_means_the_public_dht_and_loopback_nodes_bind_to_loopback() {
        assert_eq!(config(&[]).expect("public").bootstrap, Bootstrap::Public);
        let local = config(&["127.0.0.1:49737".to_owned()]).expect("local");
        assert_eq!(
            local.bootstrap,
            Bootstrap::Nodes(vec!["127.0.0.1:49737".parse().expect("addr")])
        );
        assert!(local.bind.ip().is_loopback());
        let lan = config(&["192.0.2.7:49737".to_owned()]).expect("lan");
        assert!(lan.bind.ip().is_unspecified());
        assert!(config(&["nonsense".to_owned()]).is_err());
    }
}
