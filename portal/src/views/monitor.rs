//! Monitoring: a tenant's Dashboard (its first tab), the tenant's Scale view (tier and use; an admin
//! changes the tier), and the platform's Monitoring view for admins and support staff. Charts are
//! SVG drawn here (no chart library); every series is labelled and errors are hatched, so nothing
//! is told by colour alone.

use super::{Note, NoteLine};
use crate::{api, Ctx};
use leptos::prelude::*;
use roost_api::{DashboardOut, MetricsPoint, PlatformOut, Role, TierIn, TierOut, UsageOut};
use std::time::Duration;

/// Bytes as text.
fn bytes(n: u64) -> String {
    match n {
        0..=1023 => format!("{n} B"),
        1024..=1_048_575 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

/// The time of a point, as the axis shows it.
fn label(t: i64, step: i64) -> String {
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(t as f64 * 1000.0));
    if step >= 3600 {
        format!("{:02}/{:02} {:02}h", d.get_date(), d.get_month() + 1, d.get_hours())
    } else {
        format!("{:02}:{:02}", d.get_hours(), d.get_minutes())
    }
}

/// A bar chart of requests per point, the errors of each bar hatched on top of it.
#[component]
fn RequestsChart(points: Vec<MetricsPoint>, step: i64) -> impl IntoView {
    let (w, h, left, bottom) = (640.0, 160.0, 40.0, 20.0);
    let max = points.iter().map(|p| p.requests).max().unwrap_or(0).max(1) as f64;
    let n = points.len().max(1) as f64;
    let bar = (w - left) / n;
    let scale = |v: u64| (h - bottom) * v as f64 / max;
    let first = points.first().map(|p| label(p.t, step)).unwrap_or_default();
    let last = points.last().map(|p| label(p.t, step)).unwrap_or_default();
    let bars = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let x = left + i as f64 * bar;
            let total = scale(p.requests);
            let errors = scale(p.errors + p.client_errors);
            let title = format!("{}: {} requests, {} errors", label(p.t, step), p.requests, p.errors + p.client_errors);
            view! {
                <g class="bar">
                    <title>{title}</title>
                    <rect class="ok" x=x y=h - bottom - total width=(bar - 1.0).max(1.0) height=total/>
                    <rect class="errors" fill="url(#hatch)" x=x y=h - bottom - errors width=(bar - 1.0).max(1.0) height=errors/>
                </g>
            }
        })
        .collect_view();
    view! {
        <svg class="chart" id="requests-chart" viewBox=format!("0 0 {w} {h}") role="img" aria-label="Requests per interval; errors hatched">
            <defs>
                <pattern id="hatch" width="4" height="4" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
                    <rect width="4" height="4" class="hatch-bg"/>
                    <line x1="0" y1="0" x2="0" y2="4" class="hatch-line"/>
                </pattern>
            </defs>
            <line class="axis" x1=left y1=h - bottom x2=w y2=h - bottom/>
            <line class="axis" x1=left y1=0 x2=left y2=h - bottom/>
            <text class="axis-label" x=left - 4.0 y=10 text-anchor="end">{format!("{}", max as u64)}</text>
            <text class="axis-label" x=left - 4.0 y=h - bottom text-anchor="end">"0"</text>
            <text class="axis-label" x=left y=h - 4.0>{first}</text>
            <text class="axis-label" x=w y=h - 4.0 text-anchor="end">{last}</text>
            {bars}
        </svg>
        <p class="legend"><span class="swatch ok"></span>" requests "<span class="swatch errors"></span>" errors (4xx and 5xx, hatched)"</p>
    }
}

/// A line of p95 latency per point.
#[component]
fn LatencyChart(points: Vec<MetricsPoint>) -> impl IntoView {
    let (w, h, left, bottom) = (640.0, 100.0, 40.0, 14.0);
    let max = points.iter().map(|p| p.p95_ms).fold(1.0_f64, f64::max);
    let n = (points.len().max(2) - 1) as f64;
    let path: Vec<String> = points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.requests > 0)
        .map(|(i, p)| format!("{:.1},{:.1}", left + (w - left) * i as f64 / n, (h - bottom) * (1.0 - p.p95_ms / max)))
        .collect();
    view! {
        <svg class="chart" id="latency-chart" viewBox=format!("0 0 {w} {h}") role="img" aria-label="p95 latency in milliseconds">
            <line class="axis" x1=left y1=h - bottom x2=w y2=h - bottom/>
            <text class="axis-label" x=left - 4.0 y=10 text-anchor="end">{format!("{max} ms")}</text>
            <polyline class="latency" points=path.join(" ")/>
            {points.iter().enumerate().filter(|(_, p)| p.requests > 0).map(|(i, p)| view! {
                <circle class="latency-dot" cx=left + (w - left) * i as f64 / n cy=(h - bottom) * (1.0 - p.p95_ms / max) r="2"><title>{format!("p95 {} ms", p.p95_ms)}</title></circle>
            }).collect_view()}
        </svg>
    }
}

/// The quota line: used / allowed, as a bar and as text.
#[component]
fn Quota(what: &'static str, used: u64, of: u64) -> impl IntoView {
    let pct = if of == 0 { 0.0 } else { (used as f64 / of as f64 * 100.0).min(100.0) };
    view! {
        <div class="quota">
            <span class="quota-label">{format!("{what}: {used} of {of} ({pct:.1} %)")}</span>
            <span class="quota-bar"><span class="quota-fill" style=format!("width: {pct:.1}%")></span></span>
        </div>
    }
}

/// A tenant's dashboard, updated every 5 seconds.
#[component]
pub fn Dashboard(tenant: String) -> impl IntoView {
    let range = RwSignal::new("1h".to_string());
    let data = RwSignal::new(None::<DashboardOut>);
    let note = RwSignal::new(Note::None);
    let path = StoredValue::new(format!("/tenants/{}/dashboard", api::enc(&tenant)));
    let load = move || {
        let Some(path) = path.try_get_value() else { return };
        let r = range.try_get_untracked().unwrap_or_default();
        leptos::task::spawn_local(async move {
            match api::get::<DashboardOut>(&format!("{path}?range={r}")).await {
                Ok(d) => {
                    data.try_set(Some(d));
                }
                Err(e) => {
                    note.try_set(Note::Err(e.message));
                }
            }
        });
    };
    load();
    if let Ok(handle) = set_interval_with_handle(load, Duration::from_secs(5)) {
        on_cleanup(move || handle.clear());
    }
    let pick = move |r: &'static str| {
        range.set(r.to_string());
        load();
    };
    view! {
        <div class="ranges" role="group" aria-label="Range">
            {["1h", "24h", "7d", "30d"].into_iter().map(|r| view! {
                <button class=move || if range.get() == r { "range active" } else { "range" } on:click=move |_| pick(r)>{r}</button>
            }).collect_view()}
        </div>
        <NoteLine note=note/>
        {move || data.get().map(|d| {
            let t = d.totals.clone();
            view! {
                <p class="endpoint">"Endpoint " <code>{d.url.clone()}</code> " · status " <strong class="status">{d.status.clone()}</strong> " · tier " <strong>{d.usage.tier.clone()}</strong></p>
                <div class="monitor" id="dashboard">
                    <div class="tile"><span class="figure" id="api-calls">{t.requests}</span>" API calls"</div>
                    <div class="tile"><span class="figure" id="data-out">{bytes(t.bytes_out)}</span>" data out"</div>
                    <div class="tile"><span class="figure" id="script-cpu">{format!("{:.1} ms", t.script_cpu_ms)}</span>" script CPU"</div>
                    <div class="tile"><span class="figure" id="errors">{t.errors + t.client_errors}</span>" errors"</div>
                    <div class="tile"><span class="figure" id="p95">{format!("{} ms", t.p95_ms)}</span>" p95 latency"</div>
                    <div class="tile"><span class="figure" id="devices">{d.active_devices_today}</span>" active devices today"</div>
                    <div class="tile"><span class="figure" id="limit-hits">{t.limit_hits}</span>" limit hits"</div>
                </div>
                <h3>{format!("Requests ({})", d.range)}</h3>
                <RequestsChart points=d.points.clone() step=d.step/>
                <h3>"Latency (p95)"</h3>
                <LatencyChart points=d.points.clone()/>
                <h3>"Today's quotas"</h3>
                <Quota what="API calls" used=d.usage.api_calls_today of=d.usage.limits.api_calls_per_day/>
                <Quota what="Push notifications" used=d.usage.push_today of=d.usage.limits.push_per_day/>
                <Quota what="Tables" used=d.usage.tables of=d.usage.limits.max_tables/>
                <p class="hint">{format!("Quotas reset at {} (00:00 UTC).", d.usage.resets_at)}</p>
                <div class="columns">
                    <div>
                        <h3>"Top tables and APIs"</h3>
                        <table class="grid" id="top"><thead><tr><th>"Name"</th><th>"Requests"</th></tr></thead>
                        <tbody>{d.top.iter().map(|(n, c)| view! { <tr><td>{n.clone()}</td><td>{*c}</td></tr> }).collect_view()}</tbody></table>
                    </div>
                    <div>
                        <h3>"By kind"</h3>
                        <table class="grid" id="by-kind"><thead><tr><th>"Kind"</th><th>"OK"</th><th>"4xx"</th><th>"5xx"</th></tr></thead>
                        <tbody>{d.by_kind.iter().filter(|k| k.ok + k.client_errors + k.errors > 0).map(|k| view! { <tr><td>{k.kind.clone()}</td><td>{k.ok}</td><td>{k.client_errors}</td><td>{k.errors}</td></tr> }).collect_view()}</tbody></table>
                    </div>
                    <div>
                        <h3>"Limit hits"</h3>
                        <table class="grid" id="limits"><thead><tr><th>"Limit"</th><th>"Hits"</th></tr></thead>
                        <tbody>{d.limits.iter().filter(|(_, n)| *n > 0).map(|(l, n)| view! { <tr><td>{l.clone()}</td><td>{*n}</td></tr> }).collect_view()}</tbody></table>
                    </div>
                </div>
            }
        })}
    }
}

/// The tenant's tier and its use; an admin puts it on another tier.
#[component]
pub fn Scale(tenant: String) -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let admin = ctx.role() == Some(Role::Admin);
    let usage = RwSignal::new(None::<UsageOut>);
    let tiers = RwSignal::new(Vec::<TierOut>::new());
    let chosen = RwSignal::new(String::new());
    let note = RwSignal::new(Note::None);
    let path = StoredValue::new(format!("/tenants/{}", api::enc(&tenant)));
    let reload = crate::in_view(move || {
        crate::spawn(async move {
            match api::get::<UsageOut>(&format!("{}/usage", path.get_value())).await {
                Ok(u) => {
                    chosen.set(u.tier.clone());
                    usage.set(Some(u));
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
            if let Ok(t) = api::get::<Vec<TierOut>>("/tiers").await {
                tiers.set(t);
            }
        })
    });
    reload();
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let tier = chosen.get_untracked();
        crate::spawn(async move {
            match api::call::<UsageOut>("PUT", &format!("{}/tier", path.get_value()), Some(&TierIn { tier: tier.clone() })).await {
                Ok(u) => {
                    note.set(Note::Ok(format!("The tenant is on the tier {tier}.")));
                    usage.set(Some(u));
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    view! {
        <NoteLine note=note/>
        {move || usage.get().map(|u| view! {
            <p>"Tier: " <strong id="tier-name">{u.tier.clone()}</strong></p>
            <Quota what="API calls today" used=u.api_calls_today of=u.limits.api_calls_per_day/>
            <Quota what="Push notifications today" used=u.push_today of=u.limits.push_per_day/>
            <Quota what="Tables" used=u.tables of=u.limits.max_tables/>
            <Quota what="Database (KiB)" used=u.database_bytes / 1024 of=u.limits.database_mb * 1024/>
            <table class="grid" id="tier-limits">
                <tbody>
                    <tr><th>"Requests per second"</th><td>{u.limits.requests_per_second}" (burst "{u.limits.burst}")"</td></tr>
                    <tr><th>"Script CPU per invocation"</th><td>{u.limits.script_cpu_ms}" ms"</td></tr>
                    <tr><th>"Script memory"</th><td>{u.limits.script_memory_mb}" MiB"</td></tr>
                    <tr><th>"Concurrent scripts"</th><td>{u.limits.script_max_concurrent}</td></tr>
                    <tr><th>"Log retention"</th><td>{u.limits.log_retention_days}" days, "{u.limits.log_mb}" MB"</td></tr>
                </tbody>
            </table>
            <p class="hint">{format!("Daily quotas reset at {}.", u.resets_at)}</p>
        })}
        {admin.then(|| view! {
            <form class="inline" id="tier-form" on:submit=save>
                <label>"Put on tier "
                    <select name="tier" on:change=move |ev| chosen.set(event_target_value(&ev))>
                        {move || tiers.get().into_iter().map(|t| { let n = t.name.clone(); let selected = chosen.get() == n; view! { <option value=n.clone() selected=selected>{n.clone()}</option> } }).collect_view()}
                    </select>
                </label>
                <button type="submit">"Save"</button>
            </form>
        })}
        {(!admin).then(|| view! { <p class="hint">"Only a platform admin changes a tenant's tier."</p> })}
        {admin.then(|| view! { <Backups tenant=tenant.clone()/> })}
    }
}

/// An admin downloads the tenant's backup, or restores an archive as a new tenant.
#[component]
fn Backups(tenant: String) -> impl IntoView {
    let note = RwSignal::new(Note::None);
    let name = RwSignal::new(format!("{tenant}-restored"));
    let file_input = NodeRef::<leptos::html::Input>::new();
    let href = format!("/manage/v1/tenants/{}/backup", api::enc(&tenant));
    let restore = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(file) = file_input.get_untracked().and_then(|i| i.files()).and_then(|f| f.get(0)) else {
            note.set(Note::Err("Choose an archive (.roostbak) first.".into()));
            return;
        };
        let target = name.get_untracked();
        note.set(Note::Busy(format!("Restoring as {target}…")));
        crate::spawn(async move {
            match api::post_file(&format!("/restore?as={}", api::enc(&target)), &file).await {
                Ok((_, text)) => {
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                    note.set(Note::Ok(format!(
                        "Restored {}: {} tables, {} rows, {} scripts.",
                        v["tenant"].as_str().unwrap_or(&target),
                        v["tables"],
                        v["rows"],
                        v["scripts"]
                    )));
                }
                Err(e) => note.set(Note::Err(e.message)),
            }
        });
    };
    view! {
        <h3>"Backups"</h3>
        <p>
            <a id="backup-download" class="button" href=href download="">"Download a backup"</a>
            " One archive: keys, settings, scripts, identity providers, push keys and registrations, packages and every row with its system properties. It holds the tenant's secrets: keep it safe."
        </p>
        <form class="inline" id="restore-form" on:submit=restore>
            <label>"Restore an archive " <input type="file" accept=".roostbak,application/gzip" node_ref=file_input/></label>
            <label>" as the new tenant " <input type="text" prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev))/></label>
            <button type="submit">"Restore"</button>
        </form>
        <NoteLine note=note/>
    }
}

/// A sparkline of hourly requests.
fn sparkline(v: &[u64]) -> impl IntoView {
    let max = v.iter().copied().max().unwrap_or(0).max(1) as f64;
    let n = (v.len().max(2) - 1) as f64;
    let pts: Vec<String> = v.iter().enumerate().map(|(i, c)| format!("{:.1},{:.1}", 96.0 * i as f64 / n, 20.0 - 18.0 * *c as f64 / max)).collect();
    view! { <svg class="spark" viewBox="0 0 96 20" role="img" aria-label="requests per hour over 24 hours"><polyline points=pts.join(" ")/></svg> }
}

/// Every tenant and node at a glance (admin and support), sortable and filterable.
#[component]
pub fn Platform() -> impl IntoView {
    let data = RwSignal::new(None::<PlatformOut>);
    let note = RwSignal::new(Note::None);
    let sort = RwSignal::new(("requests".to_string(), true));
    let filter = RwSignal::new(String::new());
    let load = move || {
        leptos::task::spawn_local(async move {
            match api::get::<PlatformOut>("/monitor").await {
                Ok(p) => {
                    data.try_set(Some(p));
                }
                Err(e) => {
                    note.try_set(Note::Err(e.message));
                }
            }
        });
    };
    load();
    if let Ok(handle) = set_interval_with_handle(load, Duration::from_secs(10)) {
        on_cleanup(move || handle.clear());
    }
    let header = move |key: &'static str, text: &'static str| {
        view! {
            <th>
                <button class="link sort" data-sort=key on:click=move |_| sort.update(|(k, desc)| { if k == key { *desc = !*desc } else { *k = key.to_string(); *desc = true } })>
                    {text}{move || { let (k, d) = sort.get(); if k == key { if d { " ▼" } else { " ▲" } } else { "" } }}
                </button>
            </th>
        }
    };
    view! {
        <section class="platform">
            <h1>"Monitoring"</h1>
            <NoteLine note=note/>
            <input name="filter" placeholder="filter tenants" prop:value=filter on:input=move |ev| filter.set(event_target_value(&ev))/>
            {move || data.get().map(|p| {
                let (key, desc) = sort.get();
                let f = filter.get().to_ascii_lowercase();
                let mut rows: Vec<_> = p.tenants.into_iter().filter(|t| t.name.contains(&f) || t.tier.contains(&f)).collect();
                rows.sort_by(|a, b| {
                    let o = match key.as_str() {
                        "name" => a.name.cmp(&b.name),
                        "errors" => (a.errors + a.client_errors).cmp(&(b.errors + b.client_errors)),
                        "latency" => a.mean_latency_ms.total_cmp(&b.mean_latency_ms),
                        "quota" => a.quota_used.total_cmp(&b.quota_used),
                        "limits" => a.limit_hits.cmp(&b.limit_hits),
                        _ => a.requests.cmp(&b.requests),
                    };
                    if desc { o.reverse() } else { o }
                });
                view! {
                    <table class="grid" id="platform-tenants">
                        <thead><tr>{header("name", "Tenant")}<th>"Tier"</th>{header("requests", "Requests (24 h)")}{header("errors", "Errors")}{header("latency", "Mean latency")}{header("quota", "Quota today")}{header("limits", "Limit hits")}<th>"Per hour"</th><th></th></tr></thead>
                        <tbody>{rows.into_iter().map(|t| view! {
                            <tr data-tenant=t.name.clone()>
                                <td><a href=format!("#/t/{}/dashboard", t.name)>{t.name.clone()}</a></td>
                                <td>{t.tier.clone()}</td>
                                <td class="requests">{t.requests}</td>
                                <td class="errors">{t.errors + t.client_errors}</td>
                                <td>{format!("{:.1} ms", t.mean_latency_ms)}</td>
                                <td>{format!("{:.2} %", t.quota_used * 100.0)}</td>
                                <td class="limit-hits">{t.limit_hits}</td>
                                <td>{sparkline(&t.hourly)}</td>
                                <td><a href=format!("#/t/{}/logs", t.name)>"logs"</a></td>
                            </tr>
                        }).collect_view()}</tbody>
                    </table>
                    <h2>"Nodes"</h2>
                    <table class="grid" id="nodes">
                        <thead><tr><th>"Node"</th><th>"Version"</th><th>"Last heartbeat"</th><th>"Uptime"</th><th>"RSS"</th><th>"Tenants served"</th></tr></thead>
                        <tbody>{p.nodes.into_iter().map(|n| view! {
                            <tr class={if n.heartbeat_age_s > 60 { "stale" } else { "" }}>
                                <td><code>{n.id.clone()}</code></td>
                                <td>{n.version.clone()}</td>
                                <td>{format!("{} ({} s ago)", n.heartbeat_at, n.heartbeat_age_s)}</td>
                                <td>{format!("{} s", n.uptime_s)}</td>
                                <td>{bytes(n.rss_bytes)}</td>
                                <td>{n.tenants}</td>
                            </tr>
                        }).collect_view()}</tbody>
                    </table>
                }
            })}
        </section>
    }
}
