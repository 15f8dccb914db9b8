//! `TestApp::spawn`: a real Roost on 127.0.0.1:0 over a real database (a temp SQLite folder, or the
//! PostgreSQL server named by `ROOST_TEST_DATABASE_URL`), with a fresh random tenant per test.

use reqwest::{Method, StatusCode};
use roost::ExposeSecret;
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub base: String,
    pub tenant: String,
    pub app_key: String,
    pub master_key: String,
    pub admin_token: String,
    pub data: PathBuf,
    pub database_url: String,
    pub backend: Backend,
    /// The server's state (to drive background workers with `run_once`).
    pub state: roost::AppState,
    client: reqwest::Client,
    _dir: TempDir,
}

/// A temp folder removed on drop (unless ROOST_TEST_KEEP_DB is set).
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("ROOST_TEST_KEEP_DB").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }
    /// The `error` member of a protocol error body.
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_string()
    }
}

pub fn random_name(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple().to_string().get(..12).unwrap_or("x"))
}

/// The identity key of every server of the suite's shared PostgreSQL catalog.
pub const SUITE_IDENTITY_KEY: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

pub fn postgres_url() -> String {
    std::env::var("ROOST_TEST_DATABASE_URL")
        .unwrap_or_else(|_| panic!("ROOST_TEST_DATABASE_URL is not set: the PostgreSQL half of the suite needs a server (scripts/test starts one)"))
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    /// [`TestApp::spawn_with`] on a database of its own (on PostgreSQL a new database of the test
    /// server; SQLite folders are always the server's own). The suite's servers otherwise share one
    /// PostgreSQL catalog as the nodes of a cluster do, but unlike them with keys and settings of
    /// their own: a test whose background work (the push outbox) must be claimed by its server only
    /// runs alone.
    pub async fn spawn_alone(backend: Backend, tweak: impl FnOnce(&mut roost::Config)) -> TestApp {
        if backend == Backend::Sqlite {
            return Self::spawn_with(backend, tweak).await;
        }
        use sqlx::Connection as _;
        let base = postgres_url();
        let name = random_name("roost_alone_");
        let mut c = sqlx::PgConnection::connect(&base).await.expect("connect");
        sqlx::query(&format!("create database \"{name}\"")).execute(&mut c).await.expect("create database");
        let url = match base.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("ROOST_TEST_DATABASE_URL names no database: {base}"),
        };
        Self::spawn_with(backend, move |config| {
            config.database_url = url.into();
            tweak(config)
        })
        .await
    }

    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut roost::Config)) -> TestApp {
        let dir = std::env::temp_dir().join(random_name("roost-test-"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let database_url = match backend {
            Backend::Sqlite => String::new(),
            Backend::Postgres => {
                // The suite's servers are nodes of one catalog: they share its identity key (a node
                // with another refuses to start), and so does the CLI run in their data folders.
                std::fs::write(dir.join("identity-key"), SUITE_IDENTITY_KEY).expect("identity key");
                postgres_url()
            }
        };
        let mut config = roost::Config {
            listen: "127.0.0.1:0".into(),
            data: dir.clone(),
            database_url: database_url.clone().into(),
            pg_max_connections: 4,
            admin_token: "test-admin-token".into(),
            tenant_domain: "roost.test".into(),
            trust_forwarded_proto: true,
            log: "warn".into(),
            scheduler_tick_ms: 0,
            portal_dir: dir.join("no-portal"),
            secure_cookies: false,
            session_idle_minutes: 60,
            ..roost::Config::defaults()
        };
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = roost::build(&config).await.expect("build");
        tokio::spawn(roost::serve(state.clone(), listener, std::future::pending()));
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        let mut app = TestApp {
            base: format!("http://{addr}"),
            tenant: String::new(),
            app_key: String::new(),
            master_key: String::new(),
            admin_token: config.admin_token.expose_secret().to_string(),
            data: dir.clone(),
            database_url: config.database_url.expose_secret().to_string(),
            backend,
            state,
            client,
            _dir: TempDir(dir),
        };
        let t = app.new_tenant().await;
        app.tenant = t["name"].as_str().unwrap_or_default().to_string();
        app.app_key = t["application_key"].as_str().unwrap_or_default().to_string();
        app.master_key = t["master_key"].as_str().unwrap_or_default().to_string();
        app
    }

    /// Creates another tenant through /manage/v1.
    pub async fn new_tenant(&self) -> Value {
        let r = self.manage(Method::POST, "/tenants", Some(json!({ "name": random_name("t") }))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.json()
    }

    pub async fn manage(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let mut rb = self.client.request(method, format!("{}/manage/v1{path}", self.base)).bearer_auth(&self.admin_token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        send(rb).await
    }

    /// Creates a table with `permissions` like `{"read":"public"}` (unspecified: application).
    pub async fn create_table(&self, name: &str, spec: Value) -> Value {
        let mut body = json!({ "name": name });
        if let (Some(b), Some(s)) = (body.as_object_mut(), spec.as_object()) {
            for (k, v) in s {
                b.insert(k.clone(), v.clone());
            }
        }
        let r = self.manage(Method::POST, &format!("/tenants/{}/tables", self.tenant), Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.json()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/t/{}{path}", self.base, self.tenant)
    }

    /// A raw request to a tenant path with the given headers.
    pub async fn request(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Resp {
        let mut rb = self.client.request(method, self.url(path));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.body(b.to_string());
        }
        send(rb).await
    }

    /// A request with the application key and a JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let mut rb = self.client.request(method, self.url(path)).header("X-ZUMO-APPLICATION", &self.app_key);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        send(rb).await
    }

    pub async fn insert(&self, table: &str, item: Value) -> Resp {
        self.call(Method::POST, &format!("/tables/{table}"), Some(item)).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }

    /// GET returning a JSON array of rows, asserting 200.
    pub async fn rows(&self, path: &str) -> Vec<Value> {
        let r = self.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        r.json().as_array().cloned().unwrap_or_else(|| panic!("{path}: not an array: {}", r.text))
    }

    /// Runs the real `roost` binary against this app's data (the CLI path).
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        self.cli_with(args, &[])
    }

    /// [`TestApp::cli`] with more environment variables.
    pub fn cli_with(&self, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_roost"))
            .args(args)
            .envs(env.iter().copied())
            .env("ROOST_DATA", &self.data)
            .env("ROOST_DATABASE_URL", &self.database_url)
            .env("ROOST_LOG", "warn")
            .output()
            .expect("run roost");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    pub async fn seed(&self, table: &str, items: &[Value]) -> Vec<Value> {
        let mut out = Vec::new();
        for i in items {
            let r = self.insert(table, i.clone()).await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
            out.push(r.json());
        }
        out
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

pub async fn send(rb: reqwest::RequestBuilder) -> Resp {
    let r = rb.send().await.expect("request");
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    Resp { status, headers, text }
}

/// Ids of rows, in order.
pub fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter().map(|r| r["id"].as_str().map(str::to_string).unwrap_or_else(|| r["id"].to_string())).collect()
}

pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    k.sort();
    k
}

/// Declares each test once and runs it on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::TestApp::spawn($crate::helpers::Backend::Sqlite).await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::TestApp::spawn($crate::helpers::Backend::Postgres).await).await
                }
            )*
        }
    };
}

/// [`on_both_backends!`] for tests whose state lives in the shared catalog and must not meet other
/// tests' (the cluster-wide sign-in limit per client address): on PostgreSQL each gets a database of
/// its own ([`TestApp::spawn_alone`]).
#[macro_export]
macro_rules! on_both_backends_alone {
    ($($name:ident),* $(,)?) => {
        mod sqlite_alone {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::TestApp::spawn($crate::helpers::Backend::Sqlite).await).await
                }
            )*
        }
        mod postgres_alone {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::TestApp::spawn_alone($crate::helpers::Backend::Postgres, |_| {}).await).await
                }
            )*
        }
    };
}

impl TestApp {
    /// Stores a script through /manage/v1 (`kind`: table, api, job, shared, extension).
    pub async fn put_script(&self, kind: &str, name: &str, body: &str, extra: Value) -> Resp {
        let mut b = json!({ "body": body });
        if let (Some(o), Some(e)) = (b.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                o.insert(k.clone(), v.clone());
            }
        }
        self.manage(Method::PUT, &format!("/tenants/{}/scripts/{kind}/{name}", self.tenant), Some(b)).await
    }

    /// Stores a script, asserting success.
    pub async fn script(&self, kind: &str, name: &str, body: &str) {
        let r = self.put_script(kind, name, body, json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }

    /// The tenant's script log lines.
    pub async fn logs(&self) -> Vec<Value> {
        let r = self.manage(Method::GET, &format!("/tenants/{}/logs?limit=1000", self.tenant), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.json().as_array().cloned().unwrap_or_default()
    }

    /// Waits (up to 5 s) for a log line containing `needle`, and returns it.
    pub async fn wait_for_log(&self, needle: &str) -> Value {
        for _ in 0..100 {
            if let Some(l) = self.logs().await.into_iter().find(|l| l["message"].as_str().is_some_and(|m| m.contains(needle))) {
                return l;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no log line containing {needle:?}; logs: {:?}", self.logs().await)
    }
}

/// A server process killed when the test ends, also when it fails.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
