//! Scale-out (issue 16): two `roost serve` nodes on one PostgreSQL database behind a real HAProxy
//! (Debian's `haproxy`, on 127.0.0.1 only, health-checking `/readyz`), as `docs/deploy.md`
//! configures it. Each test builds its own cluster on a database of its own.

use crate::helpers::{postgres_url, random_name, TempDir};
use crate::oidc::WebPushReceiver;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ADMIN: &str = "cluster-admin-token";
const IDENTITY_KEY: &str = "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1";
/// How long a SIGTERM'd node serves on with `/readyz` at 503 (HAProxy checks every 100 ms).
const DRAIN_MS: u64 = 600;

/// The HAProxy configuration the tests run, as `docs/deploy.md` gives it (ports filled in).
pub fn haproxy_config(listen: u16, nodes: &[(&str, u16)]) -> String {
    let mut servers = String::new();
    for (name, port) in nodes {
        servers.push_str(&format!("    server {name} 127.0.0.1:{port} check\n"));
    }
    format!(
        "global\n    maxconn 1024\n\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n\
         \x20   # A request whose connection to a node failed, or that got no answer at all, is tried on\n\
         \x20   # another node (a node that died or closed the connection never began it).\n\
         \x20   retries 3\n    option redispatch 1\n    retry-on conn-failure empty-response\n\n\
         frontend roost\n    bind 127.0.0.1:{listen}\n    default_backend nodes\n\n\
         backend nodes\n    balance roundrobin\n\
         \x20   option httpchk GET /readyz\n    http-check expect status 200\n\
         \x20   default-server inter 100ms fastinter 100ms downinter 100ms fall 1 rise 1\n{servers}"
    )
}

fn haproxy_binary() -> Option<PathBuf> {
    let found = ["/usr/sbin/haproxy", "/usr/bin/haproxy"].iter().map(PathBuf::from).find(|p| p.exists());
    if found.is_none() {
        // CI installs Debian's haproxy: there a missing binary is a failure, not a skip.
        assert!(std::env::var("CI").is_err(), "haproxy is not installed (apt-get install haproxy)");
        eprintln!("haproxy is not installed: the cluster tests are skipped (apt-get install haproxy)");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

struct Node {
    child: Option<Child>,
    base: String,
    port: u16,
    _dir: TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub struct Cluster {
    nodes: Vec<Node>,
    lb: Child,
    pub lb_base: String,
    pub tenant: String,
    pub app_key: String,
    pub master_key: String,
    pub client: reqwest::Client,
    _cfg: TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.lb.kill();
        let _ = self.lb.wait();
    }
}

/// A fresh database of the test PostgreSQL server.
pub async fn fresh_database() -> String {
    use sqlx::Connection as _;
    let base = postgres_url();
    let name = random_name("roost_cluster_");
    let mut c = sqlx::PgConnection::connect(&base).await.expect("connect");
    sqlx::query(&format!("create database \"{name}\"")).execute(&mut c).await.expect("create database");
    format!("{}/{name}", base.rsplit_once('/').expect("a database in the URL").0)
}

/// `roost` with a node's settings.
pub fn node_command(dir: &std::path::Path, database_url: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_roost"));
    c.env("ROOST_DATA", dir)
        .env("ROOST_DATABASE_URL", database_url)
        .env("ROOST_IDENTITY_KEY", IDENTITY_KEY)
        .env("ROOST_LOG", "warn")
        .env("ROOST_ADMIN_TOKEN", ADMIN)
        .env("ROOST_SCHEDULER_TICK_MS", "100")
        .env("ROOST_METRICS_FLUSH_MS", "1000")
        .env("ROOST_PG_MAX_CONNECTIONS", "10")
        .env("ROOST_DRAIN_DELAY_MS", DRAIN_MS.to_string())
        .env("ROOST_SHUTDOWN_GRACE_MS", "5000");
    c
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..300 {
        if client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == StatusCode::OK) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base} did not become ready");
}

impl Cluster {
    /// Two nodes started at once on a fresh database (their migrations meet on the advisory lock),
    /// HAProxy in front, and a tenant with a public table `items`.
    pub async fn start() -> Option<Cluster> {
        let haproxy = haproxy_binary()?;
        let database_url = fresh_database().await;
        let client = reqwest::Client::new();
        let mut nodes = Vec::new();
        for name in ["a", "b"] {
            let dir = std::env::temp_dir().join(random_name(&format!("roost-node-{name}-")));
            std::fs::create_dir_all(&dir).unwrap();
            let port = free_port();
            let child = node_command(&dir, &database_url).arg("serve").env("ROOST_LISTEN", format!("127.0.0.1:{port}")).spawn().expect("roost serve");
            nodes.push(Node { child: Some(child), base: format!("http://127.0.0.1:{port}"), port, _dir: TempDir(dir) });
        }
        for n in &nodes {
            wait_ready(&client, &n.base).await;
        }
        let cfg = TempDir(std::env::temp_dir().join(random_name("roost-haproxy-")));
        std::fs::create_dir_all(&cfg.0).unwrap();
        let listen = free_port();
        let file = cfg.0.join("haproxy.cfg");
        std::fs::write(&file, haproxy_config(listen, &[("a", nodes[0].port), ("b", nodes[1].port)])).unwrap();
        let lb = Command::new(haproxy).arg("-db").arg("-f").arg(&file).spawn().expect("haproxy");
        let lb_base = format!("http://127.0.0.1:{listen}");
        wait_ready(&client, &lb_base).await;
        let mut cluster = Cluster { nodes, lb, lb_base, tenant: random_name("c"), app_key: String::new(), master_key: String::new(), client, _cfg: cfg };
        // Both nodes in rotation (rise 1 at 100 ms).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t = cluster.manage(0, reqwest::Method::POST, "/tenants", Some(json!({"name": cluster.tenant}))).await;
        assert_eq!(t.0, StatusCode::CREATED, "{}", t.1);
        cluster.app_key = t.1["application_key"].as_str().unwrap().to_string();
        cluster.master_key = t.1["master_key"].as_str().unwrap().to_string();
        let tenant = cluster.tenant.clone();
        let r = cluster
            .manage(
                0,
                reqwest::Method::POST,
                &format!("/tenants/{tenant}/tables"),
                Some(json!({"name": "items", "permissions": {"read": "public", "insert": "public", "update": "public"}})),
            )
            .await;
        assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
        Some(cluster)
    }

    /// The base URL of node `i` (direct, not through HAProxy).
    pub fn node(&self, i: usize) -> &str {
        &self.nodes[i].base
    }

    /// `/manage/v1` on node `i`.
    pub async fn manage(&self, i: usize, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut rb = self.client.request(method, format!("{}/manage/v1{path}", self.node(i))).bearer_auth(ADMIN);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.expect("manage request");
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A tenant URL at `base` (a node or HAProxy).
    pub fn url(&self, base: &str, path: &str) -> String {
        format!("{base}/t/{}{path}", self.tenant)
    }

    fn child(&mut self, i: usize) -> &mut Child {
        self.nodes[i].child.as_mut().expect("node running")
    }
}

/// Stores a script through node `i`.
async fn put_script(c: &Cluster, i: usize, kind: &str, name: &str, body: &str, extra: Value) {
    let mut b = json!({"body": body});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        b[k] = v;
    }
    let r = c.manage(i, reqwest::Method::PUT, &format!("/tenants/{}/scripts/{kind}/{name}", c.tenant), Some(b)).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_limits_jobs_and_pushes_hold_across_nodes_behind_haproxy() {
    let Some(c) = Cluster::start().await else { return };

    // Through HAProxy, requests reach both nodes (round robin): each node counts its own.
    for i in 0..10 {
        let r = c.client.post(c.url(&c.lb_base, "/tables/items")).json(&json!({"id": format!("lb{i}"), "n": i})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }

    // A script saved through node A answers on node B within a second.
    put_script(&c, 0, "table", "items.read", "function read(q, u, r) { r.respond(200, { version: 1 }); }", json!({})).await;
    let saved = Instant::now();
    put_script(&c, 0, "table", "items.read", "function read(q, u, r) { r.respond(200, { version: 2 }); }", json!({})).await;
    let mut seen = Value::Null;
    while saved.elapsed() < Duration::from_secs(1) {
        seen = c.client.get(c.url(c.node(1), "/tables/items")).send().await.unwrap().json().await.unwrap();
        if seen["version"] == 2 {
            break;
        }
    }
    assert_eq!(seen["version"], 2, "node B answered {seen} a second after the save through A");
    eprintln!("a script saved through A answered on B {} ms after the save began", saved.elapsed().as_millis());

    // The sign-in limit is the cluster's: failures spread over both nodes add up (5 per e-mail).
    let email = format!("{}@example.com", random_name("owner"));
    let r = c.manage(0, reqwest::Method::POST, "/accounts", Some(json!({"email": email, "password": "a long enough password", "role": "owner"}))).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    for i in 0..5 {
        let r =
            c.client.post(format!("{}/manage/v1/session", c.node(i % 2))).json(&json!({"email": email, "password": "wrong password!"})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "failure {i}");
    }
    for i in 0..2 {
        let r = c
            .client
            .post(format!("{}/manage/v1/session", c.node(i)))
            .json(&json!({"email": email, "password": "a long enough password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "node {i} lets a sixth guess through");
    }

    // Jobs: 20 jobs fall due one after another (every 150 ms, the nodes tick every 100 ms); both
    // nodes' schedulers see every due time, and each runs exactly once.
    let r =
        c.manage(0, reqwest::Method::POST, &format!("/tenants/{}/tables", c.tenant), Some(json!({"name": "ticks", "permissions": {"insert": "public"}}))).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let start = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let jobs = 20;
    for j in 0..jobs {
        let due = start + chrono::Duration::milliseconds(150 * j);
        let schedule = json!({"interval": 1, "unit": "minute", "start": roost_odata::format_datetime(&due), "enabled": true});
        let body = format!("function job{j}() {{ tables.getTable('ticks').insert({{ job: 'job{j}' }}); }}");
        put_script(&c, (j % 2) as usize, "job", &format!("job{j}"), &body, json!({"schedule": schedule})).await;
    }
    tokio::time::sleep(Duration::from_millis(1500 + 150 * jobs as u64 + 2000)).await;
    for j in 0..jobs {
        let r = c.manage(1, reqwest::Method::GET, &format!("/tenants/{}/jobs/job{j}/runs", c.tenant), None).await;
        assert_eq!(r.0, StatusCode::OK, "{}", r.1);
        let runs = r.1.as_array().cloned().unwrap_or_default();
        assert_eq!(runs.len(), 1, "job{j} ran {} times: {}", runs.len(), r.1);
    }
    let r = c.manage(0, reqwest::Method::GET, &format!("/tenants/{}/tables/ticks/rows?$top=1000", c.tenant), None).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let rows = r.1["rows"].as_array().or(r.1.as_array()).cloned().unwrap_or_default();
    assert_eq!(rows.len(), jobs as usize, "one row per job run: {}", r.1);

    // A push queued through node A is delivered once, by whichever node's outbox claims it.
    let rx = WebPushReceiver::start();
    let r = c
        .manage(0, reqwest::Method::PATCH, &format!("/tenants/{}/settings", c.tenant), Some(json!({"outbound_allow": [format!("127.0.0.1:{}", rx.port)]})))
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let sub = rx.subscribe(json!({})).await;
    let r = c.client.post(c.url(&c.lb_base, "/push/registrationids")).header("X-ZUMO-APPLICATION", &c.app_key).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().to_string();
    let r = c
        .client
        .put(c.url(&c.lb_base, &format!("/push/registrations/{id}")))
        .header("X-ZUMO-APPLICATION", &c.app_key)
        .json(&json!({"platform": "webpush", "deviceId": sub["endpoint"], "keys": sub["keys"], "tags": ["news"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    put_script(
        &c,
        0,
        "api",
        "notify",
        "exports.post = function (req, res) { req.service.push.webpush.send('news', JSON.stringify({ hello: 'cluster' }), { success: function (r) { res.send(200, r); }, error: function (e) { res.send(500, { error: String(e) }); } }); };",
        json!({"permissions": {"routes": {"*": {"permission": "public"}}}}),
    )
    .await;
    let r = c.client.post(c.url(c.node(0), "/api/notify")).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let mut messages = Vec::new();
    for _ in 0..100 {
        messages = rx.messages().await;
        if !messages.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(messages.len(), 1, "{messages:?}");
    // Both outboxes keep polling: still exactly one a while later.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.messages().await.len(), 1, "delivered twice: {:?}", rx.messages().await);

    // A setting too (dynamic schema off through A: B refuses a new column).
    let r = c.manage(0, reqwest::Method::PATCH, &format!("/tenants/{}/settings", c.tenant), Some(json!({"dynamic_schema": false}))).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let r = c.client.post(c.url(c.node(1), "/tables/ticks")).json(&json!({"brand_new_column": 1})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "node B still has dynamic schema on");
}

/// One write load through HAProxy: `workers` clients inserting distinct ids until `stop`; every
/// acknowledged (201) id is recorded, and every failure with its time.
struct Load {
    acknowledged: Arc<Mutex<Vec<(String, i64)>>>,
    failures: Arc<Mutex<Vec<(Instant, String)>>>,
    reads: Arc<AtomicUsize>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

fn write_load(c: &Cluster, workers: usize, stop: Arc<std::sync::atomic::AtomicBool>, with_reads: bool) -> Load {
    let load = Load { acknowledged: Default::default(), failures: Default::default(), reads: Default::default(), handles: Vec::new() };
    let mut handles = Vec::new();
    for w in 0..workers {
        let (client, url, stop) = (reqwest::Client::new(), c.url(&c.lb_base, "/tables/items"), stop.clone());
        let (acked, failures, reads) = (load.acknowledged.clone(), load.failures.clone(), load.reads.clone());
        handles.push(tokio::spawn(async move {
            let mut n = 0i64;
            while !stop.load(Ordering::Acquire) {
                n += 1;
                let id = format!("w{w}-{n}");
                match client.post(&url).json(&json!({"id": id, "n": n, "worker": w as i64})).send().await {
                    Ok(r) if r.status() == StatusCode::CREATED => acked.lock().unwrap().push((id.clone(), n)),
                    Ok(r) => {
                        let (at, status) = (Instant::now(), r.status());
                        let text = r.text().await.unwrap_or_default();
                        failures.lock().unwrap().push((at, format!("insert {id}: {status} {text}")));
                    }
                    Err(e) => failures.lock().unwrap().push((Instant::now(), format!("insert {id}: {e}"))),
                }
                if with_reads {
                    match client.get(format!("{url}/{id}")).send().await {
                        Ok(r) if r.status().is_success() || r.status() == StatusCode::NOT_FOUND => {
                            reads.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => failures.lock().unwrap().push((Instant::now(), format!("read {id}: {}", r.status()))),
                        Err(e) => failures.lock().unwrap().push((Instant::now(), format!("read {id}: {e}"))),
                    }
                }
            }
        }));
    }
    Load { handles, ..load }
}

/// Every acknowledged write is there, row by row, with what was written.
async fn check_acknowledged(c: &Cluster, base: &str, acked: &[(String, i64)]) {
    for (id, n) in acked {
        let r = c.client.get(c.url(base, &format!("/tables/items/{id}"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "acknowledged write {id} is lost");
        let row: Value = r.json().await.unwrap();
        assert_eq!(row["n"], *n, "{row}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_of_a_node_under_write_load_loses_no_acknowledged_write() {
    let Some(mut c) = Cluster::start().await else { return };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = write_load(&c, 6, stop.clone(), false);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = load.acknowledged.lock().unwrap().len();
    let killed_at = Instant::now();
    c.child(0).kill().expect("SIGKILL");
    c.child(0).wait().unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::Release);
    for h in load.handles {
        h.await.unwrap();
    }
    let acked = load.acknowledged.lock().unwrap().clone();
    let failures = load.failures.lock().unwrap().clone();
    let after = acked.len() - before;
    eprintln!(
        "acknowledged {before} writes before the kill and {after} after; {} failed: {:?}",
        failures.len(),
        failures.iter().map(|f| &f.1).collect::<Vec<_>>()
    );
    assert!(before > 50 && after > 50, "B keeps serving: {before} before, {after} after");
    // Only requests in flight on A when it died may fail (one per worker at most), and only then.
    assert!(failures.len() <= 6, "{failures:?}");
    for (at, what) in &failures {
        assert!(at.duration_since(killed_at) < Duration::from_millis(500), "a failure long after the kill: {what}");
    }
    check_acknowledged(&c, c.node(1), &acked).await;
    // Through HAProxy too, now that A is out of rotation.
    check_acknowledged(&c, &c.lb_base.clone(), &acked[..acked.len().min(200)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigtermed_node_drains_without_failed_requests() {
    let Some(mut c) = Cluster::start().await else { return };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = write_load(&c, 6, stop.clone(), true);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = c.child(0).id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(status.success());
    // Draining: A answers /readyz with 503 as soon as it has the signal, and goes on serving.
    let signalled = Instant::now();
    let mut ready = Value::Null;
    while signalled.elapsed() < Duration::from_millis(DRAIN_MS / 2) {
        let r = c.client.get(format!("{}/readyz", c.node(0))).send().await.expect("A still serves while draining");
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            ready = r.json().await.unwrap();
            break;
        }
    }
    assert_eq!(ready["draining"], true, "{ready}");
    let r = c.client.get(c.url(c.node(0), "/tables/items?$top=1")).send().await.expect("A still serves while draining");
    assert_eq!(r.status(), StatusCode::OK);
    let exited = tokio::task::spawn_blocking({
        let mut child = c.nodes[0].child.take().unwrap();
        move || {
            let started = Instant::now();
            let status = child.wait().unwrap();
            (status, started.elapsed())
        }
    });
    let (status, took) = exited.await.unwrap();
    assert!(status.success(), "A exited with {status}");
    eprintln!("A drained and exited {} ms after SIGTERM", took.as_millis());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Release);
    for h in load.handles {
        h.await.unwrap();
    }
    let failures = load.failures.lock().unwrap().clone();
    let acked = load.acknowledged.lock().unwrap().clone();
    assert!(failures.is_empty(), "{} requests failed while A drained: {:?}", failures.len(), failures.iter().map(|f| &f.1).collect::<Vec<_>>());
    assert!(acked.len() > 100 && load.reads.load(Ordering::Relaxed) > 100, "{} writes", acked.len());
    check_acknowledged(&c, c.node(1), &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_that_do_not_match_the_cluster_refuse_to_start() {
    let database_url = fresh_database().await;
    let dir = TempDir(std::env::temp_dir().join(random_name("roost-node-")));
    std::fs::create_dir_all(&dir.0).unwrap();
    let client = reqwest::Client::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    {
        // The first node stores its identity key's fingerprint.
        let _first =
            crate::helpers::KillOnDrop(node_command(&dir.0, &database_url).arg("serve").env("ROOST_LISTEN", format!("127.0.0.1:{port}")).spawn().unwrap());
        wait_ready(&client, &base).await;
    }
    // Another identity key than the one the first node stored the fingerprint of.
    let out = node_command(&dir.0, &database_url)
        .env("ROOST_IDENTITY_KEY", "d".repeat(64))
        .arg("serve")
        .env("ROOST_LISTEN", format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("identity_key is not the one the other nodes of this database use"), "{err}");
    // A newer binary migrated the catalog: this one refuses, saying so.
    use sqlx::Connection as _;
    let mut db = sqlx::PgConnection::connect(&database_url).await.unwrap();
    sqlx::query("insert into _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) values (99990101, 'from the future', now(), true, '\\x00', 1)")
        .execute(&mut db)
        .await
        .unwrap();
    let out = node_command(&dir.0, &database_url).arg("serve").env("ROOST_LISTEN", format!("127.0.0.1:{port}")).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the catalog's schema is at migration 99990101, newer than this binary knows"), "{err}");
    assert!(err.contains("Upgrade this node"), "{err}");
    // A running node stays ready when a newer node migrates further (a rolling upgrade), and says
    // so; a catalog behind this binary (restored from an older dump) makes it unready.
    sqlx::query("delete from _sqlx_migrations where version = 99990101").execute(&mut db).await.unwrap();
    let mut child =
        crate::helpers::KillOnDrop(node_command(&dir.0, &database_url).arg("serve").env("ROOST_LISTEN", format!("127.0.0.1:{port}")).spawn().unwrap());
    wait_ready(&client, &base).await;
    let r = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    sqlx::query("insert into _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) values (99990101, 'from the future', now(), true, '\\x00', 1)")
        .execute(&mut db)
        .await
        .unwrap();
    let r = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["schema"]["applied"], 99990101, "{v}");
    sqlx::query("delete from _sqlx_migrations where version >= 11").execute(&mut db).await.unwrap();
    let r = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["schema"]["applied"], 10, "{v}");
    assert_eq!(v["database"], "ok", "{v}");
    assert_eq!(v["status"], "unavailable", "{v}");
    let r = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "alive all the same");
    let _ = child.0.kill();
}
