//! `roost-bench push [--registrations N]`: one `push.send` from a custom API fanned out to N Web Push
//! registrations (10,000 by default) on the test receiver (`tests/oidc/webpush.mjs`, which verifies and
//! decrypts every 100th message and checks the others' headers), on SQLite and, with
//! ROOST_BENCH_DATABASE_URL, on PostgreSQL; then the npm `web-push` library sending the same payload
//! to N fresh subscriptions of another receiver (`tests/oidc/webpush-send.mjs`), as the reference.
//! Prints notifications/s, the time from the send to the last delivery, and notifications per second
//! of the sender's own CPU time (its utime + stime while delivering), which is the per-core figure.
//! Needs node and `npm ci` in tests/oidc; says so and stops otherwise.

use super::{spawn, temp_dir, Conn, Server, ADMIN};
use anyhow::{bail, Context as _};
use futures::StreamExt as _;
use serde_json::{json, Value};
use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const RECEIVERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../roost/tests/oidc");
const PAYLOAD: &str = r#"{"title":"Roost","body":"a benchmark notification of about a hundred bytes, as apps send them","n":1}"#;

/// A receiver process, killed on drop.
pub(crate) struct Receiver {
    child: Child,
    base: String,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    pub(crate) fn start() -> anyhow::Result<Receiver> {
        let mut child = Command::new("node")
            .arg("webpush.mjs")
            .arg(json!({"port": 0, "sample": 100}).to_string())
            .current_dir(RECEIVERS)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting node webpush.mjs")?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let v: Value = serde_json::from_str(&line).with_context(|| format!("receiver said {line:?}"))?;
        let base = v["base"].as_str().context("no base")?.to_string();
        Ok(Receiver { child, base })
    }

    pub(crate) fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// `{accepted, first, last}`.
    pub(crate) async fn count(&self) -> anyhow::Result<Value> {
        let (_, b) = Conn::open(self.addr()).await?.send("GET", "/__test/count", &[], None).await?;
        Ok(serde_json::from_slice(&b)?)
    }

    async fn stats(&self) -> anyhow::Result<Value> {
        let (_, b) = Conn::open(self.addr()).await?.send("GET", "/__test/stats", &[], None).await?;
        Ok(serde_json::from_slice(&b)?)
    }

    /// `n` subscriptions, as a browser's PushManager gives them.
    pub(crate) async fn subscribe(&self, n: usize) -> anyhow::Result<Vec<Value>> {
        let addr = self.addr().to_string();
        let mut out = Vec::with_capacity(n);
        let mut c = Conn::open(&addr).await?;
        for _ in 0..n {
            let (s, b) = c.send("POST", "/__test/subscribe", &[], Some("{}")).await?;
            if s != 200 {
                bail!("subscribe: {s}");
            }
            out.push(serde_json::from_slice(&b)?);
        }
        Ok(out)
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A process's CPU time (user + system, all threads) in ms; Linux counts it in USER_HZ = 100 ticks.
fn cpu_ms(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) * 10
}

pub(crate) async fn bench(args: &[String]) -> anyhow::Result<()> {
    let mut n = 10_000usize;
    let mut i = 0;
    while i < args.len() {
        match (args[i].as_str(), args.get(i + 1)) {
            ("--registrations", Some(v)) => n = v.parse()?,
            (other, _) => bail!("unknown option {other} (--registrations N)"),
        }
        i += 2;
    }
    if n == 0 || n > 100_000 {
        bail!("keep the load bounded: 1..=100000 registrations");
    }
    if !Path::new(RECEIVERS).join("node_modules/http_ece").exists() || Command::new("node").arg("--version").output().is_err() {
        println!("(push: needs node and `npm ci` in {RECEIVERS})");
        return Ok(());
    }
    println!(
        "roost-bench push: one push.send to {n} Web Push registrations; machine: {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let mut backends: Vec<(&str, Option<String>)> = vec![("sqlite", None)];
    if let Ok(url) = std::env::var("ROOST_BENCH_DATABASE_URL") {
        backends.push(("postgres", Some(url)));
    }
    for (name, url) in backends {
        let mut args = vec!["serve-roost"];
        if let Some(u) = &url {
            args.push(u);
        }
        let roost = spawn(&args, "roost", temp_dir(&format!("push-{name}"))?).await?;
        roost_fan_out(&roost, name, n).await?;
    }
    reference(n).await
}

async fn roost_fan_out(roost: &Server, backend: &str, n: usize) -> anyhow::Result<()> {
    let rx = Receiver::start()?;
    let auth = format!("Bearer {ADMIN}");
    let tenant = format!("push-{backend}-{}", std::process::id());
    let mut c = Conn::open(&roost.addr).await?;
    let (s, b) = c.send("POST", "/manage/v1/tenants", &[("authorization", &auth)], Some(&json!({"name": tenant}).to_string())).await?;
    if s != 201 {
        bail!("creating tenant: {s} {}", String::from_utf8_lossy(&b));
    }
    let t: Value = serde_json::from_slice(&b)?;
    let (app_key, master_key) = (t["application_key"].as_str().unwrap_or_default().to_string(), t["master_key"].as_str().unwrap_or_default().to_string());
    // The receiver is on loopback: only an admin lets a tenant reach it.
    let settings = json!({"outbound_allow": [rx.addr()]}).to_string();
    let (s, b) = c.send("PATCH", &format!("/manage/v1/tenants/{tenant}/settings"), &[("authorization", &auth)], Some(&settings)).await?;
    if s != 200 {
        bail!("settings: {s} {}", String::from_utf8_lossy(&b));
    }
    let api = "exports.post = function (request, response) { request.service.push.send('bench', request.body, { success: function (r) { response.send(200, r); }, error: function (e) { response.send(500, { message: e.message }); } }); };";
    super::put_script(&roost.addr, &tenant, "api", "notify", json!({"body": api})).await?;

    // The registrations, as browsers make them: an id, then the subscription with a tag.
    let subscriptions = rx.subscribe(n).await?;
    let started = Instant::now();
    let chunks: Vec<Vec<Value>> = subscriptions.chunks(n.div_ceil(16)).map(<[Value]>::to_vec).collect();
    let registered: Vec<anyhow::Result<()>> = futures::stream::iter(chunks)
        .map(|chunk| {
            let (addr, tenant, key) = (roost.addr.clone(), tenant.clone(), app_key.clone());
            tokio::spawn(async move {
                let mut c = Conn::open(&addr).await?;
                let h = [("x-zumo-application", key.as_str())];
                for sub in chunk {
                    let (s, head, b) = c.exchange("POST", &format!("/t/{tenant}/push/registrationids"), &h, None).await?;
                    if s != 201 {
                        bail!("registration id: {s} {}", String::from_utf8_lossy(&b));
                    }
                    let location = head.get("location").and_then(|v| v.to_str().ok()).context("no Location")?;
                    let id = location.rsplit('/').next().unwrap_or_default().to_string();
                    let body = json!({"platform": "webpush", "deviceId": sub["endpoint"], "keys": sub["keys"], "tags": ["bench"]}).to_string();
                    let (s, b) = c.send("PUT", &format!("/t/{tenant}/push/registrations/{id}"), &h, Some(&body)).await?;
                    if s != 204 {
                        bail!("registration: {s} {}", String::from_utf8_lossy(&b));
                    }
                }
                Ok(())
            })
        })
        .buffer_unordered(16)
        .map(|r| r.map_err(anyhow::Error::from).and_then(|r| r))
        .collect()
        .await;
    registered.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    println!("roost/{backend} {n} registrations made in {:.1} s (16 connections)", started.elapsed().as_secs_f64());

    let cpu0 = cpu_ms(roost.child.id());
    let t0 = now_ms();
    let (s, b) = c.send("POST", &format!("/t/{tenant}/api/notify"), &[("x-zumo-master", &master_key)], Some(PAYLOAD)).await?;
    let acknowledged = now_ms() - t0;
    if s != 200 {
        bail!("push.send: {s} {}", String::from_utf8_lossy(&b));
    }
    let sent: Value = serde_json::from_slice(&b)?;
    if sent["queued"].as_u64() != Some(n as u64) {
        bail!("push.send queued {sent}");
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    let count = loop {
        let count = rx.count().await?;
        if count["accepted"].as_u64().unwrap_or(0) >= n as u64 {
            break count;
        }
        if Instant::now() > deadline {
            bail!("only {count} of {n} delivered in 300 s; receiver: {}", rx.stats().await?);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let cpu = cpu_ms(roost.child.id()) - cpu0;
    let last = count["last"].as_u64().unwrap_or(t0).saturating_sub(t0).max(1);
    let stats = rx.stats().await?;
    println!(
        "roost/{backend} push.send to {n}: queued durably in {acknowledged} ms, last delivered after {last} ms: {:.0} notifications/s, {:.0} per second of Roost's CPU ({cpu} ms)",
        n as f64 * 1000.0 / last as f64,
        n as f64 * 1000.0 / cpu.max(1) as f64,
    );
    println!("roost/{backend} receiver answers {} refused {}", stats["byStatus"], stats["refused"]);
    Ok(())
}

async fn reference(n: usize) -> anyhow::Result<()> {
    let rx = Receiver::start()?;
    let subscriptions = rx.subscribe(n).await?;
    let dir = temp_dir("push-reference")?;
    let file = dir.join("subscriptions.json");
    std::fs::write(&file, serde_json::to_vec(&subscriptions)?)?;
    let o = json!({"subscriptions": file, "parallel": 64, "payload": PAYLOAD}).to_string();
    let out = tokio::task::spawn_blocking(move || Command::new("node").arg("webpush-send.mjs").arg(o).current_dir(RECEIVERS).stderr(Stdio::inherit()).output())
        .await??;
    let _ = std::fs::remove_dir_all(&dir);
    if !out.status.success() {
        bail!("webpush-send.mjs failed: {}", out.status);
    }
    let v: Value = serde_json::from_slice(&out.stdout)?;
    let (ms, cpu) = (v["ms"].as_u64().unwrap_or(1).max(1), v["cpu_ms"].as_u64().unwrap_or(1).max(1));
    let accepted = rx.count().await?["accepted"].as_u64().unwrap_or(0);
    println!(
        "npm web-push to {n} (64 in flight): {accepted} delivered in {ms} ms: {:.0} notifications/s, {:.0} per second of its CPU ({cpu} ms)",
        n as f64 * 1000.0 / ms as f64,
        n as f64 * 1000.0 / cpu as f64
    );
    Ok(())
}
