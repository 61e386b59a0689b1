//! A JS Hypercore writer (11.39.5 compat and 10.38.2) whose log we replicated truncates it and
//! appends different blocks (a new fork). We do not follow it: the replica keeps the blocks
//! and the signed head it verified, and holds both signed heads as evidence, surfaced as a
//! Vitra log-fork fraud proof whose signed tree hash checks out under the log's key.

mod replicate_support;

use std::time::Duration;

use replicate_support::{
    block, expected_sha, has_all_blocks, js_writer_session, latest_head, log_sha, JsWriterSession,
};
use vitra::database::fork_fraud_proofs;
use vitra::log::SignatureScheme;
use vitra::net::replicate::Notice;

async fn truncating_js_writer_yields_fork_evidence(version: &str) {
    let JsWriterSession {
        mut js,
        mut rep,
        mut set,
        key,
    } = js_writer_session(version, 20).await;
    rep.run_until(&mut set, Duration::from_secs(60), |s, _| {
        has_all_blocks(s, &key, 20)
    })
    .await
    .unwrap_or_else(|e| panic!("Rust reader did not replicate the 20 blocks: {e}"));
    let verified = latest_head(&set, &key);

    // JS rewrites history: truncate to 10, append 12 different blocks (fork 1, length 22).
    js.command("truncate 10").await;
    for _ in 0..12 {
        js.command("append").await;
    }
    rep.run_until(&mut set, Duration::from_secs(60), |_, r| {
        !r.evidence().is_empty()
    })
    .await
    .unwrap_or_else(|e| panic!("Rust side gathered no fork evidence: {e}"));
    // Let any further messages from the forked peer arrive; none may change the replica.
    let _ = rep
        .run_until(&mut set, Duration::from_millis(500), |_, _| false)
        .await;

    let ev = rep.evidence()[0].clone();
    assert_eq!(ev.key, key);
    assert_eq!(
        ev.ours, verified,
        "our side of the evidence is the head we verified"
    );
    assert_eq!(ev.theirs.fork, 1, "their side is the forked head");
    assert_ne!(ev.ours.tree_hash, ev.theirs.tree_hash);
    assert!(rep
        .take_notices()
        .iter()
        .any(|n| matches!(n, Notice::Fork(e) if e.theirs.fork == 1)));

    let log = set.get(&key).expect("log");
    assert_eq!(
        (log.len(), log.fork()),
        (20, 0),
        "the replica did not follow the fork"
    );
    assert_eq!(
        log_sha(log, 20),
        expected_sha(20),
        "the replica keeps the data it had"
    );
    assert_eq!(log.get(15).expect("read"), Some(block(15)));

    // Both heads are signed by the log's key.
    for head in [&ev.ours, &ev.theirs] {
        assert!(
            head.verify(&key),
            "evidence head {head:?} is not signed by the log's key"
        );
    }
    let proofs = fork_fraud_proofs(&rep);
    assert_eq!(proofs.len(), 1);
    let p = &proofs[0];
    assert_eq!((p.log_pubkey, p.fork_number, p.block_seq), (key, 1, 19));
    assert_eq!(p.root_hash_at_block, log.tree_hash(20).expect("tree hash"));
    assert!(
        [SignatureScheme::Compat, SignatureScheme::Legacy]
            .into_iter()
            .any(|s| log.verify_head(20, 0, &p.root_hash_at_block, &p.root_hash_signature, s)),
        "the fraud proof's signature does not verify"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncating_js_hypercore_11_writer_yields_fork_evidence() {
    truncating_js_writer_yields_fork_evidence("11").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncating_js_hypercore_10_38_writer_yields_fork_evidence() {
    truncating_js_writer_yields_fork_evidence("10-38").await;
}
