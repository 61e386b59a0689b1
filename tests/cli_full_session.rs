//! A new user's session through the `vitra` binary: init, calls (including a rejected
//! operation), reads, verify, a fraud (exit 3 and its JSON), tx/fraud/oplog listings, and JS
//! Vitra 0.1.3 data directories opened with --key.

mod cli_support;

use cli_support::{assert_reads_as_manifest, fixture, init, json, ok, run};
use serde_json::json;

#[test]
fn counter_session_calls_reads_and_verifies() {
    let (_tmp, dir, key) = init("counter.js");
    assert_eq!(key.len(), 64, "init prints the key: {key}");
    let config = json(&std::fs::read_to_string(dir.join("vitra.json")).expect("vitra.json"));
    assert_eq!(config["vitraConfig"], 1);
    assert_eq!(config["pubkey"], key.as_str());
    assert_eq!(config["monitor"], false);
    let created = config["createdOplogPubkeys"].as_array().expect("array");
    assert_eq!(created.len(), 1);

    let info = json(&ok(&dir, &["info", "--json"], 0));
    assert_eq!(info["key"], key.as_str());
    assert_eq!(info["isExecutor"], true);
    assert_eq!(info["localOplog"], created[0]);
    assert_eq!(info["participants"], json!([created[0]]));
    assert_eq!(
        info["index"]["length"], 4,
        "genesis: header, source, input, ack"
    );
    assert_eq!(info["host"]["running"], false);

    assert_eq!(ok(&dir, &["methods"], 0), "get\nincrement\n");
    assert!(ok(&dir, &["source"], 0).contains("export function increment"));

    // A call prints its response as one line of JSON.
    assert_eq!(ok(&dir, &["call", "get"], 0), "0\n");
    assert_eq!(
        ok(
            &dir,
            &["call", "increment", "--params", r#"{"by": 2}"#, "--wait"],
            0
        ),
        "{\"$undefined\":true}\n"
    );
    let tx = json(&ok(
        &dir,
        &[
            "call",
            "increment",
            "--params",
            r#"{"by": 5}"#,
            "--wait",
            "--tx",
        ],
        0,
    ));
    assert_eq!(tx["vitraTransaction"], 1);
    assert_eq!(tx["databasePubkey"], key.as_str());
    assert_eq!(tx["isProcessed"], true);
    assert_eq!(
        tx["call"],
        json!({"method": "increment", "params": {"by": 5}})
    );
    assert_eq!(
        tx["operations"][0]["value"],
        json!({"op": "INCREMENT", "by": 5})
    );
    assert_eq!(tx["operations"][0]["result"]["success"], true);
    assert_eq!(ok(&dir, &["call", "get"], 0), "7\n");

    // Reads.
    assert_eq!(ok(&dir, &["get", "/counter"], 0), "7\n");
    let entry = json(&ok(&dir, &["get", "/counter", "--json"], 0));
    assert_eq!(entry["path"], "/counter");
    assert_eq!(entry["name"], "counter");
    assert_eq!(entry["container"], false);
    assert_eq!(entry["value"], 7);
    assert!(entry["seq"].as_u64().is_some());
    let missing = run(&dir, &["get", "/nothing", "--json"]);
    assert_eq!((missing.code, missing.stdout.as_str()), (1, ""));
    let list = json(&ok(&dir, &["list", "--json"], 0));
    assert_eq!(list[1]["path"], "/counter");
    assert_eq!(list[0]["container"], true);
    let history = json(&ok(&dir, &["history", "index", "--json"], 0));
    let last = history.as_array().and_then(|h| h.last()).expect("history");
    assert_eq!(
        (&last["path"], &last["value"]),
        (&json!("/counter"), &json!(7))
    );
    assert_eq!(json(&ok(&dir, &["history", &key, "--json"], 0)), history);
    assert_eq!(
        ok(&dir, &["history"], 0).lines().last(),
        Some(format!("{}\tput\t/counter\t7", last["seq"]).as_str())
    );
    let oplog = json(&ok(
        &dir,
        &["history", created[0].as_str().expect("key"), "--json"],
        0,
    ));
    assert_eq!(
        oplog[1],
        json!({"seq": 1, "value": {"op": "INCREMENT", "by": 5}})
    );

    // Verify.
    assert_eq!(
        json(&ok(&dir, &["verify", "--json"], 0)),
        json!({"verified": true, "length": info["index"]["length"].as_u64().unwrap_or(0) + 4})
    );

    // Saved transactions.
    let id = format!("increment:{}:1", &created[0].as_str().expect("key")[..8]);
    assert_eq!(
        ok(&dir, &["tx", "list"], 0),
        format!("increment:{}:0\n{id}\n", &id[10..18])
    );
    let listing = json(&ok(&dir, &["tx", "list", "--json"], 0));
    assert_eq!(
        listing[1],
        json!({"id": id, "method": "increment", "isProcessed": true, "operations": 1})
    );
    assert!(dir.join("tx").join(format!("{id}.json")).is_file());
    let shown = json(&ok(&dir, &["tx", "show", &id], 0));
    assert_eq!(shown["operations"][0]["value"]["by"], 5);
    let verified = ok(&dir, &["tx", "verify", &id], 0);
    assert!(verified.contains("inclusion proofs valid"), "{verified}");
    assert!(verified.contains("processed at index block"), "{verified}");
    let r = run(&dir, &["tx", "show", "nope:00000000:9"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.stderr);
}

#[test]
fn a_rejected_operation_exits_4_with_the_contract_error() {
    let (_tmp, dir, _key) = init("kv.js");
    ok(&dir, &["call", "claim", "--wait"], 0);
    let r = run(&dir, &["call", "claim", "--wait"]);
    assert_eq!(r.code, 4, "stdout {} stderr {}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("The store already has an owner"),
        "{}",
        r.stderr
    );
    // Without --wait the call succeeds; the executor's verdict is still reported.
    let r = run(&dir, &["call", "claim"]);
    assert_eq!(r.code, 0);
    assert!(r.stderr.contains("was rejected: "), "{}", r.stderr);
    ok(
        &dir,
        &[
            "call",
            "put",
            "--params",
            r#"{"key": "a", "value": {"$buffer": "0102"}}"#,
        ],
        0,
    );
    assert_eq!(
        ok(&dir, &["get", "/values/a"], 0),
        "{\"$buffer\":\"0102\"}\n"
    );
    // A method that throws is an error of the call (exit 1), one line.
    let r = run(&dir, &["call", "put", "--params", r#"{"key": 1}"#]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    let r = run(&dir, &["call", "put", "--params", "{not json"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.starts_with("error: invalid JSON for --params"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_cheating_executor_is_caught_with_exit_3_and_the_fraud_proof() {
    let (_tmp, dir, key) = init("counter.js");
    ok(
        &dir,
        &[
            "call",
            "increment",
            "--test-executor-behavior",
            "wrong-op-mutations",
        ],
        0,
    );
    let r = run(&dir, &["verify"]);
    assert_eq!(r.code, 3, "stdout {} stderr {}", r.stdout, r.stderr);
    let proof = json(&r.stdout);
    assert_eq!(proof["vitraContractFraudProof"], 1);
    assert_eq!(proof["indexStateProof"]["logPubkey"], key.as_str());
    assert_eq!(proof["details"]["code"], "ChangeMismatchError");
    assert_eq!(
        proof["details"]["data"]["expectedChange"]["path"],
        "/counter"
    );
    assert_eq!(proof["details"]["data"]["entry"]["path"], "/wrong");
    let listing = ok(&dir, &["fraud", "list"], 0);
    let id = listing.trim();
    assert_eq!(id.len(), 16, "one id: {listing}");
    let details = json(&ok(&dir, &["fraud", "list", "--json"], 0));
    assert_eq!(details[0]["id"], id);
    assert_eq!(details[0]["code"], "ChangeMismatchError");
    assert!(details[0]["summary"]
        .as_str()
        .is_some_and(|s| s.starts_with("ChangeMismatchError")));
    assert_eq!(json(&ok(&dir, &["fraud", "show", id], 0)), proof);
    assert_eq!(run(&dir, &["fraud", "show", "0000"]).code, 1);
}

#[test]
fn oplogs_are_created_and_deleted() {
    let (_tmp, dir, _key) = init("counter.js");
    let created = ok(&dir, &["oplog", "create"], 0).trim().to_owned();
    let config = json(&std::fs::read_to_string(dir.join("vitra.json")).expect("vitra.json"));
    assert!(config["createdOplogPubkeys"]
        .as_array()
        .expect("array")
        .contains(&json!(created)));
    let info = json(&ok(&dir, &["info", "--json"], 0));
    let local = info["localOplog"].as_str().expect("local").to_owned();
    // The participant cannot be deleted; the new oplog can.
    let r = run(&dir, &["oplog", "delete", &local]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("active participant"), "{}", r.stderr);
    ok(&dir, &["oplog", "delete", &created], 0);
    let config = json(&std::fs::read_to_string(dir.join("vitra.json")).expect("vitra.json"));
    assert!(!config["createdOplogPubkeys"]
        .as_array()
        .expect("array")
        .contains(&json!(created)));
    assert_eq!(run(&dir, &["oplog", "delete", &created]).code, 1);
}

#[test]
fn js_vitra_directories_read_as_js_vitra_reported_them() {
    for name in ["counter", "values-zoo", "contract-update", "failed-op-last"] {
        let (_tmp, dir, key, m) = fixture(name);
        assert_reads_as_manifest(&dir, &key, &m, name);
        // The only database of the directory is found without --key too.
        assert_eq!(json(&ok(&dir, &["info", "--json"], 0))["key"], key.as_str());
    }
}

#[test]
fn the_js_violation_fixture_verifies_as_fraud() {
    let (_tmp, dir, key, m) = fixture("violation");
    let r = run(&dir, &["verify", "--key", &key]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let proof = json(&r.stdout);
    assert_eq!(proof["details"], m["verify"]["fraudProof"]["details"]);
    assert!(r.stderr.contains("ChangeNotProducedByMonitorError"));
}

#[test]
fn a_directory_with_two_databases_needs_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_a, a, key_a, _) = fixture("counter");
    let (_b, b, key_b, _) = fixture("failed-op-last");
    let dir = tmp.path().join("both");
    cli_support::copy_dir(&a.join("cores"), &dir.join("cores"));
    cli_support::copy_dir(&b.join("cores"), &dir.join("cores"));
    cli_support::copy_dir(&a.join("profiles"), &dir.join("profiles"));
    let r = run(&dir, &["info"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--key"), "{}", r.stderr);
    assert!(
        r.stderr.contains(&key_a) && r.stderr.contains(&key_b),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1);
    for key in [&key_a, &key_b] {
        assert_eq!(
            json(&ok(&dir, &["info", "--json", "--key", key], 0))["key"],
            key.as_str()
        );
    }
}

#[test]
fn errors_are_one_line_and_help_has_examples() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = run(tmp.path(), &["info"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("error: no vitra database in"),
        "{}",
        r.stderr
    );
    assert!(
        !tmp.path().join("vitra.lock").exists(),
        "nothing is left behind"
    );
    let r = run(&tmp.path().join("missing"), &["info"]);
    assert_eq!(r.code, 1);
    assert!(!tmp.path().join("missing").exists());
    let (_db_tmp, db, _key) = init("counter.js");
    let r = run(&db, &["get", "/x", "--key", "zz"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("invalid public key"), "{}", r.stderr);
    for bad in [&["frobnicate"][..], &["call"], &["get", "/x", "--bogus"]] {
        let r = run(tmp.path(), bad);
        assert_eq!(r.code, 2, "{bad:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{bad:?}: {}", r.stderr);
        assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    }
    assert!(run(tmp.path(), &["call"]).stderr.contains("<METHOD>"));

    let bad = tmp.path().join("bad.js");
    std::fs::write(&bad, "export function x( {").expect("write");
    let r = run(
        &tmp.path().join("db"),
        &["init", bad.to_str().expect("utf8")],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("SyntaxError"), "{}", r.stderr);
    assert!(
        !tmp.path().join("db").exists(),
        "no database is made from a broken contract"
    );

    let help = ok(tmp.path(), &["--help"], 0);
    assert!(help.contains("Example"), "{help}");
    for sub in [
        "init", "info", "source", "methods", "call", "get", "list", "history", "verify", "monitor",
        "oplog", "tx", "fraud", "repl", "serve", "stop", "pack", "unpack",
    ] {
        let help = ok(tmp.path(), &[sub, "--help"], 0);
        assert!(help.contains("Example: vitra"), "{sub} --help: {help}");
    }
    for sub in [
        &["oplog", "create"][..],
        &["oplog", "delete"],
        &["tx", "list"],
        &["tx", "show"],
        &["tx", "verify"],
        &["fraud", "list"],
        &["fraud", "show"],
    ] {
        let mut args = sub.to_vec();
        args.push("--help");
        assert!(
            ok(tmp.path(), &args, 0).contains("Example: vitra"),
            "{sub:?}"
        );
    }
    assert!(!help.contains("test-executor-behavior"));
}

#[test]
fn codec_commands_still_work() {
    let tmp = tempfile::tempdir().expect("tempdir");
    assert_eq!(
        ok(
            tmp.path(),
            &["pack", r#"{"op": "INCREMENT", "amount": 1}"#],
            0
        ),
        "de0002a26f70a9494e4352454d454e54a6616d6f756e7401\n"
    );
    assert_eq!(
        json(&ok(
            tmp.path(),
            &["unpack", "de0002a26f70a9494e4352454d454e54a6616d6f756e7401"],
            0
        )),
        json!({"op": "INCREMENT", "amount": 1})
    );
}

#[test]
fn missing_oplog_data_cannot_verify_and_says_why() {
    let (_tmp, dir, key, m) = fixture("counter");
    let dk = m["oplogs"][0]["discoveryKey"]
        .as_str()
        .expect("discoveryKey");
    std::fs::remove_dir_all(dir.join("cores").join(&dk[0..2]).join(&dk[2..4]).join(dk))
        .expect("remove the oplog");
    let r = run(&dir, &["verify", "--key", &key]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr
            .starts_with("cannot verify: cannot fetch operation 0 of oplog"),
        "{}",
        r.stderr
    );
    let r = run(&dir, &["verify", "--json", "--key", &key]);
    assert_eq!(r.code, 1);
    assert_eq!(json(&r.stdout)["verified"], false);
}

#[test]
fn bare_vitra_is_the_repl_and_reads_dot_commands_from_a_pipe() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let script = format!(
        ".init {}\n.call increment --by 4\n.get /counter\n.txlist\n.exit\n",
        cli_support::contract("counter.js").display()
    );
    let out = assert_cmd::Command::cargo_bin("vitra")
        .expect("binary")
        .arg("--dir")
        .arg(tmp.path())
        .env("HOME", tmp.path())
        .write_stdin(script)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .expect("runs");
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            r#"{"seq":5,"container":false,"name":"counter","path":"/counter","value":4}"#
        ),
        "{stdout}"
    );
    assert!(stdout.contains("\nincrement:"), "{stdout}");
}

#[test]
fn a_transaction_contradicting_the_local_log_is_fraud_exit_3() {
    // Two copies of one database write different operations at the same oplog block, both
    // signed with the same key: a transaction from one copy proves the other was rewritten.
    let (tmp, a, _key) = init("counter.js");
    let b = tmp.path().join("copy");
    cli_support::copy_dir(&a, &b);
    ok(&a, &["call", "increment", "--params", r#"{"by": 1}"#], 0);
    ok(&b, &["call", "increment", "--params", r#"{"by": 2}"#], 0);
    let ids = ok(&b, &["tx", "list"], 0);
    let id = ids.trim();
    let foreign = b.join("tx").join(format!("{id}.json"));
    let r = run(&a, &["tx", "verify", foreign.to_str().expect("utf8")]);
    assert_eq!(r.code, 3, "stdout {} stderr {}", r.stdout, r.stderr);
    let proof = json(&r.stdout);
    assert_eq!(proof["vitraBlockInclusionFraudProof"], 1);
    assert!(r.stderr.starts_with("fraud: "), "{}", r.stderr);
    assert_eq!(ok(&a, &["fraud", "list"], 0).lines().count(), 1);
    // Its own transaction verifies.
    let own = ok(&a, &["tx", "verify", id], 0);
    assert!(own.contains("inclusion proofs valid"), "{own}");
}

#[test]
fn the_repl_opens_a_bare_js_vitra_corestore_and_load_names_it() {
    let (tmp, dir, key, _) = fixture("counter");
    let run_repl = |script: &str| {
        let out = assert_cmd::Command::cargo_bin("vitra")
            .expect("binary")
            .args(["repl", "--dir"])
            .arg(&dir)
            .env("HOME", tmp.path())
            .write_stdin(script.to_owned())
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .expect("runs");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let stdout = run_repl(".get /counter\n");
    assert!(stdout.contains(&format!("database:  {key}")), "{stdout}");
    assert!(
        stdout.contains(r#""path":"/counter","value":114}"#),
        "{stdout}"
    );
    let stdout = run_repl(&format!(".load {key}\n"));
    assert!(stdout.contains("wrote vitra.json"), "{stdout}");
    let config = json(&std::fs::read_to_string(dir.join("vitra.json")).expect("vitra.json"));
    assert_eq!(config["pubkey"], key.as_str());
    assert_eq!(ok(&dir, &["get", "/counter"], 0), "114\n");
}
