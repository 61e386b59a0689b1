//! The contract runtime: one sandboxed QuickJS-NG runtime per contract instance, running JS
//! Vitra 0.1.3 contracts (one ES module) with the semantics of VITRA-FORMAT.md section 6.
//!
//! - [`Contract::load`] compiles and evaluates the module; it may import only the built-in
//!   modules `contract`, `assert` and `util`.
//! - [`Contract::call`] runs an exported method `(params, emit)` and returns its response and
//!   the emitted operations; [`Contract::process`] and [`Contract::apply`] run the executor's
//!   hooks in restricted mode. `apply` yields the index [`Change`]s (sorted with
//!   `localeCompare`) or, when the contract throws, the ack error string JS Vitra writes.
//! - Reads go through a [`ContractHost`]; [`MemoryHost`] is a complete in-memory one.
//!
//! What this module must never do: let a contract reach the host except through the
//! documented built-ins; let one call's code run during another; let `apply` observe time or
//! randomness; let a contract stall or exhaust the process (every call has a time budget and
//! the runtime a memory limit, and exceeding either is a typed error after which the runtime
//! is rebuilt); or panic on anything a contract does.
//!
//! ## The sandbox
//!
//! A contract is hostile until proven otherwise. Its realm has no `eval`, no `Function`
//! constructor (nor the async, generator and async-generator ones reachable through
//! `.constructor`), no `WebAssembly`, `Atomics`, `WeakRef` or `FinalizationRegistry`; every
//! built-in reachable from the global object is frozen, so prototype pollution fails with a
//! `TypeError` instead of leaking into later calls (assigning `name`, `toString`,
//! `constructor`... on your own objects still works). Inside `apply`, `Math.random()`,
//! `Date.now()`, `Date()`, argument-less `new Date()` and `genUUID()` throw; `process` may
//! use them. During `process` and `apply` only index reads reach the host.
//!
//! A call ends when its promise has settled and the job queue is empty; a promise still
//! pending then is [`ContractError::NeverSettled`]. The time budget covers the whole call;
//! the memory limit covers the runtime. After [`ContractError::Timeout`] or
//! [`ContractError::MemoryLimit`] the runtime is dropped and rebuilt from the source on the
//! next call (module-level state starts afresh, as in a replay).
//!
//! ## Differences from JS Vitra 0.1.3 (deliberate)
//!
//! - `apply` objects dispatch on *own* handlers only (`op.op = 'toString'` is "Method not
//!   found: apply", not a call to `Object.prototype.toString`).
//! - Restricted mode really refuses `oplog.getLength()`, `oplog.get()` and `listOplogs()`
//!   (0.1.3's refusal list was empty); `listOplogs()` returns the participants (0.1.3
//!   returned `[]`).
//! - `assert`'s generated messages (when none is given) follow Node's for primitives and are
//!   shorter for objects.
//! - A non-string `pubkey` passed to `tx.addOplog` fails with the same message as a malformed
//!   one.
//! - Local-time `Date` methods use the process time zone, as in 0.1.3: an `apply` that
//!   formats local times is not portable between machines.
//!
//! ## Threads and stack
//!
//! A [`Contract`] is not `Send`: create and use it on one thread (a dedicated contract
//! thread for an async executor). The thread needs a native stack comfortably larger than
//! [`Limits::stack_bytes`] (the default 512 KiB fits Rust's 2 MiB thread default).
//!
//! ```
//! use vitra::codec::{Object, Value};
//! use vitra::contract::{ApplyOutcome, Change, Contract, Limits, MemoryHost};
//!
//! let source = r#"
//!     import { index } from 'contract'
//!     export async function get () { return (await index.get('/counter'))?.value ?? 0 }
//!     export function increment ({amount}, emit) { emit({op: 'INCREMENT', amount}) }
//!     export const apply = {
//!       async INCREMENT (tx, op) { tx.put('/counter', (await get()) + op.amount) }
//!     }
//! "#;
//! let host = MemoryHost::new();
//! let mut contract = Contract::load(source, Limits::default(), &host)?;
//! assert_eq!(contract.methods(), ["get", "increment"]);
//!
//! let params = Value::Object(Object::new().with("amount", 2));
//! let out = contract.call("increment", &params, &host)?;
//! let op = out.ops[0].clone();
//! let ack = Value::Object(Object::new());
//! let ApplyOutcome::Applied { changes } = contract.apply(&op, &ack, &host)? else { panic!() };
//! assert_eq!(changes, [Change::Put { path: "/counter".into(), value: Value::from(2) }]);
//! # Ok::<(), vitra::contract::ContractError>(())
//! ```

mod convert;
mod engine;
pub mod host;
pub mod memory_host;
mod signature;
pub mod tx;

pub use host::{ContractHost, HostError, IndexEntry, ListEntry, ListOptions};
pub use memory_host::MemoryHost;
pub use signature::MethodSignature;
pub use tx::{Action, Actions, Change};

use crate::codec::Value;
use engine::Engine;
use std::fmt;
use std::time::Duration;
use thiserror::Error;

/// Resource limits of one contract runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget of one call (load, a method, `process` or `apply`), job queue
    /// included.
    pub time_budget: Duration,
    /// Bytes the runtime may allocate in total (engine, contract code and data); 0 means
    /// unlimited.
    pub memory_bytes: usize,
    /// Native stack the interpreter may use before a call fails with a stack overflow.
    pub stack_bytes: usize,
}

impl Default for Limits {
    /// 1 s per call, 64 MiB of memory, 512 KiB of stack.
    fn default() -> Self {
        Limits {
            time_budget: Duration::from_secs(1),
            memory_bytes: 64 << 20,
            stack_bytes: 512 << 10,
        }
    }
}

/// Which part of a contract was running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Loading: compiling and evaluating the module's top level.
    Load,
    /// An exported method.
    Method(String),
    /// `process(op)`.
    Process,
    /// `apply(tx, op, ack)`.
    Apply,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Load => f.write_str("load"),
            Phase::Method(m) => write!(f, "method {m}"),
            Phase::Process => f.write_str("process"),
            Phase::Apply => f.write_str("apply"),
        }
    }
}

/// What went wrong running a contract.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ContractError {
    /// The source is not a valid ES module.
    #[error("The contract failed to compile with \"{name}: {message}\"")]
    Parse {
        /// The error's name (`SyntaxError`).
        name: String,
        /// The parser's message.
        message: String,
    },
    /// The module imports something other than `contract`, `assert` or `util`.
    #[error("the contract imports '{specifier}', but a contract may import only 'contract', 'assert' and 'util'")]
    ForbiddenImport {
        /// The refused specifier.
        specifier: String,
    },
    /// The contract threw an `Error` (or rejected with one).
    #[error("The contract failed to execute with \"{name}: {message}\" in {during}")]
    Runtime {
        /// What was running.
        during: Phase,
        /// The error's `name`.
        name: String,
        /// The error's `message`.
        message: String,
    },
    /// The contract threw (or rejected with) something that is not an `Error`.
    #[error("the contract threw a non-Error value in {during}: {value}")]
    ThrewNonError {
        /// What was running.
        during: Phase,
        /// `String(value)`.
        value: String,
    },
    /// Recursion went past the stack limit.
    #[error("the contract overflowed its stack (Maximum call stack size exceeded) in {during}")]
    StackOverflow {
        /// What was running.
        during: Phase,
    },
    /// The call ran past its time budget and was stopped.
    #[error("contract exceeded its {} ms time budget in {during}", budget.as_millis())]
    Timeout {
        /// The budget.
        budget: Duration,
        /// What was running.
        during: Phase,
    },
    /// The runtime tried to allocate past its memory limit.
    #[error("contract exceeded its memory limit of {} in {during}", human_bytes(*limit_bytes))]
    MemoryLimit {
        /// The limit.
        limit_bytes: usize,
        /// What was running.
        during: Phase,
    },
    /// An async function's promise was still pending when no work was left to do.
    #[error("{during} never settled its promise")]
    NeverSettled {
        /// What was running.
        during: Phase,
    },
    /// The contract has no exported function by that name.
    #[error("Method not found: {method}")]
    MethodNotFound {
        /// The requested method.
        method: String,
    },
    /// `apply` and `process` are not methods.
    #[error("Cannot call \"{method}\" directly")]
    ReservedMethod {
        /// `apply` or `process`.
        method: String,
    },
    /// A value the contract returned cannot leave the sandbox (function, cycle, too deep...).
    #[error("{during} returned a value that cannot leave the contract: {reason}")]
    BadValue {
        /// What was running.
        during: Phase,
        /// Why.
        reason: String,
    },
    /// The host failed while serving the contract (not the contract's fault).
    #[error("the host failed during {during}: {message}")]
    Host {
        /// What was running.
        during: Phase,
        /// The host's message.
        message: String,
    },
    /// The JS engine itself failed.
    #[error("the contract engine failed during {during}: {message}")]
    Engine {
        /// What was running.
        during: Phase,
        /// What the engine said.
        message: String,
    },
}

/// `64 MiB`, `1536 KiB`, `1000 bytes`.
fn human_bytes(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

impl ContractError {
    /// Whether the runtime is rebuilt after this error (time or memory exhausted: pending
    /// jobs or half-built state may remain).
    fn poisons_runtime(&self) -> bool {
        matches!(
            self,
            ContractError::Timeout { .. } | ContractError::MemoryLimit { .. }
        )
    }
}

/// What a method call produced.
#[derive(Debug, Clone, PartialEq)]
pub struct CallOutcome {
    /// The method's return value (awaited).
    pub response: Value,
    /// The values passed to `emit()`, in order: the operations to append to the caller's
    /// oplog.
    pub ops: Vec<Value>,
}

/// What `apply` decided for one operation.
#[derive(Debug, Clone, PartialEq)]
pub enum ApplyOutcome {
    /// Apply succeeded: these changes, sorted by path with `localeCompare`.
    Applied {
        /// The index changes.
        changes: Vec<Change>,
    },
    /// Apply threw or rejected: the op fails and its changes are dropped.
    Rejected {
        /// The ack's `error`, as JS Vitra 0.1.3 writes it (`"Error: TX failed: because"`).
        error: String,
    },
}

/// A loaded contract: one sandboxed runtime, used by one thread.
pub struct Contract {
    source: String,
    limits: Limits,
    engine: Option<Engine>,
    methods: Vec<String>,
    signatures: Vec<MethodSignature>,
    has_apply: bool,
    has_process: bool,
}

impl fmt::Debug for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contract")
            .field("methods", &self.methods)
            .field("has_apply", &self.has_apply)
            .field("has_process", &self.has_process)
            .field("limits", &self.limits)
            .finish()
    }
}

impl Contract {
    /// Compiles `source` and evaluates its top level (which may read the index through
    /// `host`; `isWriter` and `oplog` come from `host.local_oplog()`).
    pub fn load(
        source: &str,
        limits: Limits,
        host: &dyn ContractHost,
    ) -> Result<Contract, ContractError> {
        let engine = Engine::load(source, &limits, host)?;
        let exports = engine.exports.clone();
        Ok(Contract {
            source: source.to_owned(),
            limits,
            engine: Some(engine),
            methods: exports.methods.iter().map(|m| m.name.clone()).collect(),
            signatures: exports.methods,
            has_apply: exports.has_apply,
            has_process: exports.has_process,
        })
    }

    /// The exported methods (functions other than `apply` and `process`), sorted by name.
    pub fn methods(&self) -> &[String] {
        &self.methods
    }

    /// The exported methods with their first parameter, as `vitra methods` prints them
    /// (`put {path, value}`), sorted by name.
    pub fn signatures(&self) -> &[MethodSignature] {
        &self.signatures
    }

    /// Whether the contract exports `apply` (a function or an object of handlers).
    pub fn has_apply(&self) -> bool {
        self.has_apply
    }

    /// Whether the contract exports a `process` function.
    pub fn has_process(&self) -> bool {
        self.has_process
    }

    /// The source this contract was loaded from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The runtime's limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn engine(&mut self, host: &dyn ContractHost) -> Result<&Engine, ContractError> {
        if self.engine.is_none() {
            self.engine = Some(Engine::load(&self.source, &self.limits, host)?);
        }
        self.engine.as_ref().ok_or_else(|| ContractError::Engine {
            during: Phase::Load,
            message: "runtime missing".into(),
        })
    }

    fn after<T>(&mut self, r: Result<T, ContractError>) -> Result<T, ContractError> {
        if let Err(e) = &r {
            if e.poisons_runtime() {
                // Dropped now (memory back at once), rebuilt on the next call.
                self.engine = None;
            }
        }
        r
    }

    /// Calls method `method` with `params` (JS Vitra passes an object). `apply` and `process`
    /// are refused; `a.b` calls function `b` of exported object `a`.
    pub fn call(
        &mut self,
        method: &str,
        params: &Value,
        host: &dyn ContractHost,
    ) -> Result<CallOutcome, ContractError> {
        let first = method.split('.').next().unwrap_or_default();
        if first == "apply" || first == "process" {
            return Err(ContractError::ReservedMethod {
                method: method.to_owned(),
            });
        }
        let r = self.engine(host)?.call(method, params, host);
        self.after(r)
    }

    /// Runs `process(op)` in restricted mode; its result becomes the ack's `metadata`.
    /// `Undefined` when the contract exports no `process`.
    pub fn process(&mut self, op: &Value, host: &dyn ContractHost) -> Result<Value, ContractError> {
        let r = self.engine(host)?.process(op, host);
        self.after(r)
    }

    /// Runs `apply(tx, op, ack)` in restricted, deterministic mode against the index `host`
    /// serves (a checkout for a replay). An exception thrown by the contract is
    /// [`ApplyOutcome::Rejected`]; limits and host failures are errors.
    pub fn apply(
        &mut self,
        op: &Value,
        ack: &Value,
        host: &dyn ContractHost,
    ) -> Result<ApplyOutcome, ContractError> {
        let r = self.engine(host)?.apply(op, ack, host);
        self.after(r)
    }
}
