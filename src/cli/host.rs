//! The host process (`vitra serve`) and how other commands reach it.
//!
//! The host holds the directory's lock, keeps the database open, processes pending operations
//! (as executor) and, when `vitra.json` says `"monitor": true`, verifies each new index head.
//! Commands on the same directory connect to `<dir>/server.sock` and send one request per
//! connection, a JSON line `{"args": [...]}` (the command line, as typed) or `{"stop": true}`;
//! the host answers with one JSON line `{"code", "stdout", "stderr"}` after running the
//! command exactly as a local process would. Clients waiting at the same moment are answered
//! in one round, in order, and their `call`s share one append (group commit; `info --json`
//! counts them under `host`).

use super::commands::{
    call_group, dir_of, finish_call, options, run_in_session, CallRequest, DeferredCall, Session,
};
use super::datadir::{lock_holder, Config, SOCKET_FILE};
use super::{io_err, CliError, GlobalArgs, Output, Result, EXIT_FAILURE, EXIT_FRAUD, EXIT_OK};
use crate::database::Verdict;
use serde_json::{json, Value as Json};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A shared in-memory output buffer.
#[derive(Clone, Default)]
pub struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    /// The bytes written so far, as text.
    pub fn text(&self) -> String {
        self.0
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f` with an [`Output`] that captures both streams; returns them.
pub fn capture_output(f: impl FnOnce(&mut Output) -> u8) -> (u8, String, String) {
    let (o, e) = (SharedBuf::default(), SharedBuf::default());
    let mut out = Output {
        out: Box::new(o.clone()),
        err: Box::new(e.clone()),
        tty: false,
    };
    let code = f(&mut out);
    drop(out);
    (code, o.text(), e.text())
}

/// Where database commands run.
pub enum Target {
    /// In this process.
    Local(Box<Session>),
    /// In the host process behind this socket.
    Remote(PathBuf),
}

/// The socket path of a directory.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join(SOCKET_FILE)
}

/// Whether a host process answers on the directory's socket.
pub fn host_running(dir: &Path) -> bool {
    UnixStream::connect(socket_path(dir)).is_ok()
}

impl Target {
    /// The host process of the directory if one runs, else the database opened here.
    pub fn open(global: &GlobalArgs) -> Result<Target> {
        Target::open_dir(&dir_of(global)?, global.key.as_deref(), options(global)?)
    }

    /// [`Target::open`] for a directory, key and options.
    pub fn open_dir(
        dir: &Path,
        key: Option<&str>,
        options: crate::database::Options,
    ) -> Result<Target> {
        let dir = dir.to_path_buf();
        let started = Instant::now();
        loop {
            if host_running(&dir) {
                return Ok(Target::Remote(socket_path(&dir)));
            }
            match Session::open(&dir, key, options.clone()) {
                Ok(session) => return Ok(Target::Local(Box::new(session))),
                Err(CliError::Locked { dir, pid }) => {
                    // A host that is still starting holds the lock before its socket exists:
                    // wait for the socket. A holder that has not written its pid yet is given
                    // a moment too.
                    let waited = started.elapsed();
                    let wait = match lock_holder(&dir) {
                        Some((_, role)) if role == "serve" => waited < Duration::from_secs(60),
                        None => waited < Duration::from_secs(2),
                        Some(_) => false,
                    };
                    if !wait {
                        return Err(CliError::Locked { dir, pid });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs a command line, writing its output to `out`; returns the exit code.
    pub fn run(&mut self, args: &[String], out: &mut Output) -> u8 {
        match self {
            Target::Local(session) => run_in_session(session, args, out),
            Target::Remote(socket) => {
                let answer =
                    request(socket, &json!({"args": args})).map(|(code, stdout, stderr)| {
                        let _ = out.out.write_all(stdout.as_bytes());
                        let _ = out.err.write_all(stderr.as_bytes());
                        code
                    });
                out.exit_code(answer)
            }
        }
    }

    /// Runs a command line and returns (code, stdout, stderr).
    pub fn capture(&mut self, args: &[String]) -> Result<(u8, String, String)> {
        Ok(capture_output(|out| self.run(args, out)))
    }
}

/// Sends one request to a host; returns (code, stdout, stderr).
pub fn request(socket: &Path, body: &Json) -> Result<(u8, String, String)> {
    let fail = |reason: String| CliError::Host {
        socket: socket.to_path_buf(),
        reason,
    };
    let mut stream = UnixStream::connect(socket).map_err(|e| fail(e.to_string()))?;
    stream
        .write_all(format!("{body}\n").as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(|e| fail(e.to_string()))?;
    let doc: Json = serde_json::from_str(&line)
        .map_err(|e| fail(format!("unreadable answer ({e}); did the host exit?")))?;
    let code = doc.get("code").and_then(Json::as_u64).unwrap_or(1) as u8;
    let text = |k: &str| {
        doc.get(k)
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Ok((code, text("stdout"), text("stderr")))
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// `vitra serve`: holds the directory and answers commands until stopped (`vitra stop`,
/// SIGINT or SIGTERM).
///
/// With `listen` (`HOST:PORT`) it also replicates the database with every peer that connects
/// there, and it stays connected to `peers` (default: the `"peers"` of `vitra.json`, which
/// `vitra load` writes), following them live ([`super::sync::Network`]); replication uses
/// the time between requests.
pub fn serve(
    global: &GlobalArgs,
    listen: Option<&str>,
    peers: &[String],
    swarm: Option<Vec<String>>,
    out: &mut Output,
) -> Result<u8> {
    let dir = dir_of(global)?;
    if host_running(&dir) {
        return Err(CliError::Refused(format!(
            "a host process already serves {}",
            dir.display()
        )));
    }
    // A one-shot command may hold the directory for a moment: wait for it, not for another
    // host or a long-running session.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut session = loop {
        match Session::open_as(&dir, global.key.as_deref(), options(global)?, Some("serve")) {
            Err(CliError::Locked { .. }) if Instant::now() < deadline && !host_running(&dir) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => break other?,
        }
    };
    session.hosted = true;
    // Start networking before the socket exists, so a bad --listen leaves nothing behind.
    let stored = Config::read(&dir)?;
    let peers = if peers.is_empty() {
        stored.as_ref().map(|c| c.peers.clone()).unwrap_or_default()
    } else {
        peers.to_vec()
    };
    let swarm = swarm.or_else(|| stored.and_then(|c| c.swarm));
    let mut network = None;
    let mut bound = None;
    if listen.is_some() || !peers.is_empty() || swarm.is_some() {
        let (net, addr) =
            super::sync::Network::start(&session, listen, &peers, swarm.as_deref(), out)?;
        bound = addr;
        network = Some(net);
        // Acks reach this host by replication: `call --wait` can be held until they do.
        session.host_replicates = !session.db.is_executor();
    }
    let socket = socket_path(&dir);
    // We hold the lock, so a socket file left here belongs to a host that died.
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).map_err(io_err(&socket))?;
    listener.set_nonblocking(true).map_err(io_err(&socket))?;
    // Only this user may drive the database.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err(&socket))?;
    }
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    out.line(format!(
        "serving {} on {}",
        hex::encode(session.db.key()),
        socket.display()
    ));
    if let Some(bound) = bound {
        out.line(format!("listening on {bound}"));
    }
    if let Some(line) = network.as_ref().and_then(|n| n.swarm_summary(&session.db)) {
        out.line(line);
    }
    let _ = out.out.flush();
    let idle = Duration::from_millis(20);
    let mut last_tick = Instant::now();
    let mut monitored_length = 0;
    let mut waiting: Vec<Waiting> = Vec::new();
    while !STOP.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                // Every client already waiting is answered in this round, so their calls
                // share one append.
                let mut streams = vec![stream];
                while streams.len() < MAX_ROUND {
                    match listener.accept() {
                        Ok((stream, _)) => streams.push(stream),
                        Err(_) => break,
                    }
                }
                if handle(&mut session, streams, &mut waiting, out) {
                    break;
                }
                // Announce what the request appended without waiting for an idle moment.
                if let Some(net) = network.as_mut() {
                    net.work(&mut session, Duration::ZERO, out);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => match network.as_mut() {
                // Idle: replicate instead of sleeping.
                Some(net) => net.work(&mut session, idle, out),
                None => std::thread::sleep(idle),
            },
            Err(e) => out.eline(format!("host: accept failed: {e}")),
        }
        if !waiting.is_empty() {
            answer_waiting(&mut session, &mut waiting, false);
        }
        if last_tick.elapsed() >= Duration::from_millis(500) {
            last_tick = Instant::now();
            tick(&mut session, &mut monitored_length, out);
        }
    }
    answer_waiting(&mut session, &mut waiting, true);
    let _ = std::fs::remove_file(&socket);
    out.line("stopped");
    Ok(EXIT_OK)
}

/// Background work between requests: execute pending operations; monitor when asked to.
fn tick(session: &mut Session, monitored_length: &mut u64, out: &mut Output) {
    if session.db.is_executor() {
        if let Err(e) = session.db.execute_pending() {
            out.eline(format!("host: executing pending operations failed: {e}"));
        }
    }
    let monitor = Config::read(&session.dir)
        .ok()
        .flatten()
        .is_some_and(|c| c.monitor);
    if monitor && session.db.index_len() != *monitored_length {
        *monitored_length = session.db.index_len();
        match session.db.verify() {
            Ok(Verdict::Fraud(proof)) => match session.save_fraud(&proof) {
                Ok(id) => out.eline(format!("violation: {} (fraud/{id}.json)", proof.summary())),
                Err(e) => out.eline(format!("host: saving a fraud proof failed: {e}")),
            },
            Ok(Verdict::Incomplete(e)) => out.eline(format!("host: cannot verify: {e}")),
            Ok(Verdict::Verified { .. }) => {}
            Err(e) => out.eline(format!("host: verify failed: {e}")),
        }
    }
}

/// How long the host holds a `call --wait` for the executor's acks.
const CALL_WAIT: Duration = Duration::from_secs(60);

/// A `call --wait` request held open until replication brings its acks.
struct Waiting {
    stream: UnixStream,
    call: DeferredCall,
    /// What the call printed before it was deferred.
    stdout: String,
    stderr: String,
    deadline: Instant,
}

/// Answers each held `call --wait` whose operations are processed, has timed out, or (with
/// `all`, when the host stops) every one.
fn answer_waiting(session: &mut Session, waiting: &mut Vec<Waiting>, all: bool) {
    let mut i = 0;
    while i < waiting.len() {
        let w = &waiting[i];
        let processed = matches!(session.db.is_processed(&w.call.tx), Ok(true));
        if !(processed || all || Instant::now() >= w.deadline) {
            i += 1;
            continue;
        }
        let w = waiting.swap_remove(i);
        let (code, stdout, stderr) = capture_output(|out| {
            let result = if processed {
                finish_call(session, &w.call.tx, true, w.call.print_tx, out)
            } else if all {
                Err(CliError::Refused(format!(
                    "the host stopped before transaction {} was processed",
                    w.call.tx.id()
                )))
            } else {
                Err(CliError::Refused(format!(
                    "transaction {} was not processed within {} s",
                    w.call.tx.id(),
                    CALL_WAIT.as_secs()
                )))
            };
            out.exit_code(result)
        });
        reply(
            &w.stream,
            code,
            &(w.stdout + &stdout),
            &(w.stderr + &stderr),
        );
    }
}

fn reply(mut stream: &UnixStream, code: u8, stdout: &str, stderr: &str) {
    let _ = writeln!(
        stream,
        "{}",
        json!({"code": code, "stdout": stdout, "stderr": stderr})
    );
}

/// The most connections answered in one round.
const MAX_ROUND: usize = 256;

/// Reads a connection's request line; `None` when it sends nothing readable in time.
fn read_request(stream: &UnixStream) -> Option<Json> {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    Some(serde_json::from_str(&line).unwrap_or(Json::Null))
}

/// Answers the connections of one round in order (or holds a `call --wait` in `waiting`);
/// consecutive `call`s are committed together ([`call_group`]). Returns whether the host must
/// stop; connections after a stop request are told the host stopped.
fn handle(
    session: &mut Session,
    streams: Vec<UnixStream>,
    waiting: &mut Vec<Waiting>,
    log: &mut Output,
) -> bool {
    let requests: Vec<(UnixStream, Json)> = streams
        .into_iter()
        .filter_map(|stream| read_request(&stream).map(|doc| (stream, doc)))
        .collect();
    let mut calls: Vec<(UnixStream, CallRequest)> = Vec::new();
    let mut stopped = false;
    for (stream, doc) in requests {
        if stopped {
            reply(&stream, EXIT_FAILURE, "", "error: the host stopped\n");
            continue;
        }
        let args = super::datadir::string_list(doc.get("args"));
        match CallRequest::parse(&args) {
            Some(call) if doc.get("stop").is_none() => {
                calls.push((stream, call));
                continue;
            }
            _ => answer_calls(session, std::mem::take(&mut calls), waiting, log),
        }
        if doc.get("stop").and_then(Json::as_bool) == Some(true) {
            reply(&stream, EXIT_OK, "host stopped\n", "");
            stopped = true;
            continue;
        }
        let (code, stdout, stderr) = capture_output(|out| run_in_session(session, &args, out));
        answer(session, stream, (code, stdout, stderr), waiting, log);
    }
    answer_calls(session, calls, waiting, log);
    stopped
}

/// Makes the queued calls: alone as any command, or several as one group.
fn answer_calls(
    session: &mut Session,
    calls: Vec<(UnixStream, CallRequest)>,
    waiting: &mut Vec<Waiting>,
    log: &mut Output,
) {
    let (streams, calls): (Vec<UnixStream>, Vec<CallRequest>) = calls.into_iter().unzip();
    for (stream, answered) in streams.into_iter().zip(call_group(session, calls)) {
        session.deferred = answered.deferred;
        let output = (answered.code, answered.stdout, answered.stderr);
        answer(session, stream, output, waiting, log);
    }
}

/// Sends a command's output back, or holds the connection while its call waits.
fn answer(
    session: &mut Session,
    stream: UnixStream,
    (code, stdout, stderr): (u8, String, String),
    waiting: &mut Vec<Waiting>,
    log: &mut Output,
) {
    if let Some(call) = session.deferred.take() {
        waiting.push(Waiting {
            stream,
            call,
            stdout,
            stderr,
            deadline: Instant::now() + CALL_WAIT,
        });
        return;
    }
    if code == EXIT_FRAUD {
        log.eline(stderr.trim_end());
    }
    reply(&stream, code, &stdout, &stderr);
}

/// `vitra stop`: asks the directory's host process to stop and waits until it has let go.
pub fn stop(dir: &Path, out: &mut Output) -> Result<u8> {
    let socket = socket_path(dir);
    if !host_running(dir) {
        return Err(CliError::Refused(format!(
            "no host process serves {}",
            dir.display()
        )));
    }
    request(&socket, &json!({"stop": true}))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The host removes its socket right before it exits; wait for the lock too.
    while Instant::now() < deadline {
        match super::datadir::Lock::acquire(dir) {
            Ok(_) => break,
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    out.line("host stopped");
    Ok(EXIT_OK)
}

/// Starts `vitra serve` for `dir` in the background; waits until it answers.
pub fn spawn_host(dir: &Path, key: Option<&str>) -> Result<()> {
    let exe = std::env::current_exe().map_err(io_err("current executable"))?;
    let log_path = dir.join("server.log");
    let log = std::fs::File::create(&log_path).map_err(io_err(&log_path))?;
    let log2 = log.try_clone().map_err(io_err(&log_path))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("serve").arg("--dir").arg(dir);
    if let Some(k) = key {
        cmd.arg("--key").arg(k);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(io_err("vitra serve"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if host_running(dir) {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(CliError::Refused(format!(
                "the host process exited ({status}): {}",
                super::one_line(&text)
            )));
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    Err(CliError::Refused(format!(
        "the host process did not start within 30 s (see {})",
        log_path.display()
    )))
}
