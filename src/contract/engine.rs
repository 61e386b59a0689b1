//! One QuickJS runtime and context per contract: limits, module loading, the host's native
//! functions, and the driver that runs a call to completion.
//!
//! A call is complete when its result has settled *and* the job queue is empty, so no code of
//! one call can run during the next (an `apply` in particular). Everything runs under the
//! call's deadline: the interrupt handler stops the engine once it passes, or once the
//! allocator has refused memory over the limit (even if the contract caught the error).

use super::convert::{js_string, to_js, FromJs, FromJsError};
use super::host::{ContractHost, HostError};
use super::signature::{first_parameter, MethodSignature};
use super::tx::Actions;
use super::{ApplyOutcome, CallOutcome, ContractError, Limits, Phase};
use crate::codec::Value;
use rquickjs::context::intrinsic;
use rquickjs::function::This;
use rquickjs::object::Filter;
use rquickjs::promise::PromiseState;
use rquickjs::{
    qjs, Context, Ctx, Exception, Function, Module, Object as JsObject, Persistent, Runtime,
    Value as JsValue,
};
use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::rc::Rc;
use std::time::Instant;

mod memory;
mod modules;
mod natives;

use memory::{AllocState, LimitedAlloc};
use modules::{BuiltinExports, BuiltinLoader, BuiltinResolver};
use natives::{natives, string_arg};

const SANDBOX_JS: &str = include_str!("sandbox.js");

/// The name the contract's own module is registered under.
const MAIN_MODULE: &str = "contract.js";

/// What is running, as the host functions see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Idle,
    Load,
    Method,
    Process,
    Apply,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Idle => "idle time",
            Mode::Load => "load",
            Mode::Method => "a method",
            Mode::Process => "process",
            Mode::Apply => "apply",
        }
    }

    fn restricted(self) -> bool {
        matches!(self, Mode::Process | Mode::Apply)
    }
}

/// The host of the running call, reachable from the native functions only while the call
/// runs.
struct HostSlot(Cell<Option<NonNull<dyn ContractHost + 'static>>>);

impl HostSlot {
    /// Runs `f` with `host` installed; the slot is restored when `f` returns or unwinds.
    fn with<R>(&self, host: &dyn ContractHost, f: impl FnOnce() -> R) -> R {
        struct Restore<'a>(
            &'a Cell<Option<NonNull<dyn ContractHost + 'static>>>,
            Option<NonNull<dyn ContractHost + 'static>>,
        );
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.0.set(self.1);
            }
        }
        let ptr: NonNull<dyn ContractHost + '_> = NonNull::from(host);
        // SAFETY: only the lifetime bound is erased. The pointer is removed from the slot by
        // `Restore` before `host`'s borrow ends, and it is only dereferenced by `use_host`,
        // inside `f`, on this thread.
        let ptr: NonNull<dyn ContractHost + 'static> = unsafe { std::mem::transmute(ptr) };
        let _restore = Restore(&self.0, self.0.replace(Some(ptr)));
        f()
    }

    /// Calls `f` with the installed host, if a call is running.
    fn use_host<R>(&self, f: impl FnOnce(&dyn ContractHost) -> R) -> Option<R> {
        // SAFETY: see `with`: while the slot holds a pointer, the host it points to is
        // borrowed by the running call.
        self.0.get().map(|p| f(unsafe { p.as_ref() }))
    }
}

/// State shared by the engine, the native functions, the interrupt handler and the loader.
pub(super) struct Shared {
    mode: Cell<Mode>,
    deadline: Cell<Option<Instant>>,
    timed_out: Cell<bool>,
    alloc: Rc<AllocState>,
    host: HostSlot,
    host_failure: RefCell<Option<String>>,
    emitted: RefCell<Vec<Value>>,
    actions: RefCell<Option<Actions>>,
    refused_import: RefCell<Option<String>>,
    date_get_time: RefCell<Option<Persistent<Function<'static>>>>,
}

impl Shared {
    fn should_interrupt(&self) -> bool {
        if self.alloc.exceeded.get() || self.timed_out.get() {
            return true;
        }
        // A failed host ends the call: no point letting the contract run on.
        if self.host_failure.try_borrow().is_ok_and(|f| f.is_some()) {
            return true;
        }
        match self.deadline.get() {
            Some(d) if Instant::now() >= d => {
                self.timed_out.set(true);
                true
            }
            _ => false,
        }
    }

    fn aborted(&self) -> bool {
        self.should_interrupt()
    }

    fn begin(&self, mode: Mode, limits: &Limits) {
        self.mode.set(mode);
        self.timed_out.set(false);
        self.alloc.exceeded.set(false);
        self.deadline
            .set(Instant::now().checked_add(limits.time_budget));
        self.host_failure.borrow_mut().take();
        self.emitted.borrow_mut().clear();
        self.actions.borrow_mut().take();
    }

    fn end(&self) {
        self.mode.set(Mode::Idle);
        self.deadline.set(None);
        self.actions.borrow_mut().take();
    }

    /// Turns a host error into a JS exception, remembering real failures.
    fn host_error(&self, ctx: &Ctx<'_>, e: HostError) -> rquickjs::Error {
        if let HostError::Failed(m) = &e {
            self.host_failure
                .borrow_mut()
                .get_or_insert_with(|| m.clone());
        }
        Exception::throw_message(ctx, &e.to_string())
    }

    fn refuse_restricted(&self, ctx: &Ctx<'_>, what: &str) -> rquickjs::Result<()> {
        let mode = self.mode.get();
        if mode.restricted() {
            return Err(Exception::throw_message(
                ctx,
                &format!(
                    "{what} is not available during {}: only index reads are allowed in restricted mode",
                    mode.name()
                ),
            ));
        }
        Ok(())
    }

    fn refuse_nondeterministic(&self, ctx: &Ctx<'_>, what: &str) -> rquickjs::Result<()> {
        if self.mode.get() == Mode::Apply {
            return Err(Exception::throw_message(
                ctx,
                &format!(
                    "{what} is not available in apply: apply must be deterministic (use process() for timestamps and random values)"
                ),
            ));
        }
        Ok(())
    }

    /// Converts a JS value for the host side, throwing a TypeError for values that cannot
    /// cross.
    fn to_value<'js>(
        &self,
        ctx: &Ctx<'js>,
        v: &JsValue<'js>,
        what: &str,
    ) -> rquickjs::Result<Value> {
        let get_time = self
            .date_get_time
            .borrow()
            .clone()
            .ok_or_else(|| Exception::throw_internal(ctx, "contract runtime not initialised"))?
            .restore(ctx)?;
        let conv = FromJs {
            ctx,
            date_get_time: &get_time,
        };
        match conv.convert(v) {
            Ok(v) => Ok(v),
            Err(FromJsError::Js) => Err(rquickjs::Error::Exception),
            Err(FromJsError::Value(e)) => Err(Exception::throw_type(ctx, &format!("{what}: {e}"))),
        }
    }
}

/// What a contract exports, as seen at load.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExportInfo {
    pub methods: Vec<MethodSignature>,
    pub has_apply: bool,
    pub has_process: bool,
}

/// A thrown JS value, described on the host side.
#[derive(Debug, Clone)]
pub(crate) enum Thrown {
    /// An `Error` (or subclass) instance.
    Error { name: String, message: String },
    /// Anything else, as `String(value)`.
    Value(String),
    /// An object that is not an `Error`, as `String(value)`.
    Object(String),
}

/// Error names JS Vitra 0.1.3 reports as a `ContractRuntimeError` (its `ContractRuntimeError.isa`).
const RUNTIME_ERROR_NAMES: [&str; 3] = ["ReferenceError", "InternalError", "RangeError"];

impl Thrown {
    /// What JS Vitra 0.1.3 writes into an ack for this error. Its sandbox hands the host a
    /// plain `Error` carrying only the message, so every error reads `Error: <message>`
    /// (`Error: <name>` without a message), except the three names it wraps in a
    /// `ContractRuntimeError`; a thrown non-error reads `Error` (a primitive, whose text is
    /// lost) or isolated-vm's complaint (an object). Observed with the real 0.1.3 (see
    /// `fixtures/js-vitra-more`). The wording of engine-made messages (`TypeError`s of
    /// QuickJS against V8's) can still differ.
    pub fn ack_string(&self) -> String {
        match self {
            Thrown::Error { name, message } if RUNTIME_ERROR_NAMES.contains(&name.as_str()) => {
                format!("ContractRuntimeError: The contract failed to execute with \"{name}: {message}\"")
            }
            Thrown::Error { name, message } if message.is_empty() => format!("Error: {name}"),
            Thrown::Error { message, .. } => format!("Error: {message}"),
            Thrown::Value(_) => "Error".into(),
            Thrown::Object(_) => "Error: An object was thrown from supplied code within \
                                  isolated-vm, but that object was not an instance of `Error`."
                .into(),
        }
    }

    /// `name: message` (or the thrown value's text), for people.
    pub fn describe(&self) -> String {
        match self {
            Thrown::Error { name, message } if message.is_empty() => name.clone(),
            Thrown::Error { name, message } => format!("{name}: {message}"),
            Thrown::Value(s) | Thrown::Object(s) => s.clone(),
        }
    }

    fn into_error(self, during: Phase) -> ContractError {
        match self {
            Thrown::Error { name, message }
                if name == "RangeError" && message == "Maximum call stack size exceeded" =>
            {
                ContractError::StackOverflow { during }
            }
            Thrown::Error { name, message } => ContractError::Runtime {
                during,
                name,
                message,
            },
            Thrown::Value(value) | Thrown::Object(value) => {
                ContractError::ThrewNonError { during, value }
            }
        }
    }
}

/// How a call ended inside the engine, before the flags are consulted.
enum Ended {
    Value(Value),
    Threw(Thrown),
    NeverSettled,
    BadValue(String),
    Engine(String),
}

/// A loaded contract: the runtime, its context and handles to what calls need.
///
/// Field order matters: handles into the runtime are dropped before the context and the
/// runtime themselves.
pub(crate) struct Engine {
    namespace: Persistent<JsObject<'static>>,
    emit: Persistent<Function<'static>>,
    tx: Persistent<JsObject<'static>>,
    shared: Rc<Shared>,
    limits: Limits,
    pub exports: ExportInfo,
    context: Context,
    _runtime: Runtime,
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.context.with(|ctx| {
            let _ = ctx.remove_userdata::<BuiltinExports>();
        });
        self.shared.date_get_time.borrow_mut().take();
    }
}

fn update_stack_top(ctx: &Ctx<'_>) {
    // SAFETY: the runtime of a live context; this only records the current stack position so
    // the stack limit counts from here.
    unsafe { qjs::JS_UpdateStackTop(qjs::JS_GetRuntime(ctx.as_raw().as_ptr())) };
}

fn engine_err(during: &Phase, e: impl std::fmt::Display) -> ContractError {
    ContractError::Engine {
        during: during.clone(),
        message: e.to_string(),
    }
}

impl Engine {
    /// Creates the runtime, hardens it, and loads and evaluates `source`.
    pub fn load(
        source: &str,
        limits: &Limits,
        host: &dyn ContractHost,
    ) -> Result<Engine, ContractError> {
        let during = Phase::Load;
        let alloc = Rc::new(AllocState {
            used: Cell::new(0),
            limit: limits.memory_bytes,
            exceeded: Cell::new(false),
        });
        let runtime = Runtime::new_with_alloc(LimitedAlloc {
            state: alloc.clone(),
        })
        .map_err(|_| ContractError::MemoryLimit {
            limit_bytes: limits.memory_bytes,
            during: during.clone(),
        })?;
        runtime.set_max_stack_size(limits.stack_bytes);
        let shared = Rc::new(Shared {
            mode: Cell::new(Mode::Idle),
            deadline: Cell::new(None),
            timed_out: Cell::new(false),
            alloc,
            host: HostSlot(Cell::new(None)),
            host_failure: RefCell::new(None),
            emitted: RefCell::new(Vec::new()),
            actions: RefCell::new(None),
            refused_import: RefCell::new(None),
            date_get_time: RefCell::new(None),
        });
        {
            let s = shared.clone();
            runtime.set_interrupt_handler(Some(Box::new(move || s.should_interrupt())));
        }
        runtime.set_loader(
            BuiltinResolver {
                shared: shared.clone(),
            },
            BuiltinLoader,
        );
        let context = Context::custom::<(
            intrinsic::Date,
            intrinsic::Eval,
            intrinsic::RegExpCompiler,
            intrinsic::RegExp,
            intrinsic::Json,
            intrinsic::Proxy,
            intrinsic::MapSet,
            intrinsic::TypedArrays,
            intrinsic::Promise,
        )>(&runtime)
        .map_err(|_| ContractError::MemoryLimit {
            limit_bytes: limits.memory_bytes,
            during: during.clone(),
        })?;

        shared.begin(Mode::Load, limits);
        let result = shared.host.with(host, || {
            context.with(|ctx| -> Result<_, ContractError> {
                update_stack_top(&ctx);
                // The bootstrap is our own code: the contract's budget starts after it.
                shared.deadline.set(None);
                let setup = Self::bootstrap(&ctx, &shared);
                shared
                    .deadline
                    .set(Instant::now().checked_add(limits.time_budget));
                let (emit, tx, fn_to_string) = match setup {
                    Ok(v) => v,
                    Err(e) => {
                        let thrown = describe_caught(&ctx, e);
                        return Err(
                            match Self::classify(
                                &shared,
                                limits,
                                during.clone(),
                                Ended::Threw(thrown),
                            ) {
                                Err(e) => e,
                                Ok(Err(t)) => engine_err(
                                    &during,
                                    format!("sandbox setup failed: {}", t.describe()),
                                ),
                                Ok(Ok(_)) => engine_err(&during, "sandbox setup failed"),
                            },
                        );
                    }
                };
                let module = match Module::declare(ctx.clone(), MAIN_MODULE, source) {
                    Ok(m) => m,
                    Err(e) => {
                        if let Some(specifier) = shared.refused_import.borrow_mut().take() {
                            let _ = ctx.catch();
                            return Err(ContractError::ForbiddenImport { specifier });
                        }
                        if shared.alloc.exceeded.get() {
                            return Err(ContractError::MemoryLimit {
                                limit_bytes: limits.memory_bytes,
                                during: during.clone(),
                            });
                        }
                        let stack = parse_location(&ctx);
                        return Err(match describe_caught(&ctx, e) {
                            Thrown::Error { name, message } if stack.is_some() => {
                                ContractError::Parse {
                                    name,
                                    message: format!(
                                        "{message} (at {})",
                                        stack.unwrap_or_default()
                                    ),
                                }
                            }
                            Thrown::Error { name, message } => {
                                ContractError::Parse { name, message }
                            }
                            Thrown::Value(message) | Thrown::Object(message) => {
                                ContractError::Parse {
                                    name: "SyntaxError".into(),
                                    message,
                                }
                            }
                        });
                    }
                };
                let evaluated = match module.eval() {
                    Ok((evaluated, promise)) => {
                        let ended = settle(&ctx, &shared, Ok(promise.into_value()));
                        drain(&ctx, &shared);
                        match ended {
                            Settled::Value(_) => evaluated,
                            other => {
                                let ended = other.into_ended(&ctx);
                                return Err(Self::load_failure(&shared, limits, ended));
                            }
                        }
                    }
                    Err(e) => {
                        let thrown = describe_caught(&ctx, e);
                        return Err(Self::load_failure(&shared, limits, Ended::Threw(thrown)));
                    }
                };
                if let Some(e) = Self::flag_error(&shared, limits, &during) {
                    return Err(e);
                }
                let namespace = evaluated.namespace().map_err(|e| engine_err(&during, e))?;
                let exports = Self::export_info(&ctx, &namespace, &fn_to_string)
                    .map_err(|e| engine_err(&during, e))?;
                Ok((
                    Persistent::save(&ctx, namespace),
                    Persistent::save(&ctx, emit),
                    Persistent::save(&ctx, tx),
                    exports,
                ))
            })
        });
        shared.end();
        let (namespace, emit, tx, exports) = match result {
            Ok(parts) => parts,
            Err(e) => {
                context.with(|ctx| {
                    let _ = ctx.remove_userdata::<BuiltinExports>();
                });
                shared.date_get_time.borrow_mut().take();
                return Err(e);
            }
        };
        Ok(Engine {
            namespace,
            emit,
            tx,
            shared,
            limits: limits.clone(),
            exports,
            context,
            _runtime: runtime,
        })
    }

    fn load_failure(shared: &Shared, limits: &Limits, ended: Ended) -> ContractError {
        if let Some(spec) = shared.refused_import.borrow_mut().take() {
            return ContractError::ForbiddenImport { specifier: spec };
        }
        match Self::classify(shared, limits, Phase::Load, ended) {
            Err(e) => e,
            Ok(Err(thrown)) => thrown.into_error(Phase::Load),
            Ok(Ok(_)) => engine_err(&Phase::Load, "module evaluation failed"),
        }
    }

    /// Builds the natives, runs the sandbox bootstrap and installs the built-in modules.
    fn bootstrap<'js>(
        ctx: &Ctx<'js>,
        shared: &Rc<Shared>,
    ) -> rquickjs::Result<(Function<'js>, JsObject<'js>, Function<'js>)> {
        let natives = natives(ctx, shared)?;
        let emit: Function = natives.get("emit")?;
        let boot: Function = ctx.eval(SANDBOX_JS)?;
        let out: JsObject = boot.call((natives,))?;
        let modules: JsObject = out.get("modules")?;
        let tx: JsObject = out.get("tx")?;
        let get_time: Function = out.get("dateGetTime")?;
        let fn_to_string: Function = out.get("functionToString")?;
        *shared.date_get_time.borrow_mut() = Some(Persistent::save(ctx, get_time));
        ctx.store_userdata(BuiltinExports(modules))
            .map_err(|_| Exception::throw_internal(ctx, "cannot install built-in modules"))?;
        Ok((emit, tx, fn_to_string))
    }

    fn export_info<'js>(
        ctx: &Ctx<'js>,
        ns: &JsObject<'js>,
        fn_to_string: &Function<'js>,
    ) -> rquickjs::Result<ExportInfo> {
        let mut info = ExportInfo::default();
        let keys: Vec<String> = ns
            .own_keys::<String>(Filter::new().string())
            .collect::<rquickjs::Result<_>>()?;
        for key in keys {
            let v: JsValue = ns.get(key.as_str())?;
            match key.as_str() {
                "apply" => info.has_apply = v.is_function() || v.is_object(),
                "process" => info.has_process = v.is_function(),
                _ if v.is_function() => {
                    let source: JsValue = fn_to_string.call((This(v.clone()),))?;
                    let params = string_arg(ctx, &source).and_then(|s| first_parameter(&s));
                    info.methods.push(MethodSignature { name: key, params });
                }
                _ => {}
            }
        }
        Ok(info)
    }

    /// Errors raised by the flags (host failure, memory, time), which win over any outcome.
    fn flag_error(shared: &Shared, limits: &Limits, during: &Phase) -> Option<ContractError> {
        if let Some(m) = shared.host_failure.borrow_mut().take() {
            return Some(ContractError::Host {
                during: during.clone(),
                message: m,
            });
        }
        if shared.alloc.exceeded.get() {
            return Some(ContractError::MemoryLimit {
                limit_bytes: limits.memory_bytes,
                during: during.clone(),
            });
        }
        if shared.timed_out.get() {
            return Some(ContractError::Timeout {
                budget: limits.time_budget,
                during: during.clone(),
            });
        }
        None
    }

    /// The final result of a call: flags first, then how the JS side ended.
    fn classify(
        shared: &Shared,
        limits: &Limits,
        during: Phase,
        ended: Ended,
    ) -> Result<Result<Value, Thrown>, ContractError> {
        if let Some(e) = Self::flag_error(shared, limits, &during) {
            return Err(e);
        }
        match ended {
            Ended::Value(v) => Ok(Ok(v)),
            Ended::Threw(t) => Ok(Err(t)),
            Ended::NeverSettled => Err(ContractError::NeverSettled { during }),
            Ended::BadValue(reason) => Err(ContractError::BadValue { during, reason }),
            Ended::Engine(message) => Err(ContractError::Engine { during, message }),
        }
    }

    /// Runs `body` inside a call of kind `mode` with `host` installed.
    fn run<T>(&self, mode: Mode, host: &dyn ContractHost, body: impl FnOnce(&Ctx<'_>) -> T) -> T {
        self.shared.begin(mode, &self.limits);
        let out = self.shared.host.with(host, || {
            self.context.with(|ctx| {
                update_stack_top(&ctx);
                body(&ctx)
            })
        });
        self.shared.end();
        out
    }

    /// Converts a settled JS value to a [`Value`].
    fn finish<'js>(&self, ctx: &Ctx<'js>, settled: Settled<'js>, what: &str) -> Ended {
        match settled {
            Settled::Value(v) => match self.convert(ctx, &v) {
                Ok(v) => Ended::Value(v),
                Err(FromJsError::Value(e)) => Ended::BadValue(format!("{what}: {e}")),
                Err(FromJsError::Js) => Ended::Threw(describe_exception(ctx)),
            },
            other => other.into_ended(ctx),
        }
    }

    fn convert<'js>(&self, ctx: &Ctx<'js>, v: &JsValue<'js>) -> Result<Value, FromJsError> {
        let get_time = self
            .shared
            .date_get_time
            .borrow()
            .clone()
            .ok_or(FromJsError::Js)?
            .restore(ctx)?;
        FromJs {
            ctx,
            date_get_time: &get_time,
        }
        .convert(v)
    }

    /// Calls exported method `method` (`a.b` reaches into an exported object).
    pub fn call(
        &self,
        method: &str,
        params: &Value,
        host: &dyn ContractHost,
    ) -> Result<CallOutcome, ContractError> {
        let during = Phase::Method(method.to_owned());
        let ended = self.run(Mode::Method, host, |ctx| -> Result<Ended, ContractError> {
            let ns = self
                .namespace
                .clone()
                .restore(ctx)
                .map_err(|e| engine_err(&during, e))?;
            let Some(func) = lookup_method(&ns, method) else {
                return Err(ContractError::MethodNotFound {
                    method: method.to_owned(),
                });
            };
            let emit = self
                .emit
                .clone()
                .restore(ctx)
                .map_err(|e| engine_err(&during, e))?;
            let ret = to_js(ctx, params).and_then(|p| func.call::<_, JsValue>((p, emit)));
            let settled = settle(ctx, &self.shared, ret);
            let ended = self.finish(ctx, settled, "the method's result");
            drain(ctx, &self.shared);
            Ok(ended)
        });
        let ops = std::mem::take(&mut *self.shared.emitted.borrow_mut());
        let ended = ended?;
        match Self::classify(&self.shared, &self.limits, during.clone(), ended)? {
            Ok(response) => Ok(CallOutcome { response, ops }),
            Err(thrown) => Err(thrown.into_error(during)),
        }
    }

    /// Calls `process(op)`; `Undefined` when the contract has none.
    pub fn process(&self, op: &Value, host: &dyn ContractHost) -> Result<Value, ContractError> {
        let during = Phase::Process;
        let ended = self.run(
            Mode::Process,
            host,
            |ctx| -> Result<Option<Ended>, ContractError> {
                let ns = self
                    .namespace
                    .clone()
                    .restore(ctx)
                    .map_err(|e| engine_err(&during, e))?;
                let f: JsValue = ns.get("process").map_err(|e| engine_err(&during, e))?;
                let Some(f) = f.into_function() else {
                    return Ok(None);
                };
                let ret = to_js(ctx, op).and_then(|o| f.call::<_, JsValue>((o,)));
                let settled = settle(ctx, &self.shared, ret);
                let ended = self.finish(ctx, settled, "process()'s result");
                drain(ctx, &self.shared);
                Ok(Some(ended))
            },
        )?;
        let Some(ended) = ended else {
            return Ok(Value::Undefined);
        };
        match Self::classify(&self.shared, &self.limits, during.clone(), ended)? {
            Ok(v) => Ok(v),
            Err(thrown) => Err(thrown.into_error(during)),
        }
    }

    /// Calls `apply(tx, op, ack)` and collects the transactor's actions.
    pub fn apply(
        &self,
        op: &Value,
        ack: &Value,
        host: &dyn ContractHost,
    ) -> Result<ApplyOutcome, ContractError> {
        let during = Phase::Apply;
        let op_name = op.get("op").and_then(Value::as_str).map(str::to_owned);
        let result = self.run(
            Mode::Apply,
            host,
            |ctx| -> Result<(Ended, Option<Actions>), ContractError> {
                let ns = self
                    .namespace
                    .clone()
                    .restore(ctx)
                    .map_err(|e| engine_err(&during, e))?;
                let export: JsValue = ns.get("apply").map_err(|e| engine_err(&during, e))?;
                let handler = match apply_handler(&export, op_name.as_deref()) {
                    Ok(h) => h,
                    Err(e) => return Err(engine_err(&during, e)),
                };
                let Some(handler) = handler else {
                    let t = Thrown::Error {
                        name: "Error".into(),
                        message: "Method not found: apply".into(),
                    };
                    return Ok((Ended::Threw(t), None));
                };
                let tx = self
                    .tx
                    .clone()
                    .restore(ctx)
                    .map_err(|e| engine_err(&during, e))?;
                *self.shared.actions.borrow_mut() = Some(Actions::new());
                let ret = to_js(ctx, op).and_then(|o| {
                    let a = to_js(ctx, ack)?;
                    handler.call::<_, JsValue>((tx, o, a))
                });
                let settled = settle(ctx, &self.shared, ret);
                // The transactor closes when apply settles: later writes are refused.
                let actions = self.shared.actions.borrow_mut().take();
                let ended = match settled {
                    Settled::Value(_) => Ended::Value(Value::Undefined),
                    other => other.into_ended(ctx),
                };
                drain(ctx, &self.shared);
                Ok((ended, actions))
            },
        );
        let (ended, actions) = result?;
        match Self::classify(&self.shared, &self.limits, during.clone(), ended)? {
            Ok(_) => Ok(ApplyOutcome::Applied {
                changes: actions.unwrap_or_default().into_changes(),
            }),
            Err(thrown) => Ok(ApplyOutcome::Rejected {
                error: thrown.ack_string(),
            }),
        }
    }
}

/// A call's JS result after the job queue ran.
enum Settled<'js> {
    Value(JsValue<'js>),
    Threw(JsValue<'js>),
    Pending,
    Aborted,
    Engine(String),
}

impl<'js> Settled<'js> {
    fn into_ended(self, ctx: &Ctx<'js>) -> Ended {
        match self {
            // Callers convert values themselves; a value here means "nothing to report".
            Settled::Value(_) => Ended::Value(Value::Undefined),
            Settled::Threw(v) => Ended::Threw(describe_value(ctx, v)),
            Settled::Pending => Ended::NeverSettled,
            // The flags say why (time, memory, host); the thrown value is not the story.
            Settled::Aborted => Ended::NeverSettled,
            Settled::Engine(m) => Ended::Engine(m),
        }
    }
}

/// Runs the job queue until the call's result (a promise or a plain value) has settled.
fn settle<'js>(
    ctx: &Ctx<'js>,
    shared: &Shared,
    ret: rquickjs::Result<JsValue<'js>>,
) -> Settled<'js> {
    let v = match ret {
        Ok(v) => v,
        Err(rquickjs::Error::Exception) => {
            let thrown = ctx.catch();
            return if shared.aborted() {
                Settled::Aborted
            } else {
                Settled::Threw(thrown)
            };
        }
        Err(e) => {
            return if shared.aborted() {
                Settled::Aborted
            } else {
                Settled::Engine(e.to_string())
            }
        }
    };
    let Some(promise) = v.as_promise().cloned() else {
        return Settled::Value(v);
    };
    loop {
        if shared.aborted() {
            return Settled::Aborted;
        }
        match promise.state() {
            PromiseState::Pending => {
                if !ctx.execute_pending_job() {
                    return if shared.aborted() {
                        Settled::Aborted
                    } else {
                        Settled::Pending
                    };
                }
            }
            PromiseState::Resolved => {
                return match promise.result::<JsValue>() {
                    Some(Ok(v)) => Settled::Value(v),
                    _ => Settled::Engine("a resolved promise has no value".into()),
                };
            }
            PromiseState::Rejected => {
                let _ = promise.result::<JsValue>();
                return Settled::Threw(ctx.catch());
            }
        }
    }
}

/// Runs every job left in the queue, so nothing of this call runs during the next one.
fn drain(ctx: &Ctx<'_>, shared: &Shared) {
    while !shared.aborted() && ctx.execute_pending_job() {}
}

/// Describes the pending exception behind an `rquickjs::Error`.
fn describe_caught(ctx: &Ctx<'_>, e: rquickjs::Error) -> Thrown {
    match e {
        rquickjs::Error::Exception => describe_exception(ctx),
        other => Thrown::Error {
            name: "InternalError".into(),
            message: other.to_string(),
        },
    }
}

fn describe_exception(ctx: &Ctx<'_>) -> Thrown {
    let v = ctx.catch();
    describe_value(ctx, v)
}

/// Describes a thrown value: name and message of an `Error`, `String(value)` otherwise.
fn describe_value<'js>(ctx: &Ctx<'js>, v: JsValue<'js>) -> Thrown {
    let text = |v: &JsValue<'js>| -> Option<String> {
        if v.is_string() {
            return js_string(ctx, v).ok();
        }
        // SAFETY: `v` is a live value of `ctx`; JS_ToString returns an owned value or an
        // exception, which the wrapper takes over.
        let s = unsafe {
            JsValue::from_raw(
                ctx.clone(),
                qjs::JS_ToString(ctx.as_raw().as_ptr(), v.as_raw()),
            )
        };
        if s.is_exception() {
            let _ = ctx.catch();
            return None;
        }
        js_string(ctx, &s).ok()
    };
    if v.is_error() {
        if let Some(obj) = v.as_object() {
            let name = obj
                .get::<_, JsValue>("name")
                .ok()
                .and_then(|n| if n.is_undefined() { None } else { text(&n) })
                .unwrap_or_else(|| "Error".into());
            let message = obj
                .get::<_, JsValue>("message")
                .ok()
                .and_then(|m| {
                    if m.is_undefined() {
                        Some(String::new())
                    } else {
                        text(&m)
                    }
                })
                .unwrap_or_default();
            return Thrown::Error { name, message };
        }
    }
    let described =
        text(&v).unwrap_or_else(|| format!("[{} that cannot be printed]", v.type_name()));
    if v.is_object() {
        Thrown::Object(described)
    } else {
        Thrown::Value(described)
    }
}

/// The exported function `path` (`a` or `a.b.c`); `apply` and `process` are never methods.
fn lookup_method<'js>(ns: &JsObject<'js>, path: &str) -> Option<Function<'js>> {
    let mut parts = path.split('.');
    let first = parts.next()?;
    if first == "apply" || first == "process" || first.is_empty() {
        return None;
    }
    let mut cur: JsValue = ns.get(first).ok()?;
    for part in parts {
        let obj = cur.as_object()?.clone();
        cur = obj.get(part).ok()?;
    }
    cur.into_function()
}

/// The function that handles an op: `apply` itself, or `apply[op.op]` (own property) when
/// `apply` is an object.
fn apply_handler<'js>(
    export: &JsValue<'js>,
    op_name: Option<&str>,
) -> rquickjs::Result<Option<Function<'js>>> {
    if let Some(f) = export.as_function() {
        return Ok(Some(f.clone()));
    }
    let (Some(obj), Some(name)) = (export.as_object(), op_name) else {
        return Ok(None);
    };
    let own: Vec<String> = obj
        .own_keys::<String>(Filter::new().string())
        .collect::<rquickjs::Result<_>>()?;
    if !own.iter().any(|k| k == name) {
        return Ok(None);
    }
    let v: JsValue = obj.get(name)?;
    Ok(v.into_function())
}

/// `contract.js:LINE:COL` of the pending exception (a syntax error), left pending.
fn parse_location(ctx: &Ctx<'_>) -> Option<String> {
    let v = ctx.catch();
    let loc = v
        .as_object()
        .and_then(|o| o.get::<_, JsValue>("stack").ok())
        .and_then(|s| string_arg(ctx, &s))
        .and_then(|s| {
            let at = s.find(MAIN_MODULE)?;
            let rest = &s[at..];
            let end = rest
                .find(|c: char| c.is_whitespace() || c == ')')
                .unwrap_or(rest.len());
            Some(rest[..end].to_owned())
        });
    let _ = ctx.throw(v);
    loc
}
