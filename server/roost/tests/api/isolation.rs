//! Tenant isolation and hardening (issue 11): each test performs an attack that once succeeded and
//! fails if it succeeds again. The browser half of the portal takeover is `e2e/tests/isolation.test.mjs`.

use crate::helpers::{random_name, send, Backend, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

crate::on_both_backends_alone!(padded_e_mails_share_the_sign_in_limit);

crate::on_both_backends!(
    tenant_responses_are_sandboxed_and_cannot_set_the_session_cookie,
    scripts_never_see_platform_credentials,
    only_registry_npm_dependencies_are_accepted,
    owners_cannot_raise_limits_or_open_outbound_access,
    heavy_queries_never_stall_other_tenants,
    natives_are_out_of_reach_and_log_caps_hold_in_rust,
    host_side_memory_counts_against_the_limit,
    failing_scripts_never_wedge_or_crash_the_server,
    a_client_filter_cannot_widen_a_composed_script_filter,
    too_many_new_columns_are_refused_before_any_ddl,
    csrf_is_checked_on_the_effective_method,
    outbound_requests_to_embedded_ipv4_loopback_are_refused,
    reserved_table_names_answer_400,
);

/// A public custom API.
async fn public_api(app: &TestApp, name: &str, body: &str) {
    public_api_on(app, &app.tenant, name, body).await;
}

async fn tenant_responses_are_sandboxed_and_cannot_set_the_session_cookie(app: TestApp) {
    // A tenant page that would read the CSRF token and create an admin, if it ran on the portal's origin.
    public_api(
        &app,
        "page",
        r#"exports.get = function (req, res) {
            res.set('Content-Type', 'text/html');
            res.set('Content-Security-Policy', "script-src *");
            res.set('Set-Cookie', 'roost_session=planted; Path=/manage/v1');
            res.set('X-Content-Type-Options', 'sniff-away');
            res.send(200, "<script>fetch('/manage/v1/session').then(r => r.json()).then(s => fetch('/manage/v1/accounts', {method: 'POST', headers: {'X-CSRF-Token': s.csrf_token}}))</script>");
        };"#,
    )
    .await;
    let r = app.request(Method::GET, "/api/page", &[], None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("<script>"), "the page still renders as the tenant wrote it");
    let policies: Vec<String> = r.headers.get_all("content-security-policy").iter().filter_map(|v| v.to_str().ok().map(str::to_string)).collect();
    assert!(policies.iter().any(|p| p == "sandbox allow-scripts allow-forms allow-popups"), "{policies:?}");
    assert_eq!(r.header("x-content-type-options").as_deref(), Some("nosniff"));
    assert!(r.headers.get_all("set-cookie").iter().all(|c| !c.to_str().unwrap_or("").starts_with("roost_session")), "{:?}", r.headers);
    // Every tenant answer carries the policy, errors and table reads included.
    for path in ["/tables/none", "/status", "/api/nothing-here"] {
        let r = app.request(Method::GET, path, &[], None).await;
        assert_eq!(r.header("content-security-policy").as_deref(), Some("sandbox allow-scripts allow-forms allow-popups"), "{path}");
        assert_eq!(r.header("x-content-type-options").as_deref(), Some("nosniff"), "{path}");
    }
    // Roost's own bridge page is not sandboxed (it must reach the tenant), has its own policy, and
    // forwards only below this tenant's base path (never to /manage/v1).
    let r = app.request(Method::GET, "/crossdomain/bridge?origin=http%3A%2F%2Flocalhost%3A8000", &[], None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let policies: Vec<String> = r.headers.get_all("content-security-policy").iter().filter_map(|v| v.to_str().ok().map(str::to_string)).collect();
    assert_eq!(policies.len(), 1, "{policies:?}");
    assert!(policies[0].starts_with("default-src 'none'") && policies[0].contains("connect-src 'self'"), "{policies:?}");
    assert!(r.text.contains(&format!("var tenantBase = \"/t/{}/\";", app.tenant)), "{}", r.text);
    assert!(r.text.contains("indexOf(tenantBase.toLowerCase()) !== 0"), "{}", r.text);
    // The platform API never answers cross-origin readers.
    let r = send(app.client().get(format!("{}/manage/v1/session", app.base)).header("origin", "null").bearer_auth(&app.admin_token)).await;
    assert!(r.header("access-control-allow-origin").is_none(), "{:?}", r.headers);

    // With `manage_listen` the portal and /manage/v1 have an origin of their own.
    let dir = std::env::temp_dir().join(random_name("roost-apart-"));
    let mut config = roost::Config {
        data: dir.clone(),
        admin_token: "apart-admin".into(),
        manage_listen: "127.0.0.1:0".into(),
        log: "warn".into(),
        ..roost::Config::defaults()
    };
    if app.backend == Backend::Postgres {
        config.database_url = app.database_url.clone().into();
        config.pg_max_connections = 4;
        config.identity_key = crate::helpers::SUITE_IDENTITY_KEY.into();
    }
    config.scheduler_tick_ms = 0;
    let state = roost::build(&config).await.expect("build");
    let tenants = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let manage = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (t_addr, m_addr) = (tenants.local_addr().unwrap(), manage.local_addr().unwrap());
    tokio::spawn(roost::serve_with(state, tenants, Some(manage), std::future::pending()));
    let c = app.client();
    assert_eq!(send(c.get(format!("http://{t_addr}/manage/v1/tenants")).bearer_auth("apart-admin")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(send(c.get(format!("http://{t_addr}/portal/"))).await.status, StatusCode::NOT_FOUND);
    let r = send(c.post(format!("http://{m_addr}/manage/v1/tenants")).bearer_auth("apart-admin").json(&json!({"name": random_name("apart")}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let name = r.json()["name"].as_str().unwrap().to_string();
    assert_eq!(send(c.get(format!("http://{t_addr}/t/{name}/status"))).await.status, StatusCode::OK, "tenants on the main listener");
    assert_eq!(send(c.get(format!("http://{m_addr}/t/{name}/status"))).await.status, StatusCode::NOT_FOUND, "no tenant on the platform's origin");
    let _ = std::fs::remove_dir_all(dir);
}

async fn scripts_never_see_platform_credentials(app: TestApp) {
    public_api(&app, "echo", r#"exports.get = function (req, res) { console.log('headers %j', req.headers); res.send(200, req.headers); };"#).await;
    let (email, pw) = app.account("admin").await;
    let s = app.sign_in(&email, &pw).await;
    let r = app.as_session(&s, Method::POST, "/account/tokens", Some(json!({"name": "cli"})), true).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let pat = r.json()["token"].as_str().unwrap().to_string();
    let cookie = format!("theme=dark; {}; lang=en", s.cookie);
    for auth in [format!("Bearer {}", app.admin_token), format!("Bearer {pat}"), format!("bearer   {pat}")] {
        let r = app.request(Method::GET, "/api/echo", &[("cookie", &cookie), ("authorization", &auth), ("x-csrf-token", &s.csrf)], None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let seen = r.json();
        let text = seen.to_string();
        assert!(!text.contains("roost_session") && !text.contains(&pat) && !text.contains(&app.admin_token) && !text.contains(&s.csrf), "{text}");
        assert_eq!(seen["cookie"], "theme=dark; lang=en", "the tenant's own cookies stay");
        assert!(seen.get("authorization").is_none());
    }
    // An Authorization of the app's own is the app's business.
    let r = app.request(Method::GET, "/api/echo", &[("authorization", "Bearer app-token-123")], None).await;
    assert_eq!(r.json()["authorization"], "Bearer app-token-123");
    // Nor did the logs get them (lines are written in the background).
    app.wait_for_log("theme=dark").await;
    let logs = serde_json::to_string(&app.logs().await).unwrap();
    assert!(logs.contains("theme=dark") && !logs.contains("roost_session") && !logs.contains(&pat), "{logs}");
    // The session itself still works where it belongs.
    assert_eq!(app.as_session(&s, Method::GET, "/accounts", None, false).await.status, StatusCode::OK);
}

async fn only_registry_npm_dependencies_are_accepted(app: TestApp) {
    // A receiver that records whether npm (or anything) fetched from it.
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let receiver = axum::Router::new().fallback(move || {
        h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { "x" }
    });
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let data = app.data.display().to_string();
    let specs = [
        "file:/etc".to_string(),
        "file:../..".to_string(),
        format!("file:{data}"),
        "link:../../".into(),
        "git+https://github.com/jashkenas/underscore.git".into(),
        "github:jashkenas/underscore".into(),
        "jashkenas/underscore".into(),
        format!("http://127.0.0.1:{port}/x.tgz"),
        "workspace:*".into(),
        "npm:underscore@file:/etc".into(),
    ];
    for spec in &specs {
        let r = app.manage(Method::PUT, &format!("/tenants/{}/packages", app.tenant), Some(json!({"dependencies": {"evil": spec}}))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{spec}: {}", r.text);
        assert!(r.error().contains("'evil'") && r.error().contains("not from the npm registry"), "{spec}: {}", r.text);
    }
    // An import folder declaring one is refused the same way, before anything changes.
    let dir = app.data.join("svc");
    std::fs::create_dir_all(dir.join("api")).unwrap();
    std::fs::write(dir.join("package.json"), json!({"dependencies": {"etc": "file:/etc"}}).to_string()).unwrap();
    std::fs::write(dir.join("api/x.js"), "exports.get = function (req, res) { res.send(200, require('etc/hostname')); };").unwrap();
    let (ok, _, err) = app.cli(&["tenant", "import", &app.tenant, dir.to_str().unwrap()]);
    assert!(!ok && err.contains("'etc'") && err.contains("not from the npm registry"), "{err}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0, "nothing fetched the internal URL");
    let r = app.manage(Method::GET, &format!("/tenants/{}/packages", app.tenant), None).await;
    assert!(!r.text.contains("evil") && !r.text.contains("/etc"), "{}", r.text);
    assert!(!app.data.join("packages").read_dir().into_iter().flatten().flatten().any(|e| e.path().join("node_modules/etc").exists()));
}

async fn owners_cannot_raise_limits_or_open_outbound_access(app: TestApp) {
    let (email, pw) = app.account("owner").await;
    let owner = app.sign_in(&email, &pw).await;
    let r = app.as_session(&owner, Method::POST, "/tenants", Some(json!({"name": random_name("own")})), true).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let t = r.json()["name"].as_str().unwrap().to_string();
    let settings = format!("/tenants/{t}/settings");
    for (key, value) in [
        ("script_cpu_ms", 600_000),
        ("script_memory_mb", 4096),
        ("request_timeout_ms", 600_000),
        ("script_max_concurrent", 10_000),
        ("max_body_kb", 102_400),
        ("packages_max_mb", 10_240),
    ] {
        let r = app.as_session(&owner, Method::PATCH, &settings, Some(json!({ key: value })), true).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{key}: {}", r.text);
        assert!(r.error().contains(key) && r.error().contains("maximum"), "{}", r.text);
    }
    let r = app.as_session(&owner, Method::PATCH, &settings, Some(json!({"outbound_allow": ["127.0.0.1"]})), true).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r =
        app.as_session(&owner, Method::POST, "/tenants", Some(json!({"name": random_name("own"), "settings": {"outbound_allow": ["10.0.0.1"]}})), true).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    // Lowering is the owner's right; raising back up to the ceiling too.
    let r = app.as_session(&owner, Method::PATCH, &settings, Some(json!({"script_cpu_ms": 200, "request_timeout_ms": 5000})), true).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.as_session(&owner, Method::PATCH, &settings, Some(json!({"script_cpu_ms": 5000})), true).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Nothing of the refused changes stuck.
    let s = app.manage(Method::GET, &format!("/tenants/{t}"), None).await.json()["settings"].clone();
    assert_eq!((s["script_memory_mb"].as_u64(), s["outbound_allow"].clone()), (Some(64), json!([])));
    // The admin may open outbound access, but not pass the ceilings either.
    assert_eq!(app.manage(Method::PATCH, &settings, Some(json!({"outbound_allow": ["127.0.0.1"]}))).await.status, StatusCode::OK);
    assert_eq!(app.manage(Method::PATCH, &settings, Some(json!({"script_memory_mb": 4096}))).await.status, StatusCode::BAD_REQUEST);
    // And an owner may keep the list the admin set while changing something else.
    let r = app.as_session(&owner, Method::PATCH, &settings, Some(json!({"outbound_allow": ["127.0.0.1"], "script_cpu_ms": 300})), true).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // A ceiling lowered in configuration binds a stored value above it: a tenant allowed 5000 ms of
    // CPU on a server whose ceiling is 300 ms is stopped at 300.
    let strict = TestApp::spawn_with(app.backend, |c| c.tenant_max.script_cpu_ms = 300).await;
    public_api(&strict, "spin", "exports.get = function (req, res) { var t = Date.now(); while (Date.now() - t < 3000) {} res.send(200, {}); };").await;
    let started = Instant::now();
    let r = strict.call(Method::GET, "/api/spin", None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text);
    assert!(started.elapsed() < Duration::from_millis(2500), "{:?}", started.elapsed());
}

async fn heavy_queries_never_stall_other_tenants(app: TestApp) {
    let heavy = app.new_tenant().await;
    let h = heavy["name"].as_str().unwrap().to_string();
    let r =
        app.manage(Method::POST, &format!("/tenants/{h}/tables"), Some(json!({"name": "big", "permissions": {"read": "public", "insert": "public"}}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(app.manage(Method::PATCH, &format!("/tenants/{h}/settings"), Some(json!({"request_timeout_ms": 1500}))).await.status, StatusCode::OK);
    let text = "y".repeat(200 * 1024);
    let url = |p: &str| format!("{}/t/{h}{p}", app.base);
    for _ in 0..60 {
        let r = send(app.client().post(url("/tables/big")).json(&json!({"text": text}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    app.create_table("todo", json!({"permissions": {"read": "public"}})).await;
    app.insert("todo", json!({"id": "a", "n": 1})).await;
    // The attack as it was: 200 replace() terms, refused by the complexity limits.
    let attack: Vec<String> = (0..200).map(|_| format!("length(replace(text,'y','{}')) gt 0", "z".repeat(40))).collect();
    let q = percent_encoding::utf8_percent_encode(&attack.join(" or "), percent_encoding::NON_ALPHANUMERIC).to_string();
    let r = send(app.client().get(url(&format!("/tables/big?$filter={q}")))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.error().contains("too complex"), "{}", r.text);
    // Within the limits, still heavy: each row's 200 KB grows 40 times, sixteen times over.
    let within: Vec<String> = (0..16).map(|i| format!("length(replace(text,'y','{}')) eq {i}", "z".repeat(40))).collect();
    let q = percent_encoding::utf8_percent_encode(&within.join(" or "), percent_encoding::NON_ALPHANUMERIC).to_string();
    let heavy_url = url(&format!("/tables/big?$filter={q}"));
    public_api_on(&app, &h, "cross", "exports.get = function (req, res) { req.service.mssql.query('select count(*) as n from big a cross join big b cross join big c cross join big d cross join big e', { success: function (r) { res.send(200, r); } }); };").await;
    let started = Instant::now();
    let mut attacks = Vec::new();
    for u in [heavy_url.clone(), heavy_url.clone(), url("/api/cross"), url("/api/cross")] {
        let c = app.client().clone();
        attacks.push(tokio::spawn(async move {
            let t = Instant::now();
            (send(c.get(u)).await.status, t.elapsed())
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let slept = started.elapsed();
    let mut waits = Vec::new();
    let reads = Instant::now();
    for _ in 0..5 {
        let t = Instant::now();
        let r = app.get("/tables/todo/a").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        waits.push(t.elapsed());
        let t = Instant::now();
        assert_eq!(app.manage(Method::GET, &format!("/tenants/{}/tables", app.tenant), None).await.status, StatusCode::OK);
        waits.push(t.elapsed());
    }
    waits.sort();
    assert!(waits[waits.len() / 2] < Duration::from_millis(100), "another tenant and /manage/v1 waited {waits:?}");
    assert!(
        attacks.iter().all(|a| !a.is_finished()) || started.elapsed() < Duration::from_millis(1500),
        "the reads ran while the attacks did: slept until {slept:?}, reads took {:?} {waits:?}",
        reads.elapsed()
    );
    for a in attacks {
        let (status, took) = a.await.unwrap();
        // Each attack ends at its tenant's deadline (1.5 s) with the timeout answer, not minutes later.
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "took {took:?}");
        assert!(took < Duration::from_millis(4000), "{took:?}");
    }
}

/// A public custom API on another tenant.
async fn public_api_on(app: &TestApp, tenant: &str, name: &str, body: &str) {
    let r = app
        .manage(
            Method::PUT,
            &format!("/tenants/{tenant}/scripts/api/{name}"),
            Some(json!({"body": body, "permissions": {"routes": {"*": {"permission": "public"}}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn natives_are_out_of_reach_and_log_caps_hold_in_rust(app: TestApp) {
    public_api(
        &app,
        "probe",
        r#"exports.get = function (req, res) {
            var out = { lib: typeof __roost_lib, natives: typeof __roost, found: [] };
            // Nothing reachable from the global object is an object of natives.
            Object.getOwnPropertyNames(globalThis).forEach(function (k) {
                var v; try { v = globalThis[k]; } catch (e) { return; }
                if (v && (typeof v === 'object' || typeof v === 'function') && typeof v.timer === 'function' && typeof v.log === 'function') out.found.push(k);
            });
            var mine = function () {};
            try { globalThis.__roost_dispatch = mine; } catch (e) {}
            try { delete globalThis.__roost_enter; } catch (e) {}
            out.replaced = globalThis.__roost_dispatch === mine || typeof __roost_enter !== 'function';
            console.log('x'.repeat(1024 * 1024));
            res.send(200, out);
        };"#,
    )
    .await;
    let r = app.request(Method::GET, "/api/probe", &[], None).await;
    assert_eq!(r.json(), json!({"lib": "undefined", "natives": "undefined", "found": [], "replaced": false}), "{}", r.text);
    let line = app.wait_for_log("xxxxxxxx").await;
    let n = line["message"].as_str().unwrap().chars().count();
    assert!(n <= 10_000, "{n}");
    // Logs and monitor stay bounded in bytes however much was logged.
    app.manage(Method::PATCH, &format!("/tenants/{}/settings", app.tenant), Some(json!({"script_cpu_ms": 5000}))).await;
    public_api(
        &app,
        "flood",
        "exports.get = function (req, res) { var y = 'y'.repeat(12000); for (var i = 0; i < 1100; i++) console.log(y); res.send(200, {}); };",
    )
    .await;
    assert_eq!(app.request(Method::GET, "/api/flood", &[], None).await.status, StatusCode::OK);
    for _ in 0..100 {
        if app.logs().await.len() >= 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = app.manage(Method::GET, &format!("/tenants/{}/logs?limit=1000&order=desc", app.tenant), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.len() <= 3 * 1024 * 1024, "{} bytes", r.text.len());
    assert!(r.json().as_array().unwrap().len() >= 100);
    let r = app.manage(Method::GET, &format!("/tenants/{}/monitor", app.tenant), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.len() < 4096, "{}", r.text);
}

/// The server's resident memory (this test process hosts it), in MiB.
fn rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()).unwrap_or(0) / 1024
}

async fn host_side_memory_counts_against_the_limit(app: TestApp) {
    // CPU enough (a debug build's QuickJS is slow) that the memory limit is what stops them.
    app.manage(Method::PATCH, &format!("/tenants/{}/settings", app.tenant), Some(json!({"script_cpu_ms": 5000}))).await;
    public_api(
        &app,
        "calls",
        r#"exports.get = function (req, res) {
            var big = 'q'.repeat(4 * 1024 * 1024), done = 0;
            for (var i = 0; i < 300; i++) req.service.tables.getTable('none').where({ x: big }).read({ success: function () {}, error: function () { if (++done === 300) res.send(200, {}); } });
        };"#,
    )
    .await;
    public_api(
        &app,
        "timers",
        "exports.get = function (req, res) { for (var i = 0; i < 2000000; i++) setTimeout(function () {}, 60000); res.send(200, {}); };",
    )
    .await;
    let before = rss_mb();
    for path in ["/api/calls", "/api/timers"] {
        let r = app.request(Method::GET, path, &[], None).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{path}: {}", r.text);
    }
    let grown = rss_mb().saturating_sub(before);
    assert!(grown < 400, "the server grew by {grown} MiB");
    // Log lines are written in the background.
    let mut logs = String::new();
    for _ in 0..100 {
        logs = serde_json::to_string(&app.logs().await).unwrap();
        if logs.matches("memory limit").count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(logs.matches("memory limit").count() >= 2, "{logs}");
}

async fn failing_scripts_never_wedge_or_crash_the_server(app: TestApp) {
    app.manage(Method::PATCH, &format!("/tenants/{}/settings", app.tenant), Some(json!({"script_cpu_ms": 100, "script_memory_mb": 16}))).await;
    let kinds = [
        ("timers", "for (var i = 0; i < 2000000; i++) setTimeout(function () {}, 60000); res.send(200, {});"),
        ("heap", "var a = []; for (;;) a.push({ s: 'x'.repeat(1000) + a.length });"),
        ("string", "var s = 'x'; for (;;) s += s;"),
        ("cpu", "for (;;) {}"),
        ("stack", "(function f() { f(); })();"),
        ("throw", "throw new Error('boom');"),
        ("calls", "var big = 'q'.repeat(1024 * 1024); for (var i = 0; i < 100; i++) req.service.tables.getTable('none').read({ success: function () {}, error: function () {} }); res.send(200, big.length);"),
    ];
    for (name, body) in kinds {
        public_api(&app, name, &format!("exports.get = function (req, res) {{ {body} }};")).await;
    }
    public_api(&app, "ok", "exports.get = function (req, res) { res.send(200, { ok: 1 }); };").await;
    for (name, _) in kinds {
        for i in 0..20 {
            let r = app.request(Method::GET, &format!("/api/{name}"), &[], None).await;
            assert!(r.status.is_server_error() || r.status == StatusCode::OK, "{name} #{i}: {}", r.text);
            let ok = app.request(Method::GET, "/api/ok", &[], None).await;
            assert_eq!((ok.status, ok.json()), (StatusCode::OK, json!({"ok": 1})), "after {name} #{i}");
        }
    }
}

async fn a_client_filter_cannot_widen_a_composed_script_filter(app: TestApp) {
    app.create_table("notes", json!({"permissions": {"read": "user", "insert": "user"}})).await;
    app.script(
        "table",
        "notes.read",
        "function read(query, user, request) { query.where({ owner: user.userId }); query.setComponents(query.getComponents()); request.execute(); }",
    )
    .await;
    for (id, owner) in [("mine", "Custom:me"), ("theirs", "Custom:other")] {
        let r = app
            .request(Method::POST, "/tables/notes?noScript=true", &[("x-zumo-master", &app.master_key)], Some(&json!({"id": id, "owner": owner}).to_string()))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let (ok, token, err) = app.cli(&["tenant", "token", &app.tenant, "--user-id", "Custom:me"]);
    assert!(ok, "{err}");
    for filter in ["true%20or%20true", "owner%20ne%20'x'%20or%20true", "(true)%20or%20(1%20eq%201)"] {
        let r = app.request(Method::GET, &format!("/tables/notes?$filter={filter}"), &[("x-zumo-auth", token.trim())], None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(crate::helpers::ids(r.json().as_array().unwrap()), vec!["mine"], "{filter}");
    }
}

async fn padded_e_mails_share_the_sign_in_limit(app: TestApp) {
    let (email, pw) = app.account("owner").await;
    for variant in
        [format!(" {email}"), format!("{email} "), format!("\t{}", email.to_uppercase()), format!("  {email}  "), format!("{}\n", email.to_uppercase())]
    {
        let r = app.sign_in_raw(&variant, "wrong password!").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{variant:?}: {}", r.text);
    }
    let r = app.sign_in_raw(&format!("   {email}"), &pw).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    let r = app.sign_in_raw(&email, &pw).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
}

async fn too_many_new_columns_are_refused_before_any_ddl(app: TestApp) {
    app.create_table("wide", json!({"permissions": {"insert": "application", "read": "application"}})).await;
    let mut item = serde_json::Map::new();
    for i in 0..3000 {
        item.insert(format!("c{i}"), json!(i));
    }
    let r = app.insert("wide", Value::Object(item)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.error().contains("at most 1024"), "{}", r.text);
    let t = app.manage(Method::GET, &format!("/tenants/{}/tables/wide", app.tenant), None).await.json();
    let columns = t["columns"].as_array().map(Vec::len).unwrap_or(0);
    assert!(columns < 10, "no column was left behind: {columns}");
    // Later new members still work, up to the limit.
    let r = app.insert("wide", json!({"later": 1})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let mut item = serde_json::Map::new();
    for i in 0..900 {
        item.insert(format!("d{i}"), json!(i));
    }
    assert_eq!(app.insert("wide", Value::Object(item)).await.status, StatusCode::CREATED);
}

async fn csrf_is_checked_on_the_effective_method(app: TestApp) {
    app.create_table("rows", json!({})).await;
    app.insert("rows", json!({"id": "keep"})).await;
    let (email, pw) = app.account("admin").await;
    let s = app.sign_in(&email, &pw).await;
    let path = format!("{}/manage/v1/tenants/{}/tables/rows/rows/keep", app.base, app.tenant);
    let r = send(app.client().get(&path).header("cookie", &s.cookie).header("x-http-method-override", "DELETE")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = send(app.client().get(&path).header("cookie", &s.cookie).body(r#"{"_method":"DELETE"}"#)).await;
    assert_ne!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = send(app.client().get(&path).header("cookie", &s.cookie)).await;
    assert_eq!(r.status, StatusCode::OK, "the row is still there: {}", r.text);
}

async fn outbound_requests_to_embedded_ipv4_loopback_are_refused(app: TestApp) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().fallback(|| async { "reached" })).await });
    public_api(&app, "out", "exports.get = function (req, res) { require('request')(req.query.url, function (err, r, body) { res.send(200, { err: err ? err.message : null, body: body }); }); };").await;
    for host in [
        "[::127.0.0.1]",
        "[::ffff:127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "[2002:7f00:1::]",
        "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
        "[::ffff:0:7f00:1]",
        "[fec0::1]",
        "127.1",
        "0x7f000001",
        "localhost",
    ] {
        let u = percent_encoding::utf8_percent_encode(&format!("http://{host}:{port}/"), percent_encoding::NON_ALPHANUMERIC).to_string();
        let r = app.request(Method::GET, &format!("/api/out?url={u}"), &[], None).await;
        let j = r.json();
        assert!(j["err"].as_str().is_some_and(|e| e.starts_with("connect EACCES")), "{host}: {j}");
        assert!(j["body"].is_null(), "{host}: {j}");
    }
}

async fn reserved_table_names_answer_400(app: TestApp) {
    for name in ["sqlite_x", "SQLITE_master", "pg_x", "Pg_catalog", "__x"] {
        let r = app.manage(Method::POST, &format!("/tenants/{}/tables", app.tenant), Some(json!({"name": name}))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name}: {}", r.text);
        assert!(r.error().contains("reserved"), "{name}: {}", r.text);
    }
    // And the require_https check is not satisfied by a client's own x-arr-ssl without a trusted proxy.
    let plain = TestApp::spawn_with(app.backend, |c| c.trust_forwarded_proto = false).await;
    plain.manage(Method::PATCH, &format!("/tenants/{}/settings", plain.tenant), Some(json!({"require_https": true}))).await;
    for h in [("x-arr-ssl", "1"), ("x-forwarded-proto", "https")] {
        assert_eq!(plain.request(Method::GET, "/status", &[h], None).await.status, StatusCode::FORBIDDEN, "{h:?}");
    }
}
