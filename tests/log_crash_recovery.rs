//! Crash test: a child process (this test binary, re-run as the ignored `crash_child_writer`)
//! appends batches, sometimes truncates and checkpoints, in a loop on disk and reports every
//! length `append_batch` returned; the parent kills it (SIGKILL) at random points many times.
//! After every kill the log must reopen, keep at least every reported length of the current
//! fork, read back blocks that name their own seq, and every stored signed head must verify.
//!
//! A SIGKILL keeps what the process wrote (the kernel still has it); a power cut may not. An
//! append writes its blocks, then its oplog entry, then syncs both files together, so a power
//! cut can leave the entry on disk without its blocks. The second test simulates that after
//! each kill by damaging the data file beyond the last reported append (cut, zeroed or
//! flipped bytes): the log must drop exactly the entries whose blocks are not intact, never a
//! reported one, and JS-readable state must follow.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vitra::log::{KeyPair, Log, OpenOptions, Storage};

const SEED: [u8; 32] = [42; 32];

fn block(seq: u64, fork: u64, salt: u64) -> Vec<u8> {
    let mut b = format!("{seq}:{fork}:").into_bytes();
    b.resize(8 + (salt % 200) as usize, b'.');
    b
}

fn parse(b: &[u8]) -> Option<(u64, u64)> {
    let s = std::str::from_utf8(b).ok()?;
    let mut it = s.split(':');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// The child: appends forever. Not a test on its own (run by the parent with `--ignored`).
#[test]
#[ignore]
fn crash_child_writer() {
    let Ok(dir) = std::env::var("VITRA_CRASH_DIR") else {
        return;
    };
    let storage = Storage::Disk(dir.into());
    let mut log = Log::open_or_create(storage, Some(KeyPair::from_seed(&SEED))).unwrap();
    // With power cuts simulated, checkpoints happen only where the child reports them, so the
    // parent knows which data bytes were synced by a checkpoint it did not see the end of.
    let power_cuts = std::env::var_os("VITRA_CRASH_POWER_CUTS").is_some();
    log.set_checkpoint_bytes(if power_cuts { u64::MAX } else { 16 * 1024 });
    let mut salt = log.len() * 31 + log.fork() * 7;
    loop {
        salt = salt
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = salt >> 33;
        if r.is_multiple_of(17) && log.len() > 4 {
            let to = log.len() - 1 - (r % 3);
            log.truncate(to).unwrap();
            println!("truncate {} {} {}", log.len(), log.fork(), log.byte_len());
            continue;
        }
        if r.is_multiple_of(29) {
            log.flush().unwrap();
        }
        let n = 1 + (r % 40);
        let start = log.len();
        let batch: Vec<Vec<u8>> = (start..start + n)
            .map(|s| block(s, log.fork(), r + s))
            .collect();
        let len = log.append_batch(&batch).unwrap();
        println!("len {} {} {}", len, log.fork(), log.byte_len());
    }
}

/// The last reported `(length, fork, byte length)`.
type Reported = (u64, u64, u64);

fn verify_reopen(dir: &Path, reported: Option<Reported>) -> (u64, u64) {
    let log = Log::open(Storage::Disk(dir.to_path_buf()), OpenOptions::default())
        .unwrap_or_else(|e| panic!("reopen after crash failed: {e}"));
    assert!(log.writable());
    if let Some((len, fork, _)) = reported {
        assert!(
            log.fork() >= fork,
            "fork went back from {fork} to {}",
            log.fork()
        );
        if log.fork() == fork {
            assert!(
                log.len() >= len,
                "durable length {len} lost: reopened at {}",
                log.len()
            );
        }
    }
    for seq in 0..log.len() {
        let b = log
            .get(seq)
            .unwrap()
            .unwrap_or_else(|| panic!("block {seq} missing"));
        let (s, f) = parse(&b).unwrap_or_else(|| panic!("block {seq} garbled: {b:?}"));
        assert_eq!(s, seq);
        assert!(f <= log.fork());
    }
    // The newest heads (the ones a crash can touch) and a spread of older ones verify.
    let heads = log.signed_heads();
    let step = (heads.len() / 20).max(1);
    let recent = heads.len().saturating_sub(10);
    for (i, h) in heads.iter().enumerate() {
        if i >= recent || i % step == 0 {
            assert!(
                h.verify(&log.public_key()),
                "head {} / {} invalid",
                h.length,
                h.fork
            );
        }
    }
    let last = log.signed_heads().last().map(|h| (h.length, h.fork));
    if !log.is_empty() {
        assert_eq!(last, Some((log.len(), log.fork())));
    }
    (log.len(), log.fork())
}

/// Damages the data file beyond `byte_len` (what every reported append needs) as a power cut
/// could have left it: cut short, zeroed, or one byte flipped. Returns what it did.
fn lose_unsynced_blocks(dir: &Path, byte_len: u64, rng: u64) -> String {
    use std::os::unix::fs::FileExt;
    let path = dir.join("data");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let size = file.metadata().unwrap().len();
    if size <= byte_len {
        return "nothing unreported to damage".into();
    }
    let at = byte_len + (rng >> 8) % (size - byte_len);
    match rng % 3 {
        0 => {
            file.set_len(at).unwrap();
            format!("cut the data file from {size} to {at} bytes")
        }
        1 => {
            file.write_all_at(&vec![0u8; (size - at) as usize], at)
                .unwrap();
            format!("zeroed data bytes {at}..{size}")
        }
        _ => {
            let mut b = [0u8; 1];
            file.read_exact_at(&mut b, at).unwrap();
            file.write_all_at(&[b[0] ^ 0x5a], at).unwrap();
            format!("flipped data byte {at} of {size}")
        }
    }
}

/// Kills a child writer at random points `rounds` times; with `power_cuts`, unsynced blocks
/// are also damaged after every kill.
fn kill_at_random_points(rounds: usize, power_cuts: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let exe = std::env::current_exe().unwrap();
    let mut rng: u64 = 0x9e3779b97f4a7c15;
    let mut total_kills = 0;
    let mut last_len = 0;
    let mut damaged = 0;
    for round in 0..rounds {
        let mut command = Command::new(&exe);
        command
            .args([
                "--exact",
                "crash_child_writer",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("VITRA_CRASH_DIR", &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if power_cuts {
            command.env("VITRA_CRASH_POWER_CUTS", "1");
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let p: Vec<&str> = line.split_whitespace().collect();
                if p.len() == 4 && (p[0] == "len" || p[0] == "truncate") {
                    if let (Ok(l), Ok(f), Ok(b)) = (
                        p[1].parse::<u64>(),
                        p[2].parse::<u64>(),
                        p[3].parse::<u64>(),
                    ) {
                        let _ = tx.send((l, f, b));
                    }
                }
            }
        });
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Wait for the child to start writing, then kill it a random while later.
        let started = Instant::now();
        let mut reported = None;
        while reported.is_none() && started.elapsed() < Duration::from_secs(60) {
            if let Ok(r) = rx.recv_timeout(Duration::from_millis(50)) {
                reported = Some(r);
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("child writer exited early in round {round}: {status}");
            }
        }
        std::thread::sleep(Duration::from_millis(rng % 150));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        while let Ok(r) = rx.try_recv() {
            reported = Some(r);
        }
        if let (true, Some((_, _, byte_len))) = (power_cuts, reported) {
            let what = lose_unsynced_blocks(&dir, byte_len, rng);
            damaged += usize::from(!what.starts_with("nothing"));
            eprintln!("round {round}: {what}");
        }
        let (len, _) = verify_reopen(&dir, reported);
        last_len = len;
        total_kills += 1;
    }
    assert_eq!(total_kills, rounds);
    assert!(last_len > 0, "the child never wrote anything durable");
    if power_cuts {
        assert!(damaged > 0, "no round left unreported blocks to damage");
    }
}

#[test]
fn log_survives_being_killed_at_random_points() {
    kill_at_random_points(25, false);
}

#[test]
fn log_drops_entries_whose_blocks_a_power_cut_lost() {
    kill_at_random_points(25, true);
}

/// Buffered appends promise nothing after a power cut, but the log must still reopen as a
/// consistent prefix: when the blocks of a middle entry are lost while later entries and
/// their blocks survived, everything from the damaged entry on is cut, and the log then
/// appends and reopens normally.
#[test]
fn lost_blocks_in_a_middle_entry_cut_the_log_there() {
    use std::os::unix::fs::FileExt;
    use vitra::log::Durability;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (kept, damaged_at) = {
        let mut log = Log::create(Storage::Disk(dir.clone())).unwrap();
        log.set_durability(Durability::Buffered);
        log.append_batch(&[block(0, 0, 1), block(1, 0, 2)]).unwrap();
        let kept = (log.len(), log.byte_len());
        log.append_batch(&[block(2, 0, 3)]).unwrap();
        log.append_batch(&[block(3, 0, 4), block(4, 0, 5)]).unwrap();
        (kept, kept.1)
    };
    // Block 2's bytes never reached the disk; blocks 3 and 4 did.
    let data = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("data"))
        .unwrap();
    data.write_all_at(&[0u8; 4], damaged_at).unwrap();
    drop(data);
    let mut log = Log::open(Storage::Disk(dir.clone()), OpenOptions::default()).unwrap();
    assert_eq!((log.len(), log.byte_len()), kept);
    assert_eq!(log.get(1).unwrap(), Some(block(1, 0, 2)));
    log.append(&block(2, 0, 9)).unwrap();
    drop(log);
    let log = Log::open(Storage::Disk(dir), OpenOptions::default()).unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log.get(2).unwrap(), Some(block(2, 0, 9)));
    let last = log.signed_heads().last().unwrap();
    assert_eq!(last.length, 3);
    assert!(last.verify(&log.public_key()));
}
