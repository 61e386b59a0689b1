//! A JS peer serves a Vitra database that JS wrote, and the `vitra` binary loads it over the
//! network and verifies it. The databases are JS Vitra 0.1.3's own data directories
//! (`fixtures/js-vitra/*`, written by its pre-release Hypercore 10 and signed with the
//! pre-release head signatures); `compat-tests/serve_vitra_database.js` opens every core of one
//! with JS Hypercore 10.38.2 and replicates them all on one secret-stream connection over
//! loopback TCP, as JS Vitra does (or JS Hypercore 11.39.5 holding the same blocks under the
//! same key pairs). `vitra load --key <index key> --peer 127.0.0.1:PORT` must
//! download the index and every oplog from it alone; the replica must then read and verify as
//! JS Vitra reported (manifest.json), and the `violation` database, whose executor broke its
//! contract, must load and then fail `vitra verify` with exit 3 and the contract fraud proof.
//! A JS peer that holds a second history signed with the index's key (a split log) is not
//! followed by `vitra sync`: its signed head is kept as a block-rewrite fraud proof (exit 3,
//! `fraud/`, `vitra fraud list`) and the replica still verifies.

mod cli_support;

use cli_support::{assert_reads_as_manifest, fixture, json, ok, run};
use serde_json::Value as Json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;
use vitra::log::LogStore;

/// A listening JS peer (`node compat-tests/<script> args…`), killed when dropped.
struct JsServer {
    child: Child,
    lines: Receiver<String>,
    /// 127.0.0.1:PORT it listens on.
    addr: String,
    /// The `ready` event: the cores it serves (key, length, fork).
    ready: Json,
}

impl JsServer {
    /// `serve_vitra_database.js <dir>`: serves the JS Vitra database in `dir` with JS
    /// Hypercore 10.38 reading its files as they are or, with `hypercore_11`, with JS
    /// Hypercore 11 holding the same blocks under the same key pairs.
    fn start(dir: &Path, hypercore_11: bool) -> JsServer {
        let path = dir.to_str().expect("utf-8 path");
        let mut args = vec![path.to_owned()];
        if hypercore_11 {
            args.push("11".to_owned());
            args.extend(secret_keys(dir).iter().map(hex::encode));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        JsServer::spawn("serve_vitra_database.js", &args)
    }

    /// Runs `script` with `args` until it prints its `ready` event (with the port).
    fn spawn(script: &str, args: &[&str]) -> JsServer {
        let compat = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("compat-tests");
        assert!(
            compat.join("node_modules/hypercore-10-38").is_dir()
                && compat
                    .join("node_modules/@hyperswarm/secret-stream")
                    .is_dir(),
            "compat-tests/node_modules is missing: run `npm ci` in {}",
            compat.display()
        );
        let mut child = Command::new("node")
            .arg(compat.join(script))
            .args(args)
            .current_dir(&compat)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("JS side: cannot start `node` (is Node.js installed?): {e}")
            });
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = JsServer {
            child,
            lines,
            addr: String::new(),
            ready: Json::Null,
        };
        server.ready = server.wait_for("ready");
        let port = server.ready["port"].as_u64().expect("port in ready event");
        server.addr = format!("127.0.0.1:{port}");
        server
    }

    /// The next event named `name` the JS side prints (within 60 s).
    fn wait_for(&mut self, name: &str) -> Json {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("JS side sent no {name} event within 60 s (or exited)"));
            let ev = json(&line);
            assert!(
                ev["event"] != "fatal" && ev["event"] != "timeout",
                "JS side failed: {ev}"
            );
            if ev["event"] == name {
                return ev;
            }
        }
    }

    /// The length the JS side serves for `key`.
    fn length_of(&self, key: &str) -> u64 {
        self.ready["cores"]
            .as_array()
            .expect("cores")
            .iter()
            .find(|c| c["key"] == key)
            .and_then(|c| c["length"].as_u64())
            .unwrap_or_else(|| panic!("JS side does not serve core {key}: {}", self.ready))
    }
}

impl Drop for JsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The secret keys of every core of the JS Vitra directory `dir`, derived from its master
/// seed as JS Vitra derives them.
fn secret_keys(dir: &Path) -> Vec<[u8; 64]> {
    let store = LogStore::new(dir);
    store
        .discovery_keys()
        .expect("the directory's cores")
        .iter()
        .map(|dk| {
            store
                .open_by_discovery_key(dk)
                .expect("open a core")
                .key_pair()
                .secret_key
                .expect("the key pair derives from profiles/default")
        })
        .collect()
}

/// The length a `load` output line `<kind> <key> <length>` gives.
fn loaded_length(stdout: &str, kind: &str, key: &str) -> u64 {
    let prefix = format!("{kind} {key} ");
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{prefix}LENGTH` line in {stdout:?}"))
}

/// Serves fixture `name` from JS and loads it with `vitra load` into a new directory:
/// returns (temp dirs, the replica's dir, index key, manifest, the JS server, load's stdout).
fn load_from_js(
    name: &str,
    hypercore_11: bool,
) -> (
    Vec<tempfile::TempDir>,
    PathBuf,
    String,
    Json,
    JsServer,
    String,
) {
    let (served_tmp, served, key, m) = fixture(name);
    let mut js = JsServer::start(&served, hypercore_11);
    assert_eq!(
        js.length_of(&key),
        m["indexLength"].as_u64().expect("indexLength"),
        "JS Hypercore 10.38 reads {name}'s index at the length JS Vitra wrote"
    );
    let replica_tmp = tempfile::tempdir().expect("tempdir");
    let replica = replica_tmp.path().join("replica");
    let r = run(&replica, &["load", "--key", &key, "--peer", &js.addr]);
    assert_eq!(
        r.code, 0,
        "vitra load of {name} from the JS peer: exit {}\nstdout: {}\nstderr: {}",
        r.code, r.stdout, r.stderr
    );
    js.wait_for("connect");
    assert_eq!(
        loaded_length(&r.stdout, "index", &key),
        js.length_of(&key),
        "{name}: the replica has the whole index"
    );
    for oplog in m["oplogPubkeys"].as_array().expect("oplogPubkeys") {
        let oplog = oplog.as_str().expect("oplog key");
        assert_eq!(
            loaded_length(&r.stdout, "oplog", oplog),
            m["oplogLengths"][oplog].as_u64().expect("oplog length"),
            "{name}: the replica has the whole oplog {oplog}"
        );
    }
    let config = json(&std::fs::read_to_string(replica.join("vitra.json")).expect("vitra.json"));
    assert_eq!(config["pubkey"], key.as_str());
    assert_eq!(config["peers"], serde_json::json!([js.addr]));
    // Nothing of the replica came from anywhere but the peer: it has no profile or seed.
    assert!(!replica.join("profiles").exists());
    (vec![served_tmp, replica_tmp], replica, key, m, js, r.stdout)
}

#[test]
fn js_vitra_databases_served_by_js_load_and_verify() {
    for name in ["counter", "values-zoo", "contract-update", "failed-op-last"] {
        let (_tmps, replica, key, m, _js, _) = load_from_js(name, false);
        assert_reads_as_manifest(&replica, &key, &m, name);
        // Every operation arrived with the bytes JS Vitra wrote: the replica's oplogs read
        // as the JS directory's own do.
        let (_orig_tmp, original, _, _) = fixture(name);
        for oplog in m["oplogPubkeys"].as_array().expect("oplogPubkeys") {
            let oplog = oplog.as_str().expect("oplog key");
            let args = ["history", oplog, "--json", "--key", &key];
            assert_eq!(
                json(&ok(&replica, &args, 0)),
                json(&ok(&original, &args, 0)),
                "{name}: oplog {oplog}"
            );
        }
    }
}

/// The same databases served by JS Hypercore 11.39.5: each core written anew under its JS
/// Vitra key pair with JS Vitra's blocks (Hypercore 11 cannot open the pre-release files), so
/// the heads are Hypercore 11's compat signatures over JS Vitra's trees.
#[test]
fn js_vitra_databases_served_by_js_hypercore_11_load_and_verify() {
    for name in ["counter", "contract-update"] {
        let (_tmps, replica, key, m, _js, _) = load_from_js(name, true);
        assert_reads_as_manifest(&replica, &key, &m, name);
    }
}

#[test]
fn a_js_served_database_whose_executor_cheated_loads_then_fails_verify() {
    let (_tmps, replica, key, m, _js, loaded) = load_from_js("violation", false);
    assert!(
        !loaded.contains("vitraContractFraudProof"),
        "load itself finds no log fraud: {loaded}"
    );
    assert!(!replica.join("fraud").exists(), "load saved no evidence");
    // The cheating change is readable like any other entry.
    for (path, expected) in m["expectedState"].as_object().expect("expectedState") {
        let got = json(&ok(&replica, &["get", path, "--json"], 0));
        assert_eq!(&got, expected, "violation {path}");
    }
    let r = run(&replica, &["verify"]);
    assert_eq!(
        r.code, 3,
        "verify of the cheating database: exit {}\nstdout: {}\nstderr: {}",
        r.code, r.stdout, r.stderr
    );
    let proof = json(&r.stdout);
    assert_eq!(proof["vitraContractFraudProof"], 1);
    assert_eq!(proof["details"], m["verify"]["fraudProof"]["details"]);
    assert_eq!(proof["indexStateProof"]["logPubkey"], key.as_str());
    assert!(
        r.stderr.contains("ChangeNotProducedByMonitorError"),
        "{}",
        r.stderr
    );
    // The same proof as verifying JS Vitra's own directory gives, and it is kept.
    let (_orig_tmp, original, _, _) = fixture("violation");
    let local = run(&original, &["verify", "--key", &key]);
    assert_eq!(local.code, 3);
    assert_eq!(proof, json(&local.stdout));
    let listed = json(&ok(&replica, &["fraud", "list", "--json"], 0));
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
}

#[test]
fn a_js_peer_serving_a_split_index_is_refused_and_kept_as_evidence() {
    let (_tmps, replica, key, m, _js, _) = load_from_js("counter", false);
    // The index's secret key, as JS Vitra derives it from the directory's master seed.
    let (_orig_tmp, original, _, _) = fixture("counter");
    let secret = secret_keys(&original)
        .into_iter()
        .find(|s| hex::encode(&s[32..]) == key)
        .expect("the index's key pair");
    let length = m["indexLength"].as_u64().expect("indexLength");
    // JS Hypercore 10.38 writes another history under that key, two blocks longer.
    let liar = JsServer::spawn(
        "replicate_peer.js",
        &[
            "10-38",
            "writer",
            "listen",
            "0",
            &(length + 2).to_string(),
            &hex::encode(secret),
        ],
    );
    assert_eq!(
        liar.ready["key"],
        key.as_str(),
        "the liar writes under the index key"
    );

    let r = run(&replica, &["sync", "--peer", &liar.addr, "--timeout", "10"]);
    assert_eq!(
        r.code, 3,
        "sync from the split peer: exit {}\nstdout: {}\nstderr: {}",
        r.code, r.stdout, r.stderr
    );
    let proof = r
        .stdout
        .lines()
        .map(json)
        .find(|d| d.get("vitraBlockInclusionFraudProof").is_some())
        .unwrap_or_else(|| panic!("no block-rewrite fraud proof in {:?}", r.stdout));
    let given = &proof["givenInclusionProof"];
    let violating = &proof["violatingInclusionProof"];
    assert_eq!(given["logPubkey"], key.as_str());
    assert_eq!(
        given["blockSeq"],
        length - 1,
        "our side: the head we verified"
    );
    assert_eq!(violating["logPubkey"], key.as_str());
    assert_eq!(
        violating["blockSeq"],
        length + 1,
        "their side: the split head"
    );
    assert_ne!(given["rootHashAtBlock"], violating["rootHashAtBlock"]);
    assert!(r.stderr.contains("fraud:"), "{}", r.stderr);
    let listed = json(&ok(&replica, &["fraud", "list", "--json"], 0));
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");

    // The replica followed nothing of it: it reads and verifies as before.
    assert_reads_as_manifest(&replica, &key, &m, "counter after the split peer");
}
