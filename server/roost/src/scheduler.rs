//! Scheduled jobs (R14, §6.11): each job script may carry a schedule (every N minutes, hours, days or
//! months from a start time, enabled or not). Every node ticks; a due run is claimed by inserting its
//! `(tenant, job, due)` row, which is unique, so each due run happens once across all nodes. Only the
//! latest due time is considered: runs missed while no node was up are not replayed.

use crate::scripting::{limits, Host};
use crate::AppState;
use chrono::{DateTime, Datelike, Duration as ChronoDuration, Months, Utc};
use roost_api::{JobOutcome, JobSchedule, ScheduleUnit};
use roost_scripts::{Entry, Invocation};
use roost_storage::scripts::{ScriptKind, ScriptRecord};
use roost_storage::Tenant;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The latest scheduled time at or before `now`, if the schedule is enabled and has started.
pub fn latest_due(s: &JobSchedule, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if !s.enabled || s.interval == 0 {
        return None;
    }
    let start = roost_odata::parse_strict_datetime(s.start.as_deref()?)?;
    if start > now {
        return None;
    }
    let n = i64::from(s.interval);
    match s.unit {
        ScheduleUnit::Month => {
            let months = (now.year() - start.year()) as i64 * 12 + (now.month() as i64 - start.month() as i64);
            let mut k = months / n;
            loop {
                let due = add_months(start, k * n)?;
                if due <= now {
                    return Some(due);
                }
                k -= 1;
                if k < 0 {
                    return None;
                }
            }
        }
        unit => {
            let step = match unit {
                ScheduleUnit::Minute => ChronoDuration::minutes(n),
                ScheduleUnit::Hour => ChronoDuration::hours(n),
                _ => ChronoDuration::days(n),
            };
            let k = (now - start).num_milliseconds() / step.num_milliseconds();
            Some(start + step * k as i32)
        }
    }
}

/// `start` plus `months` calendar months (chrono clamps the day to the month's length, keeping the
/// time of day).
fn add_months(start: DateTime<Utc>, months: i64) -> Option<DateTime<Utc>> {
    start.checked_add_months(Months::new(u32::try_from(months).ok()?))
}

/// Starts a claimed run as managed work: shutdown waits for it, or records it as interrupted.
pub fn spawn_run(app: &AppState, tenant: Arc<Tenant>, script: Arc<ScriptRecord>, due: String) -> tokio::task::JoinHandle<JobOutcome> {
    let claim = (tenant.record.name.clone(), script.name.to_ascii_lowercase(), due.clone());
    app.tasks.claim(claim.clone());
    let state = app.clone();
    app.tasks.spawn_work(async move {
        let outcome = run_job(&state, &tenant, &script, &due).await;
        state.tasks.release(&claim);
        outcome
    })
}

/// Runs one job now and records its outcome under `due`; returns the outcome.
pub async fn run_job(app: &AppState, tenant: &Arc<Tenant>, script: &ScriptRecord, due: &str) -> JobOutcome {
    crate::scripting::ensure_packages(app, tenant).await;
    let started = Instant::now();
    let invocation = Invocation { source: script.source(), script: script.body.clone(), entry: Entry::Job(script.name.clone()), input: serde_json::json!({}) };
    let host = Host::new(app.clone(), tenant.clone(), crate::scripting::Purpose::Background);
    let handle = app.scripts.invoke(&tenant.record.name, limits(tenant, &app.maxima_for(&tenant.record)), invocation, Arc::new(host));
    let outcome = match handle.done.await {
        Ok(Ok(())) => JobOutcome::Succeeded,
        Ok(Err(e)) => JobOutcome::failed(e),
        Err(e) => JobOutcome::failed(e),
    };
    let ms = started.elapsed().as_millis() as i64;
    if let Err(e) = app.storage.finish_job_run(&tenant.record.name, &script.name, due, &outcome, ms).await {
        tracing::warn!(tenant.name = %tenant.record.name, job.name = %script.name, error = %e, "Could not record a job run");
    }
    tracing::info!(tenant.name = %tenant.record.name, job.name = %script.name, duration_ms = ms, "Job `{}` {outcome}", script.name);
    outcome
}

/// Claims a run for now (bumping by a millisecond if two land in the same one) and runs it.
pub async fn run_now(app: &AppState, tenant: &Arc<Tenant>, script: &ScriptRecord) -> Result<String, roost_storage::StorageError> {
    let mut at = Utc::now();
    for _ in 0..20 {
        let due = roost_odata::format_datetime(&at);
        if app.storage.claim_job_run(&tenant.record.name, &script.name, &due).await? {
            return Ok(due);
        }
        at += ChronoDuration::milliseconds(1);
    }
    Err(roost_storage::StorageError::Internal("could not claim a job run".into()))
}

/// One scheduler pass at `now`: claims and runs every due job of every tenant; returns how many
/// runs this node started (and waited for).
pub async fn run_once(app: &AppState, now: DateTime<Utc>) -> anyhow::Result<usize> {
    let mut runs = Vec::new();
    // Only the catalog's job rows are read: tenants without a due job are not loaded.
    for (tenant_name, script) in app.storage.job_scripts().await? {
        // A stopping server claims no new runs.
        if app.tasks.is_stopping() {
            break;
        }
        let Some(schedule) = script.meta.get("schedule").and_then(|s| serde_json::from_value::<JobSchedule>(s.clone()).ok()) else { continue };
        let Some(due) = latest_due(&schedule, now) else { continue };
        let due = roost_odata::format_datetime(&due);
        if !app.storage.claim_job_run(&tenant_name, &script.name, &due).await? {
            continue;
        }
        let Some(tenant) = app.storage.tenant(&tenant_name).await? else { continue };
        // The loaded tenant's copy is the current one (the list may be a moment older).
        let script = tenant.script(ScriptKind::Job, &script.name).unwrap_or_else(|| Arc::new(script));
        runs.push(spawn_run(app, tenant, script, due));
    }
    let n = runs.len();
    for r in runs {
        let _ = r.await;
    }
    Ok(n)
}

/// The scheduler loop of a node; ends at shutdown (or when the app is dropped).
pub async fn run(app: std::sync::Weak<crate::App>, tick: Duration, stop: tokio_util::sync::CancellationToken) {
    loop {
        if !crate::tasks::sleep_or_stop(&stop, tick).await {
            return;
        }
        let Some(app) = app.upgrade() else { return };
        let state = AppState(app);
        // Runs of one pass proceed in the background; the next pass claims only new due times.
        let tasks = &state.0.tasks;
        let pass = state.clone();
        tasks.spawn_work(async move {
            let state = pass;
            if let Err(e) = run_once(&state, Utc::now()).await {
                tracing::warn!(error = %e, "The scheduler pass failed");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        roost_odata::parse_strict_datetime(s).unwrap()
    }

    fn every(interval: u32, unit: ScheduleUnit, start: &str) -> JobSchedule {
        JobSchedule { interval, unit, start: Some(start.into()), enabled: true }
    }

    #[test]
    fn latest_due_for_each_unit() {
        let s = every(15, ScheduleUnit::Minute, "2026-01-01T00:05:00.000Z");
        assert_eq!(latest_due(&s, at("2026-01-01T01:00:00.000Z")), Some(at("2026-01-01T00:50:00.000Z")));
        assert_eq!(latest_due(&s, at("2026-01-01T00:04:59.000Z")), None);
        let s = every(2, ScheduleUnit::Day, "2026-01-01T08:00:00.000Z");
        assert_eq!(latest_due(&s, at("2026-01-04T07:00:00.000Z")), Some(at("2026-01-03T08:00:00.000Z")));
        let s = every(1, ScheduleUnit::Month, "2026-01-31T10:00:00.000Z");
        assert_eq!(latest_due(&s, at("2026-03-15T00:00:00.000Z")), Some(at("2026-02-28T10:00:00.000Z")));
        assert_eq!(latest_due(&s, at("2026-03-31T10:00:00.000Z")), Some(at("2026-03-31T10:00:00.000Z")));
        let mut off = every(1, ScheduleUnit::Hour, "2026-01-01T00:00:00.000Z");
        off.enabled = false;
        assert_eq!(latest_due(&off, at("2026-06-01T00:00:00.000Z")), None);
    }
}
