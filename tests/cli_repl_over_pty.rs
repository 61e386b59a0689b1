//! The REPL on a real terminal (a pty): dot-commands, completion, a rejected operation, a
//! fraud, and moving the database to a host process and back (.bg/.fg).

mod cli_support;

use cli_support::{contract, ok};
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Pty {
    child: Child,
    master: std::fs::File,
    seen: Arc<Mutex<String>>,
    cursor: usize,
}

impl Pty {
    fn spawn(dir: &Path, home: &Path) -> Pty {
        let (mut master, mut slave) = (0, 0);
        // SAFETY: openpty writes two new file descriptors into the given integers.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty failed");
        // SAFETY: both descriptors were just created and are owned here.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let child = Command::new(assert_cmd::cargo::cargo_bin("vitra"))
            .arg("repl")
            .arg("--dir")
            .arg(dir)
            .env("HOME", home)
            .env("TERM", "xterm")
            .stdin(Stdio::from(slave.try_clone().expect("dup")))
            .stdout(Stdio::from(slave.try_clone().expect("dup")))
            .stderr(Stdio::from(slave))
            .spawn()
            .expect("spawn vitra repl");
        let master = std::fs::File::from(master);
        let mut reader = master.try_clone().expect("dup master");
        let seen = Arc::new(Mutex::new(String::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        Pty {
            child,
            master,
            seen,
            cursor: 0,
        }
    }

    fn send(&mut self, line: &str) {
        self.master
            .write_all(line.as_bytes())
            .expect("write to pty");
        self.master.write_all(b"\r").expect("write to pty");
    }

    /// Waits until `needle` appears after what was already consumed; returns the text up to
    /// and including it.
    fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            {
                let seen = self.seen.lock().expect("lock");
                if let Some(i) = seen[self.cursor..].find(needle) {
                    let end = self.cursor + i + needle.len();
                    let text = seen[self.cursor..end].to_owned();
                    self.cursor = end;
                    return text;
                }
                if Instant::now() > deadline {
                    panic!(
                        "{needle:?} did not appear; terminal shows:\n{}",
                        &seen[self.cursor..]
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn repl_session_on_a_terminal() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("db");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut pty = Pty::spawn(&dir, tmp.path());
    pty.expect("no database in");
    pty.expect("vitra $ ");

    pty.send(&format!(".init {}", contract("kv.js").display()));
    let text = pty.expect("monitor:");
    let config =
        cli_support::json(&std::fs::read_to_string(dir.join("vitra.json")).expect("vitra.json"));
    let key = config["pubkey"].as_str().expect("pubkey").to_owned();
    let oplog = config["createdOplogPubkeys"][0]
        .as_str()
        .expect("oplog")
        .to_owned();
    assert!(text.contains(&key), "{text}");

    // Completion: ".meth<TAB>" completes to ".methods".
    pty.master.write_all(b".meth\t\r").expect("write");
    pty.expect(".methods");
    pty.expect("claim\r\ndel\r\nexpel");

    pty.send(".call claim");
    pty.expect("{\"$undefined\":true}");
    pty.send(".call put --key greeting --value \"hello there\"");
    pty.expect("{\"$undefined\":true}");
    pty.send(".get /values/greeting");
    pty.expect("\"value\":\"hello there\"");
    pty.send(".get /values/none");
    pty.expect("/values/none: not found");
    pty.send(".call get --key greeting");
    pty.expect("\r\n\"hello there\"");

    // A second claim is rejected by the contract; the transaction shows it.
    pty.send(".call claim");
    pty.expect("{\"$undefined\":true}");
    let second = format!("claim:{}:2", &oplog[..8]);
    pty.send(".txlist");
    pty.expect(&format!("{second}\r\n"));
    pty.send(&format!(".txverify {second}"));
    pty.expect("The store already has an owner");
    pty.send(".verify");
    pty.expect("verified");
    pty.send(".history");
    pty.expect("/values/greeting");
    pty.send(".info");
    pty.expect("roles:");
    pty.send(".nonsense");
    pty.expect("unknown command .nonsense");

    // Into a host process and back.
    pty.send(".bg");
    pty.expect("runs in a host process");
    assert!(dir.join("server.sock").exists());
    pty.send(".status");
    pty.expect("host:      running");
    pty.send(".get /owner");
    pty.expect("\"path\":\"/owner\"");
    // Other commands share the host meanwhile.
    assert!(ok(&dir, &["get", "/values/greeting"], 0).contains("hello there"));
    pty.send(".fg");
    pty.expect("open in this process again");
    assert!(!dir.join("server.sock").exists());

    pty.send(".monitor");
    pty.expect("monitoring");
    pty.send(".monitorend");
    pty.expect("monitoring stopped");
    pty.send(".help");
    pty.expect(".txverify");
    // A sandbox of the current contract: its changes are thrown away.
    pty.send(".test");
    pty.expect("sandbox database");
    pty.expect("vitra (test) $ ");
    pty.send(".call put --key sandboxed --value 1");
    pty.expect("{\"$undefined\":true}");
    pty.send(".get /values/sandboxed");
    pty.expect("\"path\":\"/values/sandboxed\"");
    pty.send(".bg");
    pty.expect("not available in the sandbox");
    pty.send(".testend");
    pty.expect("sandbox deleted");
    pty.send(".get /values/sandboxed");
    pty.expect("/values/sandboxed: not found");

    // .destroy asks first; only "yes" deletes.
    pty.send(".destroy");
    pty.expect("type yes: ");
    pty.send("no");
    pty.expect("not deleted");
    assert!(dir.join("vitra.json").exists());
    pty.send(".destroy");
    pty.expect("type yes: ");
    pty.send("yes");
    pty.expect(&format!("deleted database {key}"));
    assert!(!dir.join("vitra.json").exists() && !dir.join("cores").exists());
    pty.send(".info");
    pty.expect("no database open");
    pty.send(".exit");
    let deadline = Instant::now() + Duration::from_secs(30);
    while pty.child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "the REPL did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        tmp.path().join(".vitra_history").exists(),
        "history is kept"
    );
}
