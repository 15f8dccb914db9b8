//! Scheduled jobs, the startup extension, and import/export of a service folder (§6.1, §6.11,
//! §6.12, R14).

use crate::helpers::{ids, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

crate::on_both_backends!(
    a_job_runs_now_with_the_master_key_and_its_outcome_is_recorded,
    a_scheduled_job_runs_once_per_due_time_across_nodes,
    the_startup_extension_runs_once_per_version,
    importing_a_service_folder_gives_a_working_service_and_export_gives_it_back,
);

async fn job_runs(app: &TestApp, job: &str) -> Vec<Value> {
    let r = app.manage(Method::GET, &format!("/tenants/{}/jobs/{job}/runs", app.tenant), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json().as_array().cloned().unwrap_or_default()
}

async fn wait_for_finished_runs(app: &TestApp, job: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let runs = job_runs(app, job).await;
        if runs.iter().filter(|r| r["outcome"].is_string()).count() >= n {
            return runs;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("job {job} did not finish {n} runs: {:?}", job_runs(app, job).await)
}

async fn a_job_runs_now_with_the_master_key_and_its_outcome_is_recorded(app: TestApp) {
    app.create_table("pings", json!({})).await;
    app.script("job", "ping", "function ping() { tables.getTable('pings').insert({ at: new Date() }, { success: function () { console.log('pinged'); } }); }")
        .await;
    assert_eq!(app.call(Method::POST, "/jobs/ping", None).await.status, StatusCode::UNAUTHORIZED);
    let r = app.request(Method::POST, "/jobs/ping", &[("X-ZUMO-MASTER", &app.master_key)], None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.request(Method::POST, "/jobs/nosuch", &[("X-ZUMO-MASTER", &app.master_key)], None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.request(Method::GET, "/jobs/ping", &[("X-ZUMO-MASTER", &app.master_key)], None).await.status, StatusCode::METHOD_NOT_ALLOWED);
    let runs = wait_for_finished_runs(&app, "ping", 1).await;
    assert_eq!(runs[0]["outcome"], "succeeded");
    assert!(runs[0]["duration_ms"].as_i64().is_some());
    app.wait_for_log("pinged").await;
    assert_eq!(app.rows("/tables/pings").await.len(), 1);
    // A failing job records why.
    app.script("job", "ping", "function ping() { throw new Error('job broke'); }").await;
    app.request(Method::POST, "/jobs/ping", &[("X-ZUMO-MASTER", &app.master_key)], None).await;
    let runs = wait_for_finished_runs(&app, "ping", 2).await;
    assert!(runs[0]["outcome"].as_str().unwrap().starts_with("failed: Error: job broke"), "{runs:?}");
    app.wait_for_log("Error in script '/scheduler/ping.js'. Error: job broke").await;
}

async fn a_scheduled_job_runs_once_per_due_time_across_nodes(app: TestApp) {
    app.create_table("ticks", json!({})).await;
    let start = chrono::Utc::now() - chrono::Duration::seconds(90);
    let schedule = json!({"interval": 1, "unit": "minute", "start": roost_odata::format_datetime(&start), "enabled": true});
    let r = app.put_script("job", "tick", "function tick() { tables.getTable('ticks').insert({ n: 1 }); }", json!({"schedule": schedule})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["schedule"]["start"], roost_odata::format_datetime(&start));
    let now = chrono::Utc::now();
    // Two passes at once (on PostgreSQL, from two nodes sharing the catalog).
    let second = if app.backend == crate::helpers::Backend::Postgres { Some(TestApp::spawn(app.backend).await) } else { None };
    let other_state = second.as_ref().map(|s| s.state.clone()).unwrap_or_else(|| app.state.clone());
    let (a, b) = tokio::join!(roost::scheduler::run_once(&app.state, now), roost::scheduler::run_once(&other_state, now));
    a.unwrap();
    b.unwrap();
    roost::scheduler::run_once(&app.state, now).await.unwrap();
    let runs = wait_for_finished_runs(&app, "tick", 1).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["due"], roost_odata::format_datetime(&(start + chrono::Duration::minutes(1))));
    assert_eq!(app.rows("/tables/ticks").await.len(), 1);
    // The next due time runs again; a disabled schedule does not.
    roost::scheduler::run_once(&app.state, now + chrono::Duration::minutes(1)).await.unwrap();
    assert_eq!(wait_for_finished_runs(&app, "tick", 2).await.len(), 2);
    let off = json!({"interval": 1, "unit": "minute", "start": roost_odata::format_datetime(&start), "enabled": false});
    app.put_script("job", "tick", "function tick() { tables.getTable('ticks').insert({ n: 1 }); }", json!({"schedule": off})).await;
    roost::scheduler::run_once(&app.state, now + chrono::Duration::minutes(2)).await.unwrap();
    assert_eq!(job_runs(&app, "tick").await.len(), 2);
    let r = app.put_script("job", "tick", "function tick() {}", json!({"schedule": {"interval": 0, "unit": "hour", "enabled": true}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

async fn the_startup_extension_runs_once_per_version(app: TestApp) {
    app.create_table("boot", json!({})).await;
    let script = "exports.startup = function (context, done) { context.tables.getTable('boot').insert({ v: 1 }, { success: function () { console.log('booted'); done(); } }); };";
    app.script("extension", "startup", script).await;
    // The next request loads the tenant and runs it first; later requests do not run it again.
    assert_eq!(app.rows("/tables/boot").await.len(), 1);
    assert_eq!(app.rows("/tables/boot").await.len(), 1);
    app.wait_for_log("booted").await;
    // A script that never calls done holds requests for 5 s at most, and says so.
    app.script("extension", "startup", "exports.startup = function (context, done) { };").await;
    let t = std::time::Instant::now();
    assert_eq!(app.rows("/tables/boot").await.len(), 1);
    assert!(t.elapsed() >= std::time::Duration::from_secs(5) && t.elapsed() < std::time::Duration::from_secs(7), "{:?}", t.elapsed());
    app.wait_for_log("'startup' of 'startup.js' failed to call 'done' method with in 5000 ms").await;
}

async fn importing_a_service_folder_gives_a_working_service_and_export_gives_it_back(app: TestApp) {
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/service");
    let name = crate::helpers::random_name("imp");
    let (ok, out, err) = app.cli(&["tenant", "import", &name, folder, "--json"]);
    assert!(ok, "{err}");
    let t: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(t["name"], name.to_lowercase());
    let key = t["application_key"].as_str().unwrap().to_string();
    let master = t["master_key"].as_str().unwrap().to_string();
    let base = format!("{}/t/{}", app.base, t["name"].as_str().unwrap());
    let call = |method: Method, path: &str, hdrs: Vec<(&str, String)>, body: Option<Value>| {
        let mut rb = app.client().request(method, format!("{base}{path}"));
        for (k, v) in hdrs {
            rb = rb.header(k, v);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        crate::helpers::send(rb)
    };
    // The startup extension seeded the welcome item (once).
    let rows = call(Method::GET, "/tables/todoitem", vec![], None).await.json();
    assert_eq!(ids(rows.as_array().unwrap()), vec!["welcome"]);
    assert_eq!(rows[0]["label"], "[ ] Welcome to Roost");
    // Insert: permission from TodoItem.json, validation and tidying from the shared module, audit row.
    assert_eq!(call(Method::POST, "/tables/todoitem", vec![], Some(json!({"text": "x"}))).await.status, StatusCode::UNAUTHORIZED);
    let r = call(Method::POST, "/tables/todoitem", vec![("X-ZUMO-APPLICATION", key.clone())], Some(json!({"text": "  "}))).await;
    assert_eq!((r.status, r.json()), (StatusCode::BAD_REQUEST, json!({"error": "An item needs some text."})));
    let r = call(Method::POST, "/tables/todoitem", vec![("X-ZUMO-APPLICATION", key.clone())], Some(json!({"id": "a", "text": "  buy   milk "}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!((r.json()["text"].clone(), r.json()["owner"].clone()), (json!("buy milk"), json!("anonymous")));
    let audit = call(Method::GET, "/tables/audit", vec![("X-ZUMO-MASTER", master.clone())], None).await.json();
    assert_eq!(audit, json!([{"id": 1, "action": "insert", "itemId": "a"}]));
    // Update (tidied), read with labels, and hidden rows only for admins.
    let r =
        call(Method::PATCH, "/tables/todoitem/a", vec![("X-ZUMO-APPLICATION", key.clone())], Some(json!({"text": " milk  and eggs", "complete": true}))).await;
    assert_eq!((r.status, r.json()["text"].clone()), (StatusCode::OK, json!("milk and eggs")));
    call(Method::POST, "/tables/todoitem", vec![("X-ZUMO-APPLICATION", key.clone())], Some(json!({"id": "h", "text": "secret", "hidden": true}))).await;
    let public = call(Method::GET, "/tables/todoitem?$orderby=id", vec![], None).await.json();
    assert_eq!(ids(public.as_array().unwrap()), vec!["a", "welcome"]);
    assert_eq!(public[0]["label"], "[x] milk and eggs");
    let admin = call(Method::GET, "/tables/todoitem?$orderby=id", vec![("X-ZUMO-MASTER", master.clone())], None).await.json();
    assert_eq!(ids(admin.as_array().unwrap()), vec!["a", "h", "welcome"]);
    // Delete: admin only, and locked items are refused by the script.
    let r = call(Method::DELETE, "/tables/todoitem/welcome", vec![("X-ZUMO-MASTER", master.clone())], None).await;
    assert_eq!((r.status, r.json()), (StatusCode::FORBIDDEN, json!({"error": "This item is locked."})));
    assert_eq!(call(Method::DELETE, "/tables/todoitem/h", vec![("X-ZUMO-MASTER", master.clone())], None).await.status, StatusCode::NO_CONTENT);
    // The API: verb export, register with path parameters, per-route permissions.
    let r = call(Method::GET, "/api/stats", vec![], None).await;
    assert_eq!(r.json(), json!({"total": 2, "by": "anonymous"}), "{}", r.text);
    let r = call(Method::GET, "/api/stats/text/milk%20and%20eggs", vec![], None).await;
    assert_eq!(r.json()["id"], "a");
    assert_eq!(call(Method::GET, "/api/stats/text/nothing", vec![], None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(call(Method::POST, "/api/stats/complete/welcome", vec![("X-ZUMO-APPLICATION", key.clone())], None).await.status, StatusCode::UNAUTHORIZED);
    let token = app.cli(&["tenant", "token", &name, "--user-id", "Custom:1"]).1.trim().to_string();
    let r = call(Method::POST, "/api/stats/complete/welcome", vec![("X-ZUMO-AUTH", token)], None).await;
    assert_eq!((r.status, r.json()["complete"].clone()), (StatusCode::OK, json!(true)), "{}", r.text);
    // The job, run now: completed items are removed.
    assert_eq!(call(Method::POST, "/jobs/cleanup", vec![("X-ZUMO-MASTER", master.clone())], None).await.status, StatusCode::OK);
    for _ in 0..100 {
        let left = call(Method::GET, "/tables/todoitem", vec![], None).await.json();
        if left.as_array().is_some_and(|a| a.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(call(Method::GET, "/tables/todoitem", vec![], None).await.json(), json!([]));
    // Importing again keeps tables and rows, and does not run the same startup script twice.
    call(Method::POST, "/tables/todoitem", vec![("X-ZUMO-APPLICATION", key.clone())], Some(json!({"id": "kept", "text": "kept"}))).await;
    let (ok, _, err) = app.cli(&["tenant", "import", &name, folder]);
    assert!(ok, "{err}");
    let rows = call(Method::GET, "/tables/todoitem", vec![], None).await.json();
    assert_eq!(ids(rows.as_array().unwrap()), vec!["kept"]);
    // Export gives the same folder back (scripts byte for byte, permissions as files).
    let out = app.data.join("export");
    let (ok, _, err) = app.cli(&["tenant", "export", &name, out.to_str().unwrap()]);
    assert!(ok, "{err}");
    for f in ["table/todoitem.insert.js", "table/todoitem.read.js", "api/stats.js", "scheduler/cleanup.js", "shared/validation.js", "extensions/startup.js"] {
        let a = std::fs::read_to_string(format!("{folder}/{f}")).unwrap();
        let b = std::fs::read_to_string(out.join(f.replace("todoitem", "TodoItem"))).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(a, b, "{f}");
    }
    let perms: Value = serde_json::from_str(&std::fs::read_to_string(out.join("table/TodoItem.json")).unwrap()).unwrap();
    assert_eq!(perms["routes"]["/"]["delete"]["permission"], "admin");
    let audit: Value = serde_json::from_str(&std::fs::read_to_string(out.join("table/audit.json")).unwrap()).unwrap();
    assert_eq!(audit["roost"]["idKind"], "integer");
    let api_perms: Value = serde_json::from_str(&std::fs::read_to_string(out.join("api/stats.json")).unwrap()).unwrap();
    assert_eq!(api_perms["routes"]["/complete/:id"]["post"]["permission"], "user");
    // A folder with a broken script changes nothing.
    let broken = app.data.join("broken");
    std::fs::create_dir_all(broken.join("table")).unwrap();
    std::fs::write(broken.join("table/other.insert.js"), "function insert(item, user, request) { request.execute( }").unwrap();
    let (ok, _, err) = app.cli(&["tenant", "import", "brandnew", broken.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("table/other.insert.js") && err.contains("line 1"), "{err}");
    assert_eq!(app.manage(Method::GET, "/tenants/brandnew", None).await.status, StatusCode::NOT_FOUND);
}
