//! npm `protomux` 3.12 framing: many channels over one message stream.
//!
//! Every secret-stream message is one protomux frame: `uint channel, uint type, payload`.
//! Channel 0 is the control session:
//!
//! | type | meaning | body |
//! | --- | --- | --- |
//! | 0 | batch | `uint channel`, then entries: `buffer(uint type + payload)`, or a zero length followed by `uint channel` to switch channel |
//! | 1 | open | `uint local id`, `string protocol`, `optionalBuffer id`, the protocol's handshake (rest) |
//! | 2 | reject | `uint id` the peer used in its open |
//! | 3 | close | `uint local id` of the closing side |
//!
//! A channel message carries the *sender's* local id; each side learns the other's id from its
//! open. This module is sans-IO: [`decode_frame`] turns bytes into [`Frame`]s (batches are
//! flattened) and the `encode_*` functions build frames.

use super::NetError;
use crate::compact::{put_buffer, put_optional_buffer, put_string, put_uint, Reader};

/// How deep batches may nest (JS allows any depth; real peers never nest).
const MAX_BATCH_DEPTH: usize = 4;

/// One decoded protomux frame (a batch is flattened into the frames it carries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The peer opens a channel.
    Open {
        /// The id the peer will use for this channel.
        remote_id: u64,
        /// The protocol name, e.g. `hypercore/alpha`.
        protocol: String,
        /// The channel id (for Hypercore, the discovery key); `None` when absent.
        id: Option<Vec<u8>>,
        /// The protocol's handshake bytes.
        handshake: Vec<u8>,
    },
    /// The peer refuses a channel we opened with `local_id`.
    Reject {
        /// Our local id of the refused channel.
        local_id: u64,
    },
    /// The peer closes the channel it opened with `remote_id`.
    Close {
        /// The peer's id for the channel.
        remote_id: u64,
    },
    /// A message on a channel.
    Message {
        /// The peer's id for the channel.
        remote_id: u64,
        /// The message type (index in the protocol's message list).
        kind: u64,
        /// The encoded message.
        payload: Vec<u8>,
    },
}

/// Decodes one frame (one secret-stream message). An empty message yields no frames
/// (keep-alive), as in JS.
pub fn decode_frame(buf: &[u8]) -> Result<Vec<Frame>, NetError> {
    let mut out = Vec::new();
    if buf.is_empty() {
        return Ok(out);
    }
    let mut r = Reader::new(buf);
    let channel = r.uint("channel id")?;
    decode_into(channel, &mut r, &mut out, 0)?;
    Ok(out)
}

fn decode_into(
    channel: u64,
    r: &mut Reader<'_>,
    out: &mut Vec<Frame>,
    depth: usize,
) -> Result<(), NetError> {
    let kind = r.uint("message type")?;
    if channel != 0 {
        out.push(Frame::Message {
            remote_id: channel,
            kind,
            payload: r.rest().to_vec(),
        });
        return Ok(());
    }
    match kind {
        0 => {
            if depth >= MAX_BATCH_DEPTH {
                return Err(NetError::ProtocolViolation {
                    reason: "batches nested too deep".into(),
                });
            }
            let mut channel = r.uint("batch channel id")?;
            while !r.is_empty() {
                let len = r.len("batch entry length")?;
                if len == 0 {
                    channel = r.uint("batch channel id")?;
                    continue;
                }
                let entry = r.bytes(len, "batch entry")?;
                decode_into(channel, &mut Reader::new(entry), out, depth + 1)?;
            }
        }
        1 => {
            let remote_id = r.uint("open id")?;
            let protocol = r.string_lossy("open protocol")?;
            let id = r.optional_buffer("open channel id")?.map(<[u8]>::to_vec);
            out.push(Frame::Open {
                remote_id,
                protocol,
                id,
                handshake: r.rest().to_vec(),
            });
        }
        2 => out.push(Frame::Reject {
            local_id: r.uint("reject id")?,
        }),
        3 => out.push(Frame::Close {
            remote_id: r.uint("close id")?,
        }),
        _ => {} // unknown control messages are ignored, as in JS
    }
    Ok(())
}

/// An open frame for our channel `local_id`.
pub fn encode_open(local_id: u64, protocol: &str, id: Option<&[u8]>, handshake: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 1];
    put_uint(&mut out, local_id);
    put_string(&mut out, protocol);
    put_optional_buffer(&mut out, id);
    out.extend_from_slice(handshake);
    out
}

/// A reject frame for the peer's channel `remote_id`.
pub fn encode_reject(remote_id: u64) -> Vec<u8> {
    let mut out = vec![0, 2];
    put_uint(&mut out, remote_id);
    out
}

/// A close frame for our channel `local_id`.
pub fn encode_close(local_id: u64) -> Vec<u8> {
    let mut out = vec![0, 3];
    put_uint(&mut out, local_id);
    out
}

/// A message frame on our channel `local_id`.
pub fn encode_message(local_id: u64, kind: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    put_uint(&mut out, local_id);
    put_uint(&mut out, kind);
    out.extend_from_slice(payload);
    out
}

/// A batch frame of messages on our channels, as `protomux` writes one when corked: each
/// item is `(local id, type, payload)`; consecutive items on one channel share its id.
pub fn encode_batch(items: &[(u64, u64, &[u8])]) -> Vec<u8> {
    let mut out = vec![0, 0];
    let mut prev: Option<u64> = None;
    for (channel, kind, payload) in items {
        match prev {
            None => put_uint(&mut out, *channel),
            Some(p) if p != *channel => {
                out.push(0);
                put_uint(&mut out, *channel);
            }
            Some(_) => {}
        }
        prev = Some(*channel);
        let mut entry = Vec::with_capacity(payload.len() + 2);
        put_uint(&mut entry, *kind);
        entry.extend_from_slice(payload);
        put_buffer(&mut out, &entry);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_frames_round_trip() -> Result<(), NetError> {
        let open = encode_open(1, "hypercore/alpha", Some(&[7; 32]), &[1, 2]);
        assert_eq!(
            decode_frame(&open)?,
            vec![Frame::Open {
                remote_id: 1,
                protocol: "hypercore/alpha".into(),
                id: Some(vec![7; 32]),
                handshake: vec![1, 2]
            }]
        );
        assert_eq!(
            decode_frame(&encode_reject(5))?,
            vec![Frame::Reject { local_id: 5 }]
        );
        assert_eq!(
            decode_frame(&encode_close(300))?,
            vec![Frame::Close { remote_id: 300 }]
        );
        assert_eq!(decode_frame(&[])?, vec![]);
        Ok(())
    }

    #[test]
    fn batch_switches_channels() -> Result<(), NetError> {
        let b = encode_batch(&[(1, 0, b"a"), (1, 2, b"bc"), (2, 5, b"")]);
        assert_eq!(hex::encode(&b), "0000010200610302626300020105");
        assert_eq!(
            decode_frame(&b)?,
            vec![
                Frame::Message {
                    remote_id: 1,
                    kind: 0,
                    payload: b"a".to_vec()
                },
                Frame::Message {
                    remote_id: 1,
                    kind: 2,
                    payload: b"bc".to_vec()
                },
                Frame::Message {
                    remote_id: 2,
                    kind: 5,
                    payload: vec![]
                },
            ]
        );
        Ok(())
    }
}
