//! The `vitra` binary over loopback: `vitra serve --listen` runs an executor that replicates;
//! `vitra load --peer` makes a replica in another directory that verifies; calls made on the
//! server later reach the replica with `vitra sync` (latest) and `vitra sync --full`.

mod cli_support;

use cli_support::{init, json, ok, run};
use std::io::{BufRead, BufReader};
use std::path::Path;
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

/// The `index KEY LENGTH` line of load/sync output.
fn index_length(stdout: &str, key: &str) -> u64 {
    let prefix = format!("index {key} ");
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no index length line in {stdout:?}"))
}

fn server_index_length(dir: &Path) -> u64 {
    json(&ok(dir, &["info", "--json"], 0))["index"]["length"]
        .as_u64()
        .expect("index length")
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
        server_index_length(&server_dir),
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
    assert_eq!(
        index_length(&synced, &key),
        server_index_length(&server_dir)
    );
    assert_eq!(ok(&replica, &["get", "/counter"], 0).trim(), "5");

    // And with the full history the replica still verifies the new operations.
    ok(
        &server_dir,
        &["call", "increment", "--params", r#"{"by": 4}"#, "--wait"],
        0,
    );
    let synced = ok(&replica, &["sync", "--full"], 0);
    assert_eq!(
        index_length(&synced, &key),
        server_index_length(&server_dir)
    );
    assert_eq!(ok(&replica, &["get", "/counter"], 0).trim(), "9");
    let verified = json(&ok(&replica, &["verify", "--json"], 0));
    assert_eq!(verified["verified"], true);
    assert_eq!(
        verified["length"].as_u64(),
        Some(server_index_length(&server_dir))
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
