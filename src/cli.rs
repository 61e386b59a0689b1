//! The `vitra` command line: subcommands, the interactive REPL and the host process.
//!
//! Every database command works on a *data directory* as JS Vitra's CLI keeps it
//! (`vitra.json`, `cores/`, `tx/`, `fraud/`; see [`datadir`]) or on a bare JS Vitra corestore
//! (`--key`). A command either opens the storage itself (holding `vitra.lock`) or, when a host
//! process (`vitra serve`) holds the directory, sends its arguments over `server.sock` and
//! prints what the host answered ([`host`]). Both paths run the same code ([`commands`]), so
//! output and exit codes are identical.
//!
//! Exit codes: 0 success; 1 failure (missing entry, unverifiable database, any error);
//! 2 bad usage; 3 fraud detected (the proof's JSON on stdout); 4 a waited-for operation was
//! rejected by the contract.
//!
//! What this module must never do: open a directory's storage while another process holds it;
//! print a backtrace or more than one line for an error; mix progress output into piped
//! (non-terminal) stdout.

// The clap doc comments below are also the `--help` text, where `<id>` means a placeholder.
#![allow(rustdoc::invalid_html_tags)]

pub mod commands;
pub mod datadir;
pub mod host;
pub mod repl;
pub mod swarm;
pub mod sync;

use crate::database::DatabaseError;
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use thiserror::Error;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: failure (not found, unverifiable, any error).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: bad usage.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: fraud detected.
pub const EXIT_FRAUD: u8 = 3;
/// Exit code: a waited-for operation was rejected by the contract.
pub const EXIT_REJECTED: u8 = 4;

/// Everything that can go wrong in the command line.
#[derive(Debug, Error)]
pub enum CliError {
    /// The database layer failed.
    #[error(transparent)]
    Database(#[from] DatabaseError),
    /// Replicating with a peer failed (connecting, a timeout, a refused proof).
    #[error(transparent)]
    Replicate(#[from] crate::net::replicate::ReplicateError),
    /// Finding peers failed (a bad --bootstrap address, no DHT node answering).
    #[error(transparent)]
    Discovery(#[from] crate::net::discovery::DiscoveryError),
    /// Reading or writing a file of the data directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `vitra.json` (or another JSON file of the directory) is malformed.
    #[error("{path}: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The directory holds no database to open.
    #[error("no vitra database in {dir}: {hint}")]
    NoDatabase {
        /// The directory.
        dir: PathBuf,
        /// What to do.
        hint: String,
    },
    /// The directory already holds a database.
    #[error("{dir} already holds database {key} (see its vitra.json)")]
    AlreadyInitialized {
        /// The directory.
        dir: PathBuf,
        /// The existing key.
        key: String,
    },
    /// Another process has the directory's storage open.
    #[error("{dir} is in use by another vitra process{pid}; stop it first, or run `vitra serve` so commands can share it")]
    Locked {
        /// The directory.
        dir: PathBuf,
        /// " (pid N)" when known.
        pid: String,
    },
    /// A public key argument is not 64 hex characters.
    #[error("invalid public key {key:?}: expected 64 hex characters")]
    BadKey {
        /// What was given.
        key: String,
    },
    /// A JSON argument does not parse.
    #[error("invalid JSON for {what}: {reason}")]
    BadJson {
        /// Which argument.
        what: &'static str,
        /// The parser's message.
        reason: String,
    },
    /// A named thing (transaction, fraud proof, oplog) does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The request is valid but cannot be done in this situation.
    #[error("{0}")]
    Refused(String),
    /// Talking to the host process failed.
    #[error("host process at {socket}: {reason}")]
    Host {
        /// The socket.
        socket: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The interactive line editor failed.
    #[error("terminal: {0}")]
    Terminal(String),
}

/// Shorthand for results of this layer.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CliError {
    let path = path.into();
    move |source| CliError::Io { path, source }
}

/// vitra: cooperative databases run by smart contracts, compatible with JS Vitra 0.1.3.
///
/// A data directory holds one database (vitra.json, cores/, tx/, fraud/). Commands act on the
/// current directory unless --dir is given; a bare JS Vitra corestore needs --key when it
/// holds more than one database. Exit codes: 0 ok, 1 failure, 2 usage, 3 fraud, 4 rejected op.
///
/// Example session:
///   vitra init --dir mydb examples/contracts/counter.js
///   vitra call increment --params '{"by": 2}' --wait --dir mydb
///   vitra get /counter --dir mydb
///   vitra verify --dir mydb
#[derive(Debug, Parser)]
#[command(name = "vitra", version, about, long_about, verbatim_doc_comment)]
pub struct Cli {
    /// Global options.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The subcommand (none: the REPL, as JS Vitra's `vitra` starts it).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options every subcommand takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// The data directory (or bare JS Vitra corestore); default: the current directory.
    #[arg(long, global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The database's public key (hex), when the directory has no vitra.json or holds cores
    /// of more than one database.
    #[arg(long, global = true, value_name = "PUBKEY")]
    pub key: Option<String>,
    /// Test only: make this instance's executor misbehave (normal, process-op-multiple-times,
    /// skip-ops, wrong-op-mutations).
    #[arg(long, global = true, hide = true, value_name = "BEHAVIOR")]
    pub test_executor_behavior: Option<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a database from a contract and print its public key.
    ///
    /// Example: vitra init --dir mydb examples/contracts/counter.js
    #[command(verbatim_doc_comment)]
    Init {
        /// The contract source (JavaScript module).
        contract: PathBuf,
    },
    /// Show the key, roles, log lengths, participants and whether a host runs.
    ///
    /// Example: vitra info --json --dir mydb
    #[command(verbatim_doc_comment)]
    Info {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print the contract source.
    ///
    /// Example: vitra source --dir mydb
    #[command(verbatim_doc_comment)]
    Source,
    /// List the contract's methods, one per line.
    ///
    /// Example: vitra methods --dir mydb
    #[command(verbatim_doc_comment)]
    Methods,
    /// Call a contract method; print its response as one line of JSON.
    ///
    /// The transaction is saved as tx/<id>.json when the method emitted operations.
    /// Exit 4 when --wait and the contract rejected an operation (the error on stderr).
    ///
    /// Example: vitra call increment --params '{"by": 2}' --wait
    #[command(verbatim_doc_comment)]
    Call {
        /// The method.
        method: String,
        /// The parameters as JSON ({"$undefined":true}, {"$buffer":"<hex>"} for JS values).
        #[arg(long, value_name = "JSON")]
        params: Option<String>,
        /// Wait until every operation the call emitted has been processed.
        #[arg(long)]
        wait: bool,
        /// Print the transaction JSON instead of the response.
        #[arg(long)]
        tx: bool,
    },
    /// Print the value at PATH (exit 1 when there is none).
    ///
    /// Example: vitra get /counter --json
    #[command(verbatim_doc_comment)]
    Get {
        /// The path, e.g. /counter.
        path: String,
        /// Print the entry as JS Vitra's index.get returns it: {seq, container, name, path, value}.
        #[arg(long)]
        json: bool,
    },
    /// List the entries directly under PATH (default /).
    ///
    /// Example: vitra list /users --json
    #[command(verbatim_doc_comment)]
    List {
        /// The path prefix.
        path: Option<String>,
        /// Print a JSON array of entries.
        #[arg(long)]
        json: bool,
    },
    /// Print the history of the index (default) or of an oplog.
    ///
    /// Example: vitra history index --json
    #[command(verbatim_doc_comment)]
    History {
        /// `index` or an oplog's public key.
        log: Option<String>,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Verify the whole database by replaying every operation against the contract.
    ///
    /// Exit 0 when it verifies; 3 on fraud (the fraud proof's JSON on stdout, also saved
    /// under fraud/); 1 when it cannot be verified (missing data), saying why.
    ///
    /// Example: vitra verify --json
    #[command(verbatim_doc_comment)]
    Verify {
        /// Print a JSON object on success or failure to verify.
        #[arg(long)]
        json: bool,
    },
    /// Verify continuously; print each violation and keep its proof under fraud/.
    ///
    /// Runs until interrupted (Ctrl-C).
    ///
    /// Example: vitra monitor --interval 2000
    #[command(verbatim_doc_comment)]
    Monitor {
        /// Milliseconds between checks.
        #[arg(long, default_value_t = 1000)]
        interval: u64,
    },
    /// Create or delete oplogs of this directory.
    ///
    /// Example: vitra oplog create
    #[command(verbatim_doc_comment, subcommand)]
    Oplog(OplogCommand),
    /// Saved transactions (tx/).
    ///
    /// Example: vitra tx verify increment:4d93cb18:0
    #[command(verbatim_doc_comment, subcommand)]
    Tx(TxCommand),
    /// Saved fraud proofs (fraud/).
    ///
    /// Example: vitra fraud list
    #[command(verbatim_doc_comment, subcommand)]
    Fraud(FraudCommand),
    /// Interactive session with JS Vitra's dot-commands (.help lists them).
    ///
    /// Example: vitra repl --dir mydb
    #[command(verbatim_doc_comment)]
    Repl,
    /// Run the host process: keep the database open and executing; other commands on the
    /// directory talk to it over <dir>/server.sock.
    ///
    /// With --listen HOST:PORT it also accepts peers over TCP and replicates the database to
    /// them (announcing new blocks as they are written) while following the participants'
    /// oplogs; it prints "listening on HOST:PORT" with the bound port (so port 0 works).
    /// It also stays connected to each --peer (default: the "peers" vitra load stored in
    /// vitra.json), so a replica follows its source live and serves its own oplog to it.
    /// With --swarm (default: vitra.json's "swarm") it announces the discovery keys of the
    /// index and of every oplog on Hyperswarm and looks them up, replicating with every peer
    /// found; it prints "swarm: announced …" once the announcements are done. If the swarm
    /// stops, a new one is bound after a backoff (said on stderr); execution goes on.
    ///
    /// Example: vitra serve --dir mydb --listen 0.0.0.0:7000 &
    /// Example: vitra serve --dir mydb --swarm --bootstrap 127.0.0.1:49737 &
    #[command(verbatim_doc_comment)]
    Serve {
        /// Accept replication peers on this TCP address (e.g. 127.0.0.1:0).
        #[arg(long, value_name = "HOST:PORT")]
        listen: Option<String>,
        /// A peer to stay connected to (repeatable); default: vitra.json's "peers".
        #[arg(long, value_name = "HOST:PORT")]
        peer: Vec<String>,
        /// Hyperswarm discovery.
        #[command(flatten)]
        swarm: SwarmArgs,
    },
    /// Create a replica of database --key from a peer in --dir and download its full history.
    ///
    /// Give --peer, or --swarm to find peers by the index's discovery key on Hyperswarm
    /// (or both). The peer (and the swarm setting) is kept in vitra.json ("peers", "swarm",
    /// "bootstrap") for `vitra sync`. Prints the key and the length of each log. Exit 3 when
    /// the peer's logs fork (evidence saved under fraud/); 1 when no peer answers in time.
    ///
    /// Example: vitra load --dir replica --key <pubkey> --peer 192.0.2.7:7000
    /// Example: vitra load --dir replica --key <pubkey> --swarm --bootstrap 127.0.0.1:49737
    #[command(verbatim_doc_comment)]
    Load {
        /// The peer serving the database (`vitra serve --listen`).
        #[arg(long, value_name = "HOST:PORT", required_unless_present_any = ["swarm", "bootstrap"])]
        peer: Option<String>,
        /// Hyperswarm discovery.
        #[command(flatten)]
        swarm: SwarmArgs,
        /// Seconds to wait for the download.
        #[arg(long, default_value_t = 60, value_name = "SECS")]
        timeout: u64,
    },
    /// Sync this replica from its peers: the latest state (index and oplog heads), or every
    /// block with --full.
    ///
    /// Uses the --peer / --swarm options, else the peers and swarm setting stored in
    /// vitra.json. Prints each log's length. Exit 3 when a peer's logs fork (evidence saved
    /// under fraud/).
    ///
    /// Example: vitra sync --full --dir replica
    /// Example: vitra sync --dir replica --swarm --bootstrap 127.0.0.1:49737
    #[command(verbatim_doc_comment)]
    Sync {
        /// A peer to sync from (repeatable); default: vitra.json's "peers".
        #[arg(long, value_name = "HOST:PORT")]
        peer: Vec<String>,
        /// Hyperswarm discovery.
        #[command(flatten)]
        swarm: SwarmArgs,
        /// Download the full history (needed by verify), not only the latest state.
        #[arg(long)]
        full: bool,
        /// Seconds to wait for the download.
        #[arg(long, default_value_t = 60, value_name = "SECS")]
        timeout: u64,
    },
    /// Stop the host process of the directory.
    ///
    /// Example: vitra stop --dir mydb
    #[command(verbatim_doc_comment)]
    Stop,
    /// Encode a JSON value as MessagePack exactly as JS Vitra (msgpackr 1.5.2) writes it, in hex.
    ///
    /// JSON conventions: {"$undefined": true}, {"$buffer": "<hex>"}, {"$date": ms},
    /// {"$number": "NaN"}.
    ///
    /// Example: vitra pack '{"op": "INCREMENT", "amount": 1}'
    #[command(verbatim_doc_comment)]
    Pack {
        /// The value, as JSON.
        json: String,
    },
    /// Decode MessagePack (hex) into JSON, e.g. an oplog block or an index value.
    ///
    /// Example: vitra unpack de0002a26f70a9494e4352454d454e54a6616d6f756e7401
    #[command(verbatim_doc_comment)]
    Unpack {
        /// The bytes, as hex.
        hex: String,
    },
}

/// Hyperswarm options of `serve`, `load` and `sync`.
#[derive(Debug, Clone, Default, Args)]
pub struct SwarmArgs {
    /// Find peers on Hyperswarm by the discovery keys of the database's logs (as JS Vitra
    /// does), on the public HyperDHT unless --bootstrap names a private one. Peers connect
    /// only when one side's UDP port is directly reachable (no hole punching).
    /// Example: vitra load --key <pubkey> --dir replica --swarm
    #[arg(long, verbatim_doc_comment)]
    pub swarm: bool,
    /// A bootstrap node of the HyperDHT to use instead of the public one (repeatable;
    /// implies --swarm), e.g. a local @hyperswarm/testnet.
    /// Example: vitra serve --swarm --bootstrap 127.0.0.1:49737 --bootstrap 127.0.0.1:49738
    #[arg(long, value_name = "HOST:PORT", verbatim_doc_comment)]
    pub bootstrap: Vec<String>,
}

impl SwarmArgs {
    /// The bootstrap nodes to use when swarming (empty: the public DHT), or `None` when
    /// neither --swarm nor --bootstrap was given.
    pub fn chosen(&self) -> Option<Vec<String>> {
        (self.swarm || !self.bootstrap.is_empty()).then(|| self.bootstrap.clone())
    }
}

/// `vitra oplog …`.
#[derive(Debug, Subcommand)]
pub enum OplogCommand {
    /// Create a new oplog of this directory and print its key (it becomes a participant
    /// only when the contract adds it).
    ///
    /// Example: vitra oplog create
    #[command(verbatim_doc_comment)]
    Create,
    /// Delete an oplog this directory created (not an active participant).
    ///
    /// Example: vitra oplog delete 4d93cb18299f7c11408345dfb6e6221a9efb094e96b86d0ceaf8e44923c5086b
    #[command(verbatim_doc_comment)]
    Delete {
        /// The oplog's public key.
        pubkey: String,
    },
}

/// `vitra tx …`.
#[derive(Debug, Subcommand)]
pub enum TxCommand {
    /// List saved transactions, one id per line (as JS Vitra's .txlist).
    ///
    /// --json prints [{"id", "method", "isProcessed", "operations"}].
    ///
    /// Example: vitra tx list --json
    #[command(verbatim_doc_comment)]
    List {
        /// Print a JSON array with each transaction's method and state.
        #[arg(long)]
        json: bool,
    },
    /// Print a saved transaction's JSON with its current results.
    ///
    /// Example: vitra tx show increment:4d93cb18:0
    #[command(verbatim_doc_comment)]
    Show {
        /// The transaction id (or a path to a transaction JSON file).
        id: String,
    },
    /// Check a transaction's inclusion proofs against the logs and report each operation's
    /// outcome. Exit 3 with a fraud proof when a log contradicts its proof.
    ///
    /// Example: vitra tx verify increment:4d93cb18:0
    #[command(verbatim_doc_comment)]
    Verify {
        /// The transaction id (or a path to a transaction JSON file).
        id: String,
    },
}

/// `vitra fraud …`.
#[derive(Debug, Subcommand)]
pub enum FraudCommand {
    /// List saved fraud proofs, one id per line (as JS Vitra's .fraudlist).
    ///
    /// --json prints [{"id", "summary", "code"}].
    ///
    /// Example: vitra fraud list --json
    #[command(verbatim_doc_comment)]
    List {
        /// Print a JSON array with each proof's summary.
        #[arg(long)]
        json: bool,
    },
    /// Print a saved fraud proof's JSON.
    ///
    /// Example: vitra fraud show 1a2b3c4d5e6f7a8b
    #[command(verbatim_doc_comment)]
    Show {
        /// The fraud proof's id.
        id: String,
    },
}

/// Where command output goes: the terminal, or buffers sent back over the host socket.
pub struct Output {
    /// Standard output.
    pub out: Box<dyn Write>,
    /// Standard error.
    pub err: Box<dyn Write>,
    /// Whether stdout is a terminal (progress bars allowed).
    pub tty: bool,
}

impl Output {
    /// The process's own stdout and stderr.
    pub fn stdio() -> Output {
        use std::io::IsTerminal;
        Output {
            tty: std::io::stdout().is_terminal(),
            out: Box::new(std::io::stdout()),
            err: Box::new(std::io::stderr()),
        }
    }

    /// Writes one line to stdout (write errors such as a closed pipe are ignored: the reader
    /// left).
    pub fn line(&mut self, text: impl std::fmt::Display) {
        let _ = writeln!(self.out, "{text}");
    }

    /// Writes one line to stderr.
    pub fn eline(&mut self, text: impl std::fmt::Display) {
        let _ = writeln!(self.err, "{text}");
    }

    /// Reports `error` as the one `error: …` line on stderr.
    pub fn error(&mut self, error: &dyn std::fmt::Display) {
        self.eline(format!("error: {}", one_line(&error.to_string())));
    }

    /// A command's exit code: its own, or [`EXIT_FAILURE`] once its error is reported.
    pub fn exit_code(&mut self, result: Result<u8>) -> u8 {
        result.unwrap_or_else(|e| {
            self.error(&e);
            EXIT_FAILURE
        })
    }
}

/// A panic inside a dependency, held back by the panic hook: most are caught where we call
/// into the crate (the `hyperswarm` crate's `todo!()`s become typed errors, reported as such),
/// so it is printed only if it ends the command.
static DEPENDENCY_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Runs the command line; returns the process exit code.
pub fn main() -> u8 {
    // A bug must still end in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let line = format!("error: internal error{place}: {}", one_line(&message));
        let in_dependency = info
            .location()
            .is_some_and(|l| l.file().contains("/.cargo/registry/"));
        if in_dependency {
            if let Ok(mut held) = DEPENDENCY_PANIC.lock() {
                *held = Some(line);
            }
        } else {
            eprintln!("{line}");
        }
    }));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut output = Output::stdio();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_args(&args, &mut output)
    })) {
        Ok(code) => code,
        Err(_) => {
            if let Some(line) = DEPENDENCY_PANIC.lock().ok().and_then(|mut h| h.take()) {
                eprintln!("{line}");
            }
            EXIT_FAILURE
        }
    }
}

/// Parses and runs one command line (without the program name).
pub fn run_args(args: &[String], output: &mut Output) -> u8 {
    let cli = match Cli::try_parse_from(std::iter::once("vitra".to_owned()).chain(args.to_vec())) {
        Ok(cli) => cli,
        Err(e) => {
            if !e.use_stderr() {
                // --help, --version: clap's own text on stdout.
                let _ = e.print();
                return EXIT_OK;
            }
            output.eline(usage_error_line(&e));
            return EXIT_USAGE;
        }
    };
    let result = commands::dispatch(cli, args, output);
    output.exit_code(result)
}

/// Collapses a message to one line.
pub(crate) fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A usage error as one line: clap's message without its usage block, and where help is.
pub(crate) fn usage_error_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let message: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("Usage:"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    format!("{} (see vitra --help)", one_line(&message.join(" ")))
}
