//! What the portal's dashboards read: a tenant's series over a range (every node's catalog rows
//! added up), its usage of its tier today, and the platform view of every tenant and node.

use super::rollup::{day_now, hour_now, minute_now, Detail};
use super::{hll, BUCKETS, KINDS, LATENCY_BOUNDS_MS, LIMITS, PUSH_OUTCOMES};
use crate::AppState;
use roost_api::{DashboardOut, KindCount, MetricsPoint, NodeOut, PlatformOut, TenantActivity, UsageOut};
use roost_storage::metrics::{Grain, MetricsRow};
use roost_storage::TenantRecord;
use std::collections::HashMap;

/// The ranges a dashboard shows: (name, grain, seconds per point, points).
const RANGES: [(&str, Grain, i64, i64); 4] =
    [("1h", Grain::Minute, 60, 60), ("24h", Grain::Minute, 900, 96), ("7d", Grain::Hour, 3600, 168), ("30d", Grain::Hour, 6 * 3600, 120)];

/// The range names.
pub fn valid_range(range: &str) -> bool {
    RANGES.iter().any(|r| r.0 == range)
}

/// The latency percentile `q` of histogram buckets, in milliseconds (a bucket's upper bound).
fn percentile(buckets: &[u64], q: f64) -> f64 {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let want = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= want {
            return LATENCY_BOUNDS_MS.get(i).copied().unwrap_or(LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1] * 2.0);
        }
    }
    0.0
}

fn u(v: i64) -> u64 {
    v.max(0) as u64
}

/// Adds a row's sums to a point.
fn add_row(p: &mut MetricsPoint, r: &MetricsRow) {
    p.requests += u(r.requests);
    p.errors += u(r.errors);
    p.client_errors += u(r.client_errors);
    p.bytes_in += u(r.bytes_in);
    p.bytes_out += u(r.bytes_out);
    p.script_invocations += u(r.script_invocations);
    p.script_cpu_ms += r.script_cpu_us.max(0) as f64 / 1000.0;
    p.script_errors += u(r.script_errors);
    p.limit_hits += u(r.limit_hits);
    p.push_queued += u(r.push_queued);
}

fn set_percentiles(p: &mut MetricsPoint, latency: &[u64]) {
    p.p50_ms = percentile(latency, 0.50);
    p.p95_ms = percentile(latency, 0.95);
    p.p99_ms = percentile(latency, 0.99);
}

/// The tier of a tenant and its use today.
pub async fn usage(app: &AppState, record: &TenantRecord) -> anyhow::Result<UsageOut> {
    let (name, tier) = app.tier_of(record);
    let today = app.storage.metrics_totals(Grain::Hour, day_now() * 24, false).await?;
    let mine = today.iter().find(|r| r.tenant == record.name);
    let (mut calls, mut push) = mine.map(|r| (u(r.requests), u(r.push_queued))).unwrap_or((0, 0));
    // This node's counts since its last roll-up.
    if let Some(m) = app.metrics.tenant(&record.name) {
        calls = calls.max(m.quota.calls_today());
        push = push.max(m.quota.push_today());
    }
    let database_bytes = app.storage.tenant_database_bytes(&record.name).await.unwrap_or(0);
    let tables = app.storage.tenant(&record.name).await?.map(|t| t.tables().len() as u64).unwrap_or(0);
    let resets = chrono::DateTime::from_timestamp((day_now() + 1) * 86_400, 0).unwrap_or_default();
    Ok(UsageOut {
        tier: name.to_string(),
        limits: tier.clone(),
        api_calls_today: calls,
        push_today: push,
        tables,
        database_bytes,
        resets_at: resets.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    })
}

/// A tenant's dashboard over `range` (`1h`, `24h`, `7d`, `30d`).
pub async fn dashboard(app: &AppState, record: &TenantRecord, url: String, range: &str) -> anyhow::Result<DashboardOut> {
    let &(range, grain, step, points) = RANGES.iter().find(|r| r.0 == range).unwrap_or(&RANGES[0]);
    let (unit, now_bucket) = match grain {
        Grain::Minute => (60, minute_now()),
        Grain::Hour => (3600, hour_now()),
    };
    let now = (now_bucket + 1) * unit;
    let start = now.div_euclid(step) * step + step - points * step;
    let rows = app.storage.metrics_rows(grain, Some(&record.name), start.div_euclid(unit)).await?;
    let mut series: Vec<MetricsPoint> = (0..points).map(|i| MetricsPoint { t: start + i * step, ..Default::default() }).collect();
    let mut latency: Vec<Vec<u64>> = vec![vec![0; BUCKETS]; points as usize];
    let mut total = MetricsPoint { t: start, ..Default::default() };
    let mut detail = Detail::default();
    for r in &rows {
        let at = r.bucket * unit;
        let Ok(i) = usize::try_from((at - start).div_euclid(step)) else { continue };
        let Some(p) = series.get_mut(i) else { continue };
        add_row(p, r);
        add_row(&mut total, r);
        let d: Detail = serde_json::from_str(&r.detail).unwrap_or_default();
        for (a, b) in latency[i].iter_mut().zip(&d.l) {
            *a += b;
        }
        detail.add(&d);
    }
    for (p, l) in series.iter_mut().zip(&latency) {
        set_percentiles(p, l);
    }
    set_percentiles(&mut total, &detail.l);
    let by_kind = KINDS
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let c = detail.k.get(i).copied().unwrap_or_default();
            KindCount { kind: k.to_string(), ok: c[0], client_errors: c[1], errors: c[2] }
        })
        .collect();
    let mut top: Vec<(String, u64)> = detail.n.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(10);
    let limits = LIMITS.iter().enumerate().map(|(i, l)| (l.to_string(), detail.x.get(i).copied().unwrap_or(0))).collect();
    let push = PUSH_OUTCOMES.iter().enumerate().map(|(i, l)| (l.to_string(), detail.p.get(i).copied().unwrap_or(0))).collect();
    // Devices: today's sketches, and every day's in the range, merged across nodes.
    let first_day = start.div_euclid(86_400);
    let sketches = app.storage.devices(&record.name, first_day).await?;
    let (mut today, mut all) = (hll::Merged::default(), hll::Merged::default());
    for (day, regs) in &sketches {
        all.add_encoded(regs);
        if *day == day_now() {
            today.add_encoded(regs);
        }
    }
    if let Some(m) = app.metrics.tenant(&record.name) {
        let (day, s) = m.devices_today();
        all.add(&s);
        if day == day_now() {
            today.add(&s);
        }
    }
    Ok(DashboardOut {
        name: record.name.clone(),
        url,
        status: "active".into(),
        range: range.to_string(),
        step,
        points: series,
        totals: total,
        by_kind,
        top,
        limits,
        push,
        active_devices_today: today.estimate(),
        active_devices_range: all.estimate(),
        usage: usage(app, record).await?,
    })
}

/// Every tenant of `tenants` over the last 24 hours, and the nodes.
pub async fn platform(app: &AppState, tenants: &[TenantRecord]) -> anyhow::Result<PlatformOut> {
    let first = hour_now() - 23;
    let rows = app.storage.metrics_totals(Grain::Hour, first, true).await?;
    let mut by: HashMap<&str, Vec<&MetricsRow>> = HashMap::new();
    for r in &rows {
        by.entry(r.tenant.as_str()).or_default().push(r);
    }
    let today_hour = day_now() * 24;
    let mut out = Vec::new();
    for t in tenants {
        let (tier_name, tier) = app.tier_of(t);
        let mine = by.get(t.name.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        let mut p = MetricsPoint::default();
        let mut hourly = vec![0u64; 24];
        let mut latency_us = 0i64;
        let mut today = 0u64;
        for r in mine {
            add_row(&mut p, r);
            latency_us += r.latency_us_sum;
            if let Ok(i) = usize::try_from(r.bucket - first) {
                if let Some(h) = hourly.get_mut(i) {
                    *h += u(r.requests);
                }
            }
            if r.bucket >= today_hour {
                today += u(r.requests);
            }
        }
        out.push(TenantActivity {
            name: t.name.clone(),
            tier: tier_name.to_string(),
            requests: p.requests,
            errors: p.errors,
            client_errors: p.client_errors,
            mean_latency_ms: if p.requests > 0 { latency_us as f64 / p.requests as f64 / 1000.0 } else { 0.0 },
            limit_hits: p.limit_hits,
            quota_used: today as f64 / tier.api_calls_per_day.max(1) as f64,
            hourly,
        });
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    let iso = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let nodes = app
        .storage
        .nodes()
        .await?
        .into_iter()
        .map(|n| NodeOut {
            started_at: iso(n.started_at),
            heartbeat_at: iso(n.heartbeat_at),
            heartbeat_age_s: (now_ms - n.heartbeat_at).max(0) / 1000,
            uptime_s: (n.heartbeat_at - n.started_at).max(0) / 1000,
            rss_bytes: u(n.rss_bytes),
            tenants: u(n.tenants),
            id: n.id,
            version: n.version,
        })
        .collect();
    Ok(PlatformOut { tenants: out, nodes })
}
