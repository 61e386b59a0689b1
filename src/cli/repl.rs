//! `vitra repl`: the interactive session, with JS Vitra's dot-commands, line history and
//! completion. Each dot-command becomes a command line run exactly as the subcommand would
//! (in this process, or in the host process after `.bg`).

use super::commands::{dir_of, init, options, set_monitor};
use super::datadir::{Config, CONFIG_FILE, LOCK_FILE};
use super::host::{host_running, spawn_host, stop, Target};
use super::{CliError, GlobalArgs, Output, Result, EXIT_FRAUD, EXIT_OK};
use crate::database::Options;
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};
use serde_json::Value as Json;
use std::path::PathBuf;

/// The dot-commands and their help.
const COMMANDS: &[(&str, &str)] = &[
    (
        ".status",
        "where you are: directory, database, host, monitor",
    ),
    (".use", ".use DIR: switch to another data directory"),
    (
        ".init",
        ".init CONTRACT.js: create a database in the current directory",
    ),
    (
        ".load",
        ".load PUBKEY: open the database with this key from the current directory",
    ),
    (".info", "key, roles, log lengths, participants"),
    (".source", "the contract source"),
    (".methods", "the contract's methods"),
    (
        ".call",
        ".call METHOD --name value ...: call a method (values are JSON, else strings)",
    ),
    (".get", ".get PATH: the entry at PATH"),
    (".list", ".list [PATH]: the entries under PATH"),
    (
        ".history",
        ".history [index|PUBKEY]: the history of the index or an oplog",
    ),
    (".verify", "verify the whole database"),
    (
        ".sync",
        "download the latest state from this replica's peers (vitra sync)",
    ),
    (
        ".syncall",
        "download the full history from this replica's peers (vitra sync --full)",
    ),
    (
        ".monitor",
        "verify after every command (and in the host process) until .monitorend",
    ),
    (".monitorend", "stop monitoring"),
    (".mkoplog", "create an oplog of this directory"),
    (
        ".deloplog",
        ".deloplog PUBKEY: delete an oplog this directory created",
    ),
    (
        ".tx",
        ".tx ID: a saved transaction with its current results",
    ),
    (".txlist", "the saved transactions"),
    (
        ".txverify",
        ".txverify ID: check a transaction's proofs and outcome",
    ),
    (".fraud", ".fraud ID: a saved fraud proof"),
    (".fraudlist", "the saved fraud proofs"),
    (
        ".bg",
        "move the database to a background host process (vitra serve)",
    ),
    (
        ".fg",
        "stop the host process and open the database here again",
    ),
    (
        ".test",
        ".test [CONTRACT.js]: a throwaway sandbox database (this contract, or the current one)",
    ),
    (
        ".testend",
        "end the sandbox (deleting it) and return to the database before it",
    ),
    (".destroy", "delete this directory's database (asks first)"),
    (".help", "this list"),
    (".exit", "leave (also Ctrl-D)"),
];

struct DotHelper;

impl Completer for DotHelper {
    type Candidate = String;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let head = &line[..pos];
        if head.contains(' ') {
            return Ok((pos, Vec::new()));
        }
        let matches = COMMANDS
            .iter()
            .map(|(c, _)| *c)
            .filter(|c| c.starts_with(head))
            .map(str::to_owned)
            .collect();
        Ok((0, matches))
    }
}
impl Hinter for DotHelper {
    type Hint = String;
}
impl Highlighter for DotHelper {}
impl Validator for DotHelper {}
impl Helper for DotHelper {}

struct Repl {
    dir: PathBuf,
    key: Option<String>,
    options: Options,
    target: Option<Target>,
    monitor: bool,
    out: Output,
    /// While `.test` runs: the sandbox directory, and the directory and key to return to.
    sandbox: Option<(PathBuf, PathBuf, Option<String>)>,
}

/// Runs the REPL until `.exit` or end of input.
pub fn run(global: &GlobalArgs) -> Result<u8> {
    let mut repl = Repl {
        dir: dir_of(global)?,
        key: global.key.clone(),
        options: options(global)?,
        target: None,
        monitor: false,
        sandbox: None,
        out: Output::stdio(),
    };
    let mut editor: rustyline::Editor<DotHelper, rustyline::history::DefaultHistory> =
        rustyline::Editor::new().map_err(|e| CliError::Terminal(e.to_string()))?;
    editor.set_helper(Some(DotHelper));
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".vitra_history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    repl.out.line("vitra REPL: .help lists the commands");
    repl.try_open();
    loop {
        let prompt = if repl.sandbox.is_some() {
            "vitra (test) $ "
        } else {
            "vitra $ "
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(CliError::Terminal(e.to_string())),
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line);
        if line == ".exit" {
            break;
        }
        if let Err(e) = repl.command(line, &mut editor) {
            repl.out.error(&e);
        }
        if repl.monitor && !line.starts_with(".monitor") && !line.starts_with(".verify") {
            repl.check();
        }
        let _ = std::io::Write::flush(&mut repl.out.out);
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    repl.end_sandbox();
    Ok(EXIT_OK)
}

impl Repl {
    /// Opens the current directory's database when it has one (quietly when it has none).
    fn try_open(&mut self) {
        self.target = None;
        let has_db = self.key.is_some()
            || self.dir.join(CONFIG_FILE).exists()
            || crate::log::LogStore::new(super::datadir::store_root(&self.dir))
                .discovery_keys()
                .is_ok_and(|keys| !keys.is_empty());
        if !has_db {
            self.out.line(format!(
                "no database in {} yet: .init CONTRACT.js or .load PUBKEY",
                self.dir.display()
            ));
            return;
        }
        match self.open() {
            Ok(t) => {
                self.target = Some(t);
                self.status();
            }
            Err(e) => self.out.error(&e),
        }
    }

    fn open(&self) -> Result<Target> {
        Target::open_dir(&self.dir, self.key.as_deref(), self.options.clone())
    }

    fn target(&mut self) -> Result<&mut Target> {
        self.target.as_mut().ok_or_else(|| {
            CliError::Refused(
                "no database open: .init CONTRACT.js, .load PUBKEY or .use DIR".into(),
            )
        })
    }

    fn run(&mut self, args: Vec<String>) -> Result<u8> {
        let target = self.target.as_mut().ok_or_else(|| {
            CliError::Refused(
                "no database open: .init CONTRACT.js, .load PUBKEY or .use DIR".into(),
            )
        })?;
        Ok(target.run(&args, &mut self.out))
    }

    fn status(&mut self) {
        let (db, host) = match &self.target {
            Some(Target::Local(s)) => (hex::encode(s.db.key()), "not running".to_owned()),
            Some(Target::Remote(sock)) => (
                "(in the host process)".to_owned(),
                format!("running ({})", sock.display()),
            ),
            None => ("none open".to_owned(), "not running".to_owned()),
        };
        self.out.line(format!("directory: {}", self.dir.display()));
        self.out.line(format!("database:  {db}"));
        self.out.line(format!("host:      {host}"));
        self.out.line(format!(
            "monitor:   {}",
            if self.monitor { "on" } else { "off" }
        ));
    }

    /// Deletes the sandbox (if any) and returns to the directory before it.
    fn end_sandbox(&mut self) {
        if let Some((sandbox, dir, key)) = self.sandbox.take() {
            self.target = None;
            let _ = std::fs::remove_dir_all(&sandbox);
            self.dir = dir;
            self.key = key;
        }
    }

    /// After a command while monitoring: verify and report a violation.
    fn check(&mut self) {
        let Some(target) = self.target.as_mut() else {
            return;
        };
        let args = vec!["verify".to_owned(), "--json".to_owned()];
        if let Ok((code, stdout, stderr)) = target.capture(&args) {
            if code == EXIT_FRAUD {
                let summary = crate::proof::FraudProof::from_json(
                    &serde_json::from_str::<Json>(stdout.trim()).unwrap_or(Json::Null),
                )
                .map(|p| p.summary())
                .unwrap_or_default();
                self.out.line(format!("violation: {summary}"));
                self.out.eline(stderr.trim_end());
            }
        }
    }

    fn command(
        &mut self,
        line: &str,
        editor: &mut rustyline::Editor<DotHelper, rustyline::history::DefaultHistory>,
    ) -> Result<()> {
        let words = shell_words(line)?;
        let Some((cmd, rest)) = words.split_first() else {
            return Ok(());
        };
        let arg = |i: usize, what: &str| -> Result<String> {
            rest.get(i)
                .cloned()
                .ok_or_else(|| CliError::Refused(format!("{cmd} needs {what}")))
        };
        if self.sandbox.is_some()
            && [".use", ".init", ".load", ".bg", ".fg", ".destroy"].contains(&cmd.as_str())
        {
            return Err(CliError::Refused(format!(
                "{cmd} is not available in the sandbox; .testend ends it"
            )));
        }
        let simple = |name: &str| vec![name.to_owned()];
        let with = |parts: &[&str], extra: &[String]| -> Vec<String> {
            parts
                .iter()
                .map(|s| (*s).to_owned())
                .chain(extra.iter().cloned())
                .collect()
        };
        match cmd.as_str() {
            ".help" => {
                for (c, h) in COMMANDS {
                    self.out.line(format!("{c:<12} {h}"));
                }
            }
            ".status" => self.status(),
            ".use" => {
                self.target = None;
                self.dir = PathBuf::from(arg(0, "a directory")?);
                self.key = None;
                self.try_open();
            }
            ".init" => {
                self.target = None;
                let contract = PathBuf::from(arg(0, "a contract file")?);
                let key = init(&self.dir, &contract, self.options.clone())?;
                self.out.line(key.clone());
                self.key = Some(key);
                self.try_open();
            }
            ".load" => {
                let key = arg(0, "a public key")?;
                super::datadir::key_arg(&key)?;
                self.target = None;
                self.key = Some(key.clone());
                self.try_open();
                // As JS Vitra's .load: the directory now names this database in vitra.json.
                if self.target.is_some() && Config::read(&self.dir)?.is_none() {
                    Config {
                        pubkey: key,
                        created_oplog_pubkeys: Vec::new(),
                        monitor: false,
                        peers: Vec::new(),
                        swarm: None,
                    }
                    .write(&self.dir)?;
                    self.out.line("wrote vitra.json");
                }
            }
            ".info" => {
                self.run(simple("info"))?;
            }
            ".source" => {
                self.run(simple("source"))?;
            }
            ".methods" => {
                self.run(simple("methods"))?;
            }
            ".call" => {
                let method = arg(0, "a method name")?;
                let params = named_params(rest.get(1..).unwrap_or_default())?;
                self.run(vec!["call".into(), method, "--params".into(), params])?;
            }
            ".get" => {
                let path = arg(0, "a path")?;
                if self.run(vec!["get".into(), path.clone(), "--json".into()])? != EXIT_OK {
                    self.out.line(format!("{path}: not found"));
                }
            }
            ".list" => {
                self.run(with(&["list"], rest))?;
            }
            ".history" => {
                self.run(with(&["history"], rest))?;
            }
            ".verify" => {
                self.run(simple("verify"))?;
            }
            ".sync" => {
                self.run(simple("sync"))?;
            }
            ".syncall" => {
                self.run(vec!["sync".into(), "--full".into()])?;
            }
            ".monitor" => {
                self.monitor = true;
                set_monitor(&self.dir, true)?;
                self.out
                    .line("monitoring: every command is followed by a verification");
                self.check();
            }
            ".monitorend" => {
                self.monitor = false;
                set_monitor(&self.dir, false)?;
                self.out.line("monitoring stopped");
            }
            ".mkoplog" => {
                self.run(vec!["oplog".into(), "create".into()])?;
            }
            ".deloplog" => {
                let key = arg(0, "a public key")?;
                self.run(vec!["oplog".into(), "delete".into(), key])?;
            }
            ".tx" => {
                let id = arg(0, "a transaction id")?;
                self.run(vec!["tx".into(), "show".into(), id])?;
            }
            ".txlist" => {
                self.run(vec!["tx".into(), "list".into()])?;
            }
            ".txverify" => {
                let id = arg(0, "a transaction id")?;
                self.run(vec!["tx".into(), "verify".into(), id])?;
            }
            ".fraud" => {
                let id = arg(0, "a fraud proof id")?;
                self.run(vec!["fraud".into(), "show".into(), id])?;
            }
            ".fraudlist" => {
                self.run(vec!["fraud".into(), "list".into()])?;
            }
            ".bg" => {
                match self.target()? {
                    Target::Remote(_) => {
                        return Err(CliError::Refused(
                            "the database already runs in a host process".into(),
                        ))
                    }
                    Target::Local(_) => {}
                }
                self.target = None;
                spawn_host(&self.dir, self.key.as_deref())?;
                self.target = Some(Target::Remote(super::host::socket_path(&self.dir)));
                self.out.line(format!(
                    "the database now runs in a host process (vitra serve --dir {})",
                    self.dir.display()
                ));
            }
            ".fg" => {
                if !host_running(&self.dir) {
                    return Err(CliError::Refused(
                        "no host process runs for this directory".into(),
                    ));
                }
                self.target = None;
                let mut sink = Output {
                    out: Box::new(std::io::sink()),
                    err: Box::new(std::io::sink()),
                    tty: false,
                };
                stop(&self.dir, &mut sink)?;
                self.target = Some(self.open()?);
                self.out.line("the database is open in this process again");
            }
            ".test" => {
                if self.sandbox.is_some() {
                    return Err(CliError::Refused(
                        "a sandbox is already running; .testend ends it".into(),
                    ));
                }
                let source = match rest.first() {
                    Some(path) => {
                        std::fs::read_to_string(path).map_err(super::io_err(path.as_str()))?
                    }
                    None => {
                        let target = self.target()?;
                        let (code, source, err) = target.capture(&["source".to_owned()])?;
                        if code != EXIT_OK {
                            return Err(CliError::Refused(super::one_line(&err)));
                        }
                        source
                    }
                };
                let sandbox = std::env::temp_dir().join(format!(
                    "vitra-sandbox-{}-{}",
                    std::process::id(),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos())
                ));
                let contract = sandbox.join("contract.js");
                std::fs::create_dir_all(&sandbox).map_err(super::io_err(&sandbox))?;
                std::fs::write(&contract, source).map_err(super::io_err(&contract))?;
                let key = init(&sandbox, &contract, self.options.clone())?;
                self.target = None;
                let previous = (
                    std::mem::replace(&mut self.dir, sandbox.clone()),
                    self.key.replace(key.clone()),
                );
                self.sandbox = Some((sandbox, previous.0, previous.1));
                self.target = Some(self.open()?);
                self.out.line(format!(
                    "sandbox database {key}: changes here are thrown away by .testend"
                ));
            }
            ".testend" => {
                if self.sandbox.is_none() {
                    return Err(CliError::Refused("no sandbox is running".into()));
                }
                self.end_sandbox();
                self.out.line("sandbox deleted");
                self.try_open();
            }
            ".destroy" => {
                let config = Config::read(&self.dir)?;
                let Some(config) = config else {
                    return Err(CliError::Refused(format!(
                        "{} has no vitra.json: .destroy only deletes data directories made by vitra",
                        self.dir.display()
                    )));
                };
                if host_running(&self.dir) {
                    return Err(CliError::Refused(
                        "stop the host process first (.fg)".into(),
                    ));
                }
                let answer = editor
                    .readline(&format!(
                        "delete database {} and all its data in {}? type yes: ",
                        config.pubkey,
                        self.dir.display()
                    ))
                    .unwrap_or_default();
                if answer.trim() != "yes" {
                    self.out.line("not deleted");
                    return Ok(());
                }
                self.target = None;
                for name in ["cores", "tx", "fraud"] {
                    let p = self.dir.join(name);
                    if p.exists() {
                        std::fs::remove_dir_all(&p).map_err(super::io_err(&p))?;
                    }
                }
                for name in [CONFIG_FILE, LOCK_FILE, "server.log"] {
                    let _ = std::fs::remove_file(self.dir.join(name));
                }
                self.key = None;
                self.out.line(format!("deleted database {}", config.pubkey));
            }
            other if other.starts_with('.') => {
                return Err(CliError::Refused(format!(
                    "unknown command {other}; .help lists the commands"
                )))
            }
            _ => {
                return Err(CliError::Refused(
                    "commands start with a dot; .help lists them".into(),
                ))
            }
        }
        Ok(())
    }
}

/// `--name value` pairs as a JSON object: each value is parsed as JSON, else taken as a
/// string; a flag without a value is `true`.
pub fn named_params(words: &[String]) -> Result<String> {
    let mut obj = serde_json::Map::new();
    let mut i = 0;
    while i < words.len() {
        let Some(name) = words[i].strip_prefix("--") else {
            return Err(CliError::Refused(format!(
                "expected --name value, found {:?}",
                words[i]
            )));
        };
        let value = match words.get(i + 1) {
            Some(v) if !v.starts_with("--") => {
                i += 1;
                serde_json::from_str(v).unwrap_or_else(|_| Json::String(v.clone()))
            }
            _ => Json::Bool(true),
        };
        obj.insert(name.to_owned(), value);
        i += 1;
    }
    Ok(Json::Object(obj).to_string())
}

/// Splits a line into words, honouring single and double quotes.
pub fn shell_words(line: &str) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => current.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            None => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(CliError::Refused("unclosed quote".into()));
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_honour_quotes() {
        let words = shell_words(r#".call put --key "a b" --value '{"x": 1}'"#).expect("words");
        assert_eq!(
            words,
            [".call", "put", "--key", "a b", "--value", r#"{"x": 1}"#]
        );
        assert!(shell_words(".get \"open").is_err());
    }

    #[test]
    fn named_params_parse_json_else_strings() {
        let words: Vec<String> = [
            "--key",
            "foo",
            "--n",
            "2",
            "--obj",
            r#"{"a":[1]}"#,
            "--flag",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let params: Json =
            serde_json::from_str(&named_params(&words).expect("params")).expect("json");
        assert_eq!(
            params,
            serde_json::json!({"key": "foo", "n": 2, "obj": {"a": [1]}, "flag": true})
        );
        assert!(named_params(&["positional".to_string()]).is_err());
    }
}
