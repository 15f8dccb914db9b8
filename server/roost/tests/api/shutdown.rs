//! Graceful shutdown of a real `roost serve` process: SIGTERM during a write load and two running
//! jobs. Every acknowledged write is stored, the process exits within the documented bound
//! (`shutdown_grace_ms` plus a few seconds), the job that ends within the grace period is recorded
//! as succeeded, the one that does not as interrupted, and no run stays claimed.

use crate::helpers::{random_name, Backend, TempDir};
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
