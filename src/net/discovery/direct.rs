//! Direct addresses: dial or accept TCP and run the secret-stream handshake. No DHT, no
//! discovery: the user names the peer (`HOST:PORT`). This is what JS peers reach with
//! `net.connect` + `@hyperswarm/secret-stream` + `hypercore.replicate(stream)`.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

use super::DiscoveryError;
use crate::net::{Connection, ConnectionConfig, KeyPair, NetError};

/// Dials `addr` over TCP as the initiator and runs the handshake (bounded by
/// `config.stream.handshake_timeout`); the TCP connect itself is bounded by the same timeout.
pub async fn connect_direct(
    addr: SocketAddr,
    key_pair: &KeyPair,
    config: ConnectionConfig,
) -> Result<Connection, DiscoveryError> {
    let after = config.stream.handshake_timeout;
    let tcp = tokio::time::timeout(after, TcpStream::connect(addr))
        .await
        .map_err(|_| NetError::Timeout {
            during: "connecting over TCP",
            after,
        })?
        .map_err(|source| DiscoveryError::Connect { addr, source })?;
    // Replication messages are small and latency-bound.
    let _ = tcp.set_nodelay(true);
    Ok(Connection::connect(tcp, true, key_pair, config).await?)
}

/// A TCP listener whose accepted connections become [`Connection`]s (we are the responder).
#[derive(Debug)]
pub struct DirectListener {
    listener: TcpListener,
    key_pair: KeyPair,
    config: ConnectionConfig,
}

impl DirectListener {
    /// Binds `addr` (e.g. `127.0.0.1:0` for a free loopback port).
    pub async fn bind(
        addr: SocketAddr,
        key_pair: KeyPair,
        config: ConnectionConfig,
    ) -> Result<DirectListener, DiscoveryError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| DiscoveryError::Bind { addr, source })?;
        Ok(DirectListener {
            listener,
            key_pair,
            config,
        })
    }

    /// The bound address (with the port the system chose).
    pub fn local_addr(&self) -> Result<SocketAddr, DiscoveryError> {
        self.listener.local_addr().map_err(|source| {
            DiscoveryError::Net(NetError::Io {
                during: "reading the listener's address",
                source,
            })
        })
    }

    /// Waits for the next peer and runs the handshake with it. A peer that fails its
    /// handshake is an error for this call only; call again to keep accepting.
    pub async fn accept(&self) -> Result<(Connection, SocketAddr), DiscoveryError> {
        let (tcp, from) = self.listener.accept().await.map_err(|source| {
            DiscoveryError::Net(NetError::Io {
                during: "accepting a TCP connection",
                source,
            })
        })?;
        let _ = tcp.set_nodelay(true);
        let conn = Connection::connect(tcp, false, &self.key_pair, self.config.clone()).await?;
        Ok((conn, from))
    }
}
