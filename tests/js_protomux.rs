//! Our protomux against npm `protomux` 3.12.1 over `@hyperswarm/secret-stream` on loopback
//! TCP: channels opened from both sides pair up, messages and batches go both ways, a
//! reject reaches each side, a close reaches JS, and JS destroying the connection ends our
//! channels with a typed error.

mod common;

use std::time::Duration;

use common::{accept_js_connection, loopback_listener, JsPeer};
use vitra::compact::{put_string, Reader};
use vitra::net::{MuxChannel, NetError};

fn string(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    put_string(&mut out, s);
    out
}

fn text(b: &[u8]) -> String {
    Reader::new(b).string("text").expect("a c.string")
}

async fn recv_text(ch: &mut MuxChannel) -> String {
    let (kind, payload) = tokio::time::timeout(Duration::from_secs(10), ch.recv())
        .await
        .expect("JS side sent nothing for 10 s")
        .expect("Rust side: channel recv failed");
    assert_eq!(kind, 0, "c.string message type");
    text(&payload)
}

async fn scenario(js_role: &str) {
    let (listener, port) = loopback_listener().await;
    let mut js = JsPeer::spawn("protomux_peer.js", &[js_role, &port]);
    let conn = accept_js_connection(&listener, js_role, "JS protomux").await;
    js.wait_for("connect", 10).await;

    // JS opened two channels: answer one, reject the other.
    let mut from_js = None;
    for _ in 0..2 {
        let incoming = tokio::time::timeout(Duration::from_secs(10), conn.accept())
            .await
            .expect("JS opened no channel")
            .expect("connection alive");
        match incoming.protocol.as_str() {
            "vitra-test" => {
                assert_eq!(incoming.id.as_deref(), Some(&b"from-js"[..]));
                assert_eq!(text(&incoming.handshake), "js-hello");
                let mut ch = conn
                    .open_channel("vitra-test", &[], Some(b"from-js"), &string("rust-hello"))
                    .expect("open");
                assert_eq!(text(&ch.opened().await.expect("paired")), "js-hello");
                from_js = Some(ch);
            }
            "js-unwanted" => conn.reject(&incoming).expect("reject"),
            other => panic!("unexpected channel {other}"),
        }
    }
    let mut from_js = from_js.expect("vitra-test channel");

    // JS sees our handshake on its channel and our reject of the other.
    let mut saw_open = false;
    let mut saw_reject = false;
    while !(saw_open && saw_reject) {
        let ev = js.next_event(10).await;
        match ev["event"].as_str() {
            Some("open") => {
                assert_eq!(ev["id"], "from-js");
                assert_eq!(ev["handshake"], "rust-hello");
                saw_open = true;
            }
            Some("close") => {
                assert_eq!(ev["protocol"], "js-unwanted");
                assert_eq!(ev["isRemote"], true, "JS learned of our reject");
                saw_reject = true;
            }
            _ => panic!("unexpected JS event {ev}"),
        }
    }

    // A message JS sent before we answered its open was buffered; then a batch from JS
    // (cork/uncork) decodes into both messages, in order.
    assert_eq!(recv_text(&mut from_js).await, "early");
    assert_eq!(recv_text(&mut from_js).await, "batched-1");
    assert_eq!(recv_text(&mut from_js).await, "batched-2");

    // Messages both ways, one plain and one batch of a string and a 100 kB raw message.
    from_js.send(0, &string("hi")).expect("send");
    assert_eq!(recv_text(&mut from_js).await, "echo:hi");
    let raw: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    from_js
        .send_batch(&[(0, string("in a batch")), (1, raw.clone())])
        .expect("batch");
    assert_eq!(recv_text(&mut from_js).await, "echo:in a batch");
    let (kind, back) = from_js.recv().await.expect("raw echo");
    assert_eq!((kind, back == raw), (1, true), "raw bytes come back intact");

    // A channel we open: JS pairs it; a protocol JS does not know: rejected.
    let mut from_rust = conn
        .open_channel("vitra-test", &[], Some(b"from-rust"), &string("rust-opens"))
        .expect("open");
    let unknown = conn.open_channel("vitra-unknown", &[], None, &string("?"));
    let mut unknown = unknown.expect("open unknown");
    assert_eq!(
        text(&from_rust.opened().await.expect("JS paired")),
        "js-accepts"
    );
    let rejected = unknown.opened().await;
    assert!(
        matches!(rejected, Err(NetError::ChannelRejected { .. })),
        "{rejected:?}"
    );
    // Only one channel per protocol and id.
    assert!(matches!(
        conn.open_channel("vitra-test", &[], Some(b"from-rust"), &[]),
        Err(NetError::DuplicateChannel { .. })
    ));
    from_rust
        .send(0, &string("on the second channel"))
        .expect("send");
    assert_eq!(
        recv_text(&mut from_rust).await,
        "echo:on the second channel"
    );

    // Closing reaches JS.
    from_rust.close();
    loop {
        let ev = js.next_event(10).await;
        if ev["event"] == "close" {
            assert_eq!(ev["id"], "from-rust");
            assert_eq!(ev["isRemote"], true);
            break;
        }
    }
    assert!(from_rust.send(0, &string("after close")).is_err());

    // JS destroys the connection: our channel ends with a typed error, nothing panics.
    from_js.send(0, &string("bye")).expect("send bye");
    let end = tokio::time::timeout(Duration::from_secs(10), from_js.recv())
        .await
        .expect("connection end noticed");
    assert!(
        matches!(end, Err(NetError::ConnectionClosed { .. })),
        "{end:?}"
    );
    assert!(conn.ended().is_some());
    assert!(conn.accept().await.is_none());
}

#[tokio::test]
async fn protomux_with_js_responder() {
    scenario("responder").await;
}

#[tokio::test]
async fn protomux_with_js_initiator() {
    scenario("initiator").await;
}
