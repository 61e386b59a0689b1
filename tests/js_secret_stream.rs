//! Our secret stream against npm `@hyperswarm/secret-stream` 6.9.2 over loopback TCP, in both
//! roles: keys and handshake hash agree, messages (up to 1 MB) go both ways, and a JS peer
//! that ends, vanishes, stalls or sends garbage ends only its own session, with a typed error.

mod common;

use std::time::Duration;

use common::JsPeer;
use tokio::net::{TcpListener, TcpStream};
use vitra::net::{KeyPair, NetError, SecretStream, SecretStreamConfig};

const JS_SEED: [u8; 32] = [0x42; 32];

fn big() -> Vec<u8> {
    (0..1_000_000u32).map(|i| (i % 251) as u8).collect()
}

/// Starts the JS peer (which dials us) and runs our side of the handshake.
async fn connect(
    js_role: &str,
    mode: &str,
    config: &SecretStreamConfig,
) -> (JsPeer, SecretStream<TcpStream>, KeyPair) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let port = listener.local_addr().expect("addr").port().to_string();
    let js = JsPeer::spawn("secret_stream_peer.js", &[js_role, &port, mode]);
    let (tcp, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("JS side never connected")
        .expect("accept");
    let ours = KeyPair::from_seed([7; 32]);
    let stream = SecretStream::connect(tcp, js_role == "responder", &ours, config)
        .await
        .unwrap_or_else(|e| panic!("Rust side: handshake with JS {js_role} failed: {e}"));
    (js, stream, ours)
}

async fn echo_both_ways(js_role: &str) {
    let (mut js, mut s, ours) = connect(js_role, "echo", &SecretStreamConfig::default()).await;
    let ev = js.wait_for("connect", 10).await;
    assert_eq!(
        ev["remotePublicKey"],
        hex::encode(ours.public_key()),
        "JS saw our key"
    );
    assert_eq!(
        ev["publicKey"],
        hex::encode(s.remote_public_key()),
        "we saw JS's key"
    );
    assert_eq!(
        s.remote_public_key(),
        KeyPair::from_seed(JS_SEED).public_key()
    );
    assert_eq!(ev["handshakeHash"], hex::encode(s.handshake_hash()));
    assert_eq!(s.is_initiator(), js_role == "responder");

    // JS -> Rust
    assert_eq!(
        s.recv().await.expect("recv"),
        Some(b"hello from js".to_vec())
    );
    let large = s.recv().await.expect("recv large").expect("large message");
    assert_eq!(large, big(), "1 MB message from JS decrypts byte-exact");

    // Rust -> JS -> Rust
    s.send(b"ping").await.expect("send");
    assert_eq!(s.recv().await.expect("recv"), Some(b"echo:ping".to_vec()));
    let mine: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    s.send(&mine).await.expect("send 2 MB");
    let back = s.recv().await.expect("recv echo").expect("echo");
    assert_eq!(&back[..5], b"echo:");
    assert!(
        back[5..] == mine[..],
        "JS decrypted our 2 MB message byte-exact"
    );
    s.send(b"").await.expect("empty message");
    assert_eq!(s.recv().await.expect("recv"), Some(b"echo:".to_vec()));

    // JS ends its side: we see a clean end of stream.
    s.send(b"end").await.expect("send end");
    js.wait_for("ending", 10).await;
    assert_eq!(s.recv().await.expect("clean end"), None);
    s.close().await.expect("close");
    js.wait_for("close", 10).await;
}

#[tokio::test]
async fn js_responder_exchanges_messages_both_ways() {
    echo_both_ways("responder").await;
}

#[tokio::test]
async fn js_initiator_exchanges_messages_both_ways() {
    echo_both_ways("initiator").await;
}

#[tokio::test]
async fn rust_end_of_stream_reaches_js() {
    let (mut js, mut s, _) = connect("initiator", "echo", &SecretStreamConfig::default()).await;
    js.wait_for("connect", 10).await;
    s.close().await.expect("close");
    js.wait_for("end", 10).await;
    // JS ends too after seeing our end; our reader drains its messages and then ends.
    let mut n = 0;
    while let Some(_m) = s.recv().await.expect("no error while draining") {
        n += 1;
    }
    assert_eq!(n, 2, "hello + 1 MB message before the end");
}

#[tokio::test]
async fn vanishing_js_peer_ends_only_its_session() {
    let cfg = SecretStreamConfig::default();
    let ((mut js1, mut s1, _), (mut js2, mut s2, _)) = tokio::join!(
        connect("initiator", "vanish", &cfg),
        connect("responder", "echo", &cfg)
    );
    js1.wait_for("connect", 10).await;
    assert_eq!(s1.recv().await.expect("recv"), Some(b"going away".to_vec()));
    let end = s1.recv().await;
    assert!(
        matches!(
            end,
            Ok(None) | Err(NetError::Io { .. }) | Err(NetError::PeerClosed { .. })
        ),
        "vanished peer ends the session: {end:?}"
    );
    // Further reads keep failing instead of hanging or panicking.
    if end.is_err() {
        assert!(s1.recv().await.is_err());
    }
    // The other session is unaffected.
    js2.wait_for("connect", 10).await;
    assert_eq!(
        s2.recv().await.expect("recv"),
        Some(b"hello from js".to_vec())
    );
    assert_eq!(
        s2.recv().await.expect("recv").map(|m| m.len()),
        Some(1_000_000)
    );
    s2.send(b"still here").await.expect("send");
    assert_eq!(
        s2.recv().await.expect("recv"),
        Some(b"echo:still here".to_vec())
    );
}

#[tokio::test]
async fn stalled_js_peer_times_out() {
    let cfg = SecretStreamConfig {
        handshake_timeout: Duration::from_secs(10),
        idle_timeout: Some(Duration::from_millis(300)),
    };
    let (mut js, mut s, _) = connect("responder", "stall", &cfg).await;
    js.wait_for("connect", 10).await;
    let r = s.recv().await;
    assert!(matches!(r, Err(NetError::Timeout { .. })), "{r:?}");
    drop(s);
    js.wait_for("close", 10).await;
}

#[tokio::test]
async fn garbage_after_handshake_is_a_decrypt_error() {
    let (mut js, mut s, _) = connect("initiator", "garbage", &SecretStreamConfig::default()).await;
    js.wait_for("connect", 10).await;
    let r = s.recv().await;
    assert!(matches!(r, Err(NetError::DecryptFailed)), "{r:?}");
    assert!(s.recv().await.is_err(), "a failed stream stays failed");
}

#[tokio::test]
async fn silent_and_garbage_tcp_peers_fail_the_handshake() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cfg = SecretStreamConfig {
        handshake_timeout: Duration::from_millis(300),
        idle_timeout: None,
    };
    // Silent: connects and says nothing.
    let silent = TcpStream::connect(addr).await.expect("connect");
    let (tcp, _) = listener.accept().await.expect("accept");
    let r = SecretStream::responder(tcp, &KeyPair::from_seed([1; 32]), &cfg).await;
    assert!(matches!(r, Err(NetError::Timeout { .. })), "{r:?}");
    drop(silent);
    // Garbage: a huge length prefix, then junk, then close.
    let mut junk = TcpStream::connect(addr).await.expect("connect");
    let (tcp, _) = listener.accept().await.expect("accept");
    use tokio::io::AsyncWriteExt;
    junk.write_all(&[0xff, 0xff, 0xff, 1, 2, 3])
        .await
        .expect("write");
    let r = SecretStream::responder(tcp, &KeyPair::from_seed([1; 32]), &cfg).await;
    assert!(matches!(r, Err(NetError::MessageTooLarge { .. })), "{r:?}");
    // Short junk then close.
    let mut junk = TcpStream::connect(addr).await.expect("connect");
    let (tcp, _) = listener.accept().await.expect("accept");
    junk.write_all(&[3, 0, 0, 1, 2, 3]).await.expect("write");
    junk.shutdown().await.expect("shutdown");
    let r = SecretStream::responder(tcp, &KeyPair::from_seed([1; 32]), &cfg).await;
    assert!(matches!(r, Err(NetError::HandshakeFailed { .. })), "{r:?}");
}
