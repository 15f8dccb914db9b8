//! `GET /metrics`: this node's counters in the Prometheus text format, rendered by
//! `metrics-exporter-prometheus` from a recorder of this server's own (never the process-global one,
//! so several servers in one process keep apart). Counters and gauges are set from the tenants'
//! atomics when scraped; request latency is recorded into the exporter's histogram as it happens.
//!
//! Labels are bounded: `tenant` is a tenant's name for the first `metrics_max_tenants` tenants this
//! node served and `_other` beyond; `kind`, `status`, `limit` and `outcome` take a few fixed values.
//! Never a user id, a table name or a path.

use super::{Metrics, CLASSES, KINDS, LATENCY_BOUNDS_MS, LIMITS, PUSH_OUTCOMES};
use metrics::{Key, Label, Recorder as _};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::collections::BTreeMap;

/// The request latency histogram.
pub const LATENCY: &str = "http_requests_duration_seconds";

/// A server's exporter.
pub struct Exporter {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

fn meta() -> metrics::Metadata<'static> {
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()))
}

impl Default for Exporter {
    fn default() -> Self {
        let bounds: Vec<f64> = LATENCY_BOUNDS_MS.iter().map(|ms| ms / 1000.0).collect();
        let recorder = PrometheusBuilder::new().set_buckets(&bounds).expect("latency bounds are not empty").build_recorder();
        for (name, help) in [
            ("http_requests_total", "Tenant requests answered, by tenant, kind (tables, api, jobs, login, push, other) and status class."),
            ("roost_received_bytes_total", "Bytes of tenant request bodies."),
            ("roost_sent_bytes_total", "Bytes of tenant response bodies."),
            ("roost_script_invocations_total", "Script invocations."),
            ("roost_script_errors_total", "Script invocations that ended with an error or a limit."),
            ("roost_limit_hits_total", "Requests refused and scripts stopped by a limit, by limit."),
            ("roost_push_notifications_total", "Push notifications queued, then by outcome."),
        ] {
            recorder.describe_counter(name.into(), None, help.into());
        }
        for (name, help) in [
            ("roost_script_cpu_seconds", "CPU time of script invocations since the node started (cumulative)."),
            ("roost_active_devices", "Distinct installation ids seen today (UTC) on this node (estimate)."),
            ("roost_tenants_served", "Tenants this node has served since it started."),
            ("roost_uptime_seconds", "Seconds since this node started."),
            ("process_resident_memory_bytes", "Resident memory of this node."),
        ] {
            recorder.describe_gauge(name.into(), None, help.into());
        }
        recorder.describe_histogram(LATENCY.into(), Some(metrics::Unit::Seconds), "Time to answer tenant requests, by tenant.".into());
        let handle = recorder.handle();
        Self { recorder, handle }
    }
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    Key::from_parts(name, labels.iter().map(|(k, v)| Label::new(*k, v.to_string())).collect::<Vec<_>>())
}

impl Exporter {
    /// The latency histogram of a `tenant` label.
    pub fn latency(&self, label: &str) -> metrics::Histogram {
        self.recorder.register_histogram(&key(LATENCY, &[("tenant", label)]), &meta())
    }

    /// Drains recorded latencies into their buckets (each roll-up, so they never pile up unscraped).
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The text of a scrape.
    pub fn render(&self, metrics: &Metrics, uptime: std::time::Duration) -> String {
        // Tenants beyond the labelled ones add up under `_other`.
        let mut by_label: BTreeMap<String, super::Snapshot> = BTreeMap::new();
        let mut devices: BTreeMap<String, u64> = BTreeMap::new();
        let all = metrics.all();
        for t in &all {
            let s = t.snapshot();
            // Names are never a label: only the counters add up.
            super::rollup::add(by_label.entry(t.label.to_string()).or_default(), &super::Snapshot { names: Vec::new(), ..s });
            let mut m = super::hll::Merged::default();
            m.add(&t.devices_today().1);
            *devices.entry(t.label.to_string()).or_default() += m.estimate();
        }
        let r = &self.recorder;
        let m = meta();
        for (label, s) in &by_label {
            let tenant = label.as_str();
            for (k, kind) in KINDS.iter().enumerate() {
                for (c, class) in CLASSES.iter().enumerate() {
                    if s.requests[k][c] > 0 {
                        r.register_counter(&key("http_requests_total", &[("tenant", tenant), ("kind", kind), ("status", class)]), &m)
                            .absolute(s.requests[k][c]);
                    }
                }
            }
            r.register_counter(&key("roost_received_bytes_total", &[("tenant", tenant)]), &m).absolute(s.bytes_in);
            r.register_counter(&key("roost_sent_bytes_total", &[("tenant", tenant)]), &m).absolute(s.bytes_out);
            r.register_counter(&key("roost_script_invocations_total", &[("tenant", tenant)]), &m).absolute(s.script_invocations);
            r.register_counter(&key("roost_script_errors_total", &[("tenant", tenant)]), &m).absolute(s.script_errors);
            r.register_gauge(&key("roost_script_cpu_seconds", &[("tenant", tenant)]), &m).set(s.script_cpu_us as f64 / 1e6);
            for (i, limit) in LIMITS.iter().enumerate() {
                if s.limits[i] > 0 {
                    r.register_counter(&key("roost_limit_hits_total", &[("tenant", tenant), ("limit", limit)]), &m).absolute(s.limits[i]);
                }
            }
            if s.push_queued > 0 {
                r.register_counter(&key("roost_push_notifications_total", &[("tenant", tenant), ("outcome", "queued")]), &m).absolute(s.push_queued);
                for (i, outcome) in PUSH_OUTCOMES.iter().enumerate() {
                    r.register_counter(&key("roost_push_notifications_total", &[("tenant", tenant), ("outcome", outcome)]), &m).absolute(s.push[i]);
                }
            }
            r.register_gauge(&key("roost_active_devices", &[("tenant", tenant)]), &m).set(devices.get(label).copied().unwrap_or(0) as f64);
        }
        r.register_gauge(&key("roost_tenants_served", &[]), &m).set(all.len() as f64);
        r.register_gauge(&key("roost_uptime_seconds", &[]), &m).set(uptime.as_secs_f64());
        r.register_gauge(&key("process_resident_memory_bytes", &[]), &m).set(super::rss_bytes() as f64);
        self.handle.render()
    }
}
