//! Every proof a peer sends is verified before it is stored: a hostile peer (a raw connection
//! answering our requests) that signs an upgrade with the wrong key, or alters a block's bytes,
//! has its channel dropped with a `PeerFailed` notice, and the replica stores nothing from it.
//! A peer whose data fails against our tree is asked for its signed head at our length first:
//! when the log's key signed a tree there that differs from the one we verified (a split log,
//! the peer longer or shorter than us), both signed heads are kept as evidence; an honest head
//! with corrupt data is refused without evidence.

mod replicate_support;

use std::time::Duration;

use replicate_support::{block, empty_replica, logs_of, serve_log, split_of, writer_log};
use vitra::log::proof::{ProofRequest, RequestBlock, RequestUpgrade};
use vitra::log::{Log, MemoryStorage, Storage};
use vitra::net::replicate::{
    Download, ForkEvidence, Logs, Notice, Replicator, ReplicatorConfig, HEAD_CHECK_WAIT,
};
use vitra::net::wire::{Message, Sync};
use vitra::net::{Channel, Connection, ConnectionConfig, KeyPair};

/// A raw connection (no replication engine) dialed to the replicator at `addr`, as
/// secret-stream initiator, with the replication channel of log `key` opened on it.
async fn raw_core_channel(addr: &str, key: &[u8; 32]) -> (Connection, Channel) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let conn = Connection::connect(
        tcp,
        true,
        &KeyPair::generate().expect("keys"),
        ConnectionConfig::default(),
    )
    .await
    .expect("handshake");
    let ch = conn.open_core(key).await.expect("open core");
    (conn, ch)
}

/// A peer that announces `honest`'s length and answers each request with a proof from
/// `prover` (possibly another log), passed through `tamper`.
async fn hostile_peer(addr: String, honest: Log, prover: Log, tamper: fn(&mut Message)) {
    let (_conn, mut ch) = raw_core_channel(&addr, &honest.public_key()).await;
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

/// What a replicator following one hostile peer ended with.
struct Outcome {
    set: Logs,
    notices: Vec<Notice>,
    evidence: Vec<ForkEvidence>,
    key: [u8; 32],
}

/// Runs a replicator holding `replica` (fully downloading) against [`hostile_peer`].
async fn run_against(replica: Log, honest: Log, prover: Log, tamper: fn(&mut Message)) -> Outcome {
    let key = honest.public_key();
    let mut set = logs_of(replica);
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
    Outcome {
        set,
        notices,
        evidence: rep.evidence().to_vec(),
        key,
    }
}

/// A replica of `log` that verified its signed head and, with `blocks`, every block.
fn verified_replica(log: &Log, blocks: bool) -> Log {
    let mut replica = empty_replica(log.public_key());
    let head = log
        .create_proof(&ProofRequest {
            upgrade: Some(RequestUpgrade {
                start: 0,
                length: log.len(),
            }),
            ..ProofRequest::default()
        })
        .expect("head proof");
    replica
        .verify_and_apply_proof(&head)
        .expect("head verifies");
    for i in (0..log.len()).filter(|_| blocks) {
        let nodes = replica.missing_nodes(2 * i).expect("missing nodes");
        let proof = log
            .create_proof(&ProofRequest {
                block: Some(RequestBlock { index: i, nodes }),
                ..ProofRequest::default()
            })
            .expect("block proof");
        replica
            .verify_and_apply_proof(&proof)
            .expect("block verifies");
    }
    replica
}

#[tokio::test]
async fn upgrade_signed_by_another_key_is_refused() {
    let honest = writer_log(8);
    // Same blocks, different key: the tree matches, the signature cannot.
    let other = writer_log(8);
    let key = honest.public_key();
    let Outcome {
        set,
        notices,
        evidence,
        ..
    } = run_against(empty_replica(key), honest, other, |_| {}).await;
    let log = set.get(&key).expect("replica");
    assert_eq!(log.len(), 0, "a forged upgrade must not be applied");
    assert!(evidence.is_empty(), "a foreign signature is no evidence");
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
    let honest = writer_log(8);
    let prover_copy = honest_clone(&honest);
    let key = honest.public_key();
    let Outcome {
        set,
        notices,
        evidence,
        ..
    } = run_against(empty_replica(key), honest, prover_copy, |m| {
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
    assert!(
        evidence.is_empty(),
        "corrupt data under an honest signed head is refused, not evidence: {evidence:?}"
    );
}

/// Checks the evidence a split peer left: one piece, our verified head against the head the
/// split log signed at `their_length`, both signed by the key, and as a block-rewrite proof.
fn assert_split_evidence(out: &Outcome, ours: &vitra::log::SignedHead, split: &Log) {
    assert_eq!(out.evidence.len(), 1, "notices: {:?}", out.notices);
    let ev = &out.evidence[0];
    assert!(!ev.is_fork(), "a split on one fork, not a fork: {ev:?}");
    assert_eq!(ev.key, out.key);
    assert_eq!(&ev.ours, ours, "our side is the head we verified");
    assert_eq!(
        (ev.theirs.fork, ev.theirs.length),
        (0, split.len()),
        "their side is the split log's head"
    );
    assert_eq!(
        ev.theirs.tree_hash,
        split.tree_hash(split.len()).expect("tree hash")
    );
    assert!(ev.ours.verify(&out.key) && ev.theirs.verify(&out.key));
    assert!(out
        .notices
        .iter()
        .any(|n| matches!(n, Notice::Fork(e) if e.theirs == ev.theirs)));
    assert!(
        out.notices
            .iter()
            .any(|n| matches!(n, Notice::PeerFailed { .. })),
        "the split peer's data was refused: {:?}",
        out.notices
    );
    let proof = ev
        .to_split_proof()
        .expect("a split is a block-rewrite proof");
    assert_eq!(proof.given_inclusion_proof.block_seq, ours.length - 1);
    assert_eq!(
        proof.given_inclusion_proof.root_hash_at_block,
        ours.tree_hash
    );
    assert_eq!(proof.violating_inclusion_proof.block_seq, split.len() - 1);
    assert_eq!(
        proof.violating_inclusion_proof.root_hash_signature,
        ev.theirs.signature
    );
}

/// A replica that verified the head of an honest writer of `honest_len` blocks (and, with
/// `blocks`, every block) meets a peer serving a split log of `split_len` blocks under the same
/// key; checks the evidence it leaves ([`assert_split_evidence`]) and returns the outcome.
async fn run_split(honest_len: u64, split_len: u64, blocks: bool) -> Outcome {
    let honest = writer_log(honest_len);
    let split = split_of(&honest, split_len);
    let replica = verified_replica(&honest, blocks);
    let ours = replica.signed_heads().last().cloned().expect("head");
    let out = run_against(replica, honest_clone(&split), honest_clone(&split), |_| {}).await;
    assert_split_evidence(&out, &ours, &split);
    out
}

/// We verified 8 blocks; a peer announces 12 under the same key whose tree does not contain
/// ours. Its upgrade fails against our tree; its signed head at 12, with its tree at our length
/// spelled out, is the evidence, and the replica keeps exactly what it verified.
#[tokio::test]
async fn a_longer_split_peer_is_refused_and_its_signed_head_kept_as_evidence() {
    let out = run_split(8, 12, true).await;
    let log = out.set.get(&out.key).expect("replica");
    assert_eq!(
        (log.len(), log.fork()),
        (8, 0),
        "the split was not followed"
    );
    for i in 0..8 {
        assert_eq!(log.get(i).expect("read"), Some(block(i)), "block {i}");
    }
}

/// We verified the head of 12 blocks (none downloaded); a peer of the same key holds a
/// different history of 8 blocks. Its block proofs fail against our tree; its signed head at
/// 8 differs from our tree at 8: evidence, and none of its blocks is stored.
#[tokio::test]
async fn a_shorter_split_peer_is_refused_and_its_signed_head_kept_as_evidence() {
    let out = run_split(12, 8, false).await;
    let log = out.set.get(&out.key).expect("replica");
    assert_eq!(log.len(), 12);
    assert!(
        (0..12).all(|i| !log.has(i)),
        "no block of the split is stored"
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
    let log = writer_log(4);
    let key = log.public_key();
    let (mut set, mut rep, addr) = serve_log(log).await;
    let engine = tokio::spawn(async move {
        let _ = rep
            .run_until(&mut set, Duration::from_secs(10), |_, _| false)
            .await;
    });
    let (_conn, mut ch) = raw_core_channel(&addr.to_string(), &key).await;
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

/// A peer that never answers our request for its signed head (to compare with ours) holds a
/// sync up for at most `HEAD_CHECK_WAIT`, not until the sync's own timeout.
#[tokio::test]
async fn a_peer_that_never_shows_its_signed_head_does_not_hold_sync_up() {
    let honest = writer_log(8);
    let key = honest.public_key();
    let (mut set, mut rep, addr) = serve_log(verified_replica(&honest, false)).await;
    // Its answers to head requests (an upgrade, no block) go to a request id we never made.
    let peer = tokio::spawn(hostile_peer(
        addr.to_string(),
        honest_clone(&honest),
        honest,
        |m| {
            if let Message::Data(d) = m {
                if d.proof.upgrade.is_some() && d.proof.block.is_none() {
                    d.request += 1 << 40;
                }
            }
        },
    ));
    rep.run_until(&mut set, Duration::from_secs(20), |_, r| {
        !r.remote_lengths(&key).is_empty()
    })
    .await
    .expect("the peer syncs");
    let timeout = HEAD_CHECK_WAIT + Duration::from_secs(5);
    rep.sync(&mut set, timeout)
        .await
        .unwrap_or_else(|e| panic!("sync waited on the silent peer past {timeout:?}: {e}"));
    assert!(rep.evidence().is_empty());
    peer.abort();
}
