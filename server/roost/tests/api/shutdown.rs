//! Graceful shutdown of a real `roost serve` process: SIGTERM during a write load and two running
//! jobs. Every acknowledged write is stored, the process exits within the documented bound
//! (`shutdown_grace_ms` plus a few seconds), the job that ends within the grace period is recorded
//! as succeeded, the one that does not as interrupted, and no run stays claimed.

use crate::helpers::{random_name, Backend, KillOnDrop, TempDir};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const GRACE_MS: u64 = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_writes_and_jobs_loses_nothing_on_sqlite() {
    sigterm_during_writes_and_jobs_loses_nothing(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_writes_and_jobs_loses_nothing_on_postgres() {
    sigterm_during_writes_and_jobs_loses_nothing(Backend::Postgres).await;
}

struct Node {
    dir: std::path::PathBuf,
    database_url: String,
}

impl Node {
    fn command(&self) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_roost"));
        c.env("ROOST_DATA", &self.dir)
            .env("ROOST_DATABASE_URL", &self.database_url)
            .env("ROOST_IDENTITY_KEY", crate::helpers::SUITE_IDENTITY_KEY)
            .env("ROOST_LOG", "warn")
            .env("ROOST_ADMIN_TOKEN", "shutdown-admin-token")
            .env("ROOST_SCHEDULER_TICK_MS", "0")
            .env("ROOST_SHUTDOWN_GRACE_MS", GRACE_MS.to_string());
        c
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = self.command().args(args).output().expect("run roost");
        assert!(out.status.success(), "roost {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `roost serve` on a free port and waits until it answers.
    async fn serve(&self, tenant: &str) -> (std::process::Child, String) {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let mut child = self.command().arg("serve").env("ROOST_LISTEN", format!("127.0.0.1:{port}")).spawn().expect("spawn roost serve");
        let base = format!("http://127.0.0.1:{port}/t/{tenant}");
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client.get(format!("{base}/status")).send().await.is_ok_and(|r| r.status() == StatusCode::OK) {
                return (child, base);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("roost serve did not start");
    }
}

async fn sigterm_during_writes_and_jobs_loses_nothing(backend: Backend) {
    let dir = std::env::temp_dir().join(random_name("roost-shutdown-"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let _cleanup = TempDir(dir.clone());
    let database_url = match backend {
        Backend::Sqlite => String::new(),
        Backend::Postgres => std::env::var("ROOST_TEST_DATABASE_URL").expect("ROOST_TEST_DATABASE_URL (scripts/test starts a server)"),
    };
    let node = Node { dir: dir.clone(), database_url };
    let tenant = random_name("t");
    let shown: Value = serde_json::from_str(&node.cli(&["tenant", "create", &tenant, "--json"])).expect("tenant json");
    let (app_key, master_key) = (shown["application_key"].as_str().unwrap().to_string(), shown["master_key"].as_str().unwrap().to_string());
    node.cli(&["table", "create", &tenant, "items"]);
    let script = |name: &str, ms: u64| {
        let path = dir.join(format!("{name}.js"));
        std::fs::write(&path, format!("function {name}() {{ setTimeout(function () {{ console.log('{name} finished'); }}, {ms}); }}")).unwrap();
        path
    };
    // One job ends within the grace period, the other would run for a minute.
    node.cli(&["script", "set", &tenant, "job", "quick", script("quick", 1000).to_str().unwrap()]);
    node.cli(&["script", "set", &tenant, "job", "stuck", script("stuck", 60_000).to_str().unwrap()]);

    let (mut child, base) = node.serve(&tenant).await;
    let client = reqwest::Client::new();
    for job in ["quick", "stuck"] {
        let r = client.post(format!("{base}/jobs/{job}")).header("x-zumo-master", &master_key).send().await.expect("run job");
        assert_eq!(r.status(), StatusCode::OK);
    }
    // Writers insert until the server goes away; a 201 is an acknowledged write.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (client, base, key, acked) = (client.clone(), base.clone(), app_key.clone(), acknowledged.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let id = format!("w{w}-{i}");
                    let sent = client.post(format!("{base}/tables/items")).header("x-zumo-application", &key).json(&json!({"id": id, "n": i})).send().await;
                    match sent {
                        Ok(r) if r.status() == StatusCode::CREATED => acked.lock().unwrap().push(id),
                        Ok(r) if r.status().is_server_error() => panic!("a write failed with {} during shutdown", r.status()),
                        _ => return,
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = acknowledged.lock().unwrap().len();
    assert!(before > 0, "the write load is running");
    let signalled = Instant::now();
    let killed = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().expect("wait");
    let took = signalled.elapsed();
    assert!(status.success(), "roost serve exited with {status}");
    assert!(took < Duration::from_millis(GRACE_MS + 3000), "exit took {took:?}, beyond the documented bound");
    // The grace period was used for the stuck job (the quick one ended inside it).
    assert!(took >= Duration::from_millis(GRACE_MS - 500), "exit took only {took:?}: the running jobs were not waited for");
    for w in writers {
        w.await.expect("writer");
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    // A new server over the same data sees every acknowledged write and no claimed run.
    let (mut child, base) = node.serve(&tenant).await;
    let mut stored = std::collections::HashSet::new();
    loop {
        let r = client
            .get(format!("{base}/tables/items?$select=id&$top=1000&$skip={}", stored.len()))
            .header("x-zumo-application", &app_key)
            .send()
            .await
            .expect("read");
        let page: Vec<Value> = r.json().await.expect("json");
        if page.is_empty() {
            break;
        }
        stored.extend(page.into_iter().filter_map(|v| v["id"].as_str().map(str::to_string)));
    }
    let lost: Vec<&String> = acknowledged.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(lost.is_empty(), "{} of {} acknowledged writes were lost: {:?}", lost.len(), acknowledged.len(), &lost[..lost.len().min(5)]);
    let manage = base.replace(&format!("/t/{tenant}"), "/manage/v1");
    let runs = |job: &'static str| {
        let (client, url) = (client.clone(), format!("{manage}/tenants/{tenant}/jobs/{job}/runs"));
        async move {
            let r = client.get(url).bearer_auth("shutdown-admin-token").send().await.expect("runs");
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<Vec<Value>>().await.expect("runs json")
        }
    };
    let quick = runs("quick").await;
    assert_eq!(quick.len(), 1, "{quick:?}");
    assert_eq!(quick[0]["outcome"], "succeeded", "{quick:?}");
    let stuck = runs("stuck").await;
    assert_eq!(stuck.len(), 1, "{stuck:?}");
    assert_eq!(stuck[0]["outcome"], roost::tasks::interrupted().to_string(), "{stuck:?}");
    // The quick job's log line, written during shutdown, was stored before the process exited.
    let r = client.get(format!("{manage}/tenants/{tenant}/logs?limit=1000")).bearer_auth("shutdown-admin-token").send().await.expect("logs");
    let logs: Vec<Value> = r.json().await.expect("logs json");
    assert!(logs.iter().any(|l| l["message"] == "quick finished"), "{logs:?}");
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
}

/// Notifications the crash test queues: 1,000 subscriptions × 5 sends.
const CRASH_SUBSCRIPTIONS: usize = 1000;
const CRASH_SENDS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_push_delivery_loses_nothing_on_sqlite() {
    kill_9_during_push_delivery_loses_nothing(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_push_delivery_loses_nothing_on_postgres() {
    kill_9_during_push_delivery_loses_nothing(Backend::Postgres).await;
}

/// A database of its own on the suite's PostgreSQL server (other tests' servers would claim the
/// outbox's rows of a shared one, with other keys).
async fn own_postgres_database() -> String {
    use sqlx::Connection as _;
    let base = std::env::var("ROOST_TEST_DATABASE_URL").expect("ROOST_TEST_DATABASE_URL (scripts/test starts a server)");
    let name = random_name("roost_crash_");
    let mut c = sqlx::PgConnection::connect(&base).await.expect("connect");
    sqlx::query(&format!("create database \"{name}\"")).execute(&mut c).await.expect("create database");
    format!("{}/{name}", base.rsplit_once('/').expect("a database in the URL").0)
}

/// 5,000 notifications queued, the server killed with SIGKILL in the middle of their delivery, then
/// restarted: every notification reaches its subscription at least once, at most twice (those the
/// receiver accepted just before the crash, whose outcome the server had not stored), and the sends'
/// counts add up to exactly what was queued.
async fn kill_9_during_push_delivery_loses_nothing(backend: Backend) {
    let rx = crate::oidc::WebPushReceiver::start();
    let dir = std::env::temp_dir().join(random_name("roost-crash-"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let _cleanup = TempDir(dir.clone());
    let database_url = match backend {
        Backend::Sqlite => String::new(),
        Backend::Postgres => own_postgres_database().await,
    };
    let node = Node { dir: dir.clone(), database_url };
    let tenant = random_name("t");
    let shown: Value = serde_json::from_str(&node.cli(&["tenant", "create", &tenant, "--json"])).expect("tenant json");
    let app_key = shown["application_key"].as_str().unwrap().to_string();
    let master_key = shown["master_key"].as_str().unwrap().to_string();
    let api = dir.join("notify.js");
    std::fs::write(
        &api,
        "exports.post = function (request, response) { request.service.push.send('crash', request.body, { success: function (r) { response.send(200, r); }, error: function (e) { response.send(500, { m: e.message }); } }); };",
    )
    .unwrap();
    node.cli(&["script", "set", &tenant, "api", "notify", api.to_str().unwrap()]);
    // The PostgreSQL node's claims outlive it by their lease: a short one, so that the restarted
    // node takes them back within the test.
    let start = |node: &Node| {
        let tenant = tenant.clone();
        let mut c = node.command();
        c.env("ROOST_PUSH_CLAIM_LEASE_MS", "3000");
        async move {
            let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
            let child = KillOnDrop(c.arg("serve").env("ROOST_LISTEN", format!("127.0.0.1:{port}")).spawn().expect("spawn roost serve"));
            let base = format!("http://127.0.0.1:{port}/t/{tenant}");
            for _ in 0..200 {
                if reqwest::get(format!("{base}/status")).await.is_ok_and(|r| r.status() == StatusCode::OK) {
                    return (child, base);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            drop(child);
            panic!("roost serve did not start");
        }
    };
    let (mut child, base) = start(&node).await;
    let client = reqwest::Client::new();
    let manage = base.replace(&format!("/t/{tenant}"), "/manage/v1");
    let r = client
        .patch(format!("{manage}/tenants/{tenant}/settings"))
        .bearer_auth("shutdown-admin-token")
        .json(&json!({"outbound_allow": [format!("127.0.0.1:{}", rx.port)]}))
        .send()
        .await
        .expect("settings");
    assert_eq!(r.status(), StatusCode::OK);
    // The subscriptions, registered as browsers do.
    use futures::StreamExt as _;
    let subscriptions: Vec<String> = futures::stream::iter(0..CRASH_SUBSCRIPTIONS)
        .map(|_| {
            let (client, base, key, rx) = (client.clone(), base.clone(), app_key.clone(), &rx);
            async move {
                let sub = rx.subscribe(json!({})).await;
                let r = client.post(format!("{base}/push/registrationids")).header("x-zumo-application", &key).send().await.expect("id");
                assert_eq!(r.status(), StatusCode::CREATED);
                let location = r.headers()["location"].to_str().unwrap().to_string();
                let id = location.rsplit('/').next().unwrap();
                let body = json!({"platform": "webpush", "deviceId": sub["endpoint"], "keys": sub["keys"], "tags": ["crash"]});
                let r = client.put(format!("{base}/push/registrations/{id}")).header("x-zumo-application", &key).json(&body).send().await.expect("put");
                assert_eq!(r.status(), StatusCode::NO_CONTENT);
                sub["endpoint"].as_str().unwrap().rsplit('/').next().unwrap().to_string()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    // Five sends, each acknowledged once its 1,000 notifications are durable.
    let mut send_ids = Vec::new();
    for n in 0..CRASH_SENDS {
        let r = client.post(format!("{base}/api/notify")).header("x-zumo-master", &master_key).json(&json!({"n": n})).send().await.expect("send");
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["queued"], CRASH_SUBSCRIPTIONS, "{v}");
        send_ids.push(v["id"].as_str().unwrap().to_string());
    }
    let total = CRASH_SUBSCRIPTIONS * CRASH_SENDS;
    // SIGKILL once delivery is well under way, and well before its end.
    let mut delivered_before = 0;
    for _ in 0..600 {
        delivered_before = rx.messages().await.len();
        if delivered_before >= 300 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.0.kill().expect("SIGKILL");
    let _ = child.0.wait();
    assert!(delivered_before >= 300 && delivered_before < total, "killed at {delivered_before} of {total} delivered");

    let (_child, base) = start(&node).await;
    let manage = base.replace(&format!("/t/{tenant}"), "/manage/v1");
    let mut messages = Vec::new();
    for _ in 0..1200 {
        messages = rx.messages().await;
        let distinct: std::collections::HashSet<(String, String)> = messages
            .iter()
            .map(|m| (m["subscription"].as_str().unwrap_or_default().to_string(), m["payload"].as_str().unwrap_or_default().to_string()))
            .collect();
        if distinct.len() >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut seen: std::collections::HashMap<(String, String), usize> = std::collections::HashMap::new();
    for m in &messages {
        *seen.entry((m["subscription"].as_str().unwrap().to_string(), m["payload"].as_str().unwrap().to_string())).or_default() += 1;
    }
    let mut missing = 0;
    for sub in &subscriptions {
        for n in 0..CRASH_SENDS {
            if !seen.contains_key(&(sub.clone(), json!({"n": n}).to_string())) {
                missing += 1;
            }
        }
    }
    assert_eq!(missing, 0, "{missing} of {total} notifications never arrived (stats {})", rx.stats().await);
    let twice = seen.values().filter(|c| **c == 2).count();
    assert!(seen.values().all(|c| *c <= 2), "a notification arrived more than twice");
    // Only those in flight at the kill (at most the worker's parallelism) may come twice.
    assert!(twice <= 64, "{twice} notifications arrived twice");
    // The counts add up: each notification recorded once, nothing left waiting.
    let mut delivered = 0;
    for _ in 0..100 {
        delivered = 0;
        let mut waiting = 0;
        for id in &send_ids {
            let r = client.get(format!("{manage}/tenants/{tenant}/push/sends/{id}")).bearer_auth("shutdown-admin-token").send().await.expect("send");
            let s: Value = r.json().await.unwrap();
            delivered += s["delivered"].as_i64().unwrap();
            waiting += s["waiting"].as_i64().unwrap();
            assert_eq!((s["failed"].as_i64(), s["expired"].as_i64(), s["pruned"].as_i64()), (Some(0), Some(0), Some(0)), "{s}");
        }
        if waiting == 0 && delivered == total as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(delivered, total as i64, "the sends' delivered counts");
    eprintln!("kill -9 during push delivery ({backend:?}): killed after {delivered_before} of {total}; {twice} arrived twice, none lost");
}
