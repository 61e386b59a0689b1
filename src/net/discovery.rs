//! Discovery: how we find and reach peers. Two ways, behind one small interface:
//!
//! - [`direct`]: a known address. [`connect_direct`] dials `HOST:PORT` over TCP and
//!   [`DirectListener`] accepts; both run the secret-stream handshake and hand back a ready
//!   [`Connection`](super::Connection). Always available, needs no DHT.
//! - [`swarm`]: Hyperswarm topics on a HyperDHT, through the `hyperswarm` crate 0.1.
//!   [`Swarm::join`] announces and/or looks up a topic (JS Vitra joins the discovery key of
//!   its index log and of every oplog) and [`Swarm::next_peer`] yields each peer that
//!   connected, as a [`SwarmPeer`]: the remote public key, our role and an encrypted
//!   message stream ([`SwarmStream`]) that a JS Hyperswarm peer sees as its `connection`.
//! - [`supervised`]: a [`Swarm`] kept running for a long-lived peer: every connection goes to a
//!   sink (e.g. a replicator's queue) and a swarm that stops is replaced after a backoff.
//!
//! The Hyperswarm connection is a UDX stream whose Noise handshake ran through the DHT, so it
//! arrives already encrypted (by the crate's own secret stream): it carries the same
//! plaintext messages (protomux frames) as our [`SecretStream`](super::SecretStream), but is
//! not one, so a [`Connection`](super::Connection) cannot be built over it yet.
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use std::time::Duration;
//! use vitra::net::discovery::{DiscoveryError, Swarm, SwarmConfig};
//! # async fn run(log_key: [u8; 32]) -> Result<(), DiscoveryError> {
//! let bootstrap = SocketAddr::from(([127, 0, 0, 1], 49737)); // a private DHT (--bootstrap)
//! let swarm = Swarm::bind(SwarmConfig::new(vec![bootstrap])).await?;
//! swarm.join(vitra::net::wire::discovery_key(&log_key), true, true)?; // announce + look up
//! let mut peer = swarm.next_peer_within(Duration::from_secs(30)).await?;
//! let info = peer.stream_info(); // keys, role, handshake hash (Hypercore capabilities)
//! peer.stream.send(b"one protomux frame").await?;
//! # Ok(()) }
//! ```
//!
//! This module must never contact a network the caller did not name: the public DHT is used
//! only with [`Bootstrap::Public`], never as a fallback. It must never panic or take the
//! process down on anything a peer or DHT node sends: every call into the `hyperswarm` crate
//! (which has `unwrap`/`todo!` paths) runs under `catch_unwind` or in a task of its own, and a
//! panic there becomes [`DiscoveryError::SwarmPanicked`] (the swarm is then unusable, other
//! connections are not affected).

pub mod direct;
pub mod supervised;
pub mod swarm;

pub use direct::{connect_direct, DirectListener};
pub use supervised::{SupervisedSwarm, SwarmStatus};
pub use swarm::{Bootstrap, Swarm, SwarmConfig, SwarmPeer, SwarmReader, SwarmStream, SwarmWriter};

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::NetError;

/// Everything that can go wrong while finding or reaching peers.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// A connection-layer error (handshake, transport) on a direct connection.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A `HOST:PORT` given by the user (e.g. `--bootstrap`) is not an address.
    #[error("invalid address {given:?}: {reason}")]
    InvalidAddress {
        /// What was given.
        given: String,
        /// Why it is not usable.
        reason: String,
    },
    /// [`Bootstrap::Nodes`] was given an empty list (use [`Bootstrap::Public`] to mean the
    /// public DHT; it is never chosen implicitly).
    #[error("no bootstrap node given")]
    NoBootstrapNodes,
    /// No bootstrap node (nor any node they named) answered our first walk of the DHT.
    #[error("no DHT node answered; bootstrap nodes tried: {nodes:?}")]
    BootstrapUnreachable {
        /// The bootstrap nodes we started from.
        nodes: Vec<SocketAddr>,
    },
    /// Binding a local socket failed.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The local address we tried.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Connecting to a direct address failed at the transport level.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The peer's address.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The DHT (the `hyperswarm` crate) reported an error.
    #[error("DHT error while {during}: {reason}")]
    Dht {
        /// What we were doing.
        during: &'static str,
        /// The crate's error text.
        reason: String,
    },
    /// The `hyperswarm` crate panicked; the swarm is stopped.
    #[error("the hyperswarm crate panicked while {during}: {message}")]
    SwarmPanicked {
        /// What we were doing.
        during: &'static str,
        /// The panic message.
        message: String,
    },
    /// The swarm has stopped (dropped, or its driver ended); carries why.
    #[error("swarm stopped: {reason}")]
    SwarmStopped {
        /// Why.
        reason: String,
    },
    /// Something did not happen in time (no peer connected, a flush did not finish).
    #[error("timed out after {after:?} while {during}")]
    Timeout {
        /// What we were waiting for.
        during: &'static str,
        /// The timeout that elapsed.
        after: Duration,
    },
}

/// Parses a user-given `HOST:PORT` (e.g. a `--bootstrap` value) into socket addresses,
/// resolving a host name. Fails with [`DiscoveryError::InvalidAddress`].
pub fn parse_address(given: &str) -> Result<Vec<SocketAddr>, DiscoveryError> {
    let invalid = |reason: String| DiscoveryError::InvalidAddress {
        given: given.to_string(),
        reason,
    };
    let (host, port) = given
        .rsplit_once(':')
        .ok_or_else(|| invalid("expected HOST:PORT".to_string()))?;
    if host.is_empty() {
        return Err(invalid("empty host".to_string()));
    }
    port.parse::<u16>()
        .map_err(|e| invalid(format!("bad port {port:?}: {e}")))?;
    let addrs: Vec<SocketAddr> = given
        .to_socket_addrs()
        .map_err(|e| invalid(e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(invalid("the host name resolved to no address".to_string()));
    }
    Ok(addrs)
}

/// The text of a caught panic payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-text panic payload)".to_string()
    }
}

/// Runs `f` (a call into the `hyperswarm` crate) turning a panic into
/// [`DiscoveryError::SwarmPanicked`].
fn guard<T>(during: &'static str, f: impl FnOnce() -> T) -> Result<T, DiscoveryError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        DiscoveryError::SwarmPanicked {
            during,
            message: panic_message(payload.as_ref()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_address_accepts_host_port_and_rejects_the_rest() {
        let addrs = parse_address("127.0.0.1:49737").unwrap();
        assert_eq!(addrs, vec!["127.0.0.1:49737".parse().unwrap()]);
        for bad in [
            "127.0.0.1",
            ":49737",
            "127.0.0.1:notaport",
            "127.0.0.1:70000",
        ] {
            assert!(
                matches!(
                    parse_address(bad),
                    Err(DiscoveryError::InvalidAddress { .. })
                ),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn handles_can_move_between_tasks() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Swarm>();
        send::<SwarmPeer>();
        send::<SwarmReader>();
        send::<SwarmWriter>();
        send_sync::<DirectListener>();
        send_sync::<DiscoveryError>();
    }

    #[test]
    fn guard_turns_a_panic_into_a_typed_error() {
        let r: Result<(), _> = guard("testing", || panic!("boom"));
        match r {
            Err(DiscoveryError::SwarmPanicked { during, message }) => {
                assert_eq!(during, "testing");
                assert_eq!(message, "boom");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(guard("testing", || 7).unwrap(), 7);
    }
}
