//! Live history is a blocking iterator: it returns what the log holds, then waits for blocks
//! appended later (here by a writer on another thread sharing a `SharedMemoryLog`).

use std::time::Duration;

use vitra::bee::{Bee, BeeError, HistoryKind, HistoryOptions, SharedMemoryLog};

#[test]
fn live_history_waits_for_new_blocks() {
    let log = SharedMemoryLog::new();
    let mut writer = Bee::new(log.clone());
    writer.put(b"a", Some(b"1")).unwrap();

    let reader = Bee::new(log.clone());
    let mut live = reader
        .history(HistoryOptions {
            live: true,
            ..Default::default()
        })
        .unwrap();
    let first = live.next_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!((first.seq, first.key.as_slice()), (1, &b"a"[..]));
    // nothing more yet: a short wait times out
    assert_eq!(live.next_timeout(Duration::from_millis(50)).unwrap(), None);

    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let mut b = writer.batch();
        b.put(b"b", Some(b"2")).unwrap();
        b.del(b"a").unwrap();
        b.flush().unwrap();
    });
    // the blocking iterator wakes up for each new block
    let second = live.next().unwrap().unwrap();
    let third = live.next().unwrap().unwrap();
    t.join().unwrap();
    assert_eq!(
        (second.seq, second.kind, second.key.as_slice()),
        (2, HistoryKind::Put, &b"b"[..])
    );
    assert_eq!(
        (third.seq, third.kind, third.key.as_slice()),
        (3, HistoryKind::Del, &b"a"[..])
    );
}

#[test]
fn live_and_reverse_together_are_refused() {
    let bee = Bee::new(Vec::<Vec<u8>>::new());
    assert!(matches!(
        bee.history(HistoryOptions {
            live: true,
            reverse: true,
            ..Default::default()
        }),
        Err(BeeError::LiveReverse)
    ));
}
