//! The `vitra` binary over loopback: `vitra serve --listen` runs an executor that replicates;
//! `vitra load --peer` makes a replica in another directory that verifies; calls made on the
//! server later reach the replica with `vitra sync` (latest) and `vitra sync --full`; JS
//! Hyperbee (on JS Hypercore 11 and 10.38) reads the index `vitra serve --listen` serves.

mod cli_support;
mod replicate_support;

use cli_support::{index_len_of, index_length, init, json, ok, run};
use serde_json::Value as Json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `vitra serve --listen 127.0.0.1:0` on a directory, killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(dir: &Path, log: &Path) -> Server {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("vitra"))
            .args(["serve", "--listen", "127.0.0.1:0", "--dir"])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("server log"))
            .spawn()
            .expect("spawn vitra serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("listening on ") {
                        let addr = addr.trim().to_owned();
                        return Server { child, addr };
                    }
                }
                Err(_) => break,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "vitra serve printed no \"listening on\" line within 60 s; stderr: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_replica_loads_verifies_and_follows_calls_made_on_the_server() {
    let (tmp, server_dir, key) = init("counter.js");
    ok(
        &server_dir,
        &["call", "increment", "--params", r#"{"by": 2}"#, "--wait"],
        0,
    );
    let server = Server::start(&server_dir, &tmp.path().join("server.log"));

    let replica = tmp.path().join("replica");
    let loaded = ok(
        &replica,
        &["load", "--key", &key, "--peer", &server.addr],
        0,
    );
    assert_eq!(
        index_length(&loaded, &key),
        index_len_of(&server_dir),
        "the replica has the server's whole index"
    );
    let config = json(&std::fs::read_to_string(replica.join("vitra.json")).expect("vitra.json"));
    assert_eq!(config["pubkey"], key.as_str());
    assert_eq!(config["peers"], serde_json::json!([server.addr]));
    assert_eq!(ok(&replica, &["get", "/counter"], 0).trim(), "2");
    let verified = json(&ok(&replica, &["verify", "--json"], 0));
    assert_eq!(verified["verified"], true);

    // A call on the server (through its host socket) reaches the replica with `sync`.
    ok(
        &server_dir,
        &["call", "increment", "--params", r#"{"by": 3}"#, "--wait"],
        0,
    );
    let synced = ok(&replica, &["sync"], 0);
    assert_eq!(index_length(&synced, &key), index_len_of(&server_dir));
    assert_eq!(ok(&replica, &["get", "/counter"], 0).trim(), "5");

    // And with the full history the replica still verifies the new operations.
    ok(
        &server_dir,
        &["call", "increment", "--params", r#"{"by": 4}"#, "--wait"],
        0,
    );
    let synced = ok(&replica, &["sync", "--full"], 0);
    assert_eq!(index_length(&synced, &key), index_len_of(&server_dir));
    assert_eq!(ok(&replica, &["get", "/counter"], 0).trim(), "9");
    let verified = json(&ok(&replica, &["verify", "--json"], 0));
    assert_eq!(verified["verified"], true);
    assert_eq!(verified["length"].as_u64(), Some(index_len_of(&server_dir)));

    // The REPL's .sync and .syncall do the same.
    ok(
        &server_dir,
        &["call", "increment", "--params", r#"{"by": 1}"#, "--wait"],
        0,
    );
    let stdout = cli_support::repl(
        &replica,
        tmp.path(),
        ".sync\n.get /counter\n.syncall\n.verify\n.exit\n",
        60,
    );
    assert!(stdout.contains(r#""value":10"#), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "verified {} index blocks",
            index_len_of(&server_dir)
        )),
        "{stdout}"
    );
    drop(server);
}

#[test]
fn sync_without_a_reachable_peer_fails_with_one_line() {
    let (tmp, dir, key) = init("counter.js");
    let r = run(&dir, &["sync"]);
    assert_eq!(r.code, 1, "stderr: {}", r.stderr);
    assert!(r.stderr.contains("no peer to sync from"), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);

    // A port nobody listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let peer = format!("127.0.0.1:{port}");
    let r = run(&dir, &["sync", "--peer", &peer]);
    assert_eq!(r.code, 1, "stderr: {}", r.stderr);
    assert!(r.stderr.contains("no peer reachable"), "{}", r.stderr);

    // load refuses a directory that already holds a database, and needs --key.
    let r = run(&dir, &["load", "--key", &key, "--peer", &peer]);
    assert_eq!(r.code, 1, "stderr: {}", r.stderr);
    assert!(r.stderr.contains("already holds database"), "{}", r.stderr);
    let r = run(&tmp.path().join("other"), &["load", "--peer", &peer]);
    assert_eq!(r.code, 1, "stderr: {}", r.stderr);
    assert!(r.stderr.contains("--key"), "{}", r.stderr);
}

/// A `vitra serve` without --listen on a replica directory (dialing the peer `load` stored).
struct Host {
    child: Child,
}

impl Host {
    fn start(dir: &Path, log: &Path) -> Host {
        let child = Command::new(assert_cmd::cargo::cargo_bin("vitra"))
            .args(["serve", "--dir"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("host log"))
            .spawn()
            .expect("spawn vitra serve");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !dir.join("server.sock").exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the replica's host did not start: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Host { child }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `vitra ARGS --dir DIR` until `accept(stdout)` holds (exit 0), for up to 30 s.
fn eventually(dir: &Path, args: &[&str], what: &str, accept: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = run(dir, args);
        if r.code == 0 && accept(&r.stdout) {
            return r.stdout;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: still not seen after 30 s; last `vitra {args:?}`: exit {}, stdout {:?}, stderr {:?}",
            r.code,
            r.stdout,
            r.stderr
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_served_replica_follows_live_and_its_oplog_reaches_the_executor() {
    let (tmp, server_dir, key) = init("kv.js");
    ok(&server_dir, &["call", "claim", "--wait"], 0);
    ok(
        &server_dir,
        &[
            "call",
            "put",
            "--params",
            r#"{"key": "a", "value": 1}"#,
            "--wait",
        ],
        0,
    );
    let server = Server::start(&server_dir, &tmp.path().join("server.log"));
    let replica = tmp.path().join("replica");
    ok(
        &replica,
        &["load", "--key", &key, "--peer", &server.addr],
        0,
    );
    let _host = Host::start(&replica, &tmp.path().join("replica.log"));

    // Appends by the executor reach the replica's host without `vitra sync`.
    ok(
        &server_dir,
        &[
            "call",
            "put",
            "--params",
            r#"{"key": "b", "value": 2}"#,
            "--wait",
        ],
        0,
    );
    eventually(
        &replica,
        &["get", "/values/b"],
        "the executor's new put on the replica",
        |o| o.trim() == "2",
    );

    // The replica becomes a participant: its oplog is followed by the executor, whose result
    // comes back to the replica.
    let oplog = ok(&replica, &["oplog", "create"], 0).trim().to_owned();
    let invite = format!(r#"{{"pubkey": "{oplog}"}}"#);
    ok(
        &server_dir,
        &["call", "invite", "--params", &invite, "--wait"],
        0,
    );
    eventually(
        &replica,
        &["info", "--json"],
        "the invitation on the replica",
        |o| {
            json(o)["participants"]
                .as_array()
                .is_some_and(|p| p.iter().any(|k| k == oplog.as_str()))
        },
    );
    ok(
        &replica,
        &["call", "put", "--params", r#"{"key": "c", "value": 3}"#],
        0,
    );
    eventually(
        &server_dir,
        &["get", "/values/c"],
        "the replica's put on the executor",
        |o| o.trim() == "3",
    );
    eventually(
        &replica,
        &["get", "/values/c"],
        "the executed put back on the replica",
        |o| o.trim() == "3",
    );
    drop(server);
}

#[test]
fn a_peer_whose_logs_diverge_is_refused_and_the_replica_keeps_its_history() {
    // Two copies of one database (same keys) each execute different calls: at the same log
    // length, two different signed trees. A replica of one, synced from the other, refuses
    // the other's blocks, says so, keeps both signed heads as fraud proofs (exit 3), and still
    // verifies the history it had.
    let (tmp, a, key) = init("counter.js");
    ok(
        &a,
        &["call", "increment", "--params", r#"{"by": 1}"#, "--wait"],
        0,
    );
    let b = tmp.path().join("copy");
    cli_support::copy_dir(&a, &b);
    ok(
        &a,
        &["call", "increment", "--params", r#"{"by": 2}"#, "--wait"],
        0,
    );
    ok(
        &b,
        &["call", "increment", "--params", r#"{"by": 3}"#, "--wait"],
        0,
    );
    // The copy runs ahead, so the replica asks it for newer heads.
    ok(
        &b,
        &["call", "increment", "--params", r#"{"by": 4}"#, "--wait"],
        0,
    );
    let server_a = Server::start(&a, &tmp.path().join("a.log"));
    let server_b = Server::start(&b, &tmp.path().join("b.log"));
    let replica = tmp.path().join("replica");
    let loaded = ok(
        &replica,
        &["load", "--key", &key, "--peer", &server_a.addr],
        0,
    );
    let length = index_length(&loaded, &key);
    let r = run(&replica, &["sync", "--full", "--peer", &server_b.addr]);
    assert_eq!(r.code, 3, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains(&format!("warning: peer {} on log {key}", server_b.addr)),
        "{}",
        r.stderr
    );
    // The copy's signed heads contradict the ones the replica verified (the index and the
    // oplog both split): each is kept as a block-rewrite fraud proof.
    let proofs: Vec<serde_json::Value> = r.stdout.lines().map(json).collect();
    assert_eq!(proofs.len(), 2, "{}", r.stdout);
    assert!(proofs
        .iter()
        .all(|p| p["vitraBlockInclusionFraudProof"] == 1));
    assert!(proofs
        .iter()
        .any(|p| p["givenInclusionProof"]["logPubkey"] == key.as_str()
            && p["givenInclusionProof"]["blockSeq"] == length - 1));
    let listed = json(&ok(&replica, &["fraud", "list", "--json"], 0));
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    // With the honest peer too, the replica keeps the honest history (the copy's evidence is
    // reported again: exit 3).
    let r = run(
        &replica,
        &[
            "sync",
            "--full",
            "--peer",
            &server_a.addr,
            "--peer",
            &server_b.addr,
        ],
    );
    assert_eq!(r.code, 3, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    let info = json(&ok(&replica, &["info", "--json"], 0));
    assert_eq!(info["index"]["length"].as_u64(), Some(length));
    assert_eq!(ok(&replica, &["get", "/counter"], 0).trim(), "3");
    let verified = json(&ok(&replica, &["verify", "--json"], 0));
    assert_eq!(verified["length"].as_u64(), Some(length));
}

#[test]
fn serve_on_an_unusable_address_fails_with_one_line_and_leaves_no_socket() {
    let (_tmp, dir, _key) = init("counter.js");
    let r = run(&dir, &["serve", "--listen", "127.0.0.1:notaport"]);
    assert_eq!(r.code, 1, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    assert!(r.stderr.contains("127.0.0.1:notaport"), "{}", r.stderr);
    assert!(!dir.join("server.sock").exists());
    // The directory is free again.
    assert_eq!(ok(&dir, &["get", "/counter"], 1), "");
}

/// A served kv database whose owner invited a replica's new oplog: (tmp, server dir, server,
/// replica dir, the replica's oplog key).
fn served_kv_with_a_participant_replica() -> (tempfile::TempDir, PathBuf, Server, PathBuf, String) {
    let (tmp, server_dir, key) = init("kv.js");
    ok(&server_dir, &["call", "claim", "--wait"], 0);
    let server = Server::start(&server_dir, &tmp.path().join("server.log"));
    let replica = tmp.path().join("replica");
    ok(
        &replica,
        &["load", "--key", &key, "--peer", &server.addr],
        0,
    );
    let oplog = cli_support::become_participant(&server_dir, &replica);
    (tmp, server_dir, server, replica, oplog)
}

/// `call claim --wait` on a kv database someone already claimed: exit 4, the reason on stderr.
fn assert_claim_is_rejected_with_exit_4(dir: &Path) {
    let rejected = run(dir, &["call", "claim", "--wait"]);
    assert_eq!(rejected.code, 4, "{}", rejected.stderr);
    assert!(
        rejected.stderr.contains("already has an owner"),
        "{}",
        rejected.stderr
    );
}

#[test]
fn call_wait_on_a_replica_returns_once_the_executor_processed_the_op() {
    let (_tmp, _server_dir, server, replica, _) = served_kv_with_a_participant_replica();
    // No host on the replica: `--wait` itself carries the op to the executor and the ack back.
    ok(
        &replica,
        &[
            "call",
            "put",
            "--params",
            r#"{"key": "w", "value": 7}"#,
            "--wait",
        ],
        0,
    );
    assert_eq!(ok(&replica, &["get", "/values/w"], 0).trim(), "7");
    // A rejected op is reported with exit 4, as on the executor.
    assert_claim_is_rejected_with_exit_4(&replica);
    drop(server);
}

#[test]
fn call_wait_through_a_replicas_host_is_answered_once_the_ack_arrives() {
    let (tmp, server_dir, server, replica, oplog) = served_kv_with_a_participant_replica();
    let _host = Host::start(&replica, &tmp.path().join("replica.log"));
    eventually(
        &replica,
        &["info", "--json"],
        "the invitation on the replica's host",
        |o| {
            json(o)["participants"]
                .as_array()
                .is_some_and(|p| p.iter().any(|k| k == oplog.as_str()))
        },
    );
    // The host holds the request while its replication carries the op to the executor and
    // the ack back; the answer is the processed call, and the value is readable right after.
    let put = run(
        &replica,
        &[
            "call",
            "put",
            "--params",
            r#"{"key": "h", "value": 8}"#,
            "--wait",
            "--tx",
        ],
    );
    assert_eq!(put.code, 0, "{}", put.stderr);
    let tx = json(&put.stdout);
    assert_eq!(tx["vitraTransaction"], 1, "{}", put.stdout);
    assert_eq!(ok(&replica, &["get", "/values/h"], 0).trim(), "8");
    assert_eq!(ok(&server_dir, &["get", "/values/h"], 0).trim(), "8");
    // A rejected op is reported with exit 4 through the host too.
    assert_claim_is_rejected_with_exit_4(&replica);
    drop(server);
}

/// What JS Hyperbee (`version`: "11" or "10-38") lists from the index `vitra serve --listen`
/// serves at `addr`: (seq, path, value as tagged JSON) for each entry.
fn js_hyperbee_entries(
    version: &str,
    addr: &str,
    key: &str,
    length: u64,
) -> Vec<(u64, String, Json)> {
    let port = addr.rsplit(':').next().expect("port").to_owned();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let got = rt.block_on(async {
        let mut js = replicate_support::Js::spawn(
            "replicate_bee_reader.js",
            &[version, &port, key, &length.to_string()],
        );
        js.wait_for("entries", 60).await
    });
    assert_eq!(got["length"], length, "JS Hyperbee {version}: {got}");
    got["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            let bytes = |k: &str| hex::decode(e[k].as_str().expect("hex")).expect("hex");
            let value = vitra::codec::decode(&bytes("value")).expect("JS read a msgpack value");
            (
                e["seq"].as_u64().expect("seq"),
                String::from_utf8(bytes("key")).expect("utf8 key"),
                vitra::codec::to_json(&value),
            )
        })
        .collect()
}

#[test]
fn js_hyperbee_reads_the_index_vitra_serve_listens_with() {
    let (tmp, dir, key) = init("kv.js");
    ok(&dir, &["call", "claim", "--wait"], 0);
    for (k, v) in [
        ("a", "1"),
        ("b", r#""two""#),
        ("c", r#"{"deep": [true, null]}"#),
    ] {
        let params = format!(r#"{{"key": "{k}", "value": {v}}}"#);
        ok(&dir, &["call", "put", "--params", &params, "--wait"], 0);
    }
    // Every index block as the CLI reads it: the newest put of each path is what JS must list.
    let history = json(&ok(&dir, &["history", "index", "--json"], 0));
    let mut latest = std::collections::BTreeMap::new();
    for block in history.as_array().expect("history") {
        let path = block["path"].as_str().expect("path").to_owned();
        match block["type"].as_str() {
            Some("put") => latest.insert(
                path,
                (block["seq"].as_u64().expect("seq"), block["value"].clone()),
            ),
            _ => latest.remove(&path),
        };
    }
    let length = latest
        .values()
        .map(|(seq, _)| seq + 1)
        .max()
        .expect("blocks");
    let server = Server::start(&dir, &tmp.path().join("server.log"));
    for version in ["11", "10-38"] {
        let entries = js_hyperbee_entries(version, &server.addr, &key, length);
        let listed: std::collections::BTreeMap<String, (u64, Json)> = entries
            .into_iter()
            .map(|(seq, path, value)| (path, (seq, value)))
            .collect();
        // Vitra's Hyperbee keys are the path's segments joined by NUL (no leading separator).
        let expected: std::collections::BTreeMap<String, (u64, Json)> = latest
            .iter()
            .map(|(p, v)| (p.trim_start_matches('/').replace('/', "\0"), v.clone()))
            .collect();
        assert_eq!(
            listed, expected,
            "JS Hyperbee {version} listed other entries"
        );
        assert_eq!(listed["values\0c"].1, json(r#"{"deep": [true, null]}"#));
    }
    drop(server);
}
