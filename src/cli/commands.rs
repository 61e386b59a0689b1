//! The database commands, run against an open [`Session`] (in this process, or in the host
//! process on behalf of a client): output and exit codes are the same either way.

use super::datadir::{
    json_files, key_arg, read_json, resolve_key, store_root, write_json, Config, Lock,
};
use super::host::{self, Target};
use super::{
    io_err, one_line, Cli, CliError, Command, FraudCommand, GlobalArgs, OplogCommand, Output,
    Result, TxCommand, EXIT_FAILURE, EXIT_FRAUD, EXIT_OK, EXIT_REJECTED, EXIT_USAGE,
};
use crate::codec::{self, Object, Value};
use crate::database::{Database, DatabaseError, Options, Transaction, Verdict};
use crate::executor::ExecutorBehavior;
use crate::proof::FraudProof;
use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};

/// An open database and its data directory.
pub struct Session {
    /// The data directory.
    pub dir: PathBuf,
    /// The log store root.
    pub root: PathBuf,
    /// The database.
    pub db: Database,
    /// Whether this session is served by a host process.
    pub hosted: bool,
    /// Whether the serving host replicates with peers, so it can hold a `call --wait` until
    /// replication brings the executor's acks (see [`DeferredCall`]).
    pub host_replicates: bool,
    /// A `call --wait` the host must answer later, once its operations are processed.
    pub deferred: Option<DeferredCall>,
    /// Calls a host committed in groups ([`call_group`]), for `info`.
    pub groups: CallGroups,
    options: Options,
    _lock: Lock,
}

impl Session {
    /// Opens the database of `dir` (holding its lock); as executor, processes pending ops.
    pub fn open(dir: &Path, key: Option<&str>, options: Options) -> Result<Session> {
        Session::open_as(dir, key, options, None)
    }

    /// [`Session::open`], recording `role` in the lock file before the (possibly long) load.
    pub fn open_as(
        dir: &Path,
        key: Option<&str>,
        options: Options,
        role: Option<&str>,
    ) -> Result<Session> {
        // Nothing to open: say so without leaving a lock file behind.
        let has_logs = crate::log::LogStore::new(store_root(dir))
            .discovery_keys()
            .is_ok_and(|keys| !keys.is_empty());
        if !has_logs && !dir.join(super::datadir::CONFIG_FILE).exists() {
            return Err(CliError::NoDatabase {
                dir: dir.to_path_buf(),
                hint: "no vitra.json and no logs; create one with `vitra init CONTRACT.js`".into(),
            });
        }
        let lock = Lock::acquire(dir)?;
        if let Some(role) = role {
            lock.set_role(dir, role)?;
        }
        let key = resolve_key(dir, key)?;
        let root = store_root(dir);
        let mut db = Database::load(&root, &key, options.clone())?;
        let config = Config::read(dir)?;
        open_created_oplogs(&mut db, &root, config.as_ref())?;
        if db.is_executor() {
            db.execute_pending()?;
        }
        Ok(Session {
            dir: dir.to_path_buf(),
            root,
            db,
            hosted: false,
            host_replicates: false,
            deferred: None,
            groups: CallGroups::default(),
            options,
            _lock: lock,
        })
    }

    /// Re-opens the database from storage (after storage changed underneath, e.g. a deleted
    /// oplog).
    fn reload(&mut self) -> Result<()> {
        let key = self.db.key();
        self.db = Database::load(&self.root, &key, self.options.clone())?;
        open_created_oplogs(&mut self.db, &self.root, Config::read(&self.dir)?.as_ref())
    }

    fn tx_dir(&self) -> PathBuf {
        self.dir.join("tx")
    }

    fn fraud_dir(&self) -> PathBuf {
        self.dir.join("fraud")
    }

    /// Saves a fraud proof under `fraud/`; returns its id (derived from its content, so the
    /// same fraud found twice is one file).
    pub fn save_fraud(&self, proof: &FraudProof) -> Result<String> {
        save_fraud_in(&self.dir, proof)
    }
}

/// Saves a fraud proof under `<dir>/fraud/`; returns its id (see [`Session::save_fraud`]).
pub fn save_fraud_in(dir: &Path, proof: &FraudProof) -> Result<String> {
    let doc = proof.to_json();
    let id = fraud_id(&doc);
    let path = dir.join("fraud").join(format!("{id}.json"));
    if !path.exists() {
        write_json(&path, &doc)?;
    }
    Ok(id)
}

/// Opens the oplogs this directory created that are not participants (yet), so they can be
/// listed, written and deleted.
fn open_created_oplogs(db: &mut Database, root: &Path, config: Option<&Config>) -> Result<()> {
    let store = crate::log::LogStore::new(root);
    for hex_key in config
        .map(|c| c.created_oplog_pubkeys.as_slice())
        .unwrap_or_default()
    {
        if let Some(key) = crate::database::parse_key(hex_key) {
            if store.contains(&key) {
                db.open_oplog(&key)?;
            }
        }
    }
    Ok(())
}

/// The kind of a fraud proof: the contract fraud's code, or the log fraud's document name.
fn fraud_code(proof: &FraudProof) -> Json {
    match proof {
        FraudProof::Contract(p) => Json::String(p.details.code.to_string()),
        FraudProof::LogFork(_) => Json::String("LogForkFraudProof".into()),
        FraudProof::BlockRewrite(_) => Json::String("BlockRewriteFraudProof".into()),
    }
}

/// A fraud proof's id: the first 16 hex digits of the BLAKE2b hash of its JSON.
pub fn fraud_id(doc: &Json) -> String {
    use blake2::{Blake2b512, Digest};
    let digest = Blake2b512::digest(doc.to_string().as_bytes());
    hex::encode(&digest[..8])
}

/// The executor behaviour named on the command line.
pub fn behavior(name: Option<&str>) -> Result<ExecutorBehavior> {
    Ok(match name {
        None | Some("normal") => ExecutorBehavior::Normal,
        Some("process-op-multiple-times") => ExecutorBehavior::ProcessOpMultipleTimes,
        Some("skip-ops") => ExecutorBehavior::SkipOps,
        Some("wrong-op-mutations") => ExecutorBehavior::WrongOpMutations,
        Some(other) => {
            return Err(CliError::Refused(format!(
                "unknown executor behavior {other:?}"
            )))
        }
    })
}

/// The options a command line asks for.
pub fn options(global: &GlobalArgs) -> Result<Options> {
    Ok(Options {
        executor_behavior: behavior(global.test_executor_behavior.as_deref())?,
        ..Options::default()
    })
}

/// The directory a command line names (default: the current directory).
pub fn dir_of(global: &GlobalArgs) -> Result<PathBuf> {
    let dir = match &global.dir {
        Some(d) => d.clone(),
        None => PathBuf::from("."),
    };
    let absolute = std::path::absolute(&dir).map_err(io_err(&dir))?;
    // `a/./b` and a trailing `.` read better without the dots.
    Ok(absolute
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect())
}

/// Runs a parsed command line; `args` is the original argument list (forwarded as is to a
/// host process).
pub fn dispatch(cli: Cli, args: &[String], out: &mut Output) -> Result<u8> {
    let Some(command) = cli.command else {
        return super::repl::run(&cli.global);
    };
    match command {
        Command::Pack { json } => {
            let parsed: Json = serde_json::from_str(&json).map_err(|e| CliError::BadJson {
                what: "the value",
                reason: e.to_string(),
            })?;
            out.line(hex::encode(codec::encode(&codec::from_json(&parsed))));
            Ok(EXIT_OK)
        }
        Command::Unpack { hex: text } => {
            let bytes = hex::decode(text.trim())
                .map_err(|e| CliError::Refused(format!("invalid hex: {e}")))?;
            let value = codec::decode(&bytes).map_err(|e| CliError::Refused(e.to_string()))?;
            out.line(codec::to_json(&value));
            Ok(EXIT_OK)
        }
        Command::Init { contract } => {
            let key = init(&dir_of(&cli.global)?, &contract, options(&cli.global)?)?;
            out.line(key);
            Ok(EXIT_OK)
        }
        Command::Repl => super::repl::run(&cli.global),
        Command::Serve {
            listen,
            peer,
            swarm,
        } => host::serve(&cli.global, listen.as_deref(), &peer, swarm.chosen(), out),
        Command::Load {
            peer,
            swarm,
            timeout,
        } => super::sync::load(&cli.global, peer.as_deref(), swarm.chosen(), timeout, out),
        Command::Stop => host::stop(&dir_of(&cli.global)?, out),
        Command::Monitor { interval } => {
            let mut target = Target::open(&cli.global)?;
            monitor(&mut target, interval, out)
        }
        _ => {
            let mut target = Target::open(&cli.global)?;
            Ok(target.run(args, out))
        }
    }
}

/// Creates a database in `dir` from the contract file; returns its key (hex).
pub fn init(dir: &Path, contract: &Path, options: Options) -> Result<String> {
    let source = std::fs::read_to_string(contract).map_err(io_err(contract))?;
    // A contract that does not load would make a database nobody can use: try it in memory.
    Database::create(crate::database::Location::Memory, &source, options.clone())?.methods()?;
    let _lock = Lock::acquire(dir)?;
    if let Some(config) = Config::read(dir)? {
        return Err(CliError::AlreadyInitialized {
            dir: dir.to_path_buf(),
            key: config.pubkey,
        });
    }
    let cores = dir.join("cores");
    let db = Database::create(crate::database::Location::Dir(cores), &source, options)?;
    let key = hex::encode(db.key());
    Config {
        pubkey: key.clone(),
        created_oplog_pubkeys: db.local_oplog().map(hex::encode).into_iter().collect(),
        monitor: false,
        peers: Vec::new(),
        swarm: None,
    }
    .write(dir)?;
    Ok(key)
}

/// Parses `args` and runs the command against an open session (the host process's entry
/// point too).
pub fn run_in_session(session: &mut Session, args: &[String], out: &mut Output) -> u8 {
    use clap::Parser;
    let cli = match Cli::try_parse_from(std::iter::once("vitra".to_owned()).chain(args.to_vec())) {
        Ok(cli) => cli,
        Err(e) => {
            if !e.use_stderr() {
                out.line(e.render().to_string().trim_end());
                return EXIT_OK;
            }
            out.eline(super::usage_error_line(&e));
            return EXIT_USAGE;
        }
    };
    let Some(command) = cli.command else {
        out.eline("error: the REPL cannot run inside a host process");
        return EXIT_FAILURE;
    };
    let result = execute(session, command, out);
    out.exit_code(result)
}

fn compact(doc: &Json) -> String {
    doc.to_string()
}

/// Runs one database command.
pub fn execute(s: &mut Session, command: Command, out: &mut Output) -> Result<u8> {
    match command {
        Command::Info { json } => info(s, json, out),
        Command::Source => {
            let source = s.db.source()?;
            let _ = std::io::Write::write_all(&mut out.out, source.as_bytes());
            if !source.ends_with('\n') {
                out.line("");
            }
            Ok(EXIT_OK)
        }
        Command::Methods => {
            for m in s.db.methods()? {
                out.line(m);
            }
            Ok(EXIT_OK)
        }
        Command::Call {
            method,
            params,
            wait,
            tx,
        } => call(s, &method, params.as_deref(), wait, tx, out),
        Command::Get { path, json } => match s.db.get(&path)? {
            None => Ok(EXIT_FAILURE),
            Some(entry) => {
                if json {
                    out.line(compact(&entry.to_json()));
                } else {
                    out.line(compact(&codec::to_json(&entry.value)));
                }
                Ok(EXIT_OK)
            }
        },
        Command::List { path, json } => {
            let entries = s.db.list(path.as_deref().unwrap_or("/"))?;
            if json {
                let docs: Vec<Json> = entries
                    .iter()
                    .map(|e| codec::to_json(&e.to_value()))
                    .collect();
                out.line(compact(&Json::Array(docs)));
            } else {
                for e in entries {
                    if e.container && e.seq.is_none() {
                        out.line(format!("{}/", e.path));
                    } else {
                        out.line(format!(
                            "{}\t{}",
                            e.path,
                            compact(&codec::to_json(&e.value))
                        ));
                    }
                }
            }
            Ok(EXIT_OK)
        }
        Command::History { log, json } => history(s, log.as_deref(), json, out),
        Command::Verify { json } => verify(s, json, out),
        Command::Oplog(OplogCommand::Create) => {
            let key = hex::encode(s.db.create_oplog()?);
            if let Some(mut config) = Config::read(&s.dir)? {
                config.created_oplog_pubkeys.push(key.clone());
                config.write(&s.dir)?;
            }
            out.line(key);
            Ok(EXIT_OK)
        }
        Command::Oplog(OplogCommand::Delete { pubkey }) => delete_oplog(s, &pubkey, out),
        Command::Tx(TxCommand::List { json }) => {
            let mut docs = Vec::new();
            for (id, path) in json_files(&s.tx_dir())? {
                if !json {
                    out.line(id);
                    continue;
                }
                let tx = Transaction::from_json(&read_json(&path)?)?;
                docs.push(json!({
                    "id": id,
                    "method": tx.method,
                    "isProcessed": s.db.is_processed(&tx)?,
                    "operations": tx.operations.len(),
                }));
            }
            if json {
                out.line(compact(&Json::Array(docs)));
            }
            Ok(EXIT_OK)
        }
        Command::Tx(TxCommand::Show { id }) => {
            let tx = load_tx(s, &id)?;
            let results = s.db.fetch_results(&tx)?;
            let doc = tx.to_json(&results);
            // Keep the saved copy up to date once its operations are processed.
            let saved = s.tx_dir().join(format!("{id}.json"));
            if saved.exists() && results.iter().all(Option::is_some) {
                write_json(&saved, &doc)?;
            }
            out.line(serde_json::to_string_pretty(&doc).unwrap_or_default());
            Ok(EXIT_OK)
        }
        Command::Tx(TxCommand::Verify { id }) => tx_verify(s, &id, out),
        Command::Fraud(FraudCommand::List { json }) => {
            let mut docs = Vec::new();
            for (id, path) in json_files(&s.fraud_dir())? {
                if !json {
                    out.line(id);
                    continue;
                }
                let doc = read_json(&path)?;
                let (summary, code) = match FraudProof::from_json(&doc) {
                    Ok(p) => (p.summary(), fraud_code(&p)),
                    Err(e) => (format!("unreadable: {e}"), Json::Null),
                };
                docs.push(json!({"id": id, "summary": summary, "code": code}));
            }
            if json {
                out.line(compact(&Json::Array(docs)));
            }
            Ok(EXIT_OK)
        }
        Command::Fraud(FraudCommand::Show { id }) => {
            let path = s.fraud_dir().join(format!("{id}.json"));
            if !path.exists() {
                return Err(CliError::NotFound {
                    what: format!("fraud proof {id} (in {})", s.fraud_dir().display()),
                });
            }
            out.line(serde_json::to_string_pretty(&read_json(&path)?).unwrap_or_default());
            Ok(EXIT_OK)
        }
        Command::Sync {
            peer,
            swarm,
            full,
            timeout,
        } => super::sync::sync(s, &peer, swarm.chosen(), full, timeout, out),
        other => Err(CliError::Refused(format!(
            "{} cannot run inside a session",
            command_name(&other)
        ))),
    }
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Init { .. } => "init",
        Command::Repl => "repl",
        Command::Serve { .. } => "serve",
        Command::Load { .. } => "load",
        Command::Stop => "stop",
        Command::Monitor { .. } => "monitor",
        _ => "this command",
    }
}

fn info(s: &mut Session, json: bool, out: &mut Output) -> Result<u8> {
    let monitor = Config::read(&s.dir)?.is_some_and(|c| c.monitor);
    let db = &s.db;
    let local = db.local_oplog();
    let mut roles = Vec::new();
    if db.is_executor() {
        roles.push("executor");
    }
    if local.is_some_and(|k| db.participants().contains(&k)) {
        roles.push("participant");
    }
    if roles.is_empty() {
        roles.push("reader");
    }
    let oplogs: Vec<Json> = db
        .oplogs()
        .map(|log| {
            let key = log.public_key();
            json!({
                "pubkey": hex::encode(key),
                "participant": db.participants().contains(&key),
                "writable": log.writable(),
                "local": Some(key) == local,
                "length": log.len(),
                "byteLength": log.byte_len(),
            })
        })
        .collect();
    let doc = json!({
        "key": hex::encode(db.key()),
        "dir": s.dir.display().to_string(),
        "roles": roles,
        "isExecutor": db.is_executor(),
        "localOplog": local.map(hex::encode),
        "index": {"length": db.index_len(), "byteLength": db.index_log().byte_len()},
        "participants": db.participants().iter().map(hex::encode).collect::<Vec<_>>(),
        "oplogs": oplogs,
        "monitor": monitor,
        "host": if s.hosted {
            json!({
                "running": true,
                "pid": std::process::id(),
                "calls": s.groups.calls,
                "callGroups": s.groups.groups,
                "largestCallGroup": s.groups.largest,
            })
        } else {
            json!({"running": false, "pid": null})
        },
    });
    if json {
        out.line(compact(&doc));
        return Ok(EXIT_OK);
    }
    out.line(format!("key:          {}", hex::encode(db.key())));
    out.line(format!("dir:          {}", s.dir.display()));
    out.line(format!("roles:        {}", roles.join(", ")));
    out.line(format!(
        "index:        {} blocks, {} bytes",
        db.index_len(),
        db.index_log().byte_len()
    ));
    out.line(format!("participants: {}", db.participants().len()));
    for log in db.oplogs() {
        let key = log.public_key();
        let mut tags = Vec::new();
        if db.participants().contains(&key) {
            tags.push("participant");
        }
        if Some(key) == local {
            tags.push("local");
        } else if log.writable() {
            tags.push("writable");
        }
        out.line(format!(
            "  oplog {}  {} blocks  {}",
            hex::encode(key),
            log.len(),
            tags.join(", ")
        ));
    }
    out.line(format!(
        "monitor:      {}",
        if monitor { "on" } else { "off" }
    ));
    out.line(format!(
        "host:         {}",
        if s.hosted {
            format!("running (pid {})", std::process::id())
        } else {
            "not running".to_owned()
        }
    ));
    Ok(EXIT_OK)
}

fn parse_params(params: Option<&str>) -> Result<Value> {
    match params {
        None => Ok(Value::Object(Object::new())),
        Some(text) => {
            let doc: Json = serde_json::from_str(text).map_err(|e| CliError::BadJson {
                what: "--params",
                reason: e.to_string(),
            })?;
            Ok(codec::from_json(&doc))
        }
    }
}

/// A `call --wait` made through a replicating host whose operations the executor has not
/// processed yet: the host keeps the request open and finishes it with [`finish_call`] once
/// replication brought the acks (or the wait timed out).
pub struct DeferredCall {
    /// The transaction the call made.
    pub tx: Transaction,
    /// Whether the answer is the transaction JSON (`--tx`) rather than the response.
    pub print_tx: bool,
}

fn call(
    s: &mut Session,
    method: &str,
    params: Option<&str>,
    wait: bool,
    print_tx: bool,
    out: &mut Output,
) -> Result<u8> {
    let params = parse_params(params)?;
    let tx = s.db.call(method, &params)?;
    if !tx.operations.is_empty() && s.db.is_executor() {
        s.db.execute_pending()?;
    }
    conclude_call(s, tx, wait, print_tx, out)
}

/// What `vitra call` does once the call is made (and, as executor, processed): waits when
/// asked (or leaves the wait to the host), then [`finish_call`].
fn conclude_call(
    s: &mut Session,
    tx: Transaction,
    wait: bool,
    print_tx: bool,
    out: &mut Output,
) -> Result<u8> {
    // A replica's index may announce a length before its blocks arrive: not yet readable is
    // not yet processed.
    if wait && !matches!(s.db.is_processed(&tx), Ok(true)) {
        if s.hosted && s.host_replicates {
            s.deferred = Some(DeferredCall { tx, print_tx });
            return Ok(EXIT_OK);
        }
        if !s.hosted {
            super::sync::wait_processed(s, &tx, std::time::Duration::from_secs(60), out)?;
        }
    }
    finish_call(s, &tx, wait, print_tx, out)
}

/// How a host has committed calls so far: `calls` calls in `groups` appends.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallGroups {
    /// Calls made through [`call_group`].
    pub calls: u64,
    /// Groups (one append each, at most).
    pub groups: u64,
    /// The most calls one group held.
    pub largest: u64,
}

/// A `vitra call` command line, parsed, for a host that commits several calls at once.
pub struct CallRequest {
    method: String,
    params: Option<String>,
    wait: bool,
    print_tx: bool,
}

impl CallRequest {
    /// The `call` command `args` (as typed, without the program name) hold; `None` for any
    /// other command line, and for one that does not parse (the usual path reports that).
    pub fn parse(args: &[String]) -> Option<CallRequest> {
        use clap::Parser;
        let cli =
            Cli::try_parse_from(std::iter::once("vitra".to_owned()).chain(args.to_vec())).ok()?;
        match cli.command? {
            Command::Call {
                method,
                params,
                wait,
                tx,
            } => Some(CallRequest {
                method,
                params,
                wait,
                print_tx: tx,
            }),
            _ => None,
        }
    }
}

/// What one call of a group answers, as a command run alone would have.
pub struct CallAnswer {
    /// The exit code.
    pub code: u8,
    /// What it printed.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
    /// A `call --wait` the host must answer later (see [`DeferredCall`]).
    pub deferred: Option<DeferredCall>,
}

/// Runs several `vitra call`s as each would run alone, but with one append for all their
/// operations and one executor run (group commit: one wait for the disk instead of one per
/// call). Each gets its own answer: a call whose parameters or contract fail fails alone
/// ([`crate::database::Database::call_each`]).
pub fn call_group(s: &mut Session, calls: Vec<CallRequest>) -> Vec<CallAnswer> {
    if calls.is_empty() {
        return Vec::new();
    }
    s.groups.calls += calls.len() as u64;
    s.groups.groups += 1;
    s.groups.largest = s.groups.largest.max(calls.len() as u64);
    let params: Vec<Result<Value>> = calls
        .iter()
        .map(|c| parse_params(c.params.as_deref()))
        .collect();
    let batch: Vec<(&str, Value)> = calls
        .iter()
        .zip(&params)
        .filter_map(|(c, p)| p.as_ref().ok().map(|v| (c.method.as_str(), v.clone())))
        .collect();
    let made = s.db.call_each(&batch);
    let emitted = made
        .iter()
        .any(|tx| tx.as_ref().is_ok_and(|tx| !tx.operations.is_empty()));
    let executed = if emitted && s.db.is_executor() {
        s.db.execute_pending()
            .map(|_| ())
            .map_err(|e| e.to_string())
    } else {
        Ok(())
    };
    let mut made = made.into_iter();
    calls
        .into_iter()
        .zip(params)
        .map(|(call, params)| {
            let (code, stdout, stderr) = host::capture_output(|out| {
                let result = params.and_then(|_| {
                    let tx = made.next().ok_or_else(|| {
                        CliError::Refused("a call of the group got no answer".into())
                    })??;
                    if !tx.operations.is_empty() {
                        if let Err(reason) = &executed {
                            return Err(DatabaseError::ExecutorFailed {
                                reason: reason.clone(),
                            }
                            .into());
                        }
                    }
                    conclude_call(s, tx, call.wait, call.print_tx, out)
                });
                out.exit_code(result)
            });
            CallAnswer {
                code,
                stdout,
                stderr,
                deferred: s.deferred.take(),
            }
        })
        .collect()
}

/// The end of `vitra call`: records the transaction under `tx/`, prints the response (or the
/// transaction with `print_tx`), reports rejected operations; with `wait`, fails when an
/// operation is still unprocessed and exits [`EXIT_REJECTED`] when one was rejected.
pub fn finish_call(
    s: &mut Session,
    tx: &Transaction,
    wait: bool,
    print_tx: bool,
    out: &mut Output,
) -> Result<u8> {
    let results = s.db.fetch_results(tx)?;
    if !tx.operations.is_empty() {
        let path = s.tx_dir().join(format!("{}.json", tx.id()));
        write_json(&path, &tx.to_json(&results))?;
    }
    if wait && results.iter().any(Option::is_none) {
        return Err(CliError::Refused(format!(
            "cannot wait for transaction {}: this instance is not the executor of {}, and its \
             operations are processed only once the executor has them",
            tx.id(),
            hex::encode(s.db.key())
        )));
    }
    if print_tx {
        out.line(compact(&tx.to_json(&results)));
    } else {
        out.line(compact(&codec::to_json(&tx.response)));
    }
    // A rejection already known is reported either way; it fails the command with --wait.
    let mut rejected = false;
    for (i, result) in results.iter().enumerate() {
        if let Some(r) = result.as_ref().filter(|r| !r.success) {
            rejected = true;
            out.eline(format!(
                "operation {i} of {} was rejected: {}",
                tx.id(),
                r.error.as_deref().unwrap_or("unknown error")
            ));
        }
    }
    Ok(if wait && rejected {
        EXIT_REJECTED
    } else {
        EXIT_OK
    })
}

/// A progress bar (with `len`) or spinner on stderr, only when stdout is a terminal.
pub(crate) fn progress(
    out: &Output,
    len: Option<u64>,
    message: &str,
) -> Option<indicatif::ProgressBar> {
    if !out.tty {
        return None;
    }
    let bar = match len {
        Some(n) => indicatif::ProgressBar::new(n).with_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        ),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    Some(bar)
}

fn history(s: &mut Session, log: Option<&str>, json: bool, out: &mut Output) -> Result<u8> {
    let mut docs = Vec::new();
    match log {
        None | Some("index") => index_history(s, json, out, &mut docs)?,
        Some(key) if key_arg(key)? == s.db.key() => index_history(s, json, out, &mut docs)?,
        Some(key) => {
            let key = key_arg(key)?;
            let log = s.db.oplog(&key).ok_or_else(|| CliError::NotFound {
                what: format!("oplog {}", hex::encode(key)),
            })?;
            let bar = progress(out, Some(log.len()), "reading the oplog");
            for seq in 0..log.len() {
                if let Some(b) = &bar {
                    b.inc(1);
                }
                let value = match log.get(seq).map_err(crate::database::DatabaseError::from)? {
                    Some(bytes) => codec::to_json(&crate::executor::decode_op(&bytes)),
                    None => json!({"$missing": true}),
                };
                if json {
                    docs.push(json!({"seq": seq, "value": value}));
                } else {
                    out.line(format!("{seq}\t{}", compact(&value)));
                }
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
        }
    }
    if json {
        out.line(compact(&Json::Array(docs)));
    }
    Ok(EXIT_OK)
}

fn index_history(
    s: &mut Session,
    json: bool,
    out: &mut Output,
    docs: &mut Vec<Json>,
) -> Result<()> {
    let bar = progress(out, None, "reading the index history");
    let entries = s.db.history()?;
    if let Some(b) = &bar {
        b.set_length(entries.len() as u64);
    }
    for e in entries {
        if let Some(b) = &bar {
            b.inc(1);
        }
        if json {
            docs.push(e.to_json());
        } else {
            out.line(format!(
                "{}\t{}\t{}\t{}",
                e.seq,
                e.kind.as_str(),
                e.path,
                compact(&codec::to_json(&e.value))
            ));
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(())
}

fn verify(s: &mut Session, json: bool, out: &mut Output) -> Result<u8> {
    let bar = progress(
        out,
        None,
        &format!("verifying {} index blocks", s.db.index_len()),
    );
    let verdict = s.db.verify();
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match verdict? {
        Verdict::Verified { length } => {
            if json {
                out.line(compact(&json!({"verified": true, "length": length})));
            } else {
                out.line(format!("verified {length} index blocks"));
            }
            Ok(EXIT_OK)
        }
        Verdict::Fraud(proof) => {
            let id = s.save_fraud(&proof)?;
            out.line(compact(&proof.to_json()));
            out.eline(format!(
                "fraud: {} (saved as fraud/{id}.json)",
                proof.summary()
            ));
            Ok(EXIT_FRAUD)
        }
        Verdict::Incomplete(e) => {
            if json {
                out.line(compact(&json!({"verified": false, "error": e.to_string()})));
            }
            out.eline(format!("cannot verify: {}", one_line(&e.to_string())));
            Ok(EXIT_FAILURE)
        }
    }
}

fn delete_oplog(s: &mut Session, pubkey: &str, out: &mut Output) -> Result<u8> {
    let key = key_arg(pubkey)?;
    let hex_key = hex::encode(key);
    if s.db.participants().contains(&key) {
        return Err(CliError::Refused(format!(
            "oplog {hex_key} is an active participant; remove it through the contract first"
        )));
    }
    let created = Config::read(&s.dir)?.is_some_and(|c| c.created_oplog_pubkeys.contains(&hex_key));
    let log = s.db.oplog(&key).ok_or_else(|| CliError::NotFound {
        what: format!("oplog {hex_key}"),
    })?;
    if !created || !log.writable() {
        return Err(CliError::Refused(format!(
            "oplog {hex_key} was not created in {}; only oplogs made with `vitra oplog create` can be deleted",
            s.dir.display()
        )));
    }
    let store = crate::log::LogStore::new(&s.root);
    let path = store.dir_for_discovery_key(&log.discovery_key());
    std::fs::remove_dir_all(&path).map_err(io_err(&path))?;
    if let Some(mut config) = Config::read(&s.dir)? {
        config.created_oplog_pubkeys.retain(|k| k != &hex_key);
        config.write(&s.dir)?;
    }
    s.reload()?;
    out.line(format!("deleted oplog {hex_key}"));
    Ok(EXIT_OK)
}

fn load_tx(s: &Session, id: &str) -> Result<Transaction> {
    let saved = s.tx_dir().join(format!("{id}.json"));
    let path = if saved.exists() {
        saved
    } else if Path::new(id).is_file() {
        PathBuf::from(id)
    } else {
        return Err(CliError::NotFound {
            what: format!("transaction {id} (in {})", s.tx_dir().display()),
        });
    };
    Ok(Transaction::from_json(&read_json(&path)?)?)
}

fn tx_verify(s: &mut Session, id: &str, out: &mut Output) -> Result<u8> {
    let tx = load_tx(s, id)?;
    if tx.database != s.db.key() {
        return Err(CliError::Refused(format!(
            "transaction {id} belongs to database {}, not {}",
            hex::encode(tx.database),
            hex::encode(s.db.key())
        )));
    }
    for op in &tx.operations {
        if s.db.oplog(&op.oplog).is_none() {
            return Err(CliError::NotFound {
                what: format!("oplog {} of transaction {id}", hex::encode(op.oplog)),
            });
        }
    }
    let mut lines = Vec::new();
    for (i, op) in tx.operations.iter().enumerate() {
        if let Some(fraud) = s.db.verify_inclusion_proof(&op.proof)? {
            let fid = s.save_fraud(&fraud)?;
            out.line(compact(&fraud.to_json()));
            out.eline(format!(
                "fraud: {} (saved as fraud/{fid}.json)",
                fraud.summary()
            ));
            return Ok(EXIT_FRAUD);
        }
        let state = match s.db.fetch_result(&op.oplog, op.seq)? {
            None => "not processed yet".to_owned(),
            Some(r) if r.success => format!(
                "processed at index block {} ({} changes)",
                r.ack_seq,
                r.changes.len()
            ),
            Some(r) => format!(
                "rejected at index block {}: {}",
                r.ack_seq,
                r.error.as_deref().unwrap_or("unknown error")
            ),
        };
        lines.push(format!(
            "operation {i} ({}:{}): included; {state}",
            hex::encode(op.oplog),
            op.seq
        ));
    }
    out.line(format!(
        "transaction {id}: {} operations, inclusion proofs valid",
        tx.operations.len()
    ));
    for l in lines {
        out.line(l);
    }
    Ok(EXIT_OK)
}

/// `vitra monitor`: verifies every `interval` ms through `target`, printing each violation
/// once (its proof saved under fraud/) and each newly verified length.
pub fn monitor(target: &mut Target, interval: u64, out: &mut Output) -> Result<u8> {
    let mut seen = std::collections::BTreeSet::new();
    let mut last = String::new();
    let args = vec!["verify".to_owned(), "--json".to_owned()];
    loop {
        let (code, stdout, stderr) = target.capture(&args)?;
        let report = match code {
            EXIT_OK => {
                let length = serde_json::from_str::<Json>(stdout.trim())
                    .ok()
                    .and_then(|d| d.get("length").and_then(Json::as_u64))
                    .unwrap_or(0);
                format!("verified {length} index blocks")
            }
            EXIT_FRAUD => {
                let doc: Json = serde_json::from_str(stdout.trim()).unwrap_or(Json::Null);
                let id = fraud_id(&doc);
                if seen.insert(id.clone()) {
                    let summary = FraudProof::from_json(&doc)
                        .map(|p| p.summary())
                        .unwrap_or_default();
                    out.line(format!("violation: {summary} (fraud/{id}.json)"));
                }
                format!("fraud {id}")
            }
            _ => format!("cannot verify: {}", stderr.trim()),
        };
        if report != last && !report.starts_with("fraud") {
            out.line(&report);
        }
        let _ = std::io::Write::flush(&mut out.out);
        last = report;
        std::thread::sleep(std::time::Duration::from_millis(interval));
    }
}

/// Writes `datadir::Config` monitor flag.
pub fn set_monitor(dir: &Path, on: bool) -> Result<bool> {
    match Config::read(dir)? {
        Some(mut config) => {
            config.monitor = on;
            config.write(dir)?;
            Ok(true)
        }
        None => Ok(false),
    }
}
