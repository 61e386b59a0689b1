//! Hyperswarm discovery between vitra and a JS Hyperswarm 4.17 peer on a local HyperDHT
//! testnet (`@hyperswarm/testnet`, 127.0.0.1 only): each side finds the other through a topic,
//! they connect, and a protomux channel carries messages both ways over the connection.
//! Also: a bootstrap node that is down, and a peer that goes away, end in typed errors.
//!
//! Every wait is bounded; a failure says which side failed and with what.

use std::collections::VecDeque;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use vitra::compact::{put_string, Reader};
use vitra::log::proof::{ProofRequest, RequestBlock, RequestUpgrade};
use vitra::net::discovery::{DiscoveryError, Swarm, SwarmConfig, SwarmPeer};
use vitra::net::protomux::{self, Frame};
use vitra::net::{wire, NetError};

const PROTOCOL: &str = "vitra-swarm-test";

/// The tests here run one at a time: each starts a DHT testnet and peers, and on a loaded
/// 2-core machine a dozen at once starve each other into UDX timeouts.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `node compat-tests/swarm_peer.js`: a testnet plus a JS Hyperswarm peer, driven by stdin.
struct JsSwarm {
    child: Child,
    stdin: ChildStdin,
    lines: tokio::io::Lines<BufReader<ChildStdout>>,
    bootstrap: std::net::SocketAddr,
}

impl JsSwarm {
    async fn start(mode: &str, topic: &[u8; 32]) -> JsSwarm {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("compat-tests");
        assert!(
            dir.join("node_modules/hyperswarm").exists()
                && dir.join("node_modules/@hyperswarm/testnet").exists(),
            "compat-tests/node_modules is missing hyperswarm or @hyperswarm/testnet: run `npm ci` in compat-tests"
        );
        // A free loopback UDP port for the testnet's bootstrap node (tests run in parallel).
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("a free loopback UDP port")
            .port();
        let mut child = Command::new("node")
            .arg(dir.join("swarm_peer.js"))
            .args([mode, &hex::encode(topic), &port.to_string()])
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Not inherited: node would make the shared stderr non-blocking under the harness.
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `node swarm_peer.js` (is node installed?): {e}")
            });
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[swarm_peer.js] {line}");
            }
        });
        let mut js = JsSwarm {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            bootstrap: "127.0.0.1:1".parse().expect("addr"),
        };
        let ev = js.wait_for("testnet", 30).await;
        let bootstrap: std::net::SocketAddr = ev["bootstrap"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("JS side printed a bad bootstrap address: {ev}"));
        assert!(
            bootstrap.ip().is_loopback(),
            "testnet must be on loopback: {bootstrap}"
        );
        js.bootstrap = bootstrap;
        js
    }

    async fn command(&mut self, cmd: &str) {
        self.stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .unwrap_or_else(|e| panic!("JS side: cannot send {cmd:?}: {e}"));
        self.stdin.flush().await.expect("flush stdin");
    }

    async fn next_event(&mut self, secs: u64) -> serde_json::Value {
        let line = tokio::time::timeout(Duration::from_secs(secs), self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("JS side (swarm_peer.js) printed nothing for {secs}s"))
            .unwrap_or_else(|e| panic!("reading JS side output: {e}"))
            .unwrap_or_else(|| panic!("JS side (swarm_peer.js) exited"));
        eprintln!("[swarm_peer.js] {line}");
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("JS side printed non-JSON {line:?}: {e}"))
    }

    /// Waits for an event named `name` (others are skipped), at most `secs` seconds overall.
    async fn wait_for(&mut self, name: &str, secs: u64) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                panic!("JS side: no {name:?} event within {secs}s");
            }
            let ev = self.next_event(left.as_secs().max(1)).await;
            if ev["event"] == "fatal" {
                panic!("JS side failed: {ev}");
            }
            if ev["event"] == name {
                return ev;
            }
        }
    }

    async fn stop(mut self) {
        self.command("exit").await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

fn loopback_config(bootstrap: std::net::SocketAddr) -> SwarmConfig {
    SwarmConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        ..SwarmConfig::new(vec![bootstrap])
    }
}

fn random_topic() -> [u8; 32] {
    let mut t = [0u8; 32];
    getrandom::fill(&mut t).expect("random topic");
    t
}

fn string(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    put_string(&mut out, s);
    out
}

/// A swarm peer's protomux frames, in order (a batch is several frames).
struct Frames {
    peer: SwarmPeer,
    queue: VecDeque<Frame>,
}

impl Frames {
    fn new(peer: SwarmPeer) -> Frames {
        Frames {
            peer,
            queue: VecDeque::new(),
        }
    }

    /// Receives frames until `want` matches one (earlier ones are dropped), at most 15 s.
    async fn until(&mut self, what: &str, want: impl Fn(&Frame) -> bool) -> Frame {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            while let Some(f) = self.queue.pop_front() {
                if want(&f) {
                    return f;
                }
            }
            let msg = tokio::time::timeout_at(deadline, self.peer.stream.recv())
                .await
                .unwrap_or_else(|_| panic!("Rust side: no {what} from JS within 15 s"))
                .unwrap_or_else(|e| {
                    panic!("Rust side: swarm stream failed waiting for {what}: {e}")
                })
                .unwrap_or_else(|| panic!("Rust side: connection ended waiting for {what}"));
            let frames = protomux::decode_frame(&msg)
                .unwrap_or_else(|e| panic!("Rust side: JS sent a bad protomux frame: {e}"));
            self.queue.extend(frames);
        }
    }

    /// The next Hypercore message JS sends on the core channel, at most 15 s.
    async fn hypercore_message(&mut self, what: &str) -> wire::Message {
        let f = self
            .until(what, |f| matches!(f, Frame::Message { .. }))
            .await;
        let Frame::Message { kind, payload, .. } = f else {
            unreachable!()
        };
        wire::Message::decode(kind, &payload)
            .unwrap_or_else(|e| panic!("Rust side: JS sent a bad hypercore message: {e}"))
    }

    async fn send_hypercore(&mut self, local_id: u64, msg: &wire::Message) {
        self.peer
            .stream
            .send(&protomux::encode_message(
                local_id,
                msg.kind(),
                &msg.encode(),
            ))
            .await
            .expect("send on the swarm stream");
    }
}

/// The first connection the swarm gives us on which the JS peer's first message (its channel
/// open, sent as soon as it connects) arrives, within `within`. The crate turns every
/// PEER_HANDSHAKE that reaches us into a connection, also a JS peer's retry of one and the copy
/// it sent through a second relay; JS uses one of them and the others never get a message (the
/// crate's UDX stream ends them after its retransmits), so we wait on all of them at once.
async fn first_live_connection(swarm: &Swarm, within: Duration) -> Frames {
    use futures::stream::{FuturesUnordered, StreamExt};
    let deadline = tokio::time::Instant::now() + within;
    let mut waiting = FuturesUnordered::new();
    let mut accepted = 0;
    loop {
        tokio::select! {
            peer = swarm.next_peer() => {
                accepted += 1;
                let mut frames = Frames::new(
                    peer.unwrap_or_else(|e| panic!("Rust side: the swarm failed: {e}")),
                );
                waiting.push(async move {
                    let first = frames.peer.stream.recv().await;
                    (frames, first)
                });
            }
            Some((mut frames, first)) = waiting.next() => match first {
                Ok(Some(msg)) => {
                    let first = protomux::decode_frame(&msg)
                        .unwrap_or_else(|e| panic!("Rust side: JS sent a bad protomux frame: {e}"));
                    frames.queue.extend(first);
                    return frames;
                }
                other => eprintln!("a connection from JS ended before its first message ({other:?})"),
            },
            _ = tokio::time::sleep_until(deadline) => panic!(
                "Rust side: none of the {accepted} connections we accepted carried a message from JS within {within:?}"
            ),
        }
    }
}

/// Opens the test channel from our side, checks JS's open and messages in both directions.
async fn exchange_messages(mut frames: Frames, js: &mut JsSwarm) {
    let local_id = 1;
    frames
        .peer
        .stream
        .send(&protomux::encode_open(
            local_id,
            PROTOCOL,
            None,
            &string("rust-hello"),
        ))
        .await
        .expect("send open");
    let open = frames
        .until(
            "the channel open",
            |f| matches!(f, Frame::Open { protocol, .. } if protocol == PROTOCOL),
        )
        .await;
    let Frame::Open { handshake, .. } = open else {
        unreachable!()
    };
    assert_eq!(
        Reader::new(&handshake)
            .string("handshake")
            .expect("c.string"),
        "js-hello",
        "JS's channel handshake"
    );
    let opened = js.wait_for("open", 15).await;
    assert_eq!(
        opened["handshake"], "rust-hello",
        "what JS read as our handshake"
    );

    // JS -> Rust: JS sends "from-js" once the channel is open.
    let from_js = frames
        .until("the message from JS", |f| {
            matches!(f, Frame::Message { .. })
        })
        .await;
    let Frame::Message { kind, payload, .. } = from_js else {
        unreachable!()
    };
    assert_eq!(kind, 0);
    assert_eq!(
        Reader::new(&payload).string("text").expect("c.string"),
        "from-js"
    );

    // Rust -> JS -> Rust: JS echoes what we send.
    frames
        .peer
        .stream
        .send(&protomux::encode_message(
            local_id,
            0,
            &string("ping from rust"),
        ))
        .await
        .expect("send message");
    let got = js.wait_for("message", 15).await;
    assert_eq!(got["text"], "ping from rust", "what JS read from us");
    let echo = frames
        .until("JS's echo", |f| matches!(f, Frame::Message { .. }))
        .await;
    let Frame::Message { payload, .. } = echo else {
        unreachable!()
    };
    assert_eq!(
        Reader::new(&payload).string("text").expect("c.string"),
        "echo:ping from rust"
    );
}

/// JS announces the topic, we look it up, connect and talk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_finds_js_peer_announcing_a_topic() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let topic = random_topic();
    let mut js = JsSwarm::start("server", &topic).await;
    js.command("join").await;
    let joined = js.wait_for("joined", 30).await;
    let js_key = joined["publicKey"]
        .as_str()
        .expect("JS public key")
        .to_string();

    let swarm = Swarm::bind(loopback_config(js.bootstrap))
        .await
        .unwrap_or_else(|e| panic!("Rust side: cannot start the swarm: {e}"));
    swarm.join(topic, false, true).expect("join as client");
    let peer = swarm
        .next_peer_within(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("Rust side: found no peer on the topic: {e}"));
    assert_eq!(
        hex::encode(peer.remote_public_key),
        js_key,
        "the peer is the JS swarm"
    );
    assert!(peer.is_initiator, "we looked the topic up, so we dialed");
    assert_eq!(peer.topics, vec![topic]);
    let conn = js.wait_for("connection", 15).await;
    let our_key = peer
        .stream
        .local_public_key()
        .expect("our key on the connection");
    assert_eq!(
        conn["remotePublicKey"],
        hex::encode(our_key),
        "the key JS authenticated"
    );

    exchange_messages(Frames::new(peer), &mut js).await;
    js.stop().await;
}

/// A JS swarm (not joined yet) that will look a topic up, and our swarm announcing that topic.
async fn js_client_and_rust_announcing() -> (JsSwarm, Swarm) {
    let topic = random_topic();
    let js = JsSwarm::start("client", &topic).await;
    let swarm = Swarm::bind(loopback_config(js.bootstrap))
        .await
        .unwrap_or_else(|e| panic!("Rust side: cannot start the swarm: {e}"));
    swarm.join(topic, true, false).expect("join as server");
    swarm
        .flush(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("Rust side: announcing the topic failed: {e}"));
    (js, swarm)
}

/// We announce the topic, JS looks it up, connects to us and talks. Passed 129 of 131 runs
/// after the fix that detaches accepted connections from the DHT node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "flaky (~1.5%): the hyperswarm crate answers each copy of a PEER_HANDSHAKE with its own stream, and JS drops the connection on the second header (src/net/discovery/swarm.rs); run with --ignored"]
async fn js_finds_rust_peer_announcing_a_topic() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (mut js, swarm) = js_client_and_rust_announcing().await;

    js.command("join").await;
    let frames = first_live_connection(&swarm, Duration::from_secs(40)).await;
    assert!(!frames.peer.is_initiator, "JS dialed us");
    let conn = js.wait_for("connection", 15).await;
    assert_eq!(
        conn["remotePublicKey"],
        hex::encode(swarm.public_key()),
        "JS connected to the key we announced"
    );
    assert_eq!(
        frames.peer.stream.local_public_key(),
        Some(swarm.public_key())
    );
    exchange_messages(frames, &mut js).await;
    js.stop().await;
}

/// Starts a JS Hypercore 11 (compat) core that joins its own discovery key on a testnet (JS
/// Vitra's way), then finds it from our swarm: (JS side, core key, our swarm, the peer).
async fn find_js_core_on_the_swarm() -> (JsSwarm, [u8; 32], Swarm, vitra::net::discovery::SwarmPeer)
{
    let mut js = JsSwarm::start("core", &[0; 32]).await;
    js.command("join").await;
    let core = js.wait_for("core", 30).await;
    let key: [u8; 32] = core["key"]
        .as_str()
        .and_then(|k| hex::decode(k).ok())
        .and_then(|k| k.try_into().ok())
        .unwrap_or_else(|| panic!("JS side printed a bad core key: {core}"));
    let dk = wire::discovery_key(&key);
    assert_eq!(
        core["discoveryKey"],
        hex::encode(dk),
        "discovery key agrees with JS"
    );
    js.wait_for("joined", 30).await;

    let swarm = Swarm::bind(loopback_config(js.bootstrap))
        .await
        .unwrap_or_else(|e| panic!("Rust side: cannot start the swarm: {e}"));
    swarm.join(dk, false, true).expect("join the discovery key");
    let peer = swarm
        .next_peer_within(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("Rust side: found no peer for the core: {e}"));
    (js, key, swarm, peer)
}

/// What JS Vitra does: a JS Hypercore 11 (compat) core joins its discovery key and
/// replicates on every swarm connection. We look the discovery key up, open the core's
/// `hypercore/alpha` channel on the swarm connection (capabilities bound to the handshake hash
/// the crate reports, checked both ways) and fetch a block with its proof.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_fetches_a_block_from_a_js_hypercore_found_by_its_discovery_key() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (mut js, key, _swarm, peer) = find_js_core_on_the_swarm().await;
    let dk = wire::discovery_key(&key);
    let info = peer
        .stream_info()
        .expect("handshake hash and keys of an established connection");
    assert_eq!(info.remote_public_key, peer.remote_public_key);
    let (hash, is_initiator) = (info.handshake_hash, info.is_initiator);
    let mut frames = Frames::new(peer);
    let ours = wire::Handshake {
        seeks: true,
        capability: wire::capability(is_initiator, &key, &hash),
    };
    frames
        .peer
        .stream
        .send(&protomux::encode_open(
            1,
            "hypercore/alpha",
            Some(&dk),
            &ours.encode(),
        ))
        .await
        .expect("send open");
    let open = frames
        .until(
            "the hypercore channel open",
            |f| matches!(f, Frame::Open { protocol, .. } if protocol == "hypercore/alpha"),
        )
        .await;
    let Frame::Open { id, handshake, .. } = open else {
        unreachable!()
    };
    assert_eq!(id, Some(dk.to_vec()), "JS opened the core's channel");
    let theirs = wire::Handshake::decode(&handshake).expect("JS's hypercore handshake");
    assert_eq!(
        theirs.capability,
        wire::capability(!is_initiator, &key, &hash),
        "JS's capability proves the handshake hash we read from the crate is the one JS has"
    );

    // JS accepted our capability: it sends its sync, then answers a request with a proof.
    let sync = loop {
        match frames.hypercore_message("JS's sync").await {
            wire::Message::Sync(s) => break s,
            _ => continue,
        }
    };
    assert_eq!(sync.length, 3, "JS announces its length");
    frames
        .send_hypercore(
            1,
            &wire::Message::Sync(wire::Sync {
                remote_length: 3,
                uploading: true,
                downloading: true,
                ..wire::Sync::default()
            }),
        )
        .await;
    frames
        .send_hypercore(
            1,
            &wire::Message::Request(wire::Request {
                id: 1,
                proof: ProofRequest {
                    block: Some(RequestBlock { index: 1, nodes: 0 }),
                    upgrade: Some(RequestUpgrade {
                        start: 0,
                        length: 3,
                    }),
                    ..ProofRequest::default()
                },
            }),
        )
        .await;
    let data = loop {
        match frames.hypercore_message("JS's data").await {
            wire::Message::Data(d) => break d,
            wire::Message::NoData(n) => panic!("JS answered noData: {n:?}"),
            _ => continue,
        }
    };
    assert_eq!(data.request, 1);
    let data = data.proof;
    let block = data.block.expect("block in JS's reply");
    assert_eq!((block.index, block.value), (1, b"core-block-1".to_vec()));
    let upgrade = data.upgrade.expect("upgrade in JS's reply");
    assert_eq!((upgrade.start, upgrade.length), (0, 3));
    assert_eq!(upgrade.signature.len(), 64);
    let upload = js.wait_for("upload", 15).await;
    assert_eq!(upload["index"], 1, "JS served the block we asked for");
    js.stop().await;
}

/// A JS peer that vanishes (process killed, no goodbye) ends our stream with a typed error
/// within the idle timeout; the swarm itself keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_js_peer_ends_the_stream_with_a_typed_error() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let topic = random_topic();
    let mut js = JsSwarm::start("server", &topic).await;
    js.command("join").await;
    js.wait_for("joined", 30).await;
    let swarm = Swarm::bind(SwarmConfig {
        idle_timeout: Duration::from_secs(3),
        ..loopback_config(js.bootstrap)
    })
    .await
    .expect("start the swarm");
    swarm.join(topic, false, true).expect("join");
    let mut peer = swarm
        .next_peer_within(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("Rust side: found no peer: {e}"));
    js.wait_for("connection", 15).await;
    js.child.kill().await.expect("kill node");

    let end = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match peer.stream.recv().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("Rust side: the stream did not end within 15 s of the peer vanishing");
    assert!(
        matches!(
            end,
            Err(NetError::Timeout { .. }) | Err(NetError::Io { .. })
        ),
        "expected a timeout or I/O error, got {end:?}"
    );
    // Later calls keep failing (typed), and sending is refused or queued without panicking.
    assert!(matches!(
        peer.stream.recv().await,
        Err(NetError::ConnectionClosed { .. })
    ));
    let _ = peer.stream.send(b"anyone?").await;
    // The swarm still answers.
    swarm.local_addr().expect("swarm still alive");
}

/// A bootstrap node that is not running: starting the swarm fails promptly with a typed
/// error naming the node, not a hang or a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_node_that_is_down_gives_a_typed_error() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dead = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free loopback UDP port");
    let started = tokio::time::timeout(Duration::from_secs(30), Swarm::bind(loopback_config(dead)))
        .await
        .expect("Swarm::bind did not give up within 30 s");
    match started {
        Err(DiscoveryError::BootstrapUnreachable { nodes }) => assert_eq!(nodes, vec![dead]),
        other => panic!("expected BootstrapUnreachable, got {other:?}"),
    }
}

/// A testnet without any JS peer on the topic: flush finishes, no peer appears, and waiting
/// for one ends in a typed timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_on_the_topic_means_a_typed_timeout() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let js = JsSwarm::start("testnet-only", &random_topic()).await;
    let swarm = Swarm::bind(loopback_config(js.bootstrap))
        .await
        .unwrap_or_else(|e| panic!("Rust side: cannot start the swarm: {e}"));
    let topic = random_topic();
    swarm.join(topic, true, true).expect("join");
    swarm
        .flush(Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("Rust side: flush failed on a live testnet: {e}"));
    match swarm.next_peer_within(Duration::from_secs(2)).await {
        Err(DiscoveryError::Timeout { .. }) => {}
        other => panic!("expected no peer (timeout), got {other:?}"),
    }
    swarm.leave(&topic).expect("leave");
    js.stop().await;
}

#[tokio::test]
async fn an_empty_bootstrap_list_is_refused_rather_than_using_the_public_dht() {
    let _serial = ONE_AT_A_TIME.lock().await;
    match Swarm::bind(SwarmConfig::new(Vec::new())).await {
        Err(DiscoveryError::NoBootstrapNodes) => {}
        other => panic!("expected NoBootstrapNodes, got {other:?}"),
    }
}

/// A DHT request the `hyperswarm` crate cannot handle (PEER_HOLEPUNCH, which JS peers send to
/// holepunch; the crate has `todo!()` there) stops the swarm with a typed error instead of
/// taking the process down, and every later call on the swarm says so. (One UDP packet from
/// anyone does this: the caller must be ready to start a new swarm.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dht_request_the_crate_cannot_handle_stops_the_swarm_with_a_typed_error() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut js = JsSwarm::start("testnet-only", &random_topic()).await;
    let swarm = Swarm::bind(loopback_config(js.bootstrap))
        .await
        .unwrap_or_else(|e| panic!("Rust side: cannot start the swarm: {e}"));
    let ours = swarm.local_addr().expect("our DHT address");
    js.command(&format!("poke {ours} 1")).await;
    let stopped = swarm.next_peer_within(Duration::from_secs(15)).await;
    match &stopped {
        Err(DiscoveryError::SwarmPanicked { during, .. }) => {
            assert_eq!(*during, "running the swarm")
        }
        other => panic!("expected SwarmPanicked, got {other:?}"),
    }
    match swarm.join(random_topic(), true, true) {
        Err(DiscoveryError::SwarmPanicked { .. }) | Err(DiscoveryError::SwarmStopped { .. }) => {}
        other => panic!("join on a stopped swarm: expected a typed error, got {other:?}"),
    }
    js.stop().await;
}

/// Lookups run when joining (and every ~10 min after, as JS): a peer that announces after our
/// lookup is found by joining the topic again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_again_finds_a_peer_that_announced_after_our_lookup() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let topic = random_topic();
    let mut js = JsSwarm::start("server", &topic).await;
    let swarm = Swarm::bind(loopback_config(js.bootstrap))
        .await
        .unwrap_or_else(|e| panic!("Rust side: cannot start the swarm: {e}"));
    swarm.join(topic, false, true).expect("join");
    swarm.flush(Duration::from_secs(20)).await.expect("flush");
    match swarm.next_peer_within(Duration::from_secs(1)).await {
        Err(DiscoveryError::Timeout { .. }) => {}
        other => panic!("nobody announced yet, got {other:?}"),
    }
    js.command("join").await;
    let joined = js.wait_for("joined", 30).await;
    swarm.join(topic, false, true).expect("join again");
    let peer = swarm
        .next_peer_within(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("Rust side: the new lookup found no peer: {e}"));
    assert_eq!(
        Some(hex::encode(peer.remote_public_key).as_str()),
        joined["publicKey"].as_str()
    );
    js.stop().await;
}

/// Two vitra swarms on the same (JS) testnet: one announces, the other looks up; they connect
/// and carry messages both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rust_swarms_find_each_other() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let js = JsSwarm::start("testnet-only", &random_topic()).await;
    let topic = random_topic();
    let server = Swarm::bind(loopback_config(js.bootstrap))
        .await
        .expect("server swarm");
    server.join(topic, true, false).expect("announce");
    server
        .flush(Duration::from_secs(20))
        .await
        .expect("announce flushed");
    let client = Swarm::bind(loopback_config(js.bootstrap))
        .await
        .expect("client swarm");
    client.join(topic, false, true).expect("look up");
    let mut dialed = client
        .next_peer_within(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("client found no peer: {e}"));
    let mut accepted = server
        .next_peer_within(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("server accepted no peer: {e}"));
    assert_eq!(dialed.remote_public_key, server.public_key());
    assert!(dialed.is_initiator && !accepted.is_initiator);
    assert_eq!(
        dialed.stream_info().map(|i| i.handshake_hash),
        accepted.stream_info().map(|i| i.handshake_hash),
        "both sides agree on the handshake hash"
    );
    dialed.stream.send(b"to server").await.expect("send");
    accepted.stream.send(b"to client").await.expect("send");
    assert_eq!(recv_one(&mut accepted.stream).await, b"to server");
    assert_eq!(recv_one(&mut dialed.stream).await, b"to client");
    js.stop().await;
}

async fn recv_one(stream: &mut vitra::net::discovery::SwarmStream) -> Vec<u8> {
    tokio::time::timeout(Duration::from_secs(10), stream.recv())
        .await
        .expect("nothing within 10 s")
        .expect("recv")
        .expect("stream ended")
}

/// What two Vitra peers do: both join the topic as server and client (JS Vitra's default), so
/// each may dial the other; we end up with a working connection to the JS peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_announcing_and_looking_up_end_with_a_working_connection() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let topic = random_topic();
    let mut js = JsSwarm::start("both", &topic).await;
    js.command("join").await;
    let joined = js.wait_for("joined", 30).await;
    let swarm = Swarm::bind(loopback_config(js.bootstrap))
        .await
        .unwrap_or_else(|e| panic!("Rust side: cannot start the swarm: {e}"));
    swarm.join(topic, true, true).expect("join both ways");
    let peer = swarm
        .next_peer_within(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("Rust side: found no peer: {e}"));
    assert_eq!(
        Some(hex::encode(peer.remote_public_key).as_str()),
        joined["publicKey"].as_str()
    );
    exchange_messages(Frames::new(peer), &mut js).await;
    js.stop().await;
}

/// A local UDP address that is taken is a typed error naming it, before any DHT traffic.
#[tokio::test]
async fn a_taken_local_port_is_a_typed_bind_error() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("a loopback UDP socket");
    let addr = taken.local_addr().expect("its address");
    let config = SwarmConfig {
        bind: addr,
        ..SwarmConfig::new(vec![addr])
    };
    match Swarm::bind(config).await {
        Err(DiscoveryError::Bind { addr: a, .. }) => assert_eq!(a, addr),
        other => panic!("expected Bind, got {other:?}"),
    }
}

/// Closing our end of a swarm connection closes it for the JS peer too (no waiting for a
/// timeout), while we keep reading what was already received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_our_stream_closes_the_js_connection() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let topic = random_topic();
    let mut js = JsSwarm::start("server", &topic).await;
    js.command("join").await;
    js.wait_for("joined", 30).await;
    let swarm = Swarm::bind(loopback_config(js.bootstrap))
        .await
        .unwrap_or_else(|e| panic!("Rust side: cannot start the swarm: {e}"));
    swarm.join(topic, false, true).expect("join");
    let mut peer = swarm
        .next_peer_within(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("Rust side: found no peer: {e}"));
    let conn = js.wait_for("connection", 15).await;
    peer.stream.close();
    let closed = js.wait_for("close", 10).await;
    assert_eq!(closed["remotePublicKey"], conn["remotePublicKey"]);
    assert!(
        matches!(
            peer.stream.send(b"after close").await,
            Err(NetError::ConnectionClosed { .. })
        ),
        "sending after close is refused"
    );
    js.stop().await;
}

/// The whole path JS Vitra peers take: a JS Hypercore 11 (compat) core joins its discovery
/// key; we find it on the swarm, run a replication [`vitra::net::Connection`] over the swarm
/// connection, and our replication engine downloads and verifies every block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replication_engine_syncs_a_js_core_found_on_the_swarm() {
    use vitra::log::{Log, MemoryStorage, Storage};
    use vitra::net::replicate::{Download, Logs, Replicator, ReplicatorConfig};
    let _serial = ONE_AT_A_TIME.lock().await;
    let (js, key, _swarm, peer) = find_js_core_on_the_swarm().await;

    let mut rep = Replicator::new(ReplicatorConfig::default()).expect("replicator");
    let conn = peer
        .into_connection(ReplicatorConfig::default().connection)
        .expect("the swarm reported the handshake")
        .expect("a connection over the swarm stream");
    let mut logs = Logs::new();
    logs.insert(
        Log::create_replica(Storage::Memory(MemoryStorage::default()), key).expect("replica"),
    );
    rep.add_core_with(key, Download::Full);
    rep.add_connection(conn);
    rep.sync(&mut logs, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("Rust side: replication over the swarm failed: {e}"));
    let log = logs.get(&key).expect("the replica");
    assert_eq!(log.len(), 3, "every block of the JS core");
    for i in 0..3 {
        assert_eq!(
            log.get(i).expect("read"),
            Some(format!("core-block-{i}").into_bytes()),
            "block {i} verified and stored"
        );
    }
    js.stop().await;
}

/// Opens the test channel on a connection from JS.
async fn open_test_channel(frames: &mut Frames) {
    frames
        .peer
        .stream
        .send(&protomux::encode_open(
            1,
            PROTOCOL,
            None,
            &string("rust-hello"),
        ))
        .await
        .expect("send open");
}

/// Has JS echo `text` on the test channel (opened with [`open_test_channel`]).
async fn ping_through(frames: &mut Frames, text: &str) {
    frames
        .peer
        .stream
        .send(&protomux::encode_message(1, 0, &string(text)))
        .await
        .expect("send message");
    let want = format!("echo:{text}");
    frames
        .until("JS's echo", |f| {
            matches!(f, Frame::Message { payload, .. }
                if Reader::new(payload).string("text").ok().as_deref() == Some(want.as_str()))
        })
        .await;
}

/// We announce; a JS peer dials us and stays connected; then a second JS peer (a swarm of its
/// own, on the same testnet) dials us too, and both connections carry messages. An accepted
/// connection used to eat the DHT requests that bring the next peer (the `hyperswarm` crate
/// polls its DHT node from the connection): the second peer took up to 40 s to get in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "flaky (~1.5%): the hyperswarm crate answers each copy of a PEER_HANDSHAKE with its own stream, and JS drops the connection on the second header (src/net/discovery/swarm.rs); run with --ignored"]
async fn a_second_js_peer_gets_in_while_the_first_stays_connected() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (mut js, swarm) = js_client_and_rust_announcing().await;
    js.command("join").await;
    let mut first = first_live_connection(&swarm, Duration::from_secs(40)).await;
    open_test_channel(&mut first).await;
    ping_through(&mut first, "to the first").await;

    let asked = std::time::Instant::now();
    js.command("join-another").await;
    let mut second = first_live_connection(&swarm, Duration::from_secs(30)).await;
    eprintln!("the second JS peer got in after {:?}", asked.elapsed());
    assert_ne!(
        second.peer.remote_public_key, first.peer.remote_public_key,
        "the second connection comes from the second JS swarm"
    );
    open_test_channel(&mut second).await;
    ping_through(&mut second, "to the second").await;
    ping_through(&mut first, "to the first again").await;
    js.stop().await;
}
