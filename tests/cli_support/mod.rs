//! Shared helpers of the `cli_*` tests: run the built `vitra` binary on temp directories.
#![allow(dead_code)]

use assert_cmd::Command;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn contract(name: &str) -> PathBuf {
    repo().join("examples/contracts").join(name)
}

/// `vitra ARGS --dir DIR`.
pub fn vitra(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::cargo_bin("vitra").expect("the vitra binary is built");
    cmd.args(args).arg("--dir").arg(dir);
    // Above the longest --timeout a test gives (swarm syncs: 150 s).
    cmd.timeout(std::time::Duration::from_secs(180));
    cmd
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(dir: &Path, args: &[&str]) -> Run {
    let out = vitra(dir, args).output().expect("vitra runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs and insists on the exit code; returns stdout.
pub fn ok(dir: &Path, args: &[&str], code: i32) -> String {
    let r = run(dir, args);
    assert_eq!(
        r.code, code,
        "vitra {args:?}: exit {} (expected {code})\nstdout: {}\nstderr: {}",
        r.code, r.stdout, r.stderr
    );
    r.stdout
}

pub fn json(text: &str) -> Json {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

/// Creates a database in a new temp dir; returns (tempdir, data dir, key).
pub fn init(contract_name: &str) -> (tempfile::TempDir, PathBuf, String) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("db");
    let key = ok(
        &dir,
        &["init", contract(contract_name).to_str().expect("utf8")],
        0,
    );
    (tmp, dir, key.trim().to_owned())
}

/// Copies a JS Vitra fixture into a temp dir; returns (tempdir, its dir, index key, manifest).
pub fn fixture(name: &str) -> (tempfile::TempDir, PathBuf, String, Json) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = repo().join("fixtures/js-vitra").join(name);
    let dir = tmp.path().join(name);
    copy_dir(&src, &dir);
    let manifest = json(&std::fs::read_to_string(src.join("manifest.json")).expect("manifest"));
    let key = manifest["indexPubkey"]
        .as_str()
        .expect("indexPubkey")
        .to_owned();
    (tmp, dir, key, manifest)
}

pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for entry in std::fs::read_dir(src).expect("read_dir") {
        let entry = entry.expect("entry");
        let to = dst.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).expect("copy");
        }
    }
}

/// Asserts that the database `key` in `dir` reads as a JS Vitra fixture's manifest `m` says
/// JS Vitra read it (`name` in messages): `get` of every path of `expectedState`, `list` of
/// every prefix of `indexList`, `history`, and `verify` passing.
pub fn assert_reads_as_manifest(dir: &Path, key: &str, m: &Json, name: &str) {
    for (path, expected) in m["expectedState"].as_object().expect("expectedState") {
        let r = run(dir, &["get", path, "--json", "--key", key]);
        if expected.get("$undefined").is_some() {
            assert_eq!((r.code, r.stdout.as_str()), (1, ""), "{name} {path}");
        } else {
            assert_eq!(r.code, 0, "{name} {path}: {}", r.stderr);
            assert_eq!(&json(&r.stdout), expected, "{name} {path}");
        }
    }
    for (prefix, expected) in m["indexList"].as_object().expect("indexList") {
        let listed = json(&ok(dir, &["list", prefix, "--json", "--key", key], 0));
        assert_eq!(&listed, expected, "{name}: list {prefix}");
    }
    assert_eq!(
        json(&ok(dir, &["history", "--json", "--key", key], 0)),
        m["indexHistory"],
        "{name}: history"
    );
    let verified = json(&ok(dir, &["verify", "--json", "--key", key], 0));
    assert_eq!(verified["verified"], true, "{name}");
    assert_eq!(
        verified["length"], m["indexLength"],
        "{name}: verified length"
    );
}

/// Runs the REPL on `dir` with `input` (HOME in `home`, for its history file), insisting on
/// success within `secs`; returns its stdout.
pub fn repl(dir: &Path, home: &Path, input: &str, secs: u64) -> String {
    let out = Command::cargo_bin("vitra")
        .expect("binary")
        .arg("--dir")
        .arg(dir)
        .env("HOME", home)
        .write_stdin(input)
        .timeout(std::time::Duration::from_secs(secs))
        .output()
        .expect("the REPL runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    stdout
}

/// Makes the replica in `replica` a participant of the kv.js database executed in
/// `executor`: creates an oplog there, invites it on the executor, syncs the replica from its
/// stored peers. Returns the oplog's key.
pub fn become_participant(executor: &Path, replica: &Path) -> String {
    let oplog = ok(replica, &["oplog", "create"], 0).trim().to_owned();
    let invite = format!(r#"{{"pubkey": "{oplog}"}}"#);
    ok(
        executor,
        &["call", "invite", "--params", &invite, "--wait"],
        0,
    );
    ok(replica, &["sync", "--timeout", "150"], 0);
    oplog
}

/// The `index KEY LENGTH` line of `vitra load` / `vitra sync` output.
pub fn index_length(stdout: &str, key: &str) -> u64 {
    let prefix = format!("index {key} ");
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no index length line in {stdout:?}"))
}

/// The index length `vitra info --json` reports for `dir`.
pub fn index_len_of(dir: &Path) -> u64 {
    json(&ok(dir, &["info", "--json"], 0))["index"]["length"]
        .as_u64()
        .expect("index length")
}
