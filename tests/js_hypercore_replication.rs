//! Our replication channel against real JS Hypercores (11.39.5 compat cores and 10.38.2) over
//! one secret-stream connection on loopback TCP: we open each core's `hypercore/alpha`
//! channel once (JS checks our capability, we check JS's), exchange `sync`, ask for a block
//! with an upgrade and check the `data` reply's fields and block bytes; a core JS does not
//! have is rejected. Proof verification is the replication engine's job, not tested here.

mod common;

use std::time::Duration;

use common::{accept_js_connection, loopback_listener, JsPeer};
use vitra::log::proof::{ProofRequest, RequestBlock, RequestUpgrade};
use vitra::net::wire::{discovery_key, Message, Request, Sync};
use vitra::net::{Channel, NetError};

fn key_of(v: &serde_json::Value) -> [u8; 32] {
    let bytes = hex::decode(v["key"].as_str().expect("key")).expect("hex key");
    bytes.try_into().expect("32-byte key")
}

async fn next(ch: &mut Channel, what: &str) -> Message {
    tokio::time::timeout(Duration::from_secs(10), ch.recv())
        .await
        .unwrap_or_else(|_| panic!("JS side sent no {what} within 10 s"))
        .unwrap_or_else(|e| panic!("Rust side: receiving {what} failed: {e}"))
}

/// Sends our sync and a block+upgrade request; checks JS's sync and data reply.
async fn fetch_block(ch: &mut Channel, length: u64, index: u64, prefix: &str) {
    // JS opens with its sync (possibly batched with a range).
    let theirs = loop {
        match next(ch, "sync").await {
            Message::Sync(s) => break s,
            Message::Range(r) => assert_eq!((r.start, r.drop), (0, false)),
            other => panic!("unexpected message before sync: {other:?}"),
        }
    };
    assert_eq!(theirs.fork, 0);
    assert_eq!(theirs.length, length, "JS announces its length");
    assert!(theirs.uploading);

    ch.send(&Message::Sync(Sync {
        fork: 0,
        length: 0,
        remote_length: length,
        can_upgrade: false,
        uploading: true,
        downloading: true,
        ..Sync::default()
    }))
    .expect("send sync");
    ch.send(&Message::Request(Request {
        id: 1,
        proof: ProofRequest {
            fork: 0,
            block: Some(RequestBlock { index, nodes: 0 }),
            upgrade: Some(RequestUpgrade { start: 0, length }),
            ..ProofRequest::default()
        },
    }))
    .expect("send request");

    let data = loop {
        match next(ch, "data").await {
            Message::Data(d) => break d,
            Message::NoData(n) => panic!("JS answered noData: {n:?}"),
            _ => continue, // sync / range / want updates
        }
    };
    assert_eq!(data.request, 1);
    let data = data.proof;
    assert_eq!(data.fork, 0);
    let block = data.block.expect("block in reply");
    assert_eq!(block.index, index);
    assert_eq!(block.value, format!("{prefix}-block-{index}").into_bytes());
    assert!(!block.nodes.is_empty(), "block proof has tree nodes");
    let upgrade = data.upgrade.expect("upgrade in reply");
    assert_eq!((upgrade.start, upgrade.length), (0, length));
    assert_eq!(upgrade.signature.len(), 64, "Ed25519 signature of the tree");
    assert!(data.manifest.is_none(), "compat cores send no manifest");
}

async fn replicate_with(version: &str, js_role: &str) {
    let (listener, port) = loopback_listener().await;
    let mut js = JsPeer::spawn("hypercore_peer.js", &[version, js_role, &port]);
    let ready = js.wait_for("ready", 20).await;
    let cores = ready["cores"].as_array().expect("cores").clone();
    let (key_a, key_b) = (key_of(&cores[0]), key_of(&cores[1]));
    assert_eq!(
        cores[0]["discoveryKey"],
        hex::encode(discovery_key(&key_a)),
        "our discovery key matches JS"
    );
    let conn = accept_js_connection(&listener, js_role, &format!("JS Hypercore {version}")).await;

    // Both cores over the one connection; JS verifies our capability on open.
    let mut a = conn.open_core(&key_a).await.expect("open core A");
    let mut b = conn.open_core(&key_b).await.expect("open core B");
    assert!(a.remote_handshake().seeks);
    assert!(matches!(
        conn.open_core(&key_a).await,
        Err(NetError::DuplicateChannel { .. })
    ));
    fetch_block(&mut a, 5, 2, "a").await;
    fetch_block(&mut b, 3, 1, "b").await;
    let up = js.wait_for("upload", 10).await;
    assert_eq!(
        (up["core"].as_str(), up["index"].as_u64()),
        (Some("a"), Some(2))
    );

    // A core JS does not have: JS rejects the channel.
    let unknown = conn.open_core(&[9; 32]).await;
    assert!(
        matches!(unknown, Err(NetError::ChannelRejected { .. })),
        "{unknown:?}"
    );

    // Closing a channel and the connection leaves JS running cleanly.
    a.close();
    conn.close();
    let ev = js.wait_for("close", 10).await;
    assert_eq!(ev["event"], "close");
    assert!(b.recv().await.is_err(), "channels end with the connection");
}

#[tokio::test]
async fn hypercore_11_compat_js_responder() {
    replicate_with("11", "responder").await;
}

#[tokio::test]
async fn hypercore_11_compat_js_initiator() {
    replicate_with("11", "initiator").await;
}

#[tokio::test]
async fn hypercore_10_38_js_responder() {
    replicate_with("10-38", "responder").await;
}

#[tokio::test]
async fn hypercore_10_38_js_initiator() {
    replicate_with("10-38", "initiator").await;
}
