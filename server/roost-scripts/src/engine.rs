//! The QuickJS side: one runtime per tenant (memory cap, interrupt handler), a fresh context per
//! invocation, and the step loop that runs JavaScript on the runtime's thread and waits for host calls
//! and timers on the async runtime.

use crate::{Entry, HostCall, HostError, Invocation, LogLevel, ScriptBody, ScriptFailure, ScriptHost, ScriptLimits, ScriptResponse};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use rquickjs::{Context, Ctx, Function, Object, Runtime};
use serde_json::Value as Json;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Semaphore};

/// The JavaScript of the Mobile Services API, loaded into every fresh context.
const PRELUDE: &str =
    concat!(include_str!("js/core.js"), include_str!("js/query.js"), include_str!("js/push.js"), include_str!("js/table.js"), include_str!("js/api.js"));

/// The intrinsics of a script context: what Node-era scripts use (no Proxy, BigInt, WeakRef or
/// `performance`), which makes a fresh context cheaper.
type Intrinsics = (
    rquickjs::context::intrinsic::Date,
    rquickjs::context::intrinsic::Eval,
    rquickjs::context::intrinsic::RegExpCompiler,
    rquickjs::context::intrinsic::RegExp,
    rquickjs::context::intrinsic::Json,
    rquickjs::context::intrinsic::MapSet,
    rquickjs::context::intrinsic::TypedArrays,
    rquickjs::context::intrinsic::Promise,
);

/// The prelude compiled once per process to QuickJS bytecode: parsing its text in every context
/// cost about 1.8 ms; loading the bytecode costs about a tenth of that.
fn prelude_bytecode() -> &'static [u8] {
    static BYTECODE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTECODE.get_or_init(|| {
        let compile = || -> rquickjs::Result<Vec<u8>> {
            let rt = Runtime::new()?;
            let ctx = Context::custom::<Intrinsics>(&rt)?;
            ctx.with(|ctx| {
                let options = rquickjs::WriteOptions { strip_debug: true, strip_source: true, ..Default::default() };
                rquickjs::Module::declare(ctx, "roost:prelude", PRELUDE)?.write(options)
            })
        };
        // The prelude is part of this binary: failing to compile it is a build defect.
        compile().unwrap_or_else(|e| panic!("the script prelude does not compile: {e}"))
    })
}

/// Loads and runs the prelude bytecode in a fresh context.
#[expect(unsafe_code, reason = "QuickJS bytecode must be trusted: this is the prelude compiled above by the same QuickJS build in this process")]
fn load_prelude(ctx: &Ctx<'_>) -> rquickjs::Result<()> {
    // SAFETY: `prelude_bytecode` was written by `Module::write` of this very library version from our
    // own source, so it is well-formed bytecode for this runtime.
    let module = unsafe { rquickjs::Module::load(ctx.clone(), prelude_bytecode())? };
    let (_module, promise) = module.eval()?;
    while ctx.execute_pending_job() {}
    promise.finish::<()>()
}
/// Node-style built-in modules, evaluated only when a script requires them.
const BUILTINS: &[(&str, &str)] = &[
    ("util", include_str!("js/util.js")),
    ("events", include_str!("js/events.js")),
    ("querystring", include_str!("js/querystring.js")),
    ("url", include_str!("js/url.js")),
    ("assert", include_str!("js/assert.js")),
    ("crypto", include_str!("js/crypto.js")),
    ("request", include_str!("js/request.js")),
    ("roost-auth", include_str!("js/roost-auth.js")),
];

/// Log lines one invocation may write; a script logging in a loop would otherwise flood its logs.
pub const MAX_LOG_LINES: usize = 1_000;

/// Characters of one log line at most; longer lines are cut here, whatever the prelude did.
pub const MAX_LOG_CHARS: usize = 10_000;

/// Characters of a log line's source (a script path) at most.
const MAX_SOURCE_CHARS: usize = 256;

/// Host-side bytes a pending timer is charged (its future, its entry in the loop's sets).
const TIMER_BYTES: usize = 256;

/// Host-side bytes a pending host call is charged beyond its operation name and arguments.
const CALL_BYTES: usize = 256;

/// Bytes the host holds for a tenant's running invocations (pending call arguments, timers, results
/// on their way into JavaScript). They count against the tenant's memory limit beside the QuickJS
/// heap: a script could otherwise park gigabytes on the host side, outside QuickJS's own accounting.
struct HostBudget {
    used: AtomicU64,
    limit: u64,
}

/// Runtime memory kept for building contexts (a bare context takes about 100 KiB; the prelude is
/// loaded afterwards, within the scripts' part).
const CONTEXT_HEADROOM: usize = 2 * 1024 * 1024;

/// Deadline value meaning "no step is running".
const NO_DEADLINE: u64 = u64::MAX;

/// Idle tenant runtimes kept for reuse; beyond this the least recently used idle ones are dropped.
/// A runtime holds nothing between invocations (each gets a fresh context), so dropping an idle one
/// only costs its re-creation (tens of microseconds), while keeping all of them costs memory per tenant.
const KEEP_IDLE_RUNTIMES: usize = 64;

/// One tenant's QuickJS runtime.
struct TenantRuntime {
    rt: Runtime,
    /// Nanoseconds since `epoch` at which the running step must stop.
    deadline: Arc<AtomicU64>,
    /// Set by the interrupt handler when it stopped a step.
    interrupted: Arc<AtomicBool>,
    epoch: Instant,
    limits: ScriptLimits,
    /// Invocations running on this runtime.
    active: std::sync::atomic::AtomicUsize,
    /// The runtime's own thread, which runs its steps one after another (a QuickJS runtime runs one
    /// step at a time anyway). Steps queue here instead of each taking a blocking-pool thread that
    /// would wait on the runtime's lock; the thread ends when the runtime is dropped.
    thread: Mutex<Option<JobSender>>,
    /// Set when a step was interrupted (CPU limit), ran out of memory, or left promise jobs queued.
    /// QuickJS's state after that is not fit for reuse: the runtime kept the interrupted context's
    /// memory, and the next context built on the exhausted runtime crashed the server (issue 11;
    /// see the engine test `a_runtime_that_hit_a_limit_is_replaced_and_never_reused`). A poisoned
    /// runtime takes no new invocations (`TenantLanes::pick` drops it) and ends with those still on
    /// it. As its job queue (the runtime's, not a context's) may still name their contexts, it keeps
    /// them alive in `graveyard` until it is dropped itself.
    poisoned: AtomicBool,
    graveyard: Mutex<Vec<Arc<Context>>>,
    /// The runtime's share of the tenant's memory limit, and the part of it only context creation
    /// may use.
    share: usize,
    reserve: usize,
}

/// Where a script thread takes its work from.
type JobSender = std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>;

/// Script threads kept for the next runtime when a runtime is dropped. Reusing a thread keeps its
/// allocator heap in use: a thread that exits leaves its heap's pages resident.
const KEEP_IDLE_THREADS: usize = 128;

fn idle_threads() -> &'static Mutex<Vec<JobSender>> {
    static IDLE: std::sync::OnceLock<Mutex<Vec<JobSender>>> = std::sync::OnceLock::new();
    IDLE.get_or_init(Default::default)
}

/// An idle script thread, or a new one.
fn script_thread() -> Result<JobSender, ScriptFailure> {
    if let Some(t) = idle_threads().lock().unwrap_or_else(|e| e.into_inner()).pop() {
        return Ok(t);
    }
    let (jobs, queue) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
    std::thread::Builder::new()
        .name("roost-js".into())
        // Above QuickJS's own stack limit (512 KiB, set below), well below the 2 MiB default.
        .stack_size(1024 * 1024)
        .spawn(move || {
            while let Ok(job) = queue.recv() {
                job();
            }
        })
        .map_err(|e| ScriptFailure::Error(format!("starting a script thread: {e}")))?;
    Ok(jobs)
}

impl Drop for TenantRuntime {
    fn drop(&mut self) {
        // Nothing can post to this runtime any more; its thread serves the next runtime.
        if let Some(t) = self.thread.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            let mut idle = idle_threads().lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < KEEP_IDLE_THREADS {
                idle.push(t);
            }
        }
    }
}

/// A tenant's runtimes ("lanes"). A QuickJS runtime runs one step at a time, so a tenant whose
/// invocations overlap gets up to [`lanes`] runtimes to use several cores. Lanes are created on
/// demand, share the tenant's invocation permits, and each may use an equal share of its memory cap.
struct TenantLanes {
    limits: ScriptLimits,
    permits: Arc<Semaphore>,
    budget: Arc<HostBudget>,
    lanes: Mutex<Vec<Arc<TenantRuntime>>>,
    /// When it was last handed to an invocation (for the idle cache).
    last_used: AtomicU64,
}

/// Runtimes per tenant at most: one per core, up to 4.
fn lanes() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 4)
}

impl TenantLanes {
    fn new(limits: ScriptLimits) -> Self {
        let budget = Arc::new(HostBudget { used: AtomicU64::new(0), limit: limits.memory_mb.saturating_mul(1024 * 1024) });
        Self { limits, permits: Arc::new(Semaphore::new(limits.max_concurrent.max(1))), budget, lanes: Mutex::new(Vec::new()), last_used: AtomicU64::new(0) }
    }

    /// Drops poisoned lanes from service (each ends with the invocations still on it).
    fn drop_poisoned(lanes: &mut Vec<Arc<TenantRuntime>>) {
        lanes.retain(|l| !l.poisoned.load(Ordering::Acquire));
    }

    /// An idle lane, else a new one while under the count, else the least busy; marked active.
    fn pick(&self) -> Result<Arc<TenantRuntime>, ScriptFailure> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        Self::drop_poisoned(&mut lanes);
        let lane = match lanes.iter().min_by_key(|l| l.active.load(Ordering::Relaxed)) {
            Some(l) if l.active.load(Ordering::Relaxed) == 0 || lanes.len() >= lanes_max() => l.clone(),
            _ => {
                let l = Arc::new(TenantRuntime::new(self.limits)?);
                lanes.push(l.clone());
                l
            }
        };
        lane.active.fetch_add(1, Ordering::Relaxed);
        Ok(lane)
    }

    fn idle(&self) -> bool {
        self.lanes.lock().unwrap_or_else(|e| e.into_inner()).iter().all(|l| l.active.load(Ordering::Relaxed) == 0)
    }
}

fn lanes_max() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(lanes)
}

impl TenantRuntime {
    fn new(limits: ScriptLimits) -> Result<Self, ScriptFailure> {
        // QuickJS allocates through Rust's global allocator (mimalloc in the server): libc malloc was
        // about a sixth of an invocation's profile.
        let rt = Runtime::new_with_alloc(rquickjs::allocator::RustAllocator).map_err(|e| ScriptFailure::Error(format!("creating the script runtime: {e}")))?;
        let share = usize::try_from(limits.memory_mb.saturating_mul(1024 * 1024) / lanes_max() as u64).unwrap_or(usize::MAX);
        // Scripts get the share less a reserve that only context creation may use (see `run`).
        let reserve = (share / 4).min(CONTEXT_HEADROOM);
        rt.set_memory_limit(share - reserve);
        // Blocking-pool threads have 2 MiB stacks; deep recursion must fail as a script error first.
        rt.set_max_stack_size(512 * 1024);
        let deadline = Arc::new(AtomicU64::new(NO_DEADLINE));
        let interrupted = Arc::new(AtomicBool::new(false));
        let epoch = Instant::now();
        let (d, i) = (deadline.clone(), interrupted.clone());
        rt.set_interrupt_handler(Some(Box::new(move || {
            let stop = epoch.elapsed().as_nanos() as u64 > d.load(Ordering::Relaxed);
            if stop {
                i.store(true, Ordering::Relaxed);
            }
            stop
        })));
        let jobs = script_thread()?;
        Ok(Self {
            rt,
            deadline,
            interrupted,
            epoch,
            limits,
            share,
            reserve,
            active: Default::default(),
            thread: Mutex::new(Some(jobs)),
            poisoned: AtomicBool::new(false),
            graveyard: Mutex::new(Vec::new()),
        })
    }

    /// Runs `f` on the runtime's thread and waits for it without holding an async worker.
    async fn on_thread<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        self.post(move || {
            let _ = tx.send(f());
        });
        rx.await.ok()
    }

    /// Queues `f` on the runtime's thread.
    fn post(&self, f: impl FnOnce() + Send + 'static) {
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let _ = t.send(Box::new(f));
        }
    }
}

/// A fresh context that is freed on its runtime's thread: freeing takes the runtime's lock, which an
/// async worker must never wait for (another invocation's step may hold it for its CPU budget).
struct OwnedContext {
    ctx: Option<Arc<Context>>,
    rt: Arc<TenantRuntime>,
}

impl Drop for OwnedContext {
    fn drop(&mut self) {
        if let Some(c) = self.ctx.take() {
            if self.rt.poisoned.load(Ordering::Acquire) {
                // Jobs of this context may still be queued in the runtime: it lives as long as it does.
                self.rt.graveyard.lock().unwrap_or_else(|e| e.into_inner()).push(c);
            } else {
                self.rt.post(move || drop(c));
            }
        }
    }
}

/// The script engine of one Roost process: tenant runtimes, created on first use.
#[derive(Default)]
pub struct ScriptEngine {
    runtimes: Arc<Mutex<HashMap<String, Arc<TenantLanes>>>>,
    /// Ticks of runtime use, for least-recently-used eviction.
    clock: Arc<AtomicU64>,
}

/// Drops the least recently used runtimes no invocation holds, down to [`KEEP_IDLE_RUNTIMES`].
fn trim(runtimes: &Mutex<HashMap<String, Arc<TenantLanes>>>) {
    let mut rts = runtimes.lock().unwrap_or_else(|e| e.into_inner());
    if rts.len() <= KEEP_IDLE_RUNTIMES {
        return;
    }
    let mut idle: Vec<(u64, String)> =
        rts.iter().filter(|(_, r)| Arc::strong_count(r) == 1 && r.idle()).map(|(k, r)| (r.last_used.load(Ordering::Relaxed), k.clone())).collect();
    idle.sort();
    let excess = rts.len() - KEEP_IDLE_RUNTIMES;
    for (_, k) in idle.into_iter().take(excess) {
        rts.remove(&k);
    }
}

impl std::fmt::Debug for ScriptEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptEngine").field("runtimes", &self.runtime_count()).finish()
    }
}

/// A running invocation: its response (as soon as the script gives one) and its end.
pub struct InvocationHandle {
    /// Resolves with the response, or `Ok(None)` when the script ended without responding.
    pub response: oneshot::Receiver<Result<Option<ScriptResponse>, ScriptFailure>>,
    /// Resolves when the invocation has finished all its work (callbacks, timers).
    pub done: tokio::task::JoinHandle<Result<(), ScriptFailure>>,
}

impl ScriptEngine {
    /// An engine with no runtimes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of tenant runtimes alive.
    pub fn runtime_count(&self) -> usize {
        self.runtimes.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Memory used by a tenant's runtime, in bytes (0 if it has none).
    pub fn memory_used(&self, tenant: &str) -> i64 {
        let rts = self.runtimes.lock().unwrap_or_else(|e| e.into_inner());
        rts.get(tenant).map(|r| r.lanes.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|l| l.rt.memory_usage().memory_used_size).sum()).unwrap_or(0)
    }

    /// Drops a tenant's runtime (tenant deleted); running invocations keep theirs until they end.
    pub fn forget(&self, tenant: &str) {
        self.runtimes.lock().unwrap_or_else(|e| e.into_inner()).remove(tenant);
    }

    fn runtime(&self, tenant: &str, limits: ScriptLimits) -> Arc<TenantLanes> {
        let mut rts = self.runtimes.lock().unwrap_or_else(|e| e.into_inner());
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        if let Some(rt) = rts.get(tenant).filter(|r| r.limits == limits) {
            rt.last_used.store(tick, Ordering::Relaxed);
            return rt.clone();
        }
        // New tenant, or its limits changed: new runtimes (the old ones end with their invocations).
        let rt = Arc::new(TenantLanes::new(limits));
        rt.last_used.store(tick, Ordering::Relaxed);
        rts.insert(tenant.to_string(), rt.clone());
        rt
    }

    /// Starts an invocation. Must be called within a Tokio runtime.
    pub fn invoke(&self, tenant: &str, limits: ScriptLimits, invocation: Invocation, host: Arc<dyn ScriptHost>) -> InvocationHandle {
        let (tx, rx) = oneshot::channel();
        let rt = self.runtime(tenant, limits);
        let runtimes = self.runtimes.clone();
        let done = tokio::spawn(async move {
            let source = invocation.source.clone();
            let mut cpu_used = Duration::ZERO;
            let wall_deadline = tokio::time::Instant::now() + Duration::from_millis(limits.wall_ms);
            let result = match tokio::time::timeout_at(wall_deadline, rt.permits.clone().acquire_owned()).await {
                Ok(Ok(_permit)) => match rt.pick() {
                    Ok(lane) => {
                        let r = run(lane.clone(), rt.budget.clone(), invocation, host.clone(), tx, wall_deadline, &mut cpu_used).await;
                        lane.active.fetch_sub(1, Ordering::Relaxed);
                        if lane.poisoned.load(Ordering::Acquire) {
                            TenantLanes::drop_poisoned(&mut rt.lanes.lock().unwrap_or_else(|e| e.into_inner()));
                        }
                        r
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.clone()));
                        Err(e)
                    }
                },
                _ => {
                    let _ = tx.send(Err(ScriptFailure::Busy));
                    Err(ScriptFailure::Busy)
                }
            };
            if let Err(e) = &result {
                host.log(LogLevel::Error, &source, &failure_log(&source, e));
            }
            host.finished(cpu_used, result.as_ref().map(|_| ()));
            trim(&runtimes);
            result
        });
        InvocationHandle { response: rx, done }
    }
}

fn failure_log(source: &str, e: &ScriptFailure) -> String {
    match e {
        ScriptFailure::Error(m) => format!("Error in script '{source}'. {m}"),
        other => format!("Error in script '{source}'. {other}"),
    }
}

/// What a step's natives recorded for the loop.
struct InvState {
    next_id: u32,
    /// Host calls started in this step: (id, the call as JSON, bytes charged).
    calls: Vec<(u32, String, usize)>,
    /// Timers started in this step: (id, milliseconds).
    timers: Vec<(u32, u64)>,
    /// Timers cleared.
    cleared: HashSet<u32>,
    /// The response, once given (JSON text from `__roost.respond`).
    response: Option<String>,
    responded: bool,
    logs: Vec<(LogLevel, String, String)>,
    /// Lines logged by the invocation so far (capped at [`MAX_LOG_LINES`]).
    logged: usize,
    /// The tenant's host-side memory budget, and the bytes of it this invocation holds.
    budget: Arc<HostBudget>,
    held: u64,
    /// A reservation failed: the invocation ends with the memory-limit failure, even if the script
    /// caught the exception.
    over_budget: bool,
}

impl InvState {
    fn new(budget: Arc<HostBudget>) -> Self {
        Self {
            next_id: 0,
            calls: Vec::new(),
            timers: Vec::new(),
            cleared: HashSet::new(),
            response: None,
            responded: false,
            logs: Vec::new(),
            logged: 0,
            budget,
            held: 0,
            over_budget: false,
        }
    }

    /// Charges `bytes` to the tenant's budget; false (and marked) when that would exceed it.
    fn reserve(&mut self, bytes: usize) -> bool {
        let bytes = bytes as u64;
        let before = self.budget.used.fetch_add(bytes, Ordering::Relaxed);
        if before.saturating_add(bytes) > self.budget.limit {
            self.budget.used.fetch_sub(bytes, Ordering::Relaxed);
            self.over_budget = true;
            return false;
        }
        self.held += bytes;
        true
    }

    fn release(&mut self, bytes: usize) {
        let bytes = (bytes as u64).min(self.held);
        self.held -= bytes;
        self.budget.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

impl Drop for InvState {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.held, Ordering::Relaxed);
    }
}

/// The exception a native throws when the host-side budget is spent (classified as the memory limit).
const HOST_OUT_OF_MEMORY: &str = "out of memory: the host-side memory of this service's scripts (pending calls, timers, results) is at its limit";

/// Something the script waits for has happened.
enum Event {
    /// A host call's result (JSON text: the value, or the error), and the bytes its arguments held.
    Call(u32, Result<String, String>, usize),
    Timer(u32),
}

async fn run(
    rt: Arc<TenantRuntime>,
    budget: Arc<HostBudget>,
    inv: Invocation,
    host: Arc<dyn ScriptHost>,
    tx: oneshot::Sender<Result<Option<ScriptResponse>, ScriptFailure>>,
    wall_deadline: tokio::time::Instant,
    cpu_used: &mut Duration,
) -> Result<(), ScriptFailure> {
    let limits = rt.limits;
    let mut tx = Some(tx);
    let fail = |tx: &mut Option<oneshot::Sender<_>>, e: ScriptFailure| {
        if let Some(tx) = tx.take() {
            let _ = tx.send(Err(e.clone()));
        }
        Err(e)
    };
    let state = Arc::new(Mutex::new(InvState::new(budget)));
    let mut cpu_left = Duration::from_millis(limits.cpu_ms);
    let config = host.config();
    let mut step: Step = Step::Start { inv: Box::new(inv.clone()), config, host: host.clone() };
    let mut pending: FuturesUnordered<futures::future::BoxFuture<'static, Event>> = FuturesUnordered::new();
    let mut live_timers: HashSet<u32> = HashSet::new();
    // Bytes of results handed to the step about to run (released once it has run).
    let mut delivering: usize = 0;
    // The fresh context is created by the first step, on the runtime's thread like all JavaScript.
    let mut ctx = OwnedContext { ctx: None, rt: rt.clone() };
    loop {
        let (rt2, ctx2, st2) = (rt.clone(), ctx.ctx.clone(), state.clone());
        let budget = cpu_left;
        let outcome = rt
            .on_thread(move || {
                let ctx = match ctx2 {
                    Some(c) => c,
                    None => {
                        // QuickJS does not check every allocation while it builds a context: on a
                        // runtime at its limit that was a segfault. Scripts may fill the runtime only
                        // up to `share - reserve`; building a context may use the reserve too, so it
                        // always has room (the limit is raised for it alone: this thread runs one
                        // step of the runtime at a time). Measuring the runtime instead walks every
                        // object, which cost a third of a scripted request under load.
                        rt2.rt.set_memory_limit(rt2.share);
                        let created = Context::custom::<Intrinsics>(&rt2.rt);
                        rt2.rt.set_memory_limit(rt2.share - rt2.reserve);
                        match created {
                            Ok(c) => Arc::new(c),
                            Err(_) => {
                                rt2.poisoned.store(true, Ordering::Release);
                                return (None, Duration::ZERO, Err(ScriptFailure::MemoryLimit(rt2.limits.memory_mb)));
                            }
                        }
                    }
                };
                let (elapsed, mut result) = run_step(&rt2, &ctx, &st2, step, budget);
                // QuickJS that runs out of memory while throwing leaves no error object (`null`):
                // that is the memory limit too, when the heap is large (a script's own `throw null`
                // on a small heap is not). The runtime is retired either way.
                if matches!(&result, Err(ScriptFailure::Error(m)) if m == "null" || m == "uncaught exception") {
                    rt2.poisoned.store(true, Ordering::Release);
                    let usage = rt2.rt.memory_usage();
                    // "At it": a failed allocation may have been a large one (a property table
                    // doubling), so the heap need only be past half its limit.
                    if usage.malloc_limit > 0 && usage.memory_used_size.saturating_mul(2) > usage.malloc_limit {
                        result = Err(ScriptFailure::MemoryLimit(rt2.limits.memory_mb));
                    }
                }
                (Some(ctx), elapsed, result)
            })
            .await;
        let (elapsed, result) = match outcome {
            Some((c, elapsed, result)) => {
                ctx.ctx = c;
                (elapsed, result)
            }
            None => return fail(&mut tx, ScriptFailure::Error("the script thread stopped".into())),
        };
        cpu_left = cpu_left.saturating_sub(elapsed);
        *cpu_used += elapsed;
        // Natives' records: logs, response, new calls and timers.
        let (calls, timers, cleared, response, logs) = {
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            (std::mem::take(&mut s.calls), std::mem::take(&mut s.timers), std::mem::take(&mut s.cleared), s.response.take(), std::mem::take(&mut s.logs))
        };
        for (level, source, message) in logs {
            host.log(level, &source, &message);
        }
        if let Some(r) = response {
            if let Some(tx) = tx.take() {
                let _ = tx.send(parse_response(&r).map(Some));
            }
        }
        let over_budget = {
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            // Results delivered in the step just run are JavaScript's now.
            let delivered = std::mem::take(&mut delivering);
            s.release(delivered);
            s.over_budget
        };
        if over_budget {
            return fail(&mut tx, ScriptFailure::MemoryLimit(limits.memory_mb));
        }
        if let Err(e) = result {
            return fail(&mut tx, e);
        }
        for id in cleared {
            live_timers.remove(&id);
        }
        for (id, call, cost) in calls {
            let fut = match serde_json::from_str::<HostCall>(&call) {
                Ok(call) => host.call(call),
                Err(e) => futures::future::ready(Err(HostError::new(500, format!("Invalid host call: {e}")))).boxed(),
            };
            let error_text = |e: HostError| serde_json::to_string(&e).unwrap_or_default();
            pending.push(async move { Event::Call(id, fut.await.map(|v| v.to_string()).map_err(error_text), cost) }.boxed());
        }
        for (id, ms) in timers {
            live_timers.insert(id);
            pending.push(
                async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Event::Timer(id)
                }
                .boxed(),
            );
        }
        // Wait for the next event that still matters (cleared timers are skipped).
        let mut events = Vec::new();
        loop {
            if pending.is_empty() {
                break;
            }
            let next = tokio::time::timeout_at(wall_deadline, pending.next()).await;
            match next {
                Err(_) => return fail(&mut tx, ScriptFailure::WallLimit(limits.wall_ms)),
                Ok(None) => break,
                Ok(Some(Event::Timer(id))) if !live_timers.contains(&id) => {
                    state.lock().unwrap_or_else(|e| e.into_inner()).release(TIMER_BYTES);
                    continue;
                }
                Ok(Some(ev)) => {
                    events.push(ev);
                    // Deliver everything else already finished in the same step.
                    while let Some(Some(ev)) = pending.next().now_or_never() {
                        events.push(ev);
                    }
                    break;
                }
            }
        }
        if events.is_empty() {
            break;
        }
        {
            // A finished call's arguments are freed; its result is held until JavaScript has it.
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            for ev in &events {
                match ev {
                    Event::Timer(id) => {
                        live_timers.remove(id);
                        s.release(TIMER_BYTES);
                    }
                    Event::Call(_, result, cost) => {
                        s.release(*cost);
                        let len = match result {
                            Ok(t) | Err(t) => t.len(),
                        };
                        if !s.reserve(len) {
                            drop(s);
                            return fail(&mut tx, ScriptFailure::MemoryLimit(limits.memory_mb));
                        }
                        delivering += len;
                    }
                }
            }
        }
        step = Step::Deliver(events);
    }
    if let Some(tx) = tx.take() {
        let _ = tx.send(Ok(None));
    }
    drop(ctx);
    Ok(())
}

enum Step {
    Start { inv: Box<Invocation>, config: Json, host: Arc<dyn ScriptHost> },
    Deliver(Vec<Event>),
}

/// Runs one step of JavaScript under the runtime lock, with the CPU budget as deadline.
fn run_step(rt: &TenantRuntime, ctx: &Context, state: &Arc<Mutex<InvState>>, step: Step, budget: Duration) -> (Duration, Result<(), ScriptFailure>) {
    ctx.with(|ctx| {
        let started = Instant::now();
        rt.interrupted.store(false, Ordering::Relaxed);
        let deadline = (started + budget).duration_since(rt.epoch).as_nanos() as u64;
        rt.deadline.store(deadline, Ordering::Relaxed);
        let result = match step {
            Step::Start { inv, config, host } => start(&ctx, state, &inv, &config, host),
            Step::Deliver(events) => deliver(&ctx, events),
        };
        // Promise reactions (scripts using async functions) run in the same step.
        // (The runtime is locked here: only `Ctx` methods, never `Runtime` ones, which would lock again.)
        let mut jobs = 0u32;
        while ctx.execute_pending_job() {
            jobs += 1;
            if rt.interrupted.load(Ordering::Relaxed) || jobs > 1_000_000 {
                // Jobs are left in the runtime's queue (see `TenantRuntime::poisoned`).
                rt.poisoned.store(true, Ordering::Release);
                break;
            }
        }
        // An interrupted step or an out-of-memory failure may leave QuickJS's state half-done (a
        // queued job among it).
        if rt.interrupted.load(Ordering::Relaxed) || result.as_ref().is_err_and(|e| matches!(e, rquickjs::Error::Allocation)) {
            rt.poisoned.store(true, Ordering::Release);
        }
        let result = if rt.interrupted.load(Ordering::Relaxed) { Err(rquickjs::Error::Exception) } else { result };
        rt.deadline.store(NO_DEADLINE, Ordering::Relaxed);
        let elapsed = started.elapsed();
        let result = result.map_err(|e| classify(&ctx, rt, e));
        if matches!(result, Err(ScriptFailure::MemoryLimit(_))) {
            rt.poisoned.store(true, Ordering::Release);
        }
        (elapsed, result)
    })
}

/// Turns a QuickJS error into a failure: interrupted (CPU), out of memory, or an exception with its stack.
fn classify(ctx: &Ctx<'_>, rt: &TenantRuntime, e: rquickjs::Error) -> ScriptFailure {
    if rt.interrupted.load(Ordering::Relaxed) {
        let _ = ctx.catch();
        return ScriptFailure::CpuLimit(rt.limits.cpu_ms);
    }
    let text = match e {
        rquickjs::Error::Exception => describe_exception(ctx),
        rquickjs::Error::Allocation => "out of memory".to_string(),
        other => other.to_string(),
    };
    if text.contains("out of memory") {
        return ScriptFailure::MemoryLimit(rt.limits.memory_mb);
    }
    ScriptFailure::Error(text)
}

fn describe_exception(ctx: &Ctx<'_>) -> String {
    let v = ctx.catch();
    if let Some(ex) = v.as_exception() {
        let msg = ex.message().unwrap_or_default();
        let name: String = ex.get("name").unwrap_or_else(|_| "Error".to_string());
        let stack = ex.stack().unwrap_or_default();
        return format!("{name}: {msg}\n{}", stack.trim_end());
    }
    ctx.json_stringify(v).ok().flatten().and_then(|s| s.to_string().ok()).unwrap_or_else(|| "uncaught exception".into())
}

fn start(ctx: &Ctx<'_>, state: &Arc<Mutex<InvState>>, inv: &Invocation, config: &Json, host: Arc<dyn ScriptHost>) -> rquickjs::Result<()> {
    install_natives(ctx, state, &inv.source, host)?;
    load_prelude(ctx)?;
    let boot: Function = ctx.globals().get("__roost_boot")?;
    boot.call::<_, ()>((config.to_string(), inv.source.clone()))?;
    // Table, job and startup scripts are text evaluated in strict mode in the context (§6.2); API
    // modules are wrapped as CommonJS modules by the prelude.
    let entry: Function = ctx.globals().get("__roost_enter")?;
    let kind = match &inv.entry {
        Entry::Table => "table".to_string(),
        Entry::Api => "api".to_string(),
        Entry::Job(name) => format!("job:{name}"),
        Entry::Startup => "startup".to_string(),
        Entry::PushRegister => "push.register".to_string(),
    };
    let loader: Function = ctx.globals().get("__roost_load")?;
    match &inv.entry {
        Entry::Table | Entry::Job(_) => {
            let mut opts = rquickjs::context::EvalOptions::default();
            opts.global = true;
            opts.strict = true;
            opts.filename = Some(inv.source.clone());
            // Same line numbers as the file: the directive shares the first line.
            let text = format!("\"use strict\";{}", inv.script);
            ctx.eval_with_options::<(), _>(text, opts)?;
        }
        Entry::Api | Entry::Startup | Entry::PushRegister => {
            loader.call::<_, ()>((inv.source.clone(), inv.script.to_string()))?;
        }
    }
    let mut input = inv.input.clone();
    if let Json::Object(o) = &mut input {
        o.insert("source".into(), Json::String(inv.source.clone()));
    }
    entry.call::<_, ()>((kind, input.to_string()))
}

fn deliver(ctx: &Ctx<'_>, events: Vec<Event>) -> rquickjs::Result<()> {
    let f: Function = ctx.globals().get("__roost_dispatch")?;
    for ev in events {
        match ev {
            Event::Call(id, Ok(v), _) => f.call::<_, ()>((id, rquickjs::Null, v))?,
            Event::Call(id, Err(e), _) => f.call::<_, ()>((id, e, rquickjs::Null))?,
            Event::Timer(id) => f.call::<_, ()>((id, rquickjs::Undefined, rquickjs::Undefined))?,
        }
    }
    Ok(())
}

/// The natives the prelude builds on, on a `__roost` global.
fn install_natives<'js>(ctx: &Ctx<'js>, state: &Arc<Mutex<InvState>>, source: &str, host: Arc<dyn ScriptHost>) -> rquickjs::Result<()> {
    let n = Object::new(ctx.clone())?;
    let st = state.clone();
    n.set(
        "call",
        Function::new(ctx.clone(), move |ctx: Ctx<'_>, call: String| -> rquickjs::Result<u32> {
            let mut s = st.lock().unwrap_or_else(|e| e.into_inner());
            let cost = CALL_BYTES + call.len();
            if !s.reserve(cost) {
                return Err(rquickjs::Exception::throw_message(&ctx, HOST_OUT_OF_MEMORY));
            }
            s.next_id += 1;
            let id = s.next_id;
            s.calls.push((id, call, cost));
            Ok(id)
        })?,
    )?;
    let st = state.clone();
    n.set(
        "timer",
        Function::new(ctx.clone(), move |ctx: Ctx<'_>, ms: f64| -> rquickjs::Result<u32> {
            let mut s = st.lock().unwrap_or_else(|e| e.into_inner());
            if !s.reserve(TIMER_BYTES) {
                return Err(rquickjs::Exception::throw_message(&ctx, HOST_OUT_OF_MEMORY));
            }
            s.next_id += 1;
            let id = s.next_id;
            let ms = if ms.is_finite() && ms > 0.0 { ms.min(86_400_000.0) as u64 } else { 0 };
            s.timers.push((id, ms));
            Ok(id)
        })?,
    )?;
    let st = state.clone();
    n.set(
        "clearTimer",
        Function::new(ctx.clone(), move |id: u32| {
            st.lock().unwrap_or_else(|e| e.into_inner()).cleared.insert(id);
        })?,
    )?;
    let st = state.clone();
    n.set(
        "respond",
        Function::new(ctx.clone(), move |json: String| -> bool {
            let mut s = st.lock().unwrap_or_else(|e| e.into_inner());
            if s.responded {
                return false;
            }
            s.responded = true;
            s.response = Some(json);
            true
        })?,
    )?;
    let st = state.clone();
    let default_source = source.to_string();
    n.set(
        "log",
        Function::new(ctx.clone(), move |level: String, message: String, source: rquickjs::function::Opt<String>| {
            let level = LogLevel::parse(&level).unwrap_or(LogLevel::Information);
            let source = truncate_chars(source.0.unwrap_or_else(|| default_source.clone()), MAX_SOURCE_CHARS, "");
            let message = truncate_chars(message, MAX_LOG_CHARS, " [log truncated]");
            let mut s = st.lock().unwrap_or_else(|e| e.into_inner());
            s.logged += 1;
            if s.logged < MAX_LOG_LINES {
                s.logs.push((level, source, message));
            } else if s.logged == MAX_LOG_LINES {
                s.logs.push((LogLevel::Warning, source, format!("This invocation reached {MAX_LOG_LINES} log lines; its further lines are dropped.")));
            }
        })?,
    )?;
    n.set(
        "translate",
        Function::new(ctx.clone(), move |ctx: Ctx<'_>, src: String, args: String| -> rquickjs::Result<String> {
            let args: Vec<Json> = serde_json::from_str(&args).unwrap_or_default();
            crate::predicate::translate_predicate(&src, &args).map_err(|m| rquickjs::Exception::throw_message(&ctx, &m))
        })?,
    )?;
    n.set(
        "compile",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, text: String, filename: String| -> rquickjs::Result<rquickjs::Value<'js>> {
            let mut opts = rquickjs::context::EvalOptions::default();
            opts.global = true;
            opts.strict = false;
            opts.filename = Some(filename);
            ctx.eval_with_options(text, opts)
        })?,
    )?;
    let resolver = host.clone();
    let minter = host.clone();
    n.set(
        "mintToken",
        Function::new(ctx.clone(), move |ctx: Ctx<'_>, user_id: String, claims: String, lifetime: f64| -> rquickjs::Result<String> {
            minter.mint_token(&user_id, &claims, lifetime).map_err(|m| rquickjs::Exception::throw_message(&ctx, &m))
        })?,
    )?;
    let permissions = host.clone();
    n.set("apiAllowed", Function::new(ctx.clone(), move |route: String, verb: String| -> bool { permissions.api_allowed(&route, &verb) })?)?;
    n.set(
        "module",
        Function::new(ctx.clone(), move |name: String| -> Option<String> {
            if let Some((_, src)) = BUILTINS.iter().find(|(n, _)| *n == name) {
                return Some((*src).to_string());
            }
            name.strip_prefix("shared/").and_then(|n| host.module(n)).map(|s| s.to_string())
        })?,
    )?;
    n.set(
        "resolve",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, from: String, id: String| -> rquickjs::Result<Option<rquickjs::Array<'js>>> {
            match resolver.resolve(&from, &id) {
                crate::Resolved::NotFound => Ok(None),
                crate::Resolved::Found { path, text, key } => {
                    // The module's CommonJS wrapper, from bytecode compiled once per process.
                    let wrapper = crate::bytecode::wrapper(&ctx, &key, &path, &text)?;
                    let out = rquickjs::Array::new(ctx.clone())?;
                    out.set(0, path)?;
                    out.set(1, wrapper)?;
                    Ok(Some(out))
                }
                crate::Resolved::Refused(m) => Err(rquickjs::Exception::throw_message(&ctx, &m)),
            }
        })?,
    )?;
    n.set(
        "digest",
        Function::new(ctx.clone(), move |ctx: Ctx<'_>, alg: String, key: Option<String>, data: String| -> rquickjs::Result<String> {
            crate::syntax::digest(&alg, key.as_deref(), &data).map_err(|m| rquickjs::Exception::throw_message(&ctx, &m))
        })?,
    )?;
    n.set(
        "randomBytes",
        Function::new(ctx.clone(), move |count: u32| -> String {
            use base64::Engine as _;
            use rand::RngCore as _;
            let mut b = vec![0u8; count.min(1 << 20) as usize];
            rand::thread_rng().fill_bytes(&mut b);
            base64::engine::general_purpose::STANDARD.encode(b)
        })?,
    )?;
    ctx.globals().set("__roost", n)?;
    Ok(())
}

/// `text` cut to at most `max` characters (the last ones replaced by `marker`).
fn truncate_chars(text: String, max: usize, marker: &str) -> String {
    match text.char_indices().nth(max) {
        None => text,
        Some(_) => {
            let keep = max.saturating_sub(marker.chars().count());
            let end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
            format!("{}{marker}", &text[..end])
        }
    }
}

/// Parses the JSON a script's `respond` produced: `{status, headers?, json?|text?|base64?}`.
fn parse_response(text: &str) -> Result<ScriptResponse, ScriptFailure> {
    let v: Json = serde_json::from_str(text).map_err(|e| ScriptFailure::Error(format!("bad response from the script runtime: {e}")))?;
    let status = v.get("status").and_then(Json::as_u64).filter(|s| (100..=599).contains(s)).unwrap_or(500) as u16;
    let headers = v
        .get("headers")
        .and_then(Json::as_array)
        .map(|a| a.iter().filter_map(|h| Some((h.get(0)?.as_str()?.to_string(), h.get(1)?.as_str()?.to_string()))).collect())
        .unwrap_or_default();
    let body = if let Some(j) = v.get("json") {
        ScriptBody::Json(j.clone())
    } else if let Some(t) = v.get("text").and_then(Json::as_str) {
        ScriptBody::Text(t.to_string())
    } else if let Some(b) = v.get("base64").and_then(Json::as_str) {
        use base64::Engine as _;
        ScriptBody::Bytes(base64::engine::general_purpose::STANDARD.decode(b).unwrap_or_default())
    } else {
        ScriptBody::Empty
    };
    Ok(ScriptResponse { status, headers, body })
}
