//! The host process: `vitra serve` keeps a database open and executing; other commands on the
//! directory go through `server.sock`; two processes never open the storage at once.

mod cli_support;

use cli_support::{fixture, init, json, ok, run};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A background vitra process, killed when dropped.
struct Background {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Background {
    fn start(dir: &Path, args: &[&str]) -> Background {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("vitra"))
            .args(args)
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vitra");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Background { child, lines }
    }

    /// Waits for a stdout line containing `needle`.
    fn wait_for(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("no line containing {needle:?} within 60 s");
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn commands_go_through_the_host_while_it_runs() {
    let (_tmp, dir, key) = init("counter.js");
    let mut host = Background::start(&dir, &["serve"]);
    let line = host.wait_for("serving");
    assert!(line.contains(&key), "{line}");
    assert!(dir.join("server.sock").exists());

    let info = json(&ok(&dir, &["info", "--json"], 0));
    assert_eq!(info["host"]["running"], true);
    assert_eq!(info["host"]["pid"], host.child.id());
    ok(
        &dir,
        &["call", "increment", "--params", r#"{"by": 3}"#, "--wait"],
        0,
    );
    assert_eq!(ok(&dir, &["get", "/counter"], 0), "3\n");
    assert_eq!(ok(&dir, &["call", "get"], 0), "3\n");
    assert_eq!(json(&ok(&dir, &["verify", "--json"], 0))["verified"], true);
    // Errors and exit codes come back as the host produced them.
    let r = run(&dir, &["get", "/none"]);
    assert_eq!((r.code, r.stdout.as_str()), (1, ""));
    let r = run(&dir, &["call", "nosuchmethod"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("error:"), "{}", r.stderr);

    assert_eq!(ok(&dir, &["stop"], 0), "host stopped\n");
    let status = host.child.wait().expect("host exits");
    assert!(status.success());
    assert!(!dir.join("server.sock").exists());
    // Without the host the data is read from storage, unchanged.
    let info = json(&ok(&dir, &["info", "--json"], 0));
    assert_eq!(info["host"]["running"], false);
    assert_eq!(ok(&dir, &["get", "/counter"], 0), "3\n");
}

#[test]
fn a_cheating_host_is_caught_through_the_socket() {
    let (_tmp, dir, _key) = init("kv.js");
    let host = Background::start(
        &dir,
        &["serve", "--test-executor-behavior", "wrong-op-mutations"],
    );
    host.wait_for("serving");
    // With "monitor": true in vitra.json the host verifies each new head by itself.
    let mut config = json(&std::fs::read_to_string(dir.join("vitra.json")).expect("vitra.json"));
    config["monitor"] = serde_json::Value::Bool(true);
    std::fs::write(dir.join("vitra.json"), config.to_string()).expect("write vitra.json");
    ok(&dir, &["call", "claim", "--wait"], 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::read_dir(dir.join("fraud")).map_or(0, |d| d.count()) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the host did not record the fraud"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(json(&ok(&dir, &["info", "--json"], 0))["monitor"], true);
    let r = run(&dir, &["verify"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(json(&r.stdout)["vitraContractFraudProof"], 1);
    assert_eq!(ok(&dir, &["fraud", "list"], 0).lines().count(), 1);
    // `vitra monitor` works through the host too.
    let monitor = Background::start(&dir, &["monitor", "--interval", "100"]);
    let line = monitor.wait_for("violation:");
    assert!(line.contains("ChangeMismatchError"), "{line}");
}

#[test]
fn a_second_process_is_refused_with_a_clear_message() {
    let (_tmp, dir, key, _) = fixture("violation");
    // The monitor holds the storage (no host socket) and reports the violation.
    let monitor = Background::start(&dir, &["monitor", "--interval", "200", "--key", &key]);
    let line = monitor.wait_for("violation:");
    assert!(line.contains("ChangeNotProducedByMonitorError"), "{line}");
    let saved: Vec<_> = std::fs::read_dir(dir.join("fraud"))
        .expect("fraud/")
        .collect();
    assert_eq!(saved.len(), 1);
    let r = run(&dir, &["info", "--key", &key]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("in use by another vitra process")
            && r.stderr.contains(&format!("pid {}", monitor.child.id())),
        "{}",
        r.stderr
    );
    drop(monitor);
    ok(&dir, &["info", "--key", &key], 0);
}

#[test]
fn commands_racing_a_starting_host_neither_fail_nor_share_storage() {
    let (_tmp, dir, _key) = init("counter.js");
    let host = Background::start(&dir, &["serve"]);
    // No waiting for "serving": whichever process gets the directory first, both succeed.
    for _ in 0..3 {
        ok(&dir, &["call", "increment", "--wait"], 0);
    }
    host.wait_for("serving");
    let info = json(&ok(&dir, &["info", "--json"], 0));
    assert_eq!(info["host"]["running"], true);
    assert_eq!(ok(&dir, &["get", "/counter"], 0), "3\n");
}

#[test]
fn calls_from_clients_waiting_together_share_one_append_and_each_gets_its_answer() {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    let (_tmp, dir, _key) = init("counter.js");
    let host = Background::start(&dir, &["serve"]);
    host.wait_for("serving");
    let socket = dir.join("server.sock");
    // A client that connects and says nothing yet holds the host (it waits for the request
    // line); the clients below connect and send their requests meanwhile, so they are all
    // waiting when it is released and are answered in one round. (They speak the host's
    // protocol directly, as `vitra call` does, so they are surely queued by then.)
    let mut held = UnixStream::connect(&socket).expect("connect");
    let request = |args: Vec<String>| {
        let mut stream = UnixStream::connect(&socket).expect("connect");
        writeln!(stream, "{}", serde_json::json!({ "args": args })).expect("send");
        stream
    };
    let call = |params: &str, tx: bool| {
        let mut args = vec!["call", "increment", "--params", params];
        if tx {
            args.push("--tx");
        }
        request(args.into_iter().map(str::to_owned).collect())
    };
    let mut clients: Vec<(i64, UnixStream)> = (1..=12)
        .map(|by| (by, call(&format!(r#"{{"by": {by}}}"#), true)))
        .collect();
    // Fails alone: the contract refuses it.
    clients.push((0, call(r#"{"by": "lots"}"#, false)));
    writeln!(held, "{}", serde_json::json!({"args": ["methods"]})).expect("send");
    let read = |stream: &UnixStream| {
        let mut answer = String::new();
        BufReader::new(stream)
            .read_line(&mut answer)
            .expect("answer");
        json(&answer)
    };
    assert!(read(&held)["stdout"]
        .as_str()
        .is_some_and(|s| s.contains("increment")));
    let mut seqs = std::collections::BTreeSet::new();
    for (by, stream) in &clients {
        let answer = read(stream);
        let (code, stdout, stderr) = (
            answer["code"].as_i64().expect("code"),
            answer["stdout"].as_str().expect("stdout"),
            answer["stderr"].as_str().expect("stderr"),
        );
        if *by == 0 {
            assert_eq!(code, 1, "stdout: {stdout} stderr: {stderr}");
            assert!(stderr.contains("by must be a finite number"), "{stderr}");
            continue;
        }
        assert_eq!(code, 0, "increment {by}: {stdout} {stderr}");
        let tx = json(stdout);
        let op = &tx["operations"][0];
        assert_eq!(op["value"]["by"], *by, "{tx}");
        assert!(seqs.insert(op["proof"]["blockSeq"].as_u64().expect("seq")));
    }
    assert_eq!(seqs.len(), 12, "twelve blocks, one per call");
    // The host executed the group: 1 + 2 + ... + 12; a real client reads it.
    assert_eq!(ok(&dir, &["get", "/counter"], 0), "78\n");
    let info = json(&ok(&dir, &["info", "--json"], 0));
    // All thirteen were queued before the held client was answered: the host takes them in
    // the round it was holding (if it had accepted some of them with the held one) and the
    // next, so in at most two groups.
    let counts = &info["host"];
    assert_eq!(counts["calls"], 13, "{counts}");
    assert!(
        counts["callGroups"].as_u64().is_some_and(|g| g <= 2),
        "clients waiting together were answered one append each: {counts}"
    );
    assert_eq!(json(&ok(&dir, &["verify", "--json"], 0))["verified"], true);
}
