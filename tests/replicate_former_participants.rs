//! A replica of a database whose contract removed a participant still verifies: the removed
//! oplog's operations stay in the index history, so replication must bring that oplog too.
//! The database is `fixtures/js-vitra-more/honest-participants`, written by JS Vitra 0.1.3
//! (served from a temporary copy by a Rust host).

#[path = "support/files.rs"]
mod files;
mod replicate_support;

use files::copy_dir;
use replicate_support::{current_thread_runtime, load_database_from_peer};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;
use vitra::database::{Database, Options, Verdict};

#[test]
fn a_replica_fetches_the_oplog_of_a_removed_participant_and_verifies() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join("js-vitra-more")
        .join("honest-participants");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture.join("manifest.json")).expect("manifest"))
            .expect("manifest json");
    let mut index_key = [0u8; 32];
    hex::decode_to_slice(
        manifest["indexPubkey"].as_str().expect("indexPubkey"),
        &mut index_key,
    )
    .expect("64 hex characters");
    let length = manifest["indexLength"].as_u64().expect("indexLength");

    let (ready_tx, ready_rx) = mpsc::channel::<String>();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(&fixture, dir.path());
        current_thread_runtime().block_on(async move {
            let mut db = Database::load(dir.path(), &index_key, Options::default()).expect("load");
            let (mut rep, addr) = db.serve("127.0.0.1:0").await.expect("serve");
            ready_tx.send(addr.to_string()).expect("send");
            let started = std::time::Instant::now();
            while started.elapsed() < Duration::from_secs(60) && stop_rx.try_recv().is_err() {
                db.run_replication(&mut rep, Some(Duration::from_millis(50)))
                    .await
                    .expect("serve");
            }
        });
    });
    let addr = ready_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("server ready");
    let dir = tempfile::tempdir().expect("tempdir");
    current_thread_runtime().block_on(async {
        let (mut db, _rep) = load_database_from_peer(dir.path(), &index_key, &addr).await;
        assert_eq!(db.index_len(), length, "the whole index arrived");
        assert_eq!(db.participants().len(), 1, "one participant is left");
        match db.verify().expect("verify runs") {
            Verdict::Verified { length: l } => assert_eq!(l, length),
            other => panic!("the replica did not verify: {other:?}"),
        }
    });
    stop_tx.send(()).expect("stop server");
    server.join().expect("server thread");
}
