//! Monitoring: every tenant's counters on this node, recorded on the hot path with atomics (no lock
//! but a read lock to find the tenant's counters, and one on the first request naming a new table or
//! API); rolled up into the catalog by [`rollup`], rendered for Prometheus by [`prometheus`], read
//! back for the portal's dashboards by [`dashboard`]; the tiers' rates and quotas ([`tiers`]).
//!
//! Counters here are cumulative since the process started; the roll-up takes their differences.

pub mod dashboard;
pub mod hll;
pub mod prometheus;
pub mod rollup;
pub mod tiers;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// What a tenant request was for: its first path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tables,
    Api,
    Jobs,
    Login,
    Push,
    Other,
}

/// The kinds, in their index order.
pub const KINDS: [&str; 6] = ["tables", "api", "jobs", "login", "push", "other"];

impl Kind {
    /// The kind of a path below the tenant's base (`/tables/todo/1`).
    pub fn of(rest: &str) -> Kind {
        let first = rest.trim_start_matches('/').split('/').next().unwrap_or("");
        match first.to_ascii_lowercase().as_str() {
            "tables" => Kind::Tables,
            "api" => Kind::Api,
            "jobs" => Kind::Jobs,
            "login" => Kind::Login,
            "push" => Kind::Push,
            _ => Kind::Other,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Status classes: 1xx–3xx, 4xx, 5xx.
pub const CLASSES: [&str; 3] = ["ok", "4xx", "5xx"];

fn class(status: u16) -> usize {
    match status {
        500.. => 2,
        400..=499 => 1,
        _ => 0,
    }
}

/// The limits a tenant can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The tier's requests per second (429).
    Rate,
    /// The tier's API calls per day (403).
    DailyQuota,
    /// The tier's push notifications per day.
    PushQuota,
    /// The tier's number of tables.
    Tables,
    /// The tier's database size.
    Database,
    /// A script's CPU time.
    Cpu,
    /// A script runtime's memory.
    Memory,
    /// A script's wall-clock time.
    Wall,
    /// Too many scripts running at once.
    Concurrency,
    /// The request body limit (413).
    Body,
    /// The request timeout.
    Timeout,
}

/// The limits, in their index order (their names in metrics and dashboards).
pub const LIMITS: [&str; 11] = ["rate", "daily_quota", "push_quota", "tables", "database", "cpu", "memory", "wall", "concurrency", "body", "timeout"];

/// Push outcomes after queueing.
pub const PUSH_OUTCOMES: [&str; 5] = ["delivered", "retried", "expired", "failed", "pruned"];

/// Upper bounds of the latency buckets, in milliseconds (a last bucket takes the rest).
pub const LATENCY_BOUNDS_MS: [f64; 15] = [0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0];
/// Latency buckets (the bounds and the overflow).
pub const BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// Tables and APIs counted by name per tenant; later ones count under `other`.
const MAX_NAMES: usize = 64;

/// Counter shards per tenant: each thread adds to its own (cache-line aligned), so two cores
/// serving one tenant never write the same line; a snapshot adds the shards up.
const SHARDS: usize = 8;

/// One shard of a tenant's counters.
#[derive(Default)]
#[repr(align(128))]
struct Shard {
    requests: [[AtomicU64; 3]; 6],
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    latency: [AtomicU64; BUCKETS],
    latency_us_sum: AtomicU64,
    script_invocations: AtomicU64,
    script_cpu_us: AtomicU64,
    script_errors: AtomicU64,
    limits: [AtomicU64; LIMITS.len()],
    push_queued: AtomicU64,
    push: [AtomicU64; PUSH_OUTCOMES.len()],
}

std::thread_local! {
    /// This thread's shard index.
    static SHARD: usize = {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        (NEXT.fetch_add(1, Relaxed) as usize) % SHARDS
    };
}

/// One tenant's counters on this node.
pub struct TenantMetrics {
    /// The tenant's name.
    pub name: Arc<str>,
    /// Its Prometheus `tenant` label (its name, or `_other` beyond `metrics_max_tenants`).
    pub label: Arc<str>,
    shards: Box<[Shard; SHARDS]>,
    /// Requests by table (0) and API (1) name.
    names: [RwLock<HashMap<Box<str>, Arc<AtomicU64>>>; 2],
    /// Today's distinct installation ids: (UTC day, sketch); the previous day's until written.
    devices: RwLock<(i64, Arc<hll::Sketch>)>,
    pub(crate) previous_devices: Mutex<Option<(i64, Arc<hll::Sketch>)>>,
    /// The tier's rate limiter and daily counts.
    pub(crate) quota: tiers::QuotaState,
    /// Request-failure and limit lines logged in the current second (bounded).
    log_budget: AtomicU64,
    /// The Prometheus latency histogram of its label.
    prom_latency: metrics::Histogram,
}

/// A snapshot of a tenant's cumulative counters (what the roll-up differences).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub requests: [[u64; 3]; 6],
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub latency: [u64; BUCKETS],
    pub latency_us_sum: u64,
    pub script_invocations: u64,
    pub script_cpu_us: u64,
    pub script_errors: u64,
    pub limits: [u64; LIMITS.len()],
    pub push_queued: u64,
    pub push: [u64; PUSH_OUTCOMES.len()],
    pub names: Vec<(String, u64)>,
}

fn sum<const N: usize>(shards: &[Shard], f: impl Fn(&Shard) -> &[AtomicU64; N]) -> [u64; N] {
    std::array::from_fn(|i| shards.iter().map(|s| f(s)[i].load(Relaxed)).sum())
}

fn sum1(shards: &[Shard], f: impl Fn(&Shard) -> &AtomicU64) -> u64 {
    shards.iter().map(|s| f(s).load(Relaxed)).sum()
}

impl TenantMetrics {
    fn new(name: &str, label: Arc<str>, prom_latency: metrics::Histogram) -> Self {
        Self {
            name: name.into(),
            label,
            shards: Box::default(),
            names: Default::default(),
            devices: RwLock::new((rollup::day_now(), Default::default())),
            previous_devices: Mutex::new(None),
            quota: Default::default(),
            log_budget: AtomicU64::new(0),
            prom_latency,
        }
    }

    fn shard(&self) -> &Shard {
        &self.shards[SHARD.with(|s| *s)]
    }

    /// Records an answered request: its kind, the table or API it named (`tables/todo`), its status,
    /// the bytes of its body and of its answer, and how long it took.
    pub fn request(&self, kind: Kind, name: Option<&str>, status: u16, bytes_in: u64, bytes_out: u64, latency: Duration) {
        let sh = self.shard();
        sh.requests[kind.index()][class(status)].fetch_add(1, Relaxed);
        sh.bytes_in.fetch_add(bytes_in, Relaxed);
        sh.bytes_out.fetch_add(bytes_out, Relaxed);
        let ms = latency.as_secs_f64() * 1000.0;
        let bucket = LATENCY_BOUNDS_MS.iter().position(|b| ms <= *b).unwrap_or(BUCKETS - 1);
        sh.latency[bucket].fetch_add(1, Relaxed);
        sh.latency_us_sum.fetch_add(latency.as_micros() as u64, Relaxed);
        self.prom_latency.record(latency.as_secs_f64());
        if let Some(name) = name {
            self.named(kind, name);
        }
    }

    fn named(&self, kind: Kind, name: &str) {
        let map = &self.names[usize::from(kind == Kind::Api)];
        if let Some(c) = map.read().unwrap_or_else(|e| e.into_inner()).get(name) {
            c.fetch_add(1, Relaxed);
            return;
        }
        let mut names = map.write().unwrap_or_else(|e| e.into_inner());
        let key = if names.len() >= MAX_NAMES && !names.contains_key(name) { "(other)" } else { name };
        names.entry(key.into()).or_default().fetch_add(1, Relaxed);
    }

    /// Records a script invocation's end.
    pub fn script(&self, cpu: Duration, failure: Option<&roost_scripts::ScriptFailure>) {
        use roost_scripts::ScriptFailure as F;
        let sh = self.shard();
        sh.script_invocations.fetch_add(1, Relaxed);
        sh.script_cpu_us.fetch_add(cpu.as_micros() as u64, Relaxed);
        if let Some(f) = failure {
            sh.script_errors.fetch_add(1, Relaxed);
            match f {
                F::CpuLimit(_) => self.limit(Limit::Cpu),
                F::MemoryLimit(_) => self.limit(Limit::Memory),
                F::WallLimit(_) => self.limit(Limit::Wall),
                F::Busy => self.limit(Limit::Concurrency),
                F::Error(_) => {}
            }
        }
    }

    /// Records a limit hit.
    pub fn limit(&self, limit: Limit) {
        self.shard().limits[limit as usize].fetch_add(1, Relaxed);
    }

    /// Records push notifications queued.
    pub fn push_queued(&self, n: u64) {
        self.shard().push_queued.fetch_add(n, Relaxed);
        self.quota.push_local.fetch_add(n, Relaxed);
    }

    /// Records push outcomes (an index of [`PUSH_OUTCOMES`]).
    pub fn push_outcome(&self, outcome: usize, n: u64) {
        if let Some(c) = self.shard().push.get(outcome) {
            c.fetch_add(n, Relaxed);
        }
    }

    /// Records a request's installation id (`X-ZUMO-INSTALLATION-ID`).
    pub fn device(&self, id: &[u8]) {
        let today = rollup::day_now();
        {
            let d = self.devices.read().unwrap_or_else(|e| e.into_inner());
            if d.0 == today {
                d.1.insert(id);
                return;
            }
        }
        let mut d = self.devices.write().unwrap_or_else(|e| e.into_inner());
        if d.0 != today {
            let old = std::mem::replace(&mut *d, (today, Default::default()));
            *self.previous_devices.lock().unwrap_or_else(|e| e.into_inner()) = Some(old);
        }
        d.1.insert(id);
    }

    /// Today's sketch.
    pub fn devices_today(&self) -> (i64, Arc<hll::Sketch>) {
        let d = self.devices.read().unwrap_or_else(|e| e.into_inner());
        (d.0, d.1.clone())
    }

    /// Whether another request-failure or limit line may be logged this second (at most 10).
    pub fn may_log(&self) -> bool {
        let second = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let packed = self.log_budget.load(Relaxed);
        let (at, used) = (packed >> 8, packed & 0xff);
        let next = if at == second { (at << 8) | (used + 1) } else { (second << 8) | 1 };
        if at == second && used >= 10 {
            return false;
        }
        self.log_budget.compare_exchange(packed, next, Relaxed, Relaxed).is_ok()
    }

    /// The cumulative counters now.
    pub fn snapshot(&self) -> Snapshot {
        let sh = &self.shards[..];
        let mut names = Vec::new();
        for (i, kind) in ["tables", "api"].iter().enumerate() {
            for (k, v) in self.names[i].read().unwrap_or_else(|e| e.into_inner()).iter() {
                names.push((format!("{kind}/{k}"), v.load(Relaxed)));
            }
        }
        Snapshot {
            requests: std::array::from_fn(|k| sum(sh, |s| &s.requests[k])),
            bytes_in: sum1(sh, |s| &s.bytes_in),
            bytes_out: sum1(sh, |s| &s.bytes_out),
            latency: sum(sh, |s| &s.latency),
            latency_us_sum: sum1(sh, |s| &s.latency_us_sum),
            script_invocations: sum1(sh, |s| &s.script_invocations),
            script_cpu_us: sum1(sh, |s| &s.script_cpu_us),
            script_errors: sum1(sh, |s| &s.script_errors),
            limits: sum(sh, |s| &s.limits),
            push_queued: sum1(sh, |s| &s.push_queued),
            push: sum(sh, |s| &s.push),
            names,
        }
    }
}

/// Every tenant's counters on this node.
pub struct Metrics {
    /// False: nothing is counted and no tier is enforced (`metrics = false`).
    pub enabled: bool,
    tenants: RwLock<HashMap<Box<str>, Arc<TenantMetrics>>>,
    max_labels: usize,
    /// This node's id in the catalog (random per process).
    pub node: String,
    /// When this process started (epoch milliseconds).
    pub started_ms: i64,
    /// The Prometheus exporter.
    pub exporter: prometheus::Exporter,
}

impl Metrics {
    /// The registry of a node.
    pub fn new(enabled: bool, max_labels: u64) -> Self {
        Self {
            enabled,
            tenants: Default::default(),
            max_labels: usize::try_from(max_labels).unwrap_or(usize::MAX),
            node: uuid::Uuid::new_v4().simple().to_string(),
            started_ms: chrono::Utc::now().timestamp_millis(),
            exporter: Default::default(),
        }
    }

    /// A tenant's counters (created on its first request); `None` when metrics are off.
    pub fn tenant(&self, name: &str) -> Option<Arc<TenantMetrics>> {
        if !self.enabled {
            return None;
        }
        if let Some(t) = self.tenants.read().unwrap_or_else(|e| e.into_inner()).get(name) {
            return Some(t.clone());
        }
        let mut tenants = self.tenants.write().unwrap_or_else(|e| e.into_inner());
        let labelled = tenants.values().filter(|t| t.label.as_ref() != OTHER).count();
        let label: Arc<str> = if labelled < self.max_labels { name.into() } else { OTHER.into() };
        let exporter = &self.exporter;
        Some(tenants.entry(name.into()).or_insert_with(|| Arc::new(TenantMetrics::new(name, label.clone(), exporter.latency(&label)))).clone())
    }

    /// Every tenant's counters.
    pub fn all(&self) -> Vec<Arc<TenantMetrics>> {
        self.tenants.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    /// Forgets a deleted tenant's counters.
    pub fn forget(&self, name: &str) {
        self.tenants.write().unwrap_or_else(|e| e.into_inner()).remove(name);
    }
}

/// The `tenant` label of tenants beyond `metrics_max_tenants`.
pub const OTHER: &str = "_other";

/// This process's resident memory in bytes (Linux `/proc/self/statm`; 0 elsewhere).
pub fn rss_bytes() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/self/statm") else { return 0 };
    let pages: u64 = text.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}
