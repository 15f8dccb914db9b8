//! Roost's server scripts: the Azure Mobile Services script API (protocol.md §6) on QuickJS.
//!
//! The whole engine sits behind [`ScriptEngine`]: the server hands it an [`Invocation`] (which script,
//! which entry point, the JSON input) and an implementation of [`ScriptHost`], through which a script
//! reaches everything outside its sandbox (tables, SQL, outbound HTTP, logs, shared modules). This crate
//! never touches storage or HTTP itself.
//!
//! Rules the engine keeps (R9):
//! - Every invocation gets a fresh QuickJS context (no state survives between requests), in the
//!   tenant's own runtime, whose memory is capped per tenant.
//! - JavaScript runs on the runtime's own thread, in *steps*: the first step evaluates the script and
//!   calls its entry function; each later step delivers finished host calls or timers. Between steps
//!   the script holds no thread and no lock, so a script waiting on the database costs nothing, and no
//!   async worker ever runs JavaScript or waits for a runtime's lock.
//! - CPU time is counted across steps and enforced by QuickJS's interrupt handler; wall-clock time
//!   and the number of concurrent invocations per tenant are limited too.
//! - The Mobile Services API itself is JavaScript (`src/js/*.js`), talking to Rust through a handful
//!   of natives (`__roost.*`); host calls carry JSON.

mod bytecode;
mod engine;
pub mod host;
mod predicate;
mod syntax;

pub use engine::{InvocationHandle, ScriptEngine, MAX_LOG_CHARS, MAX_LOG_LINES};

pub use host::{HostCall, HostError};
pub use predicate::translate_predicate;
pub use syntax::{check_syntax, ScriptKind, SyntaxError};

use futures::future::BoxFuture;
use serde_json::Value as Json;
use std::sync::Arc;

/// Per-tenant limits (tenant settings, with the defaults of [`ScriptLimits::default`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScriptLimits {
    /// CPU time one invocation may use, in milliseconds.
    pub cpu_ms: u64,
    /// Wall-clock time one invocation may live, in milliseconds (callbacks included).
    pub wall_ms: u64,
    /// Memory of the tenant's script runtime, in MiB (all its running invocations together).
    pub memory_mb: u64,
    /// Invocations of one tenant that may run at once; more wait for a slot until `wall_ms`.
    pub max_concurrent: usize,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        Self { cpu_ms: 1_000, wall_ms: 30_000, memory_mb: 64, max_concurrent: 32 }
    }
}

/// A log line's level (protocol §6.8): the one enum the wire types, the storage and the engine share.
pub use roost_api::LogLevel;

/// What the script engine needs from the server, per invocation.
pub trait ScriptHost: Send + Sync + 'static {
    /// Runs one asynchronous host operation; its result or error is handed to the script.
    fn call(&self, call: HostCall) -> BoxFuture<'static, Result<Json, HostError>>;
    /// Whether the caller may use a custom API's route (`route` as registered, `verb` lower-case),
    /// by the API's permissions (§5.2): decided by the host, never by the script.
    fn api_allowed(&self, route: &str, verb: &str) -> bool {
        let _ = (route, verb);
        false
    }
    /// Mints a user token of the tenant (`require('roost-auth').createToken`): `claims` is a JSON
    /// object of extra claims, `lifetime_seconds` the validity. The error is the message thrown.
    fn mint_token(&self, user_id: &str, claims: &str, lifetime_seconds: f64) -> Result<String, String> {
        let _ = (user_id, claims, lifetime_seconds);
        Err("Tokens cannot be minted here.".into())
    }
    /// The source of a shared module (`shared/<name>.js`, `name` lower-case, without extension).
    fn module(&self, name: &str) -> Option<Arc<str>>;
    /// Stores a log line of the tenant.
    fn log(&self, level: LogLevel, source: &str, message: &str);
    /// The tenant's configuration for `process.env` and `mobileservice-config`:
    /// `{ "env": {…app settings…}, "config": {…} }`.
    fn config(&self) -> Json;
    /// Resolves `require(id)` from the module at `from` (`/table/todo.insert.js`,
    /// `/node_modules/async/lib/async.js`) in the tenant's installed packages, the Node way.
    fn resolve(&self, from: &str, id: &str) -> Resolved {
        let _ = (from, id);
        Resolved::NotFound
    }
    /// An invocation has ended (all its work done, or stopped): the CPU time its steps used and how
    /// it ended. Called once per invocation, for the host's metrics.
    fn finished(&self, cpu: std::time::Duration, outcome: Result<(), &ScriptFailure>) {
        let _ = (cpu, outcome);
    }
}

/// What [`ScriptHost::resolve`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    /// Not among the tenant's packages (the built-ins come next).
    NotFound,
    /// A module: its path (the cache key and `__filename`) and its CommonJS source.
    Found {
        /// `/node_modules/<package>/<file>`.
        path: String,
        /// The source; a `.json` file arrives as `module.exports = …;`.
        text: Arc<str>,
        /// Names this exact text for the process-wide bytecode cache (the same key must always
        /// mean the same text: e.g. the install's lock hash and the path).
        key: Arc<str>,
    },
    /// Found, but it cannot run here (a native addon); the message says why.
    Refused(String),
}

/// One run of a script.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The script's path in the Mobile Services layout, for logs and stacks: `/table/todo.insert.js`.
    pub source: String,
    /// The script text.
    pub script: Arc<str>,
    /// How the script is entered.
    pub entry: Entry,
    /// The entry's input, as JSON (its shape depends on `entry`; see `src/js/`).
    pub input: Json,
}

/// How an invocation enters its script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A table script: the script defines `function insert|read|update|del(...)` (§6.3).
    Table,
    /// A custom API module (§6.10), called for one request.
    Api,
    /// A scheduler job: the script defines `function <name>()` (§6.11).
    Job(String),
    /// `extensions/startup.js` (§6.12).
    Startup,
    /// `extensions/push.js`'s `register(registration, context, done)` (§6.12), before a registration
    /// is saved; its response's JSON body is the registration as the script left it.
    PushRegister,
}

/// A response a script produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers the script set (names as given).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: ScriptBody,
}

/// A response body.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptBody {
    /// No body.
    Empty,
    /// A JSON value, serialised by the server.
    Json(Json),
    /// Text, sent as is.
    Text(String),
    /// Bytes (a `Buffer`).
    Bytes(Vec<u8>),
}

/// Why an invocation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptFailure {
    /// The CPU-time limit was reached.
    #[error("The script exceeded its CPU time limit of {0} ms and was stopped.")]
    CpuLimit(u64),
    /// The tenant's script memory cap was reached.
    #[error("The script exceeded the memory limit of {0} MB and was stopped.")]
    MemoryLimit(u64),
    /// The wall-clock limit was reached.
    #[error("The script did not finish within {0} ms and was stopped.")]
    WallLimit(u64),
    /// No invocation slot became free in time.
    #[error("Too many scripts of this service are running at once.")]
    Busy,
    /// An uncaught exception or another script error (the message is logged as is).
    #[error("{0}")]
    Error(String),
}
