//! Direct addresses, the discovery that needs no DHT: a [`DirectListener`] on loopback accepts
//! what [`connect_direct`] dials, both sides authenticate each other's key and a protomux
//! channel carries messages both ways; an address nobody listens on is a typed error.

use std::time::Duration;

use vitra::net::discovery::{connect_direct, parse_address, DirectListener, DiscoveryError};
use vitra::net::{ConnectionConfig, KeyPair};

#[tokio::test]
async fn direct_connection_authenticates_both_keys_and_carries_channel_messages() {
    let server_keys = KeyPair::generate().expect("key pair");
    let client_keys = KeyPair::generate().expect("key pair");
    let listener = DirectListener::bind(
        "127.0.0.1:0".parse().expect("addr"),
        server_keys.clone(),
        ConnectionConfig::default(),
    )
    .await
    .expect("bind loopback");
    let addr = listener.local_addr().expect("listener address");
    assert_eq!(parse_address(&addr.to_string()).expect("parse"), vec![addr]);

    let accept = tokio::spawn(async move {
        let (conn, from) = listener.accept().await.expect("accept");
        assert!(from.ip().is_loopback());
        let incoming = tokio::time::timeout(Duration::from_secs(10), conn.accept())
            .await
            .expect("client opened no channel")
            .expect("connection alive");
        assert_eq!(incoming.protocol, "vitra-direct-test");
        assert_eq!(incoming.handshake, b"from-client");
        let mut ch = conn
            .open_channel("vitra-direct-test", &[], None, b"from-server")
            .expect("answer the channel");
        let (kind, payload) = tokio::time::timeout(Duration::from_secs(10), ch.recv())
            .await
            .expect("client sent nothing")
            .expect("recv");
        ch.send(kind, &[b"echo:".as_slice(), &payload].concat())
            .expect("send echo");
        (conn.remote_public_key(), conn)
    });

    let conn = connect_direct(addr, &client_keys, ConnectionConfig::default())
        .await
        .unwrap_or_else(|e| panic!("client: direct connection failed: {e}"));
    assert_eq!(conn.remote_public_key(), server_keys.public_key());
    let mut ch = conn
        .open_channel("vitra-direct-test", &[], None, b"from-client")
        .expect("open channel");
    let handshake = tokio::time::timeout(Duration::from_secs(10), ch.opened())
        .await
        .expect("server never answered the channel")
        .expect("channel opened");
    assert_eq!(handshake, b"from-server");
    ch.send(3, b"hello").expect("send");
    let (kind, payload) = tokio::time::timeout(Duration::from_secs(10), ch.recv())
        .await
        .expect("server sent no echo")
        .expect("recv");
    assert_eq!((kind, payload.as_slice()), (3, b"echo:hello".as_slice()));

    let (seen_by_server, _server_conn) = tokio::time::timeout(Duration::from_secs(10), accept)
        .await
        .expect("server side did not finish")
        .expect("server task");
    assert_eq!(seen_by_server, client_keys.public_key());
}

#[tokio::test]
async fn dialing_an_address_nobody_listens_on_is_a_typed_error() {
    // Bind then drop: the port is (almost certainly) free and refuses connections.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port");
    let keys = KeyPair::generate().expect("key pair");
    match connect_direct(addr, &keys, ConnectionConfig::default()).await {
        Err(DiscoveryError::Connect { addr: a, .. }) => assert_eq!(a, addr),
        Err(e) => panic!("expected Connect, got {e}"),
        Ok(_) => panic!("connected to a port nobody listens on"),
    }
}
