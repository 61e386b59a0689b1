//! The Hypercore replication protocol (`hypercore/alpha` over protomux) as JS Hypercore 10.38
//! and 11 speak it: the channel handshake, the ten message types of `lib/messages.js`
//! (`wire.*`) in their channel order, and the capability and discovery key of `lib/caps.js`
//! and `hypercore-crypto`.
//!
//! Differences between the two versions are all compatible on the wire: 11 adds a trailing
//! `reason` to `noData`, an `any` flag to `want`/`unwant` and `allowPush` to `sync`; 10.38
//! decoders ignore trailing bytes and 11 decoders treat them as absent. The upgrade signature
//! is a length-prefixed buffer in both (empty means none).
//!
//! The bodies of `request` and `data` are the log engine's own [`ProofRequest`] and [`Proof`]
//! (one encoding, in `log::proof`): what a peer asks for goes to `Log::create_proof` as it
//! arrived, and what it sends goes to the log's verifier unchanged.

use super::NetError;
use crate::compact::{put_string, put_uint, put_uint32_array, Reader};
use crate::log::crypto::{keyed_hash, namespace};
use crate::log::proof::{Proof, ProofRequest};

/// The protomux protocol name JS Hypercore opens.
pub const PROTOCOL: &str = "hypercore/alpha";
/// The alias JS Hypercore also accepts.
pub const PROTOCOL_ALIAS: &str = "hypercore";

pub use crate::log::crypto::discovery_key;

/// `caps.replicate(isInitiator, key, handshakeHash)`: BLAKE2b-256 keyed with the handshake
/// hash over the initiator's or responder's `hypercore` namespace and the core key. We send
/// ours with `is_initiator` = our role and expect the peer's with the opposite role.
pub fn capability(is_initiator: bool, key: &[u8; 32], handshake_hash: &[u8; 64]) -> [u8; 32] {
    let ns = namespace("hypercore", if is_initiator { 1 } else { 2 });
    keyed_hash(handshake_hash, &[&ns, key])
}

/// The open-channel handshake (`wire.handshake`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// Whether we answer seek requests (JS always sends `true`).
    pub seeks: bool,
    /// Proof that the sender knows the core key, bound to this connection.
    pub capability: [u8; 32],
}

impl Handshake {
    /// Encodes as `uint flags, fixed32 capability`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(33);
        put_uint(&mut out, u64::from(self.seeks));
        out.extend_from_slice(&self.capability);
        out
    }

    /// Decodes a peer's handshake.
    pub fn decode(buf: &[u8]) -> Result<Self, NetError> {
        let mut r = Reader::new(buf);
        let flags = r.uint("handshake flags")?;
        Ok(Handshake {
            seeks: flags & 1 != 0,
            capability: r.fixed32("handshake capability")?,
        })
    }
}

/// `wire.sync`: our view of the core (type 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sync {
    /// Our fork id.
    pub fork: u64,
    /// Our length.
    pub length: u64,
    /// The length we believe the peer has (0 if on another fork).
    pub remote_length: u64,
    /// We can upgrade the peer (we have a longer signed length).
    pub can_upgrade: bool,
    /// We serve data.
    pub uploading: bool,
    /// We want data.
    pub downloading: bool,
    /// We have a manifest to send (never for compat cores).
    pub has_manifest: bool,
    /// We accept pushed data (Hypercore 11).
    pub allow_push: bool,
}

/// `wire.request` (type 1): a proof request and the id its answer echoes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Request id, echoed in the reply.
    pub id: u64,
    /// What is asked for (the log engine's [`ProofRequest`], which answers it).
    pub proof: ProofRequest,
}

/// `wire.cancel` (type 2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cancel {
    /// The request id to cancel.
    pub request: u64,
}

/// `wire.data` (type 3): a proof answering a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Data {
    /// The request id this answers (0 for pushed data).
    pub request: u64,
    /// The proof, which the log engine verifies before storing anything.
    pub proof: Proof,
}

/// `wire.noData` (type 4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoData {
    /// The request id that cannot be served.
    pub request: u64,
    /// Why (Hypercore 11; 0 = unspecified).
    pub reason: u64,
}

/// `wire.want` / `wire.unwant` (types 5 and 6): a range of blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Want {
    /// First block.
    pub start: u64,
    /// Number of blocks.
    pub length: u64,
    /// Any block in the range will do (Hypercore 11).
    pub any: bool,
}

/// `wire.bitfield` (type 7): which blocks the sender has, from `start`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bitfield {
    /// First block the bitfield covers.
    pub start: u64,
    /// Bits, 32 blocks per word, little endian.
    pub bitfield: Vec<u32>,
}

/// `wire.range` (type 8): the sender has (or dropped) a contiguous range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Range {
    /// The sender cleared the range.
    pub drop: bool,
    /// First block.
    pub start: u64,
    /// Number of blocks.
    pub length: u64,
}

/// `wire.extension` (type 9): an application extension message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extension {
    /// The extension's name.
    pub name: String,
    /// Its payload.
    pub message: Vec<u8>,
}

/// One Hypercore replication message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Type 0.
    Sync(Sync),
    /// Type 1.
    Request(Request),
    /// Type 2.
    Cancel(Cancel),
    /// Type 3.
    Data(Data),
    /// Type 4.
    NoData(NoData),
    /// Type 5.
    Want(Want),
    /// Type 6.
    Unwant(Want),
    /// Type 7.
    Bitfield(Bitfield),
    /// Type 8.
    Range(Range),
    /// Type 9.
    Extension(Extension),
}

fn put_want(out: &mut Vec<u8>, w: &Want) {
    put_uint(out, w.start);
    put_uint(out, w.length);
    if w.any {
        put_uint(out, 1);
    }
}

fn get_want(r: &mut Reader<'_>) -> Result<Want, NetError> {
    let start = r.uint("want start")?;
    let length = r.uint("want length")?;
    let flags = r.trailing_uint("want flags")?;
    Ok(Want {
        start,
        length,
        any: flags & 1 != 0,
    })
}

impl Message {
    /// The message's type number (its index in the channel's message list).
    pub fn kind(&self) -> u64 {
        match self {
            Message::Sync(_) => 0,
            Message::Request(_) => 1,
            Message::Cancel(_) => 2,
            Message::Data(_) => 3,
            Message::NoData(_) => 4,
            Message::Want(_) => 5,
            Message::Unwant(_) => 6,
            Message::Bitfield(_) => 7,
            Message::Range(_) => 8,
            Message::Extension(_) => 9,
        }
    }

    /// Encodes the message body exactly as JS Hypercore 11 does.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Message::Sync(m) => {
                let flags = u64::from(m.can_upgrade)
                    | u64::from(m.uploading) << 1
                    | u64::from(m.downloading) << 2
                    | u64::from(m.has_manifest) << 3
                    | u64::from(m.allow_push) << 4;
                put_uint(&mut out, flags);
                put_uint(&mut out, m.fork);
                put_uint(&mut out, m.length);
                put_uint(&mut out, m.remote_length);
            }
            Message::Request(m) => m.proof.write(m.id, &mut out),
            Message::Cancel(m) => put_uint(&mut out, m.request),
            Message::Data(m) => m.proof.write(m.request, &mut out),
            Message::NoData(m) => {
                put_uint(&mut out, m.request);
                put_uint(&mut out, u64::from(m.reason != 0));
                if m.reason != 0 {
                    put_uint(&mut out, m.reason);
                }
            }
            Message::Want(w) | Message::Unwant(w) => put_want(&mut out, w),
            Message::Bitfield(m) => {
                put_uint(&mut out, m.start);
                put_uint32_array(&mut out, &m.bitfield);
            }
            Message::Range(m) => {
                put_uint(&mut out, u64::from(m.drop) | u64::from(m.length == 1) << 1);
                put_uint(&mut out, m.start);
                if m.length != 1 {
                    put_uint(&mut out, m.length);
                }
            }
            Message::Extension(m) => {
                put_string(&mut out, &m.name);
                out.extend_from_slice(&m.message);
            }
        }
        out
    }

    /// Decodes a message body of type `kind`, as JS Hypercore 10.38 / 11 decode it (trailing
    /// bytes after the known fields are ignored).
    pub fn decode(kind: u64, buf: &[u8]) -> Result<Message, NetError> {
        let mut r = Reader::new(buf);
        let r = &mut r;
        Ok(match kind {
            0 => {
                let flags = r.uint("sync flags")?;
                Message::Sync(Sync {
                    fork: r.uint("sync fork")?,
                    length: r.uint("sync length")?,
                    remote_length: r.uint("sync remoteLength")?,
                    can_upgrade: flags & 1 != 0,
                    uploading: flags & 2 != 0,
                    downloading: flags & 4 != 0,
                    has_manifest: flags & 8 != 0,
                    allow_push: flags & 16 != 0,
                })
            }
            1 => {
                let (id, proof) = ProofRequest::read(r)?;
                Message::Request(Request { id, proof })
            }
            2 => Message::Cancel(Cancel {
                request: r.uint("cancel request")?,
            }),
            3 => {
                let (request, proof) = Proof::read(r)?;
                Message::Data(Data { request, proof })
            }
            4 => {
                let request = r.uint("noData request")?;
                let flags = r.trailing_uint("noData flags")?;
                let reason = if flags & 1 != 0 {
                    r.uint("noData reason")?
                } else {
                    0
                };
                Message::NoData(NoData { request, reason })
            }
            5 => Message::Want(get_want(r)?),
            6 => Message::Unwant(get_want(r)?),
            7 => Message::Bitfield(Bitfield {
                start: r.uint("bitfield start")?,
                bitfield: r.uint32_array("bitfield words")?,
            }),
            8 => {
                let flags = r.uint("range flags")?;
                let start = r.uint("range start")?;
                let length = if flags & 2 != 0 {
                    1
                } else {
                    r.uint("range length")?
                };
                Message::Range(Range {
                    drop: flags & 1 != 0,
                    start,
                    length,
                })
            }
            9 => Message::Extension(Extension {
                name: r.string_lossy("extension name")?,
                message: r.rest().to_vec(),
            }),
            other => return Err(NetError::UnknownMessageType { kind: other }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::proof::{
        DataBlock, DataHash, DataUpgrade, RequestBlock, RequestSeek, RequestUpgrade,
    };
    use crate::log::{Manifest, Node};

    #[test]
    fn discovery_key_and_capability_match_js() {
        // Values printed by hypercore-crypto.discoveryKey and hypercore/lib/caps.js.
        assert_eq!(
            hex::encode(discovery_key(&[0; 32])),
            "6b7ecf9ce456d56e5145ec4c5661e0c79ee47ddcc9c0504e90aa6fd60746365c"
        );
        assert_eq!(
            hex::encode(capability(true, &[1; 32], &[2; 64])),
            "c8c598812712c84947711f02163ec09cd2684bd015eb81e562ac8dd3f9887324"
        );
        assert_eq!(
            hex::encode(capability(false, &[1; 32], &[2; 64])),
            "604e409f47af3e21acc365105f75ce63581aa9409bf87f2a637bab22a15a87bf"
        );
    }

    #[test]
    fn encodings_match_js_bytes() {
        // compact-encoding of the same values with hypercore 11's lib/messages.js.
        let node = Node {
            index: 3,
            size: 300,
            hash: [9; 32],
        };
        let data = Message::Data(Data {
            request: 7,
            proof: Proof {
                block: Some(DataBlock {
                    index: 4,
                    value: b"block".to_vec(),
                    nodes: vec![node],
                }),
                upgrade: Some(DataUpgrade {
                    start: 0,
                    length: 10,
                    signature: vec![5; 64],
                    ..Default::default()
                }),
                ..Default::default()
            },
        });
        assert_eq!(
            hex::encode(data.encode()),
            format!(
                "0907000405626c6f636b0103fd2c01{}000a000040{}",
                "09".repeat(32),
                "05".repeat(64)
            )
        );
        let req = Message::Request(Request {
            id: 7,
            proof: ProofRequest {
                block: Some(RequestBlock { index: 4, nodes: 2 }),
                upgrade: Some(RequestUpgrade {
                    start: 0,
                    length: 10,
                }),
                ..Default::default()
            },
        });
        assert_eq!(hex::encode(req.encode()), "0907000402000a");
        let sync = Message::Sync(Sync {
            fork: 1,
            length: 10,
            remote_length: 5,
            can_upgrade: true,
            uploading: true,
            allow_push: true,
            ..Default::default()
        });
        assert_eq!(hex::encode(sync.encode()), "13010a05");
    }

    #[test]
    fn every_message_round_trips() -> Result<(), NetError> {
        let node = Node {
            index: 3,
            size: 300,
            hash: [9; 32],
        };
        let msgs = vec![
            Message::Sync(Sync {
                fork: 1,
                length: 10,
                remote_length: 5,
                can_upgrade: true,
                uploading: true,
                downloading: false,
                has_manifest: false,
                allow_push: true,
            }),
            Message::Request(Request {
                id: 7,
                proof: ProofRequest {
                    fork: 0,
                    block: Some(RequestBlock { index: 4, nodes: 2 }),
                    hash: None,
                    seek: Some(RequestSeek {
                        bytes: 100,
                        padding: 0,
                    }),
                    upgrade: Some(RequestUpgrade {
                        start: 0,
                        length: 10,
                    }),
                    manifest: true,
                    priority: 2,
                },
            }),
            Message::Cancel(Cancel { request: 7 }),
            Message::Data(Data {
                request: 7,
                proof: Proof {
                    fork: 0,
                    block: Some(DataBlock {
                        index: 4,
                        value: b"block".to_vec(),
                        nodes: vec![node],
                    }),
                    hash: Some(DataHash {
                        index: 1,
                        nodes: vec![],
                    }),
                    seek: None,
                    upgrade: Some(DataUpgrade {
                        start: 0,
                        length: 10,
                        nodes: vec![node],
                        additional_nodes: vec![node],
                        signature: vec![5; 64],
                    }),
                    manifest: Some(Manifest::compat([4; 32])),
                },
            }),
            Message::NoData(NoData {
                request: 8,
                reason: 0,
            }),
            Message::NoData(NoData {
                request: 8,
                reason: 3,
            }),
            Message::Want(Want {
                start: 0,
                length: 1024,
                any: false,
            }),
            Message::Unwant(Want {
                start: 0,
                length: 1024,
                any: true,
            }),
            Message::Bitfield(Bitfield {
                start: 0,
                bitfield: vec![0xffff_ffff, 1],
            }),
            Message::Range(Range {
                drop: false,
                start: 0,
                length: 1,
            }),
            Message::Range(Range {
                drop: true,
                start: 5,
                length: 70000,
            }),
            Message::Extension(Extension {
                name: "ext".into(),
                message: vec![1, 2],
            }),
        ];
        for m in msgs {
            assert_eq!(Message::decode(m.kind(), &m.encode())?, m);
        }
        Ok(())
    }

    #[test]
    fn hypercore_10_messages_without_trailing_fields_decode() -> Result<(), NetError> {
        // Hypercore 10.38 writes noData and want without the trailing flags.
        assert_eq!(
            Message::decode(4, &[9])?,
            Message::NoData(NoData {
                request: 9,
                reason: 0
            })
        );
        assert_eq!(
            Message::decode(5, &[0, 0xfd, 0, 4])?,
            Message::Want(Want {
                start: 0,
                length: 1024,
                any: false
            })
        );
        // A single-block range is written without its length.
        assert_eq!(
            Message::Range(Range {
                drop: false,
                start: 9,
                length: 1
            })
            .encode(),
            vec![2, 9]
        );
        Ok(())
    }
}
