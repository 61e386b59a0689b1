//! Fuzz-style properties: whatever bytes a peer sends, every decoder of the network layer
//! returns a value or a typed error and never panics, and a connection fed garbage ends
//! with a reason instead of hanging or taking the process down. Also: every wire message
//! survives an encode/decode round trip.

use std::time::Duration;

use proptest::prelude::*;
use tokio::io::AsyncWriteExt;
use vitra::compact::Reader;
use vitra::log::proof::{
    DataBlock, DataUpgrade, Proof, ProofRequest, RequestBlock, RequestUpgrade,
};
use vitra::log::{Manifest, Node};
use vitra::net::noise::Handshake;
use vitra::net::protomux::{decode_frame, encode_message, encode_open};
use vitra::net::secretstream::Pull;
use vitra::net::wire::{self, Message};
use vitra::net::{Connection, ConnectionConfig, KeyPair, SecretStream, SecretStreamConfig};

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn compact_reader_never_panics(buf in bytes(64)) {
        let mut r = Reader::new(&buf);
        let _ = r.uint("a");
        let _ = r.buffer("b");
        let _ = r.string("c");
        let _ = r.uint32_array("d");
        let _ = r.fixed32("e");
        let _ = r.optional_buffer("f");
        let _ = r.trailing_uint("g");
        let _ = r.rest();
    }

    #[test]
    fn protomux_frames_never_panic(buf in bytes(256)) {
        let _ = decode_frame(&buf);
    }

    #[test]
    fn protomux_batches_never_panic(tail in bytes(256)) {
        let mut buf = vec![0, 0];
        buf.extend_from_slice(&tail);
        let _ = decode_frame(&buf);
    }

    #[test]
    fn wire_messages_never_panic(kind in 0u64..12, buf in bytes(512)) {
        let _ = Message::decode(kind, &buf);
        let _ = wire::Handshake::decode(&buf);
    }

    #[test]
    fn noise_handshake_messages_never_panic(m1 in bytes(200), m2 in bytes(200)) {
        let mut responder = Handshake::new(false, KeyPair::from_seed([1; 32]));
        let _ = responder.read_message(&m1);
        let _ = responder.read_message(&m2);
        let mut initiator = Handshake::new(true, KeyPair::from_seed([2; 32]));
        let _ = initiator.write_message();
        let _ = initiator.read_message(&m2);
        let _ = initiator.outcome();
    }

    #[test]
    fn secretstream_pull_never_panics(header in any::<[u8; 24]>(), msg in bytes(300)) {
        let mut pull = Pull::new(&[3; 32], &header);
        prop_assert!(pull.pull(&msg).is_err(), "random bytes never authenticate");
    }
}

fn arb_nodes() -> impl Strategy<Value = Vec<Node>> {
    prop::collection::vec(
        (any::<u64>(), any::<u64>(), any::<[u8; 32]>()).prop_map(|(index, size, hash)| Node {
            index,
            size,
            hash,
        }),
        0..4,
    )
}

fn arb_message() -> impl Strategy<Value = Message> {
    let small = any::<u64>();
    prop_oneof![
        (small, small, small, any::<[bool; 5]>()).prop_map(|(fork, length, remote_length, f)| {
            Message::Sync(wire::Sync {
                fork,
                length,
                remote_length,
                can_upgrade: f[0],
                uploading: f[1],
                downloading: f[2],
                has_manifest: f[3],
                allow_push: f[4],
            })
        }),
        (
            small,
            small,
            prop::option::of((small, small)),
            prop::option::of((small, small)),
            any::<bool>(),
            small
        )
            .prop_map(
                |(id, fork, block, upgrade, manifest, priority)| Message::Request(wire::Request {
                    id,
                    proof: ProofRequest {
                        fork,
                        block: block.map(|(index, nodes)| RequestBlock { index, nodes }),
                        hash: None,
                        seek: None,
                        upgrade: upgrade.map(|(start, length)| RequestUpgrade { start, length }),
                        manifest,
                        priority,
                    }
                })
            ),
        (
            small,
            small,
            prop::option::of((small, bytes(100), arb_nodes())),
            prop::option::of((small, small, arb_nodes(), arb_nodes(), bytes(70))),
            prop::option::of(any::<[u8; 32]>())
        )
            .prop_map(|(request, fork, block, upgrade, manifest)| Message::Data(
                wire::Data {
                    request,
                    proof: Proof {
                        fork,
                        block: block.map(|(index, value, nodes)| DataBlock {
                            index,
                            value,
                            nodes
                        }),
                        hash: None,
                        seek: None,
                        upgrade: upgrade.map(
                            |(start, length, nodes, additional_nodes, signature)| DataUpgrade {
                                start,
                                length,
                                nodes,
                                additional_nodes,
                                signature,
                            }
                        ),
                        manifest: manifest.map(Manifest::compat),
                    }
                }
            )),
        (small, small)
            .prop_map(|(request, reason)| Message::NoData(wire::NoData { request, reason })),
        (small, small, any::<bool>()).prop_map(|(start, length, any)| Message::Want(wire::Want {
            start,
            length,
            any
        })),
        (small, prop::collection::vec(any::<u32>(), 0..8))
            .prop_map(|(start, bitfield)| Message::Bitfield(wire::Bitfield { start, bitfield })),
        (any::<bool>(), small, small).prop_map(|(drop, start, length)| Message::Range(
            wire::Range {
                drop,
                start,
                length
            }
        )),
        ("[a-z]{0,10}", bytes(50))
            .prop_map(|(name, message)| Message::Extension(wire::Extension { name, message })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn wire_messages_round_trip(m in arb_message()) {
        prop_assert_eq!(Message::decode(m.kind(), &m.encode()).ok(), Some(m));
    }
}

/// A real handshake, then the peer sends `frames` (each one encrypted secret-stream
/// message) and goes away: our connection must end with a reason within a bound.
async fn feed_connection(frames: Vec<Vec<u8>>) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let cfg = SecretStreamConfig::default();
    let ka = KeyPair::from_seed([5; 32]);
    let kb = KeyPair::from_seed([6; 32]);
    let (conn, peer) = tokio::join!(
        Connection::connect(a, true, &ka, ConnectionConfig::default()),
        SecretStream::responder(b, &kb, &cfg)
    );
    let conn = conn.expect("handshake");
    let mut peer = peer.expect("handshake");
    // Our side has a channel open, so peer frames can reach it.
    let _ch = conn
        .open_channel("fuzz", &[], Some(b"id"), &[])
        .expect("open channel");
    for f in &frames {
        if peer.send(f).await.is_err() {
            break;
        }
    }
    let _ = peer.close().await;
    drop(peer);
    let drained = tokio::time::timeout(Duration::from_secs(5), async {
        while conn.accept().await.is_some() {}
    })
    .await;
    assert!(
        drained.is_ok(),
        "connection did not end after the peer left"
    );
    assert!(conn.ended().is_some());
}

fn arb_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        bytes(64),
        (0u64..4, "[a-z]{0,5}", prop::option::of(bytes(4)), bytes(8))
            .prop_map(|(id, p, i, h)| encode_open(id, &p, i.as_deref(), &h)),
        (0u64..4, 0u64..12, bytes(40)).prop_map(|(id, k, p)| encode_message(id, k, &p)),
        (0u64..4, 0u64..4).prop_map(|(t, id)| vec![0, t as u8, id as u8]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn connection_survives_random_frames(frames in prop::collection::vec(arb_frame(), 0..12)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(feed_connection(frames));
    }

    #[test]
    fn handshake_survives_random_bytes(junk in bytes(300)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let (a, mut b) = tokio::io::duplex(4096);
            let cfg = SecretStreamConfig { handshake_timeout: Duration::from_secs(2), idle_timeout: None };
            let writer = async move {
                let _ = b.write_all(&junk).await;
                let _ = b.shutdown().await;
                b
            };
            let kp = KeyPair::from_seed([1; 32]);
            let (r, _b) = tokio::join!(SecretStream::responder(a, &kp, &cfg), writer);
            prop_assert!(r.is_err());
            Ok(())
        })?;
    }
}
