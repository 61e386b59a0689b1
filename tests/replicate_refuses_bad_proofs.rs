//! Every proof a peer sends is verified before it is stored: a hostile peer (a raw connection
//! answering our requests) that signs an upgrade with the wrong key, or alters a block's bytes,
//! has its channel dropped with a `PeerFailed` notice, and the replica stores nothing from it.

mod replicate_support;

use std::time::Duration;

use replicate_support::block;
use vitra::log::{Log, MemoryStorage, Storage};
use vitra::net::replicate::{Download, Logs, Notice, Replicator, ReplicatorConfig};
use vitra::net::wire::{Message, Sync};
use vitra::net::{Connection, ConnectionConfig, KeyPair};

fn writer(n: u64) -> Log {
    let mut log = Log::create(Storage::Memory(MemoryStorage::new())).expect("create");
    let blocks: Vec<Vec<u8>> = (0..n).map(block).collect();
    log.append_batch(&blocks).expect("append");
    log
}

/// A peer that announces `honest`'s length and answers each request with a proof from
/// `prover` (possibly another log), passed through `tamper`.
async fn hostile_peer(addr: String, honest: Log, prover: Log, tamper: fn(&mut Message)) {
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let conn = Connection::connect(
        tcp,
        true,
        &KeyPair::generate().expect("keys"),
        ConnectionConfig::default(),
    )
    .await
    .expect("handshake");
    let mut ch = conn
        .open_core(&honest.public_key())
        .await
        .expect("open core");
    ch.send(&Message::Sync(Sync {
        fork: 0,
        length: honest.len(),
        remote_length: 0,
        can_upgrade: true,
        uploading: true,
        downloading: false,
        ..Sync::default()
    }))
    .expect("sync");
    ch.send(&Message::Range(vitra::net::wire::Range {
        drop: false,
        start: 0,
        length: honest.len(),
    }))
    .expect("range");
    while let Ok(msg) = ch.recv().await {
        if let Message::Request(r) = msg {
            let proof = prover.create_proof(&r.proof).expect("proof");
            let mut reply = Message::Data(vitra::net::wire::Data {
                request: r.id,
                proof,
            });
            tamper(&mut reply);
            if ch.send(&reply).is_err() {
                break;
            }
        }
    }
}

async fn run_against(
    honest: Log,
    prover: Log,
    tamper: fn(&mut Message),
) -> (Logs, Vec<Notice>, [u8; 32]) {
    let key = honest.public_key();
    let mut set = Logs::new();
    set.insert(Log::create_replica(Storage::Memory(MemoryStorage::new()), key).expect("replica"));
    let mut rep = Replicator::new(ReplicatorConfig::default()).expect("replicator");
    rep.add_core_with(key, Download::Full);
    let addr = rep.listen("127.0.0.1:0").await.expect("listen");
    let peer = tokio::spawn(hostile_peer(addr.to_string(), honest, prover, tamper));
    let mut notices = Vec::new();
    let _ = rep
        .run_until(&mut set, Duration::from_secs(20), |_, r| {
            r.peer_count() > 0 && !r.remote_lengths(&key).is_empty()
        })
        .await;
    let _ = rep
        .run_until(&mut set, Duration::from_secs(3), |_, _| false)
        .await;
    notices.extend(rep.take_notices());
    peer.abort();
    (set, notices, key)
}

#[tokio::test]
async fn upgrade_signed_by_another_key_is_refused() {
    let honest = writer(8);
    // Same blocks, different key: the tree matches, the signature cannot.
    let other = writer(8);
    let (set, notices, key) = run_against(honest, other, |_| {}).await;
    let log = set.get(&key).expect("replica");
    assert_eq!(log.len(), 0, "a forged upgrade must not be applied");
    assert!(log.signed_heads().is_empty());
    assert!(
        notices
            .iter()
            .any(|n| matches!(n, Notice::PeerFailed { error, .. } if error.contains("ignature"))),
        "expected a signature failure, got {notices:?}"
    );
}

#[tokio::test]
async fn altered_block_is_refused_and_not_stored() {
    let honest = writer(8);
    let prover_copy = honest_clone(&honest);
    let (set, notices, key) = run_against(honest, prover_copy, |m| {
        if let Message::Data(d) = m {
            if let Some(b) = d.proof.block.as_mut() {
                if let Some(first) = b.value.first_mut() {
                    *first ^= 1;
                }
            }
        }
    })
    .await;
    let log = set.get(&key).expect("replica");
    assert_eq!(log.len(), 8, "the honest signed upgrade is applied");
    assert!(
        (0..8).all(|i| !log.has(i)),
        "no altered block may be stored"
    );
    assert!(
        notices
            .iter()
            .any(|n| matches!(n, Notice::PeerFailed { .. })),
        "expected the peer to fail, got {notices:?}"
    );
}

fn honest_clone(log: &Log) -> Log {
    // A writer with the same key pair and the same blocks produces identical proofs.
    let mut copy = Log::create_with_key_pair(
        Storage::Memory(MemoryStorage::new()),
        log.key_pair().clone(),
    )
    .expect("copy");
    let blocks: Vec<Vec<u8>> = (0..log.len())
        .map(|i| log.get(i).expect("read").expect("block"))
        .collect();
    copy.append_batch(&blocks).expect("append");
    copy
}

/// Extreme values in every message a peer can send (offsets near `u64::MAX`, an oversized
/// bitfield, impossible requests) are answered or ignored, never a panic: the engine still
/// answers the same peer afterwards.
#[tokio::test]
async fn extreme_messages_are_answered_or_ignored() {
    use vitra::log::proof::{ProofRequest, RequestBlock, RequestUpgrade};
    use vitra::net::wire::{Bitfield, Range, Request, Want};
    let log = writer(4);
    let key = log.public_key();
    let mut set = Logs::new();
    set.insert(log);
    let mut rep = Replicator::new(ReplicatorConfig::default()).expect("replicator");
    rep.add_core_with(key, Download::HeadOnly);
    let addr = rep.listen("127.0.0.1:0").await.expect("listen");
    let engine = tokio::spawn(async move {
        let _ = rep
            .run_until(&mut set, Duration::from_secs(10), |_, _| false)
            .await;
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let conn = Connection::connect(
        tcp,
        true,
        &KeyPair::generate().expect("keys"),
        ConnectionConfig::default(),
    )
    .await
    .expect("handshake");
    let mut ch = conn.open_core(&key).await.expect("open");
    let near = u64::MAX - 3;
    ch.send_batch(&[
        Message::Want(Want {
            start: near,
            length: u64::MAX,
            any: false,
        }),
        Message::Bitfield(Bitfield {
            start: near,
            bitfield: vec![u32::MAX; 100_000],
        }),
        Message::Range(Range {
            drop: false,
            start: near,
            length: u64::MAX,
        }),
        Message::Range(Range {
            drop: true,
            start: 0,
            length: u64::MAX,
        }),
        Message::Request(Request {
            id: 1,
            proof: ProofRequest {
                block: Some(RequestBlock {
                    index: u64::MAX,
                    nodes: u64::MAX,
                }),
                upgrade: Some(RequestUpgrade {
                    start: near,
                    length: u64::MAX,
                }),
                ..ProofRequest::default()
            },
        }),
        Message::Request(Request {
            id: 2,
            proof: ProofRequest {
                block: Some(RequestBlock { index: 3, nodes: 0 }),
                upgrade: Some(RequestUpgrade {
                    start: 0,
                    length: 4,
                }),
                ..ProofRequest::default()
            },
        }),
    ])
    .expect("send");
    let (mut nodata, mut data, mut bitfield) = (false, false, false);
    while !(nodata && data && bitfield) {
        let msg = tokio::time::timeout(Duration::from_secs(10), ch.recv())
            .await
            .expect("the engine stopped answering")
            .expect("channel");
        match msg {
            Message::NoData(n) => nodata |= n.request == 1,
            Message::Data(d) => {
                data |=
                    d.request == 2 && d.proof.block.as_ref().is_some_and(|b| b.value == block(3));
            }
            Message::Bitfield(b) => bitfield |= b.bitfield.iter().all(|w| *w == 0),
            _ => {}
        }
    }
    engine.abort();
}
