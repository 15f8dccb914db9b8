//! Monitoring: metrics captured for each kind of request, scripts and pushes; roll-ups into the
//! catalog (two server processes on one PostgreSQL add up exactly); retention; the Prometheus
//! output parsed and linted by promtool; the live log tail; tiers' rates and quotas (429 with
//! Retry-After, 403 with the protocol's body, both logged and counted, and the rate's reset).

use crate::helpers::{random_name, Backend, TempDir, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

crate::on_both_backends!(
    metrics_are_captured_for_each_kind_and_rolled_up,
    the_live_tail_receives_a_line_a_script_writes,
    retention_prunes_old_metrics_and_logs_past_their_bytes,
);

async fn flush(app: &TestApp) {
    roost::monitor::rollup::flush_now(&app.state).await.expect("roll-up");
}

async fn dashboard(app: &TestApp, range: &str) -> Value {
    let r = app.manage(Method::GET, &format!("/tenants/{}/dashboard?range={range}", app.tenant), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json()
}

fn kind<'a>(d: &'a Value, k: &str) -> &'a Value {
    d["by_kind"].as_array().and_then(|a| a.iter().find(|x| x["kind"] == k)).unwrap_or_else(|| panic!("no kind {k}: {d}"))
}

fn named(list: &Value, name: &str) -> u64 {
    list.as_array().and_then(|a| a.iter().find(|x| x[0] == name)).and_then(|x| x[1].as_u64()).unwrap_or(0)
}

async fn metrics_are_captured_for_each_kind_and_rolled_up(app: TestApp) {
    app.create_table("todo", json!({"permissions": {"read": "public", "insert": "public"}})).await;
    // Tables: 3 inserts from two installations, 2 reads, one 404.
    for (i, device) in ["phone-a", "phone-b", "phone-a"].iter().enumerate() {
        let r = app
            .request(Method::POST, "/tables/todo", &[("content-type", "application/json"), ("x-zumo-installation-id", device)], Some(&format!("{{\"n\":{i}}}")))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    assert_eq!(app.get("/tables/todo").await.status, StatusCode::OK);
    assert_eq!(app.get("/tables/todo").await.status, StatusCode::OK);
    assert_eq!(app.get("/tables/todo/missing").await.status, StatusCode::NOT_FOUND);
    // API: one answer, one script error (500), one stopped at the CPU limit.
    let r = app
        .put_script(
            "api",
            "hello",
            "exports.get = function (req, res) { if (req.query.spin) { while (true) {} } if (req.query.fail) { throw new Error('broken on purpose'); } res.send(200, { hello: 'world' }); };",
            json!({"permissions": {"routes": {"*": {"permission": "public"}}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.manage(Method::PATCH, &format!("/tenants/{}/settings", app.tenant), Some(json!({"script_cpu_ms": 50}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.get("/api/hello").await.status, StatusCode::OK);
    assert_eq!(app.get("/api/hello?fail=1").await.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(app.get("/api/hello?spin=1").await.status, StatusCode::INTERNAL_SERVER_ERROR);
    // Jobs, login, push.
    app.script("job", "ping", "function ping() { console.log('ping'); }").await;
    let r = app.request(Method::POST, "/jobs/ping", &[("X-ZUMO-MASTER", &app.master_key)], None).await;
    assert!(r.status.is_success(), "{}", r.text);
    assert!(app.request(Method::POST, "/login/google", &[("content-type", "application/json")], Some("{}")).await.status.is_client_error());
    let r = app.request(Method::POST, "/push/registrationids", &[("X-ZUMO-APPLICATION", &app.app_key)], None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // Scripts' ends are recorded when their invocations finish (just after the answer).
    tokio::time::sleep(Duration::from_millis(300)).await;
    flush(&app).await;
    let d = dashboard(&app, "1h").await;
    let t = &d["totals"];
    assert_eq!(kind(&d, "tables")["ok"], 5, "{d}");
    assert_eq!(kind(&d, "tables")["client_errors"], 1, "{d}");
    assert_eq!(kind(&d, "api")["ok"], 1, "{d}");
    assert_eq!(kind(&d, "api")["errors"], 2, "{d}");
    assert!(kind(&d, "jobs")["ok"].as_u64() == Some(1), "{d}");
    assert_eq!(kind(&d, "login")["client_errors"], 1, "{d}");
    assert_eq!(kind(&d, "push")["ok"], 1, "{d}");
    assert_eq!(t["requests"], 12, "{d}");
    assert_eq!(t["errors"], 2, "{d}");
    assert!(t["bytes_in"].as_u64().unwrap() >= 3 * 7, "{d}");
    assert!(t["bytes_out"].as_u64().unwrap() > 100, "{d}");
    // Three API invocations and the job's: the CPU spin used its 50 ms.
    assert!(t["script_invocations"].as_u64().unwrap() >= 4, "{d}");
    assert!(t["script_cpu_ms"].as_f64().unwrap() >= 40.0, "{d}");
    assert_eq!(t["script_errors"], 2, "{d}");
    assert_eq!(named(&d["limits"], "cpu"), 1, "{d}");
    assert!(t["p50_ms"].as_f64().unwrap() > 0.0 && t["p99_ms"].as_f64().unwrap() >= t["p50_ms"].as_f64().unwrap(), "{d}");
    assert_eq!(named(&d["top"], "tables/todo"), 6, "{d}");
    assert_eq!(named(&d["top"], "api/hello"), 3, "{d}");
    assert_eq!(d["active_devices_today"], 2, "{d}");
    // The series holds the same requests in its last points, and the usage counts them today.
    let series: u64 = d["points"].as_array().unwrap().iter().map(|p| p["requests"].as_u64().unwrap()).sum();
    assert_eq!(series, 12, "{d}");
    assert_eq!(d["points"].as_array().unwrap().len(), 60);
    assert!(d["usage"]["api_calls_today"].as_u64().unwrap() >= 12, "{d}");
    assert_eq!(d["usage"]["tier"], "standard");
    // A second roll-up with nothing new changes nothing (rows are replaced, never added twice).
    flush(&app).await;
    assert_eq!(dashboard(&app, "1h").await["totals"]["requests"], 12);
    // The same counts over the hour rows (7 d) and in the platform view.
    let week = dashboard(&app, "7d").await;
    assert_eq!(week["totals"]["requests"], 12, "{week}");
    let p = app.manage(Method::GET, "/monitor", None).await.json();
    let mine = p["tenants"].as_array().unwrap().iter().find(|x| x["name"] == app.tenant.as_str()).cloned().expect("tenant listed");
    assert_eq!(mine["requests"], 12, "{mine}");
    assert_eq!(mine["errors"], 2, "{mine}");
    assert_eq!(mine["hourly"].as_array().unwrap().len(), 24);
    assert!(p["nodes"].as_array().unwrap().iter().any(|n| n["id"] == app.state.metrics.node.as_str() && n["rss_bytes"].as_u64().unwrap() > 0), "{p}");
    // The failed requests are in the tenant's logs with their request ids.
    let line = app.wait_for_log("GET /api/hello answered 500").await;
    assert_eq!(line["source"], "/request");
    assert!(line["message"].as_str().unwrap().contains("request id"), "{line}");
}

async fn the_live_tail_receives_a_line_a_script_writes(app: TestApp) {
    let r = app
        .put_script(
            "api",
            "say",
            "exports.post = function (req, res) { console.log('tail marker %s', req.body.n); res.send(200, {}); };",
            json!({"permissions": {"routes": {"*": {"permission": "public"}}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let url = format!("{}/manage/v1/tenants/{}/logs/stream?source=/api", app.base, app.tenant);
    let resp = app.client().get(&url).bearer_auth(&app.admin_token).send().await.expect("stream");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp;
    let r = app.call(Method::POST, "/api/say", Some(json!({"n": 42}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = body.chunk().await.expect("chunk") {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("tail marker 42") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "{seen}");
    // Each line is one event with its id (for Last-Event-ID) and its JSON.
    let data = seen.lines().find(|l| l.starts_with("data:") && l.contains("tail marker 42")).unwrap();
    let line: Value = serde_json::from_str(data.trim_start_matches("data:").trim()).unwrap();
    assert_eq!(line["level"], "information");
    assert!(seen.contains(&format!("id: {}", line["id"])), "{seen}");
    // A support account may tail; an unknown filter level is refused before the stream starts.
    let r = app.manage(Method::GET, &format!("/tenants/{}/logs/stream?level=loud", app.tenant), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}

async fn retention_prunes_old_metrics_and_logs_past_their_bytes(app: TestApp) {
    use roost_storage::metrics::{Grain, MetricsRow};
    let s = &app.state.storage;
    let now_min = roost::monitor::rollup::minute_now();
    let now_hour = roost::monitor::rollup::hour_now();
    let row = |bucket: i64| MetricsRow { tenant: app.tenant.clone(), bucket, node: "old-node".into(), requests: 7, detail: "{}".into(), ..Default::default() };
    // Minute rows 8 days old and 1 minute old; hour rows 91 days old and 1 hour old.
    s.upsert_metrics(Grain::Minute, &[row(now_min - 8 * 1440), row(now_min - 1)]).await.unwrap();
    s.upsert_metrics(Grain::Hour, &[row(now_hour - 91 * 24), row(now_hour - 1)]).await.unwrap();
    let pruned = roost::monitor::rollup::prune(&app.state).await.unwrap();
    assert!(pruned >= 2, "{pruned}");
    let minutes = s.metrics_rows(Grain::Minute, Some(&app.tenant), 0).await.unwrap();
    assert_eq!(minutes.iter().map(|r| r.bucket).collect::<Vec<_>>(), vec![now_min - 1]);
    let hours = s.metrics_rows(Grain::Hour, Some(&app.tenant), 0).await.unwrap();
    assert_eq!(hours.iter().map(|r| r.bucket).collect::<Vec<_>>(), vec![now_hour - 1]);
    // Logs: 40 lines of 1000 bytes; a cap of 10,000 bytes keeps the newest 9 (with their sources).
    let lines: Vec<(String, String, String)> = (0..40).map(|i| ("information".into(), "/t".into(), format!("{i:04}{}", "x".repeat(996)))).collect();
    s.append_logs(&app.tenant, &lines).await.unwrap();
    let future = "2000-01-01T00:00:00.000Z";
    s.prune_logs_by(&app.tenant, future, 10_000).await.unwrap();
    let kept = app.logs().await;
    let firsts: Vec<String> = kept.iter().map(|l| l["message"].as_str().unwrap()[..4].to_string()).collect();
    assert_eq!(firsts, (31..40).map(|i| format!("{i:04}")).collect::<Vec<_>>());
    // By age: lines older than the cut go, whatever their size.
    let later = roost_odata::format_datetime(&(chrono::Utc::now() + chrono::Duration::seconds(5)));
    s.prune_logs_by(&app.tenant, &later, i64::MAX).await.unwrap();
    assert!(app.logs().await.is_empty());
    // The tenant's settings are the retention, clamped to its tier: on `free` (1 day, 5 MB) an owner
    // cannot keep logs for 30 days.
    let r = app.manage(Method::PUT, &format!("/tenants/{}/tier", app.tenant), Some(json!({"tier": "free"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.manage(Method::PATCH, &format!("/tenants/{}/settings", app.tenant), Some(json!({"log_retention_days": 30}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("log_retention_days must be between 1 and 1"), "{}", r.text);
    // Other settings still save although the stored retention (7 days) is above the new ceiling.
    let r = app.manage(Method::PATCH, &format!("/tenants/{}/settings", app.tenant), Some(json!({"dynamic_schema": false}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["settings"]["log_retention_days"], 1);
}

/// A tier for the tests: 5 requests a second, 12 a day.
fn tiny_tiers(config: &mut roost::Config) {
    let tier = |rps: u64, burst: u64, per_day: u64| roost_api::Tier {
        requests_per_second: rps,
        burst,
        api_calls_per_day: per_day,
        push_per_day: 1,
        max_tables: 2,
        database_mb: 1024,
        script_cpu_ms: 1000,
        script_memory_mb: 64,
        script_max_concurrent: 8,
        log_retention_days: 7,
        log_mb: 50,
    };
    config.tiers.insert("tiny".into(), tier(5, 5, 1_000_000));
    config.tiers.insert("daily".into(), tier(1000, 1000, 12));
    config.tiers.insert("full".into(), roost_api::Tier { database_mb: 0, ..tier(1000, 1000, 1_000_000) });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rates_and_quotas_are_enforced_on_sqlite() {
    rates_and_quotas_are_enforced(TestApp::spawn_with(Backend::Sqlite, tiny_tiers).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rates_and_quotas_are_enforced_on_postgres() {
    rates_and_quotas_are_enforced(TestApp::spawn_with(Backend::Postgres, tiny_tiers).await).await;
}

async fn rates_and_quotas_are_enforced(app: TestApp) {
    app.create_table("items", json!({"permissions": {"read": "public"}})).await;
    let r = app.manage(Method::PUT, &format!("/tenants/{}/tier", app.tenant), Some(json!({"tier": "nope"}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = app.manage(Method::PUT, &format!("/tenants/{}/tier", app.tenant), Some(json!({"tier": "tiny"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The rate: a burst of 5, then 429 with Retry-After and the protocol's error body.
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..12 {
        let r = app.get("/tables/items").await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            retry_after = r.header("retry-after");
            assert_eq!(r.json()["code"], 429, "{}", r.text);
            assert!(r.error().starts_with("Error: "), "{}", r.text);
        }
        statuses.push(r.status.as_u16());
    }
    assert!(statuses.iter().filter(|s| **s == 200).count() >= 5, "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    let wait: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
    assert!((1..=2).contains(&wait), "{wait}");
    // It resets: after Retry-After the tenant is served again.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(app.get("/tables/items").await.status, StatusCode::OK);
    // A table beyond the tier's two: refused.
    app.create_table("second", json!({})).await;
    let r = app.manage(Method::POST, &format!("/tenants/{}/tables", app.tenant), Some(json!({"name": "third"}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    // The daily quota: 12 calls a day, counted with what this tenant used today; then 403 until
    // 00:00 UTC.
    let r = app.manage(Method::PUT, &format!("/tenants/{}/tier", app.tenant), Some(json!({"tier": "daily"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut refused = None;
    for i in 0..20 {
        let r = app.get("/tables/items").await;
        if r.status == StatusCode::FORBIDDEN {
            refused = Some((i, r));
            break;
        }
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let (at, r) = refused.expect("the daily quota refuses");
    assert!(at < 12, "refused after {at} more calls");
    assert_eq!(r.json()["code"], 403, "{}", r.text);
    assert!(r.error().contains("daily quota"), "{}", r.text);
    let usage = app.manage(Method::GET, &format!("/tenants/{}/usage", app.tenant), None).await.json();
    assert_eq!(usage["tier"], "daily");
    assert_eq!(usage["api_calls_today"], 12, "{usage}");
    let tomorrow = chrono::DateTime::from_timestamp((chrono::Utc::now().timestamp() / 86_400 + 1) * 86_400, 0).unwrap();
    assert_eq!(usage["resets_at"], tomorrow.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    // Both limits are logged with request ids and counted on the dashboard.
    app.wait_for_log("refused (429)").await;
    let line = app.wait_for_log("refused (403)").await;
    assert!(line["message"].as_str().unwrap().contains("request id"), "{line}");
    flush(&app).await;
    let d = dashboard(&app, "1h").await;
    assert!(named(&d["limits"], "rate") >= 1, "{d}");
    assert!(named(&d["limits"], "daily_quota") >= 1, "{d}");
    assert_eq!(named(&d["limits"], "tables"), 0, "{d}");
    // The other tenants are not affected by this one's quota.
    let other = app.new_tenant().await;
    let r = app.client().get(format!("{}/t/{}/tables/none", app.base, other["name"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // The push quota (one notification a day on these tiers): a send to two registrations fails
    // before anything is queued.
    let r = app.manage(Method::PUT, &format!("/tenants/{}/tier", app.tenant), Some(json!({"tier": "tiny"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let api = r#"exports.post = function (request, response) {
        request.service.push.webpush.send(null, 'hello', {}, {
            success: function (result) { response.send(200, result); },
            error: function (err) { response.send(400, { message: err.message }); }
        });
    };"#;
    let r = app.put_script("api", "notify", api, json!({"permissions": {"routes": {"*": {"permission": "application"}}}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for n in 0..2 {
        let r = app.request(Method::POST, "/push/registrationids", &[("X-ZUMO-APPLICATION", &app.app_key)], None).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let id = r.headers["location"].to_str().unwrap().rsplit('/').next().unwrap().to_string();
        let body = json!({"platform": "webpush", "deviceId": format!("https://push.example.test/send/quota{n}"),
            "keys": {"p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4", "auth": "BTBZMqHH6r4Tts7J_aSIgg"}});
        let r = app
            .request(
                Method::PUT,
                &format!("/push/registrations/{id}"),
                &[("X-ZUMO-APPLICATION", &app.app_key), ("content-type", "application/json")],
                Some(&body.to_string()),
            )
            .await;
        assert!(r.status.is_success(), "{}", r.text);
    }
    let r = app.call(Method::POST, "/api/notify", Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.json()["message"].as_str().unwrap_or_default().contains("push notifications per day"), "{}", r.text);
    let sends = app.manage(Method::GET, &format!("/tenants/{}/push/sends", app.tenant), None).await;
    assert_eq!(sends.json().as_array().map(Vec::len), Some(0), "{}", sends.text);
    flush(&app).await;
    assert_eq!(named(&dashboard(&app, "1h").await["limits"], "push_quota"), 1);
    // The database size: once measured over the tier's (0 MB here), client writes are refused with
    // 403 and reads go on.
    let r = app.manage(Method::PUT, &format!("/tenants/{}/tier", app.tenant), Some(json!({"tier": "full"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.manage(Method::PUT, &format!("/tenants/{}/tables/items/permissions", app.tenant), Some(json!({"read": "public", "insert": "public"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    flush(&app).await;
    let r = app.insert("items", json!({"n": 1})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.error().contains("database is over"), "{}", r.text);
    assert_eq!(app.get("/tables/items").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prometheus_output_is_parsed_and_linted() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.metrics_token = "scrape-token".into()).await;
    app.create_table("todo", json!({"permissions": {"read": "public"}})).await;
    for _ in 0..3 {
        assert_eq!(app.get("/tables/todo").await.status, StatusCode::OK);
    }
    let url = format!("{}/metrics", app.base);
    assert_eq!(app.client().get(&url).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.client().get(&url).bearer_auth("wrong").send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    // The platform's admin token is not the scrape token.
    assert_eq!(app.client().get(&url).bearer_auth(&app.admin_token).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let r = app.client().get(&url).bearer_auth("scrape-token").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    // Parsed: every sample line is `name{labels} value`, with a HELP and TYPE for its family.
    let mut samples = std::collections::HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a number: {line}"));
        let family = series.split('{').next().unwrap();
        let base = family.trim_end_matches("_bucket").trim_end_matches("_sum").trim_end_matches("_count");
        assert!(text.contains(&format!("# TYPE {base} ")) || text.contains(&format!("# TYPE {family} ")), "no TYPE for {family}");
        samples.insert(series.to_string(), value);
    }
    let t = &app.tenant;
    assert_eq!(samples.get(&format!("http_requests_total{{tenant=\"{t}\",kind=\"tables\",status=\"ok\"}}")), Some(&3.0), "{text}");
    assert_eq!(samples.get(&format!("http_requests_duration_seconds_count{{tenant=\"{t}\"}}")), Some(&3.0), "{text}");
    assert!(samples.contains_key(&format!("roost_sent_bytes_total{{tenant=\"{t}\"}}")), "{text}");
    assert!(samples.get("process_resident_memory_bytes").is_some_and(|v| *v > 0.0), "{text}");
    // No label carries a user id, a path or a table name.
    assert!(!text.contains("todo") && !text.contains("/tables"), "{text}");
    // Linted by promtool (Debian's prometheus package; CI installs it).
    match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "promtool: {}{}\n{text}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        }
        Err(e) => assert!(std::env::var_os("CI").is_none(), "promtool is needed in CI: {e}"),
    }
    // Tenants beyond metrics_max_tenants share one label.
    let app2 = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.metrics_token = "scrape-token".into();
        c.metrics_max_tenants = 1;
    })
    .await;
    let second = app2.new_tenant().await;
    for tenant in [app2.tenant.clone(), second["name"].as_str().unwrap().to_string()] {
        app2.client().get(format!("{}/t/{tenant}/tables/none", app2.base)).send().await.unwrap();
    }
    let text = app2.client().get(format!("{}/metrics", app2.base)).bearer_auth("scrape-token").send().await.unwrap().text().await.unwrap();
    assert!(text.contains(&format!("tenant=\"{}\"", app2.tenant)) && text.contains("tenant=\"_other\""), "{text}");
    assert!(!text.contains(second["name"].as_str().unwrap()), "{text}");
}

/// Two `roost serve` processes on one PostgreSQL database: each node's requests roll up into the
/// catalog, and the dashboard adds both nodes up exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgres_add_up_exactly() {
    use sqlx::Connection as _;
    let base = crate::helpers::postgres_url();
    let name = random_name("roost_nodes_");
    let mut c = sqlx::PgConnection::connect(&base).await.expect("connect");
    sqlx::query(&format!("create database \"{name}\"")).execute(&mut c).await.expect("create database");
    let url = format!("{}/{name}", base.rsplit_once('/').expect("a database in the URL").0);
    let dirs = [TempDir(std::env::temp_dir().join(random_name("roost-node-a-"))), TempDir(std::env::temp_dir().join(random_name("roost-node-b-")))];
    let command = |dir: &std::path::Path| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_roost"));
        c.env("ROOST_DATA", dir)
            .env("ROOST_DATABASE_URL", &url)
            .env("ROOST_IDENTITY_KEY", crate::helpers::SUITE_IDENTITY_KEY)
            .env("ROOST_LOG", "warn")
            .env("ROOST_ADMIN_TOKEN", "nodes-admin-token")
            .env("ROOST_SCHEDULER_TICK_MS", "0")
            .env("ROOST_METRICS_FLUSH_MS", "200")
            .env("ROOST_PG_MAX_CONNECTIONS", "4");
        c
    };
    std::fs::create_dir_all(&dirs[0].0).unwrap();
    std::fs::create_dir_all(&dirs[1].0).unwrap();
    let tenant = random_name("n");
    let out = command(&dirs[0].0).args(["tenant", "create", &tenant]).output().expect("roost tenant create");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = command(&dirs[0].0).args(["table", "create", &tenant, "todo", "--permissions", "read=public"]).output().expect("roost table create");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let client = reqwest::Client::new();
    let mut nodes = Vec::new();
    for dir in &dirs {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap().port();
        let child = command(&dir.0).arg("serve").env("ROOST_LISTEN", format!("127.0.0.1:{port}")).spawn().expect("roost serve");
        let node = crate::helpers::KillOnDrop(child);
        let base = format!("http://127.0.0.1:{port}");
        let mut up = false;
        for _ in 0..200 {
            if client.get(format!("{base}/t/{tenant}/status")).send().await.is_ok_and(|r| r.status() == StatusCode::OK) {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(up, "node did not start");
        nodes.push((node, base));
    }
    // 37 reads through A and 23 through B (plus each node's one /status probe that found it up).
    for (n, (_, base)) in [37, 23].iter().zip(&nodes) {
        for _ in 0..*n {
            let r = client.get(format!("{base}/t/{tenant}/tables/todo")).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
        }
    }
    let expected = 37 + 23 + 2;
    let mut last = Value::Null;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let d: Value = client
            .get(format!("{}/manage/v1/tenants/{tenant}/dashboard?range=1h", nodes[1].1))
            .bearer_auth("nodes-admin-token")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        last = d.clone();
        if d["totals"]["requests"] == expected {
            break;
        }
    }
    assert_eq!(last["totals"]["requests"], expected, "{last}");
    assert_eq!(named(&last["top"], "tables/todo"), 60, "{last}");
    // Exactly: more roll-ups change nothing.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let p: Value = client.get(format!("{}/manage/v1/monitor", nodes[0].1)).bearer_auth("nodes-admin-token").send().await.unwrap().json().await.unwrap();
    let mine = p["tenants"].as_array().unwrap().iter().find(|x| x["name"] == tenant.as_str()).cloned().expect("listed");
    assert_eq!(mine["requests"], expected, "{p}");
    assert_eq!(p["nodes"].as_array().unwrap().len(), 2, "{p}");
    drop(nodes);
    let _ = sqlx::query(&format!("drop database if exists \"{name}\" with (force)")).execute(&mut c).await;
}
