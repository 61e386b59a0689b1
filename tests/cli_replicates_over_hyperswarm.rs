//! The `vitra` binary finding peers on Hyperswarm, on a local HyperDHT testnet
//! (`node compat-tests/swarm_testnet.js`, 127.0.0.1 only): `vitra serve --swarm --bootstrap`
//! announces a database, `vitra load --swarm` makes a replica that verifies and `vitra sync
//! --swarm` brings later calls; a JS Hyperswarm 4.17 peer (Hypercore 11 + Hyperbee 2.8,
//! `node compat-tests/swarm_index_reader.js`) finds the server and reads its index; the
//! server keeps executing and rebinds its swarm after the `hyperswarm` crate stops on a DHT
//! request it cannot handle; a participant replica calls and syncs over the swarm.
//!
//! Every wait is bounded; a failure says which side failed and with what. Swarm loads and
//! syncs get 150 s: on this testnet a second client's connection took 13 to 32 s to form.

mod cli_support;

use cli_support::{contract, index_len_of, index_length, init, json, ok, run};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One test at a time: each runs a DHT testnet, a host and JS peers, and on a loaded 2-core
/// machine several at once starve each other into UDX timeouts.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Lines a child prints on stdout, read by a thread.
fn lines_of(stdout: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// `node compat-tests/swarm_testnet.js`: the testnet and a JS Hyperswarm reader, killed when
/// dropped.
struct Testnet {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    bootstrap: String,
}

impl Testnet {
    fn start() -> Testnet {
        let dir = cli_support::repo().join("compat-tests");
        assert!(
            dir.join("node_modules/hyperswarm").exists()
                && dir.join("node_modules/@hyperswarm/testnet").exists()
                && dir.join("node_modules/hyperbee-2").exists(),
            "compat-tests/node_modules is missing hyperswarm, @hyperswarm/testnet or hyperbee-2: run `npm ci` in compat-tests"
        );
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("a free loopback UDP port")
            .port();
        let mut child = Command::new("node")
            .arg(dir.join("swarm_testnet.js"))
            .arg(port.to_string())
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Not inherited: node would make the shared stderr non-blocking under the harness.
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `node swarm_testnet.js` (is node installed?): {e}")
            });
        let stdin = child.stdin.take().expect("piped stdin");
        let stderr = lines_of(child.stderr.take().expect("piped stderr"));
        std::thread::spawn(move || {
            for line in stderr {
                eprintln!("[swarm_testnet.js stderr] {line}");
            }
        });
        let lines = lines_of(child.stdout.take().expect("piped stdout"));
        let mut net = Testnet {
            child,
            stdin,
            lines,
            bootstrap: String::new(),
        };
        let up = net.wait_for("testnet", 30);
        net.bootstrap = up["bootstrap"]
            .as_str()
            .unwrap_or_else(|| panic!("JS side printed a bad testnet line: {up}"))
            .to_owned();
        assert!(
            net.bootstrap.starts_with("127.0.0.1:"),
            "the testnet must be on loopback: {}",
            net.bootstrap
        );
        net
    }

    fn command(&mut self, line: &str) {
        writeln!(self.stdin, "{line}")
            .and_then(|_| self.stdin.flush())
            .unwrap_or_else(|e| panic!("JS side: cannot send {line:?}: {e}"));
    }

    /// Waits for an event named `name` (others are printed and skipped), at most `secs`.
    fn wait_for(&mut self, name: &str, secs: u64) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("JS side (swarm_testnet.js): no {name:?} event within {secs} s")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("JS side (swarm_testnet.js) exited while waiting for {name:?}")
                }
            };
            let ev: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("JS side printed non-JSON {line:?}: {e}"));
            if ev["event"] == "fatal" {
                panic!("JS side failed: {ev}");
            }
            if ev["event"] == name {
                return ev;
            }
            eprintln!("[swarm_testnet.js] {line}");
        }
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "exit");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `node compat-tests/swarm_index_reader.js`: a JS peer that looks the index up on the DHT,
/// replicates it until it has `length` blocks and reads `paths` (at most `attempts` fresh
/// swarms of 20 s each). Returns its `read` event; prints the failed attempts.
fn js_reads_index(
    bootstrap: &str,
    key: &str,
    length: u64,
    paths: &str,
    attempts: u32,
) -> serde_json::Value {
    let dir = cli_support::repo().join("compat-tests");
    let mut child = Command::new("node")
        .arg(dir.join("swarm_index_reader.js"))
        .args([
            bootstrap,
            key,
            &length.to_string(),
            paths,
            &attempts.to_string(),
        ])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `node swarm_index_reader.js`: {e}"));
    let lines = lines_of(child.stdout.take().expect("piped stdout"));
    let errors = lines_of(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + Duration::from_secs(u64::from(attempts) * 25 + 10);
    let result = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match lines.recv_timeout(left) {
            Ok(line) => line,
            Err(e) => break Err(format!("no result ({e:?})")),
        };
        let ev: serde_json::Value = match serde_json::from_str(&line) {
            Ok(ev) => ev,
            Err(e) => break Err(format!("non-JSON line {line:?}: {e}")),
        };
        match ev["event"].as_str() {
            Some("read") => break Ok(ev),
            Some("attempt") => eprintln!("[swarm_index_reader.js] {line}"),
            _ => break Err(format!("{ev}")),
        }
    };
    // After its result the reader closes its swarm and cores and removes its storage (about
    // 75 MB a core) on exit; killed at once, it left that behind in the temp directory.
    let exit_by = Instant::now() + Duration::from_secs(15);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < exit_by {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    result.unwrap_or_else(|e| {
        let stderr: Vec<String> = errors.try_iter().collect();
        panic!(
            "JS side (swarm_index_reader.js) failed: {e}; stderr: {}",
            stderr.join("\n")
        )
    })
}

/// `vitra serve --swarm --bootstrap BS` on a directory, killed when dropped.
struct Host {
    child: Child,
    log: std::path::PathBuf,
    /// Its DHT node's UDP address, from the "swarm: announced … (UDP ADDR)" line.
    udp: String,
}

impl Host {
    fn start(dir: &Path, bootstrap: &str, log: &Path) -> Host {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("vitra"))
            .args(["serve", "--swarm", "--bootstrap", bootstrap, "--dir"])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("host log"))
            .spawn()
            .expect("spawn vitra serve");
        let lines = lines_of(child.stdout.take().expect("stdout"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = lines.recv_timeout(left) else {
                break;
            };
            if let Some(rest) = line.strip_prefix("swarm: announced ") {
                let udp = rest
                    .rsplit_once("(UDP ")
                    .map(|(_, a)| a.trim_end_matches(')').to_owned())
                    .unwrap_or_else(|| panic!("no UDP address in {line:?}"));
                return Host {
                    child,
                    log: log.to_path_buf(),
                    udp,
                };
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "vitra serve --swarm printed no \"swarm: announced\" line within 60 s; stderr: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A database served with `vitra serve --swarm` on a new local testnet (dropping it stops
/// both).
struct Served {
    tmp: tempfile::TempDir,
    server_dir: PathBuf,
    key: String,
    net: Testnet,
    /// The testnet's bootstrap address.
    bs: String,
    host: Host,
}

/// Creates a database of `contract`, lets `prepare` make calls on it, then serves it on a new
/// testnet.
fn served_on_a_testnet(contract: &str, prepare: impl FnOnce(&Path)) -> Served {
    let (tmp, server_dir, key) = init(contract);
    prepare(&server_dir);
    let net = Testnet::start();
    let bs = net.bootstrap.clone();
    let host = Host::start(&server_dir, &bs, &tmp.path().join("host.log"));
    Served {
        tmp,
        server_dir,
        key,
        net,
        bs,
        host,
    }
}

/// `vitra load --key KEY --swarm --bootstrap BS --timeout 150` into `replica`.
fn load_over_swarm(replica: &Path, key: &str, bs: &str) -> cli_support::Run {
    let args = ["load", "--key", key, "--swarm", "--bootstrap", bs];
    run(replica, &[&args[..], &["--timeout", "150"]].concat())
}

fn increment(dir: &Path, by: u32) {
    ok(
        dir,
        &[
            "call",
            "increment",
            "--params",
            &format!(r#"{{"by": {by}}}"#),
            "--wait",
        ],
        0,
    );
}

#[test]
fn a_replica_found_on_the_swarm_loads_verifies_and_syncs_later_calls() {
    let _serial = serial();
    let Served {
        tmp,
        server_dir,
        key,
        net: _net,
        bs,
        host,
    } = served_on_a_testnet("counter.js", |dir| increment(dir, 2));

    let replica = tmp.path().join("replica");
    let started = Instant::now();
    let r = load_over_swarm(&replica, &key, &bs);
    eprintln!("load --swarm took {:?}", started.elapsed());
    assert_eq!(
        r.code,
        0,
        "vitra load --swarm failed\nstdout: {}\nstderr: {}\nhost: {}",
        r.stdout,
        r.stderr,
        host.stderr()
    );
    assert_eq!(index_length(&r.stdout, &key), index_len_of(&server_dir));
    let config = json(&std::fs::read_to_string(replica.join("vitra.json")).expect("vitra.json"));
    assert_eq!(config["pubkey"], key.as_str());
    assert_eq!(config["swarm"], true);
    assert_eq!(config["bootstrap"], serde_json::json!([bs]));
    assert!(config.get("peers").is_none(), "{config}");
    assert_eq!(ok(&replica, &["get", "/counter"], 0).trim(), "2");
    assert_eq!(
        json(&ok(&replica, &["verify", "--json"], 0))["verified"],
        true
    );

    // A call on the server (through its host) reaches the replica with `sync --swarm`.
    increment(&server_dir, 3);
    let started = Instant::now();
    let synced = ok(
        &replica,
        &["sync", "--swarm", "--bootstrap", &bs, "--timeout", "150"],
        0,
    );
    eprintln!("sync --swarm took {:?}", started.elapsed());
    assert_eq!(index_length(&synced, &key), index_len_of(&server_dir));
    assert_eq!(ok(&replica, &["get", "/counter"], 0).trim(), "5");

    // Plain `sync` reuses the swarm stored in vitra.json; the full history still verifies.
    increment(&server_dir, 4);
    let started = Instant::now();
    let synced = ok(&replica, &["sync", "--full", "--timeout", "150"], 0);
    eprintln!("sync --full (stored swarm) took {:?}", started.elapsed());
    assert_eq!(index_length(&synced, &key), index_len_of(&server_dir));
    assert_eq!(ok(&replica, &["get", "/counter"], 0).trim(), "9");
    let verified = json(&ok(&replica, &["verify", "--json"], 0));
    assert_eq!(verified["verified"], true);
    assert_eq!(verified["length"].as_u64(), Some(index_len_of(&server_dir)));
    drop(host);
}

/// A JS Hyperswarm peer looks the index's discovery key up, finds `vitra serve --swarm`,
/// dials it and replicates the index; JS Hyperbee reads the contract source and the counter
/// from what it downloaded. A JS peer gives up an attempt after 20 s and tries again on a
/// fresh swarm, up to 8 times; how many attempts it took is printed. Before the host detached
/// the crate's accepted connections from its DHT node, a live accepted connection (even the
/// host's dial of its own announcement) ate the handshakes of the peers dialing next: the
/// second reader waited about 10 s here, and on a clean CI machine all 8 attempts once found
/// the host and never got a connection.
#[test]
fn a_js_hyperswarm_peer_finds_vitra_serve_swarm_and_reads_its_index() {
    let _serial = serial();
    let Served {
        tmp: _tmp,
        server_dir,
        key,
        net: _net,
        bs,
        host,
    } = served_on_a_testnet("counter.js", |dir| increment(dir, 2));
    let source = std::fs::read_to_string(contract("counter.js")).expect("contract");
    for (by, counter) in [(0, 2), (5, 7)] {
        // The second round: a new call, read by a new JS peer.
        if by > 0 {
            increment(&server_dir, by);
        }
        let length = index_len_of(&server_dir);
        let read = js_reads_index(&bs, &key, length, "/counter,/.sys/contract/source", 8);
        assert!(read["length"].as_u64() >= Some(length), "{read}");
        assert_eq!(read["values"]["/counter"], counter, "what JS read: {read}");
        assert_eq!(
            read["values"]["/.sys/contract/source"],
            source.as_str(),
            "the contract source JS read from the index"
        );
        eprintln!(
            "JS read the index (length {length}) after {} attempt(s)",
            read["attempts"]
        );
    }
    eprintln!("host log:\n{}", host.stderr());
}

/// One DHT request the `hyperswarm` crate cannot handle stops the host's swarm: the host
/// says so, binds a new one after the backoff, keeps executing calls, and a new replica
/// still finds it.
#[test]
fn serve_rebinds_its_swarm_after_it_stops_and_keeps_executing() {
    let _serial = serial();
    let Served {
        tmp,
        server_dir,
        key,
        mut net,
        bs,
        host,
    } = served_on_a_testnet("counter.js", |dir| increment(dir, 1));
    net.command(&format!("poke {} 1", host.udp));
    net.wait_for("poked", 30);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !host.stderr().contains("swarm: bound again") {
        assert!(
            Instant::now() < deadline,
            "the host did not rebind its swarm within 60 s; stderr: {}",
            host.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = host.stderr();
    assert!(
        log.contains("host: swarm stopped: ") && log.contains("binding a new one in 1 s"),
        "{log}"
    );
    assert!(!log.contains("internal error"), "{log}");

    // Execution went on, and the new swarm announces the database.
    increment(&server_dir, 2);
    assert_eq!(ok(&server_dir, &["get", "/counter"], 0).trim(), "3");
    let replica = tmp.path().join("replica");
    let r = load_over_swarm(&replica, &key, &bs);
    assert_eq!(
        r.code,
        0,
        "load after the rebind failed\nstdout: {}\nstderr: {}\nhost: {}",
        r.stdout,
        r.stderr,
        host.stderr()
    );
    assert_eq!(ok(&replica, &["get", "/counter"], 0).trim(), "3");
}

#[test]
fn load_with_nobody_on_the_swarm_fails_with_one_line_and_leaves_no_database() {
    let _serial = serial();
    let (tmp, _server_dir, key) = init("counter.js");
    let net = Testnet::start();
    let replica = tmp.path().join("replica");
    let r = run(
        &replica,
        &[
            "load",
            "--key",
            &key,
            "--bootstrap",
            &net.bootstrap,
            "--timeout",
            "3",
        ],
    );
    assert_eq!(r.code, 1, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr
            .starts_with("error: no peer found on the DHT of 127.0.0.1:"),
        "{}",
        r.stderr
    );
    assert!(!replica.join("vitra.json").exists());

    // A bootstrap node that is down: a typed error naming it.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free loopback UDP port")
        .to_string();
    let r = run(&replica, &["load", "--key", &key, "--bootstrap", &dead]);
    assert_eq!(r.code, 1, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(r.stderr.contains("no DHT node answered"), "{}", r.stderr);
    assert!(r.stderr.contains(&dead), "{}", r.stderr);

    // load needs --peer or --swarm.
    let r = run(&replica, &["load", "--key", &key]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

/// A replica that becomes a participant reaches the executor over the swarm too: `call
/// --wait` (with the swarm stored by `load`) serves its operation to the executor's host and
/// returns once it is processed; the REPL's `.sync` brings a later put.
#[test]
fn a_participant_replica_calls_and_syncs_over_the_swarm() {
    let _serial = serial();
    let Served {
        tmp,
        server_dir,
        key,
        net: _net,
        bs,
        host,
    } = served_on_a_testnet("kv.js", |dir| {
        ok(dir, &["call", "claim", "--wait"], 0);
    });
    let replica = tmp.path().join("replica");
    let r = load_over_swarm(&replica, &key, &bs);
    assert_eq!(r.code, 0, "load: {}", r.stderr);
    cli_support::become_participant(&server_dir, &replica);
    let put_w = r#"{"key": "w", "value": 7}"#;
    let r = run(&replica, &["call", "put", "--params", put_w, "--wait"]);
    assert_eq!(
        r.code,
        0,
        "call --wait over the swarm\nstdout: {}\nstderr: {}\nhost: {}",
        r.stdout,
        r.stderr,
        host.stderr()
    );
    assert_eq!(ok(&server_dir, &["get", "/values/w"], 0).trim(), "7");
    assert_eq!(ok(&replica, &["get", "/values/w"], 0).trim(), "7");

    ok(
        &server_dir,
        &[
            "call",
            "put",
            "--params",
            r#"{"key": "x", "value": 8}"#,
            "--wait",
        ],
        0,
    );
    let stdout = cli_support::repl(&replica, tmp.path(), ".sync\n.get /values/x\n.exit\n", 120);
    assert!(stdout.contains(r#""value":8"#), "{stdout}");
}

/// `node compat-tests/serve_vitra_database.js DIR` announcing every core of a JS Vitra data
/// directory on the testnet `bootstrap` (JS Hyperswarm 4.17 + JS Hypercore 10.38), killed when
/// dropped.
struct JsSwarmServer {
    child: Child,
}

impl JsSwarmServer {
    fn start(dir: &Path, bootstrap: &str) -> JsSwarmServer {
        let compat = cli_support::repo().join("compat-tests");
        let mut child = Command::new("node")
            .arg(compat.join("serve_vitra_database.js"))
            .arg(dir)
            .env("SERVE_VITRA_BOOTSTRAP", bootstrap)
            .current_dir(&compat)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `node serve_vitra_database.js`: {e}"));
        let lines = lines_of(child.stdout.take().expect("piped stdout"));
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.contains(r#""event":"ready""#) => JsSwarmServer { child },
            other => {
                let _ = child.kill();
                panic!("serve_vitra_database.js did not get ready: {other:?}")
            }
        }
    }
}

impl Drop for JsSwarmServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The other direction of discovery: JS holds a database JS Vitra 0.1.3 wrote and announces
/// its logs on the testnet; `vitra load --swarm` finds it by the index's discovery key, dials
/// it, downloads the index and the oplog, and the replica reads and verifies as JS Vitra said.
#[test]
fn vitra_load_finds_a_js_hyperswarm_peer_serving_a_js_vitra_database() {
    let _serial = serial();
    let (tmp, dir, key, manifest) = cli_support::fixture("counter");
    let net = Testnet::start();
    let _js = JsSwarmServer::start(&dir, &net.bootstrap);
    let replica = tmp.path().join("replica");
    let r = load_over_swarm(&replica, &key, &net.bootstrap);
    assert_eq!(r.code, 0, "load: {}", r.stderr);
    assert_eq!(
        index_length(&r.stdout, &key),
        manifest["indexLength"].as_u64().expect("indexLength")
    );
    cli_support::assert_reads_as_manifest(&replica, &key, &manifest, "counter over the swarm");
}
