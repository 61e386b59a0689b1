//! A database shared by many callers, with group commit across them.
//!
//! [`SharedDatabase`] gives one [`Database`] to a thread of its own (the *owner*) and lets
//! any number of threads call it. Calls that arrive while the owner is busy (running
//! contracts, waiting for the disk, executing) queue up and are committed together: one
//! [`Database::call_batch`], one signed append, one wait for the disk, however many calls the
//! group holds. Each call still returns only once its operations are as durable as the
//! database's [`Options::durability`](super::Options) says, each with its own inclusion
//! proofs; a lone caller gets exactly what [`Database::call`] gives. When the database is the
//! executor, the owner runs it after each group (after several, while more calls keep
//! arriving and fewer than 256 await it) and whenever it has been idle for
//! [`EXECUTE_WHEN_IDLE`], so operations are processed while callers keep calling, as JS
//! Vitra's executor loop does. A panic in a [`SharedDatabase::with`] closure stops the owner
//! (the database may be half-changed); every later request gets
//! [`DatabaseError::OwnerStopped`].
//!
//! The owner also replicates, when asked to ([`SharedDatabase::listen`],
//! [`SharedDatabase::connect`]): between groups it handles peers' requests and announces its
//! appends, and as executor it processes the operations peers bring, so one process serves
//! many local callers and its peers at once. Network I/O runs on a runtime thread of its own;
//! every change to the database happens on the owner thread.
//!
//! What this module must never do: answer a call before its append is durable, reorder one
//! caller's requests, let one failing call fail the others of its group, or drop a request
//! without an answer (a caller whose owner is gone gets [`DatabaseError::OwnerStopped`]).

use super::{Database, DatabaseError, OpResult, Result, Transaction, WaitEnd};
use crate::codec::Value;
use crate::net::replicate::{Download, Event, Replicator, ReplicatorConfig};
use futures::FutureExt as _;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// How long an idle executor waits before looking for operations that reached its oplogs by
/// other ways (replication, another process's appends).
pub const EXECUTE_WHEN_IDLE: Duration = Duration::from_millis(50);

/// The most calls committed in one group (one append); more wait for the next.
pub const MAX_GROUP: usize = 1024;

/// How many committed calls may wait for the executor while more calls keep arriving.
const EXECUTE_BACKLOG: u64 = 256;

/// What the owner has done so far ([`SharedDatabase::stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Calls answered.
    pub calls: u64,
    /// Groups committed (one [`Database::call_batch`] each).
    pub groups: u64,
    /// The most calls one group held.
    pub largest_group: u64,
    /// Operations the executor processed.
    pub executed: u64,
    /// The last executor run that failed, if the latest one did.
    pub executor_error: Option<String>,
}

type Job = Box<dyn FnOnce(&mut Database) + Send>;

/// Where the owner sends an answer: a blocked thread's channel or an async task's oneshot.
type Reply<T> = Box<dyn FnOnce(T) + Send>;

/// One request to the owner.
enum Request {
    Call {
        method: String,
        params: Value,
        reply: Reply<Result<Transaction>>,
    },
    Wait {
        tx: Box<Transaction>,
        started: Instant,
        deadline: Instant,
        reply: Reply<Result<Vec<OpResult>>>,
    },
    Run(Job),
    Stats(Reply<GroupStats>),
    Listen {
        addr: String,
        reply: Reply<Result<SocketAddr>>,
    },
    Connect {
        addr: String,
        reply: Reply<Result<()>>,
    },
}

/// A [`Database`] owned by a thread of its own and callable from any thread; concurrent
/// calls are committed in groups: the calls that arrive while the owner is busy (running
/// contracts, waiting for the disk, executing) share one append and one wait for the disk.
///
/// ```no_run
/// use vitra::database::{Database, Location, Options, SharedDatabase};
/// use vitra::codec::Value;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let source = "export function hello () { return 'hi' }".to_owned();
/// let db = SharedDatabase::open(move || {
///     Database::create(Location::Dir("db".into()), &source, Options::default())
/// })?;
/// std::thread::scope(|s| {
///     for _ in 0..4 {
///         s.spawn(|| db.call("hello", &Value::Null));
///     }
/// });
/// db.close()?;
/// # Ok(()) }
/// ```
pub struct SharedDatabase {
    requests: Option<UnboundedSender<Request>>,
    owner: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SharedDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedDatabase")
            .field("open", &self.requests.is_some())
            .finish()
    }
}

impl SharedDatabase {
    /// Starts the owner thread, which opens the database with `open` (a [`Database`] stays
    /// on the thread that made it) and then serves calls. Returns `open`'s error, if any.
    pub fn open(open: impl FnOnce() -> Result<Database> + Send + 'static) -> Result<Self> {
        let (requests, inbox) = unbounded_channel();
        let (opened, opened_rx) = mpsc::channel();
        let owner = std::thread::Builder::new()
            .name("vitra-database".into())
            .spawn(move || {
                // Network tasks run on the runtime's worker; the owner's loop on this thread.
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("vitra-database-net")
                    .enable_all()
                    .build();
                let runtime = match runtime {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = opened.send(Err(DatabaseError::OwnerStopped {
                            reason: format!("cannot start the network runtime: {e}"),
                        }));
                        return;
                    }
                };
                match open() {
                    Ok(db) => {
                        let _ = opened.send(Ok(()));
                        runtime.block_on(Owner::new(db).serve(inbox));
                    }
                    Err(e) => {
                        let _ = opened.send(Err(e));
                    }
                }
            })
            .map_err(|e| DatabaseError::OwnerStopped {
                reason: format!("cannot start the database thread: {e}"),
            })?;
        let started = opened_rx.recv().map_err(|_| DatabaseError::OwnerStopped {
            reason: "the database thread stopped while opening".into(),
        });
        match started.and_then(|opened| opened) {
            Ok(()) => Ok(SharedDatabase {
                requests: Some(requests),
                owner: Some(owner),
            }),
            Err(e) => {
                let _ = owner.join();
                Err(e)
            }
        }
    }

    /// Serves the database to peers on `addr` (HOST:PORT, port 0 for any) from now until it
    /// is closed, as [`Database::serve`] does; returns the bound address. Every log is
    /// replicated in full; the owner announces its appends as it makes them.
    pub fn listen(&self, addr: &str) -> Result<SocketAddr> {
        self.ask(|reply| Request::Listen {
            addr: addr.to_owned(),
            reply,
        })?
    }

    /// Connects to the peer at `addr` (HOST:PORT) and keeps replicating with it until the
    /// database is closed: a replica follows the executor this way, and a participant's
    /// appends reach it.
    pub fn connect(&self, addr: &str) -> Result<()> {
        self.ask(|reply| Request::Connect {
            addr: addr.to_owned(),
            reply,
        })?
    }

    /// Calls contract method `method` with `params`, as [`Database::call`] does, committed
    /// together with whatever other calls are waiting. Returns once its operations are
    /// appended (and synced, by default), with their inclusion proofs.
    pub fn call(&self, method: &str, params: &Value) -> Result<Transaction> {
        self.ask(|reply| call_request(method, params, reply))?
    }

    /// [`SharedDatabase::call`] for async code: the task waits, not its thread.
    pub async fn call_async(&self, method: &str, params: &Value) -> Result<Transaction> {
        self.ask_async(|reply| call_request(method, params, reply))
            .await?
    }

    /// Waits until every operation of `tx` is processed, as [`Database::when_processed`]
    /// does, without holding up other callers meanwhile.
    pub fn when_processed(&self, tx: &Transaction, timeout: Duration) -> Result<Vec<OpResult>> {
        self.ask(|reply| wait_request(tx, timeout, reply))?
    }

    /// [`SharedDatabase::when_processed`] for async code.
    pub async fn when_processed_async(
        &self,
        tx: &Transaction,
        timeout: Duration,
    ) -> Result<Vec<OpResult>> {
        self.ask_async(|reply| wait_request(tx, timeout, reply))
            .await?
    }

    /// Runs `f` on the database, on the owner thread, between two groups of calls: anything
    /// [`Database`] offers (reads, proofs, verification, adding participants).
    pub fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Database) -> R + Send + 'static,
    ) -> Result<R> {
        self.ask(|reply| Request::Run(Box::new(move |db| reply(f(db)))))
    }

    /// [`SharedDatabase::with`] for async code.
    pub async fn with_async<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Database) -> R + Send + 'static,
    ) -> Result<R> {
        self.ask_async(|reply| Request::Run(Box::new(move |db| reply(f(db)))))
            .await
    }

    /// What the owner has done so far.
    pub fn stats(&self) -> Result<GroupStats> {
        self.ask(Request::Stats)
    }

    /// Answers every request already sent, closes the database and waits for its thread.
    pub fn close(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        drop(self.requests.take());
        match self.owner.take().map(JoinHandle::join) {
            Some(Err(_)) => Err(DatabaseError::OwnerStopped {
                reason: "the database thread panicked".into(),
            }),
            _ => Ok(()),
        }
    }

    /// Sends the request `make` builds around a reply, and blocks this thread for the answer.
    fn ask<T: Send + 'static>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T> {
        let (reply, answer) = mpsc::channel();
        self.send(make(Box::new(move |value| {
            let _ = reply.send(value);
        })))?;
        receive(answer.recv().ok())
    }

    /// [`SharedDatabase::ask`] for async code: the task waits, not its thread.
    async fn ask_async<T: Send + 'static>(
        &self,
        make: impl FnOnce(Reply<T>) -> Request,
    ) -> Result<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(make(Box::new(move |value| {
            let _ = reply.send(value);
        })))?;
        receive(answer.await.ok())
    }

    fn send(&self, request: Request) -> Result<()> {
        self.requests
            .as_ref()
            .and_then(|requests| requests.send(request).ok())
            .ok_or_else(|| DatabaseError::OwnerStopped {
                reason: "the database thread is gone".into(),
            })
    }
}

/// Dropping the last handle closes the database as [`SharedDatabase::close`] does, waiting for
/// the owner thread (in async code, prefer `close` from a blocking task).
impl Drop for SharedDatabase {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn call_request(method: &str, params: &Value, reply: Reply<Result<Transaction>>) -> Request {
    Request::Call {
        method: method.to_owned(),
        params: params.clone(),
        reply,
    }
}

fn wait_request(
    tx: &Transaction,
    timeout: Duration,
    reply: Reply<Result<Vec<OpResult>>>,
) -> Request {
    let started = Instant::now();
    Request::Wait {
        tx: Box::new(tx.clone()),
        started,
        deadline: started + timeout,
        reply,
    }
}

/// An answer, or the error of an owner that stopped before giving one.
fn receive<T>(answer: Option<T>) -> Result<T> {
    answer.ok_or_else(|| DatabaseError::OwnerStopped {
        reason: "the database thread stopped before answering".into(),
    })
}

/// A caller waiting in [`SharedDatabase::when_processed`].
struct Waiter {
    tx: Box<Transaction>,
    started: Instant,
    deadline: Instant,
    reply: Reply<Result<Vec<OpResult>>>,
}

/// The owner thread's state.
struct Owner {
    db: Database,
    waiters: Vec<Waiter>,
    stats: GroupStats,
    /// Whether the last executor run found nothing to process.
    executor_idle: bool,
    /// Calls committed since the last executor run.
    unexecuted: u64,
    /// The replicator, once the database listens or connects.
    replicator: Option<Replicator>,
    /// Each log's length and fork when last announced to peers.
    announced: Vec<([u8; 32], u64, u64)>,
    /// `listen` / `connect` requests waiting for the loop (they await the network).
    network: Vec<Request>,
}

/// What woke the owner.
enum Wake {
    Request(Request),
    Peer(Box<Event>),
    Timer,
    Closed,
}

/// The replicator's next event; never, without one.
async fn next_event(replicator: &mut Option<Replicator>) -> Option<Event> {
    match replicator {
        Some(replicator) => replicator.next_event().await,
        None => std::future::pending().await,
    }
}

/// Sleeps `wait`; never wakes without one.
async fn sleep_for(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}

impl Owner {
    fn new(db: Database) -> Self {
        Owner {
            db,
            waiters: Vec::new(),
            stats: GroupStats::default(),
            executor_idle: false,
            unexecuted: 0,
            replicator: None,
            announced: Vec::new(),
            network: Vec::new(),
        }
    }

    /// Serves requests (and peers, once replicating) until every [`SharedDatabase`] handle
    /// is gone.
    async fn serve(mut self, mut inbox: UnboundedReceiver<Request>) {
        let mut next = None;
        loop {
            let wake = match next.take() {
                Some(request) => Wake::Request(request),
                None => {
                    let wait = self.wake_in();
                    tokio::select! {
                        request = inbox.recv() => request.map_or(Wake::Closed, Wake::Request),
                        event = next_event(&mut self.replicator) => {
                            event.map_or(Wake::Timer, |e| Wake::Peer(Box::new(e)))
                        }
                        () = sleep_for(wait) => Wake::Timer,
                    }
                }
            };
            match wake {
                Wake::Request(request) => {
                    let mut calls = Vec::new();
                    self.take(request, &mut calls);
                    while calls.len() < MAX_GROUP {
                        match inbox.try_recv() {
                            Ok(request) => self.take(request, &mut calls),
                            Err(_) => break,
                        }
                    }
                    self.commit(&mut calls);
                    self.start_network().await;
                    // Callers already waiting go first while the backlog is small: one
                    // executor run (one index append) then covers several groups.
                    if self.unexecuted < EXECUTE_BACKLOG && self.waiters.is_empty() {
                        if let Ok(request) = inbox.try_recv() {
                            next = Some(request);
                            self.announce();
                            continue;
                        }
                    }
                }
                Wake::Peer(event) => self.handle_peers(*event),
                Wake::Timer => {}
                Wake::Closed => break,
            }
            self.execute();
            self.announce();
            self.answer_waiters();
        }
        // Nobody is left to ask; process what was appended before letting go.
        self.execute();
    }

    /// Handles a peer event and every other one already waiting.
    fn handle_peers(&mut self, first: Event) {
        let Some(replicator) = self.replicator.as_mut() else {
            return;
        };
        replicator.handle(&mut self.db, first);
        for _ in 0..1024 {
            match replicator.next_event().now_or_never() {
                Some(Some(event)) => replicator.handle(&mut self.db, event),
                _ => break,
            }
        }
    }

    /// Tells peers about appends made since the last call (calls, executor runs), and follows
    /// oplogs that joined.
    fn announce(&mut self) {
        if let Some(replicator) = self.replicator.as_mut() {
            self.db.announce_changes(replicator, &mut self.announced);
        }
    }

    /// Answers the `listen` / `connect` requests taken since the last round.
    async fn start_network(&mut self) {
        for request in std::mem::take(&mut self.network) {
            match request {
                Request::Listen { addr, reply } => reply(match self.replicator() {
                    Ok(replicator) => replicator.listen(&addr).await.map_err(Into::into),
                    Err(e) => Err(e),
                }),
                Request::Connect { addr, reply } => reply(match self.replicator() {
                    Ok(replicator) => replicator
                        .connect(&addr)
                        .await
                        .map(|_| ())
                        .map_err(Into::into),
                    Err(e) => Err(e),
                }),
                _ => {}
            }
        }
    }

    /// The replicator, made (with every log of the database) on first use.
    fn replicator(&mut self) -> Result<&mut Replicator> {
        if self.replicator.is_none() {
            let mut replicator = Replicator::new(ReplicatorConfig::default())?;
            self.db.add_to_replicator(&mut replicator, Download::Full);
            self.replicator = Some(replicator);
        }
        self.replicator
            .as_mut()
            .ok_or_else(|| DatabaseError::OwnerStopped {
                reason: "no replicator".into(),
            })
    }

    /// How long the owner may sleep: until the next idle executor run, or a waiter's deadline.
    fn wake_in(&self) -> Option<Duration> {
        let now = Instant::now();
        let deadline = self.waiters.iter().map(|w| w.deadline).min();
        let by_deadline = deadline.map(|d| d.saturating_duration_since(now));
        let by_executor = self.db.is_executor().then_some(EXECUTE_WHEN_IDLE);
        match (by_deadline, by_executor) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Queues a call, or commits the calls queued so far and then handles `request`, so
    /// requests are handled in the order they arrived.
    fn take(
        &mut self,
        request: Request,
        calls: &mut Vec<(String, Value, Reply<Result<Transaction>>)>,
    ) {
        match request {
            Request::Call {
                method,
                params,
                reply,
            } => calls.push((method, params, reply)),
            Request::Wait {
                tx,
                started,
                deadline,
                reply,
            } => self.waiters.push(Waiter {
                tx,
                started,
                deadline,
                reply,
            }),
            Request::Run(job) => {
                self.commit(calls);
                job(&mut self.db);
            }
            Request::Stats(reply) => {
                self.commit(calls);
                reply(self.stats.clone());
            }
            request @ (Request::Listen { .. } | Request::Connect { .. }) => {
                self.network.push(request)
            }
        }
    }

    /// Commits the queued calls as one group and answers each.
    fn commit(&mut self, calls: &mut Vec<(String, Value, Reply<Result<Transaction>>)>) {
        if calls.is_empty() {
            return;
        }
        let size = calls.len() as u64;
        let mut methods = Vec::with_capacity(calls.len());
        let mut params = Vec::with_capacity(calls.len());
        let mut replies = Vec::with_capacity(calls.len());
        for (method, param, reply) in calls.drain(..) {
            methods.push(method);
            params.push(param);
            replies.push(reply);
        }
        let batch: Vec<(&str, Value)> = methods.iter().map(String::as_str).zip(params).collect();
        self.stats.groups += 1;
        self.stats.calls += size;
        self.stats.largest_group = self.stats.largest_group.max(size);
        self.unexecuted += size;
        for (reply, answer) in replies.into_iter().zip(self.db.call_each(&batch)) {
            reply(answer);
        }
    }

    /// Runs the executor over whatever is pending, when this instance is the executor.
    fn execute(&mut self) {
        if !self.db.is_executor() {
            return;
        }
        self.unexecuted = 0;
        match self.db.execute_pending() {
            Ok(report) => {
                self.stats.executed += report.processed;
                self.stats.executor_error = None;
                self.executor_idle = report.processed == 0;
            }
            Err(e) => {
                self.stats.executor_error = Some(e.to_string());
                self.executor_idle = false;
            }
        }
    }

    /// Whether this is a replica replicating with peers (acks arrive from its executor).
    fn following(&self) -> bool {
        !self.db.is_executor() && self.replicator.is_some()
    }

    /// Answers each waiter whose transaction is processed, or that can stop waiting.
    fn answer_waiters(&mut self) {
        let now = Instant::now();
        let mut still = Vec::with_capacity(self.waiters.len());
        for waiter in std::mem::take(&mut self.waiters) {
            let unprocessed = match self.db.processed_results(&waiter.tx) {
                Ok(Ok(results)) => {
                    (waiter.reply)(Ok(results));
                    continue;
                }
                Ok(Err(unprocessed)) => unprocessed,
                // A replica learns the index's new length before its blocks: not readable
                // yet is not processed yet, until the deadline.
                Err(_) if self.following() && now < waiter.deadline => {
                    still.push(waiter);
                    continue;
                }
                Err(e) => {
                    (waiter.reply)(Err(e));
                    continue;
                }
            };
            // A replica that replicates waits for the executor's acks to arrive.
            let why = if self.following() {
                (now >= waiter.deadline).then_some(WaitEnd::TimedOut)
            } else if !self.db.is_executor() {
                Some(WaitEnd::NotTheExecutor)
            } else if let Some(reason) = &self.stats.executor_error {
                (waiter.reply)(Err(DatabaseError::ExecutorFailed {
                    reason: reason.clone(),
                }));
                continue;
            } else if self.executor_idle && self.replicator.is_none() {
                // (With peers, the operations may still arrive: wait until the deadline.)
                Some(WaitEnd::ExecutorIdle)
            } else if now >= waiter.deadline {
                Some(WaitEnd::TimedOut)
            } else {
                None
            };
            match why {
                Some(why) => {
                    (waiter.reply)(Err(DatabaseError::NotProcessed {
                        transaction: waiter.tx.id(),
                        unprocessed,
                        total: waiter.tx.operations.len(),
                        waited: waiter.started.elapsed(),
                        why,
                    }));
                }
                None => still.push(waiter),
            }
        }
        self.waiters = still;
    }
}
