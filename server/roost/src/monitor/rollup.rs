//! The roll-up (a managed loop): every `metrics_flush_ms` each tenant's counters are differenced,
//! added to this node's running totals of the current minute and hour, and those totals written to
//! the catalog (replacing this node's rows of those buckets); active-device sketches that changed are
//! written; the daily counts of the quotas are refreshed from every node's hour rows; the node's
//! heartbeat is recorded. Hourly, rows past their retention are pruned. On shutdown it flushes once
//! more, so nothing counted is lost.

use super::{Snapshot, BUCKETS, KINDS, LIMITS, PUSH_OUTCOMES};
use crate::AppState;
use roost_storage::metrics::{Grain, MetricsRow, NodeRow};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Seconds since the epoch.
fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The current unix minute.
pub fn minute_now() -> i64 {
    now_s().div_euclid(60)
}

/// The current unix hour.
pub fn hour_now() -> i64 {
    now_s().div_euclid(3600)
}

/// The current unix day (UTC).
pub fn day_now() -> i64 {
    now_s().div_euclid(86_400)
}

/// The breakdowns of a row (its `detail` JSON).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Detail {
    /// Requests by kind, then status class.
    #[serde(default)]
    pub k: Vec<[u64; 3]>,
    /// Latency buckets.
    #[serde(default)]
    pub l: Vec<u64>,
    /// Limit hits by limit.
    #[serde(default)]
    pub x: Vec<u64>,
    /// Push outcomes.
    #[serde(default)]
    pub p: Vec<u64>,
    /// Requests by table or API.
    #[serde(default)]
    pub n: HashMap<String, u64>,
}

impl Detail {
    /// Adds another row's breakdowns.
    pub fn add(&mut self, o: &Detail) {
        fn add_vec<T: Copy + Default + std::ops::AddAssign>(a: &mut Vec<T>, b: &[T]) {
            if a.len() < b.len() {
                a.resize(b.len(), T::default());
            }
            for (x, y) in a.iter_mut().zip(b) {
                *x += *y;
            }
        }
        if self.k.len() < o.k.len() {
            self.k.resize(o.k.len(), [0; 3]);
        }
        for (a, b) in self.k.iter_mut().zip(&o.k) {
            for i in 0..3 {
                a[i] += b[i];
            }
        }
        add_vec(&mut self.l, &o.l);
        add_vec(&mut self.x, &o.x);
        add_vec(&mut self.p, &o.p);
        for (k, v) in &o.n {
            *self.n.entry(k.clone()).or_default() += v;
        }
    }
}

/// `a - b`, counter by counter (a counter never goes down; a reset one counts from zero).
fn delta(a: &Snapshot, b: &Snapshot) -> Snapshot {
    let d = |x: u64, y: u64| x.saturating_sub(y);
    let names: Vec<(String, u64)> = a
        .names
        .iter()
        .filter_map(|(k, v)| {
            let before = b.names.iter().find(|(bk, _)| bk == k).map(|(_, bv)| *bv).unwrap_or(0);
            Some((k.clone(), d(*v, before))).filter(|(_, n)| *n > 0)
        })
        .collect();
    Snapshot {
        requests: std::array::from_fn(|k| std::array::from_fn(|c| d(a.requests[k][c], b.requests[k][c]))),
        bytes_in: d(a.bytes_in, b.bytes_in),
        bytes_out: d(a.bytes_out, b.bytes_out),
        latency: std::array::from_fn(|i| d(a.latency[i], b.latency[i])),
        latency_us_sum: d(a.latency_us_sum, b.latency_us_sum),
        script_invocations: d(a.script_invocations, b.script_invocations),
        script_cpu_us: d(a.script_cpu_us, b.script_cpu_us),
        script_errors: d(a.script_errors, b.script_errors),
        limits: std::array::from_fn(|i| d(a.limits[i], b.limits[i])),
        push_queued: d(a.push_queued, b.push_queued),
        push: std::array::from_fn(|i| d(a.push[i], b.push[i])),
        names,
    }
}

/// `a += b`.
pub(crate) fn add(a: &mut Snapshot, b: &Snapshot) {
    for k in 0..KINDS.len() {
        for c in 0..3 {
            a.requests[k][c] += b.requests[k][c];
        }
    }
    a.bytes_in += b.bytes_in;
    a.bytes_out += b.bytes_out;
    for i in 0..BUCKETS {
        a.latency[i] += b.latency[i];
    }
    a.latency_us_sum += b.latency_us_sum;
    a.script_invocations += b.script_invocations;
    a.script_cpu_us += b.script_cpu_us;
    a.script_errors += b.script_errors;
    for i in 0..LIMITS.len() {
        a.limits[i] += b.limits[i];
    }
    a.push_queued += b.push_queued;
    for i in 0..PUSH_OUTCOMES.len() {
        a.push[i] += b.push[i];
    }
    for (k, v) in &b.names {
        match a.names.iter_mut().find(|(ak, _)| ak == k) {
            Some((_, av)) => *av += v,
            None => a.names.push((k.clone(), *v)),
        }
    }
}

fn is_zero(s: &Snapshot) -> bool {
    *s == Snapshot { names: Vec::new(), ..Snapshot::default() } && s.names.is_empty()
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The catalog row of a tenant's totals in a bucket.
fn row(tenant: &str, bucket: i64, node: &str, s: &Snapshot) -> MetricsRow {
    let requests: u64 = s.requests.iter().flatten().sum();
    let detail = Detail { k: s.requests.to_vec(), l: s.latency.to_vec(), x: s.limits.to_vec(), p: s.push.to_vec(), n: s.names.iter().cloned().collect() };
    MetricsRow {
        tenant: tenant.to_string(),
        bucket,
        node: node.to_string(),
        requests: i(requests),
        errors: i(s.requests.iter().map(|k| k[2]).sum()),
        client_errors: i(s.requests.iter().map(|k| k[1]).sum()),
        bytes_in: i(s.bytes_in),
        bytes_out: i(s.bytes_out),
        script_invocations: i(s.script_invocations),
        script_cpu_us: i(s.script_cpu_us),
        script_errors: i(s.script_errors),
        limit_hits: i(s.limits.iter().sum()),
        push_queued: i(s.push_queued),
        latency_us_sum: i(s.latency_us_sum),
        detail: serde_json::to_string(&detail).unwrap_or_else(|_| "{}".into()),
    }
}

/// This node's running totals of the current buckets.
#[derive(Default)]
pub struct Rollup {
    last: HashMap<String, Snapshot>,
    minute: (i64, HashMap<String, Snapshot>),
    hour: (i64, HashMap<String, Snapshot>),
    last_prune: Option<std::time::Instant>,
    last_sizes: Option<std::time::Instant>,
}

impl Rollup {
    /// One roll-up: counters, devices, quotas, heartbeat (and pruning once an hour).
    pub async fn flush(&mut self, app: &AppState) -> anyhow::Result<()> {
        let (minute, hour) = (minute_now(), hour_now());
        if self.minute.0 != minute {
            self.minute = (minute, HashMap::new());
        }
        if self.hour.0 != hour {
            self.hour = (hour, HashMap::new());
        }
        let tenants = app.metrics.all();
        // The quotas' local counts as they are now: what the catalog holds after this write.
        let locals: Vec<(u64, u64)> = tenants.iter().map(|t| (t.quota.calls_local.load(Relaxed), t.quota.push_local.load(Relaxed))).collect();
        let (mut minute_rows, mut hour_rows) = (Vec::new(), Vec::new());
        for t in &tenants {
            let snap = t.snapshot();
            let d = delta(&snap, self.last.get(t.name.as_ref()).unwrap_or(&Snapshot::default()));
            self.last.insert(t.name.to_string(), snap);
            if is_zero(&d) {
                continue;
            }
            let m = self.minute.1.entry(t.name.to_string()).or_default();
            add(m, &d);
            minute_rows.push(row(&t.name, minute, &app.metrics.node, m));
            let h = self.hour.1.entry(t.name.to_string()).or_default();
            add(h, &d);
            hour_rows.push(row(&t.name, hour, &app.metrics.node, h));
        }
        app.storage.upsert_metrics(Grain::Minute, &minute_rows).await?;
        app.storage.upsert_metrics(Grain::Hour, &hour_rows).await?;
        // Device sketches that changed (and yesterday's, once, after midnight).
        let mut devices = Vec::new();
        for t in &tenants {
            if let Some((day, s)) = t.previous_devices.lock().unwrap_or_else(|e| e.into_inner()).take() {
                devices.push((t.name.to_string(), day, app.metrics.node.clone(), s.encode()));
            }
            let (day, s) = t.devices_today();
            if s.take_dirty() {
                devices.push((t.name.to_string(), day, app.metrics.node.clone(), s.encode()));
            }
        }
        app.storage.upsert_devices(&devices).await?;
        // Every node's counts of today, for the daily quotas.
        let today_hour = day_now() * 24;
        let totals: HashMap<String, (i64, i64)> =
            app.storage.metrics_totals(Grain::Hour, today_hour, false).await?.into_iter().map(|r| (r.tenant, (r.requests, r.push_queued))).collect();
        let today = day_now();
        for (t, (calls, push)) in tenants.iter().zip(locals) {
            let q = &t.quota;
            if q.day.load(Relaxed) != today {
                continue;
            }
            let (c, p) = totals.get(t.name.as_ref()).copied().unwrap_or((0, 0));
            q.calls_base.store(c.max(0) as u64, Relaxed);
            q.push_base.store(p.max(0) as u64, Relaxed);
            let _ = q.calls_local.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(calls)));
            let _ = q.push_local.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(push)));
        }
        // Database sizes, once a minute.
        if self.last_sizes.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            self.last_sizes = Some(std::time::Instant::now());
            for t in &tenants {
                if let Ok(bytes) = app.storage.tenant_database_bytes(&t.name).await {
                    t.quota.database_bytes.store(bytes, Relaxed);
                }
            }
        }
        app.storage
            .heartbeat(&NodeRow {
                id: app.metrics.node.clone(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                started_at: app.metrics.started_ms,
                heartbeat_at: chrono::Utc::now().timestamp_millis(),
                rss_bytes: i(super::rss_bytes()),
                tenants: i(tenants.len() as u64),
            })
            .await?;
        app.metrics.exporter.upkeep();
        if self.last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
            self.last_prune = Some(std::time::Instant::now());
            prune(app).await?;
        }
        Ok(())
    }
}

/// Deletes metrics past their retention, and nodes silent for a day.
pub async fn prune(app: &AppState) -> anyhow::Result<u64> {
    let minute_days = i(app.metrics_retention.0);
    let hour_days = i(app.metrics_retention.1);
    let n = app
        .storage
        .prune_metrics(
            minute_now() - minute_days * 1440,
            hour_now() - hour_days * 24,
            day_now() - hour_days,
            chrono::Utc::now().timestamp_millis() - 86_400_000,
        )
        .await?;
    if n > 0 {
        tracing::info!(rows = n, "Pruned metrics past their retention");
    }
    Ok(n)
}

/// Rolls up now (the loop does it on its interval; tests and shutdown call it directly). One
/// node's roll-ups never overlap: each replaces the node's rows with its running totals.
pub async fn flush_now(app: &AppState) -> anyhow::Result<()> {
    if !app.metrics.enabled {
        return Ok(());
    }
    app.rollup.lock().await.flush(app).await
}

/// The roll-up loop: flushes every `every`, and once more when the server stops.
pub async fn run(app: std::sync::Weak<crate::App>, every: Duration, stop: tokio_util::sync::CancellationToken) {
    loop {
        let go_on = crate::tasks::sleep_or_stop(&stop, every).await;
        let Some(state) = app.upgrade().map(AppState) else { return };
        if let Err(e) = flush_now(&state).await {
            tracing::warn!(error.cause = %e, "Could not roll the metrics up into the catalog");
        }
        if !go_on {
            return;
        }
    }
}
