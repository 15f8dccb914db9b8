//! `roost-bench soak [--minutes N] [--connections C]`: two Roost nodes on one PostgreSQL
//! (`ROOST_BENCH_DATABASE_URL`) behind Debian's HAProxy, under a bounded mixed load for N minutes
//! (default 15, at most 60): reads by id, 50-row queries, plain inserts, inserts through a one-line
//! script, a custom API, and every 200th request a push to five Web Push subscriptions on the test
//! receiver (`tests/oidc/webpush.mjs`). Every 30 s it prints each node's RSS, the requests and the
//! errors so far; at the end the latency percentiles per operation, the pushes delivered, and the
//! RSS growth after warm-up (the first fifth of the run).

use super::{spawn, temp_dir, Conn, Server, ADMIN};
use anyhow::{bail, Context as _};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const OPS: [&str; 6] = ["read by id", "50-row query", "insert", "insert (script)", "custom API", "push.send"];

fn op_of(n: u64) -> usize {
    if n % 200 == 199 {
        return 5;
    }
    match n % 10 {
        0..=3 => 0,
        4 => 1,
        5 | 6 => 2,
        7 => 3,
        _ => 4,
    }
}

struct Haproxy(std::process::Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) async fn soak(args: &[String]) -> anyhow::Result<()> {
    let opt = |name: &str, default: u64| -> anyhow::Result<u64> {
        Ok(args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(|s| s.parse()).transpose()?.unwrap_or(default))
    };
    let minutes = opt("--minutes", 15)?;
    let connections = opt("--connections", 8)? as usize;
    if minutes == 0 || minutes > 60 || connections == 0 || connections > 64 {
        bail!("keep the soak bounded: 1..=60 minutes, 1..=64 connections");
    }
    let url = std::env::var("ROOST_BENCH_DATABASE_URL").context("the soak runs on PostgreSQL: set ROOST_BENCH_DATABASE_URL")?;
    let haproxy = ["/usr/sbin/haproxy", "/usr/bin/haproxy"].into_iter().find(|p| std::path::Path::new(p).exists()).context("apt-get install haproxy")?;
    let a = spawn(&["serve-roost", &url], "node a", temp_dir("soak-a")?).await?;
    let b = spawn(&["serve-roost", &url], "node b", temp_dir("soak-b")?).await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let dir = temp_dir("soak-haproxy")?;
    let cfg = format!(
        "global\n    maxconn 1024\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    retries 3\n    option redispatch 1\n    retry-on conn-failure empty-response\n\
         frontend roost\n    bind 127.0.0.1:{port}\n    default_backend nodes\nbackend nodes\n    balance roundrobin\n    option httpchk GET /readyz\n    http-check expect status 200\n\
         \x20   default-server inter 1s fall 2 rise 1\n    server a {} check\n    server b {} check\n",
        a.addr, b.addr
    );
    std::fs::write(dir.join("haproxy.cfg"), cfg)?;
    let _lb = Haproxy(std::process::Command::new(haproxy).arg("-db").arg("-f").arg(dir.join("haproxy.cfg")).spawn()?);
    let lb = format!("127.0.0.1:{port}");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The tenant: a plain table with 1,000 rows, a table with a one-line insert script, an API.
    let rx = super::push::Receiver::start()?;
    let tenant = format!("soak{}", std::process::id());
    let auth = format!("Bearer {ADMIN}");
    let mut c = Conn::open(&a.addr).await?;
    let (s, body) = c.send("POST", "/manage/v1/tenants", &[("authorization", &auth)], Some(&json!({"name": tenant}).to_string())).await?;
    if s != 201 {
        bail!("creating the tenant: {s} {}", String::from_utf8_lossy(&body));
    }
    let t: Value = serde_json::from_slice(&body)?;
    let key = t["application_key"].as_str().unwrap_or_default().to_string();
    for (table, perms) in [("items", json!({"read": "public", "insert": "public"})), ("scripted", json!({"insert": "public"}))] {
        let (s, body) = c
            .send(
                "POST",
                &format!("/manage/v1/tenants/{tenant}/tables"),
                &[("authorization", &auth)],
                Some(&json!({"name": table, "permissions": perms}).to_string()),
            )
            .await?;
        if s != 201 {
            bail!("creating {table}: {s} {}", String::from_utf8_lossy(&body));
        }
    }
    let (s, body) = c
        .send("PATCH", &format!("/manage/v1/tenants/{tenant}/settings"), &[("authorization", &auth)], Some(&json!({"outbound_allow": [rx.addr()]}).to_string()))
        .await?;
    if s != 200 {
        bail!("settings: {s} {}", String::from_utf8_lossy(&body));
    }
    super::put_script(&a.addr, &tenant, "table", "scripted.insert", json!({"body": "function insert(item, user, request) { request.execute(); }"})).await?;
    let api = "exports.get = function (req, res) { res.send(200, { ok: true, at: Date.now() }); };\n\
               exports.post = function (req, res) { req.service.push.send('soak', { n: 1 }, { success: function (r) { res.send(200, r); }, error: function (e) { res.send(500, { error: String(e) }); } }); };";
    super::put_script(&a.addr, &tenant, "api", "soak", json!({"body": api, "permissions": {"routes": {"*": {"permission": "application"}}}})).await?;
    for i in 0..1000 {
        let (s, _) = c
            .send(
                "POST",
                &format!("/t/{tenant}/tables/items"),
                &[("x-zumo-application", &key)],
                Some(&json!({"id": format!("r{i}"), "price": i % 97, "text": "soak"}).to_string()),
            )
            .await?;
        if s != 201 {
            bail!("filling: {s}");
        }
    }
    let h = [("x-zumo-application", key.as_str())];
    for sub in rx.subscribe(5).await? {
        let (s, head, _) = c.exchange("POST", &format!("/t/{tenant}/push/registrationids"), &h, None).await?;
        if s != 201 {
            bail!("registration id: {s}");
        }
        let id = head.get("location").and_then(|v| v.to_str().ok()).and_then(|l| l.rsplit('/').next()).unwrap_or_default().to_string();
        let body = json!({"platform": "webpush", "deviceId": sub["endpoint"], "keys": sub["keys"], "tags": ["soak"]}).to_string();
        let (s, _) = c.send("PUT", &format!("/t/{tenant}/push/registrations/{id}"), &h, Some(&body)).await?;
        if s != 204 {
            bail!("registration: {s}");
        }
    }

    println!("soak: {minutes} min, {connections} connections through HAProxy to two nodes on PostgreSQL; mix per 10 requests: 4 reads by id, 1 query, 2 inserts, 1 scripted insert, 2 API calls (one in 200 a push to 5 subscriptions)");
    println!("{:>6}  {:>12}  {:>12}  {:>10}  {:>7}", "time", "RSS a (MiB)", "RSS b (MiB)", "requests", "errors");
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (lb, tenant, key, stop, counter, errors, first_error) =
            (lb.clone(), tenant.clone(), key.clone(), stop.clone(), counter.clone(), errors.clone(), first_error.clone());
        workers.push(tokio::spawn(async move {
            let mut lat: Vec<Vec<u32>> = vec![Vec::new(); OPS.len()];
            let mut conn = Conn::open(&lb).await?;
            let h = [("x-zumo-application", key.as_str())];
            while !stop.load(Ordering::Relaxed) {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let op = op_of(n);
                let (method, path, body, expect) = match op {
                    0 => ("GET", format!("/t/{tenant}/tables/items/r{}", n % 1000), None, 200),
                    1 => ("GET", format!("/t/{tenant}/tables/items?$filter=price%20gt%2040&$orderby=price&$top=50"), None, 200),
                    2 => ("POST", format!("/t/{tenant}/tables/items"), Some(json!({"price": n % 97, "text": "soak"}).to_string()), 201),
                    3 => ("POST", format!("/t/{tenant}/tables/scripted"), Some(json!({"n": n}).to_string()), 201),
                    4 => ("GET", format!("/t/{tenant}/api/soak"), None, 200),
                    _ => ("POST", format!("/t/{tenant}/api/soak"), Some("{}".to_string()), 200),
                };
                let started = Instant::now();
                match conn.send(method, &path, &h, body.as_deref()).await {
                    Ok((s, _)) if s == expect => lat[op].push(started.elapsed().as_micros().min(u32::MAX as u128) as u32),
                    Ok((s, b)) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        first_error.lock().unwrap().get_or_insert_with(|| format!("{method} {path}: {s} {}", String::from_utf8_lossy(&b)));
                    }
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        first_error.lock().unwrap().get_or_insert_with(|| format!("{method} {path}: {e}"));
                        conn = Conn::open(&lb).await?;
                    }
                }
            }
            anyhow::Ok(lat)
        }));
    }
    let started = Instant::now();
    let total = Duration::from_secs(minutes * 60);
    let warm_up = total / 5;
    let mut samples: Vec<(Duration, u64, u64)> = Vec::new();
    let rss = |s: &Server| s.rss_kib().unwrap_or(0);
    while started.elapsed() < total {
        tokio::time::sleep(Duration::from_secs(30).min(total.saturating_sub(started.elapsed()))).await;
        let (ra, rb) = (rss(&a), rss(&b));
        samples.push((started.elapsed(), ra, rb));
        println!(
            "{:>5}s  {:>12.1}  {:>12.1}  {:>10}  {:>7}",
            started.elapsed().as_secs(),
            ra as f64 / 1024.0,
            rb as f64 / 1024.0,
            counter.load(Ordering::Relaxed),
            errors.load(Ordering::Relaxed)
        );
    }
    stop.store(true, Ordering::Relaxed);
    let mut lat: Vec<Vec<u32>> = vec![Vec::new(); OPS.len()];
    for w in workers {
        for (i, l) in w.await??.into_iter().enumerate() {
            lat[i].extend(l);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!("\n{:<16} {:>10} {:>9} {:>9} {:>9} {:>9}", "operation", "count", "req/s", "p50 µs", "p99 µs", "p99.9 µs");
    for (i, l) in lat.iter_mut().enumerate() {
        l.sort_unstable();
        let pct = |p: f64| l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1))).copied().unwrap_or(0);
        println!("{:<16} {:>10} {:>9.0} {:>9} {:>9} {:>9}", OPS[i], l.len(), l.len() as f64 / elapsed, pct(0.5), pct(0.99), pct(0.999));
    }
    let pushes = lat[5].len() as u64 * 5;
    let deadline = Instant::now() + Duration::from_secs(60);
    let delivered = loop {
        let d = rx.count().await?["accepted"].as_u64().unwrap_or(0);
        if d >= pushes || Instant::now() > deadline {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!("push notifications: {pushes} queued, {delivered} delivered");
    let errors = errors.load(Ordering::Relaxed);
    println!("errors: {errors}{}", first_error.lock().unwrap().as_ref().map(|e| format!(" (first: {e})")).unwrap_or_default());
    let after_warm_up: Vec<&(Duration, u64, u64)> = samples.iter().filter(|s| s.0 >= warm_up).collect();
    if let (Some(first), Some(last)) = (after_warm_up.first(), after_warm_up.last()) {
        for (name, f, l) in [("a", first.1, last.1), ("b", first.2, last.2)] {
            let growth = 100.0 * (l as f64 - f as f64) / f.max(1) as f64;
            let peak = after_warm_up.iter().map(|s| if name == "a" { s.1 } else { s.2 }).max().unwrap_or(0);
            println!(
                "node {name}: RSS {:.1} MiB at {} s (after warm-up), {:.1} MiB at the end, peak {:.1} MiB: growth {growth:+.1} %",
                f as f64 / 1024.0,
                first.0.as_secs(),
                l as f64 / 1024.0,
                peak as f64 / 1024.0
            );
        }
    }
    Ok(())
}
