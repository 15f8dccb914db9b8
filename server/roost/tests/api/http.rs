//! The HTTP surface of protocol.md §1: routes, 404/405, headers, CORS, version check, body limit,
//! method override, host addressing.

use crate::helpers::{send, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

crate::on_both_backends!(
    status_and_unknown_routes,
    methods_not_allowed_answer_405_with_allow,
    every_response_carries_the_zumo_headers,
    cors_follows_the_tenant_whitelist,
    zumo_api_version_is_refused_with_plain_text,
    bodies_over_the_limit_get_413,
    method_override_and_content_type_rules,
    tenants_are_addressable_by_host,
    routes_are_case_insensitive_and_tolerate_a_trailing_slash,
    a_request_past_the_timeout_gets_503_and_the_server_recovers,
    diagnostics_need_the_master_key_and_time_the_database,
    crossdomain_pages_check_the_origin,
    require_https_refuses_plain_http,
    every_response_answers_the_request_id,
);

async fn every_response_answers_the_request_id(app: TestApp) {
    // The client's own id comes back; without one the server makes one, unique per request.
    let r = app.request(Method::GET, "/tables/missing", &[("x-zumo-request-id", "3f1c9e2a-client-id")], None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.headers["x-zumo-request-id"], "3f1c9e2a-client-id");
    let ids: Vec<String> = futures::future::join_all((0..2).map(|_| app.request(Method::GET, "/status", &[], None)))
        .await
        .into_iter()
        .map(|r| r.headers["x-zumo-request-id"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(ids[0].len(), 36, "{ids:?}");
    assert_ne!(ids[0], ids[1]);
    let r = app.manage(Method::GET, "/tenants", None).await;
    assert!(r.headers.contains_key("x-zumo-request-id"), "the platform API answers it too");
}

async fn diagnostics_need_the_master_key_and_time_the_database(app: TestApp) {
    assert_eq!(app.get("/diagnostics").await.status, StatusCode::UNAUTHORIZED, "the application key is not enough");
    let r = app.request(Method::GET, "/diagnostics", &[("X-ZUMO-MASTER", &app.master_key)], None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let body = r.json();
    assert_eq!(body["service"]["status"]["serviceName"], app.tenant.as_str());
    assert!(body["service"]["status"]["uptime"].as_str().unwrap().contains(':'));
    assert_eq!(body["tables.sql"]["status"]["statusCode"], 200);
    assert!(body["tables.sql"]["status"]["latencyMS"].is_u64());
    let r = app.request(Method::POST, "/diagnostics", &[("X-ZUMO-MASTER", &app.master_key)], None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

async fn crossdomain_pages_check_the_origin(app: TestApp) {
    let r = app.request(Method::GET, "/crossdomain/bridge?origin=http%3A%2F%2Flocalhost%3A8000", &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.text.contains(r#"var originRoot = "http://localhost:8000";"#), "{}", r.text);
    assert!(r.text.contains("X-HTTP-Method-Override"));
    let r = app.request(Method::GET, "/crossdomain/loginreceiver?completion_origin=http%3A%2F%2Flocalhost", &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("transferLoginResult"));
    let r = app.request(Method::GET, "/crossdomain/bridge?origin=https%3A%2F%2Fevil.example", &[], None).await;
    assert_eq!(r.json(), json!({"code":401,"error":"Error: Not a whitelisted origin: https://evil.example"}));
    // A hostile origin can never close the script element.
    let r = app.request(Method::GET, "/crossdomain/bridge?origin=http%3A%2F%2Flocalhost%2F%3C%2Fscript%3E", &[], None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.request(Method::GET, "/crossdomain/other", &[], None).await.status, StatusCode::NOT_FOUND);
    let r = app.request(Method::POST, "/crossdomain/bridge", &[], None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow").unwrap(), "GET");
}

async fn require_https_refuses_plain_http(app: TestApp) {
    let (ok, _, err) = app.cli(&["tenant", "set", &app.tenant, "--require-https", "true"]);
    assert!(ok, "{err}");
    let r = app.request(Method::GET, "/status", &[], None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.text, "HTTPS connections are required for this service. Please update your endpoint to use the https protocol.");
    // Behind a TLS proxy (trusted X-Forwarded-Proto, or Azure's x-arr-ssl) requests pass.
    assert_eq!(app.request(Method::GET, "/status", &[("x-forwarded-proto", "https")], None).await.status, StatusCode::OK);
    assert_eq!(app.request(Method::GET, "/status", &[("x-arr-ssl", "1")], None).await.status, StatusCode::OK);
}

async fn a_request_past_the_timeout_gets_503_and_the_server_recovers(app: TestApp) {
    app.create_table("todo", json!({})).await;
    app.insert("todo", json!({"id":"before"})).await;
    let r = app.manage(Method::PATCH, &format!("/tenants/{}/settings", app.tenant), Some(json!({"request_timeout_ms": 300}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Another client holds the table's write lock for 1.5 s, so the insert cannot finish in time.
    let (locked_tx, locked_rx) = tokio::sync::oneshot::channel::<()>();
    let holder = match app.backend {
        crate::helpers::Backend::Sqlite => {
            let file = app.data.join("tenants").join(format!("{}.db", app.tenant));
            tokio::task::spawn_blocking(move || {
                let conn = rusqlite::Connection::open(file).expect("open tenant file");
                conn.execute_batch("BEGIN IMMEDIATE").expect("lock");
                let _ = locked_tx.send(());
                std::thread::sleep(std::time::Duration::from_millis(1500));
                conn.execute_batch("COMMIT").expect("unlock");
            })
        }
        crate::helpers::Backend::Postgres => {
            let (url, schema) = (app.database_url.clone(), format!("t_{}", app.tenant.replace('-', "_")));
            tokio::spawn(async move {
                use sqlx::Connection as _;
                let mut c = sqlx::PgConnection::connect(&url).await.expect("connect");
                let mut tx = c.begin().await.expect("begin");
                sqlx::query(&format!("LOCK TABLE \"{schema}\".\"todo\" IN ACCESS EXCLUSIVE MODE")).execute(&mut *tx).await.expect("lock");
                let _ = locked_tx.send(());
                tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
                tx.commit().await.expect("unlock");
            })
        }
    };
    locked_rx.await.expect("lock taken");
    let started = std::time::Instant::now();
    let r = app.insert("todo", json!({"id":"during"})).await;
    let waited = started.elapsed();
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.json(), json!({"code":503,"error":"Error: The request has timed out."}));
    // The timeout answered, not the release of the lock (held 1.5 s from before the request).
    assert!(waited >= std::time::Duration::from_millis(290) && waited < std::time::Duration::from_millis(1450), "{waited:?}");
    // Other requests of the tenant that need no lock keep answering meanwhile.
    assert_eq!(app.request(Method::GET, "/status", &[], None).await.status, StatusCode::OK);
    holder.await.expect("holder");
    let r = app.insert("todo", json!({"id":"after"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(app.rows("/tables/todo").await.iter().any(|r| r["id"] == "after"));
}

async fn status_and_unknown_routes(app: TestApp) {
    let r = app.request(Method::GET, "/status", &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.is_empty());
    let r = app.request(Method::POST, "/status", &[], None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow").unwrap(), "GET");
    let r = app.request(Method::GET, "/nothing/here", &[], None).await;
    assert_eq!(r.json(), json!({"code":404,"error":"Error: Not Found"}));
    let r = app.request(Method::GET, "/tables/a/b/c", &[], None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = send(app.client().get(format!("{}/t/no-such-tenant/status", app.base))).await;
    assert_eq!(r.json(), json!({"code":404,"error":"Error: Not Found"}));
    // The tenant segment is taken from its position, whatever the name: `t` itself, or percent-encoded.
    app.manage(Method::DELETE, "/tenants/t", None).await;
    let r = app.manage(Method::POST, "/tenants", Some(json!({"name":"t"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    for url in [format!("{}/t/t/status", app.base), format!("{}/t/%74/status", app.base), format!("{}/t/T/status/", app.base)] {
        let r = send(app.client().get(&url)).await;
        assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.text);
    }
    let r = send(app.client().get(format!("{}/t/t/tables/missing", app.base))).await;
    assert_eq!(r.error(), "Error: Table 'missing' does not exist.");
    app.manage(Method::DELETE, "/tenants/t", None).await;
}

async fn methods_not_allowed_answer_405_with_allow(app: TestApp) {
    app.create_table("todo", json!({})).await;
    for (method, path, allow) in
        [(Method::PUT, "/tables/todo", "GET, POST"), (Method::DELETE, "/tables/todo", "GET, POST"), (Method::PUT, "/tables/todo/1", "GET, POST, PATCH, DELETE")]
    {
        let r = app.request(method.clone(), path, &[("X-ZUMO-APPLICATION", &app.app_key)], None).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(r.header("allow").unwrap(), allow);
        assert!(r.text.is_empty());
    }
}

async fn every_response_carries_the_zumo_headers(app: TestApp) {
    app.create_table("todo", json!({})).await;
    for r in [app.get("/tables/todo").await, app.request(Method::GET, "/missing", &[], None).await, app.request(Method::PUT, "/tables/todo", &[], None).await] {
        assert!(r.header("x-zumo-version").is_some());
        assert_eq!(r.header("x-zumo-server-version").unwrap(), "nodev1-1.0.1");
        assert_eq!(r.header("content-type").unwrap(), "application/json");
        assert_eq!(r.header("cache-control").unwrap(), "no-cache");
    }
}

async fn cors_follows_the_tenant_whitelist(app: TestApp) {
    app.create_table("todo", json!({})).await;
    let pre = app
        .request(
            Method::OPTIONS,
            "/tables/todo/anything",
            &[("Origin", "http://localhost:4000"), ("Access-Control-Request-Headers", "x-zumo-application, content-type")],
            None,
        )
        .await;
    assert_eq!(pre.status, StatusCode::NO_CONTENT);
    assert_eq!(pre.header("access-control-allow-origin").unwrap(), "http://localhost:4000");
    assert_eq!(pre.header("access-control-allow-headers").unwrap(), "x-zumo-application, content-type");
    assert_eq!(pre.header("access-control-allow-methods").unwrap(), "GET, PUT, PATCH, POST, DELETE, OPTIONS");
    assert_eq!(pre.header("access-control-max-age").unwrap(), "300");
    let r = app.request(Method::GET, "/tables/todo", &[("Origin", "http://localhost"), ("X-ZUMO-APPLICATION", &app.app_key)], None).await;
    assert_eq!(r.header("access-control-allow-origin").unwrap(), "http://localhost");
    assert_eq!(r.header("access-control-expose-headers").unwrap(), "ETag, Location, x-zumo-version");
    assert!(r.header("access-control-allow-methods").is_none());
    // Not whitelisted: processed, without CORS headers.
    let r = app.request(Method::GET, "/tables/todo", &[("Origin", "https://evil.example"), ("X-ZUMO-APPLICATION", &app.app_key)], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("access-control-allow-origin").is_none());
    // A suspicious Access-Control-Request-Headers is not echoed.
    let r = app.request(Method::OPTIONS, "/tables/todo", &[("Origin", "http://localhost"), ("Access-Control-Request-Headers", "x;y")], None).await;
    assert!(r.header("access-control-allow-headers").is_none());
    // The whitelist is a tenant setting; a change applies at once.
    let r = app.manage(Method::PATCH, &format!("/tenants/{}/settings", app.tenant), Some(json!({"cors_origins": ["*.example.com"]}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.request(Method::GET, "/tables/todo", &[("Origin", "https://app.example.com"), ("X-ZUMO-APPLICATION", &app.app_key)], None).await;
    assert_eq!(r.header("access-control-allow-origin").unwrap(), "https://app.example.com");
    let r = app.request(Method::GET, "/tables/todo", &[("Origin", "http://localhost"), ("X-ZUMO-APPLICATION", &app.app_key)], None).await;
    assert!(r.header("access-control-allow-origin").is_none());
    let r = app.manage(Method::PATCH, &format!("/tenants/{}/settings", app.tenant), Some(json!({"cors_origins": ["bad origin!"]}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

async fn zumo_api_version_is_refused_with_plain_text(app: TestApp) {
    app.create_table("todo", json!({})).await;
    let expected = "This version (1.0.0) of the server does not support the use of the zumo-api-version in the request.  For more information and supported clients see: http://go.microsoft.com/fwlink/?LinkID=690568#1.0.0";
    for r in [
        app.request(Method::GET, "/tables/todo", &[("ZUMO-API-VERSION", "2.0.0")], None).await,
        app.request(Method::GET, "/tables/todo?ZUMO-API-VERSION=2.0.0", &[], None).await,
    ] {
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.text, expected);
        assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    }
    assert_eq!(app.request(Method::GET, "/status", &[("ZUMO-API-VERSION", "2.0.0")], None).await.status, StatusCode::OK);
}

async fn bodies_over_the_limit_get_413(app: TestApp) {
    app.create_table("todo", json!({})).await;
    let big = format!(r#"{{"text":"{}"}}"#, "x".repeat(1024 * 1024));
    let r = app.request(Method::POST, "/tables/todo", &[("X-ZUMO-APPLICATION", &app.app_key), ("content-type", "application/json")], Some(&big)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.json(), json!({"code":413,"error":"Error: Request body maximum size limit was exceeded."}));
    // 64 KiB strings are fine.
    let s = "é".repeat(32 * 1024);
    let r = app.insert("todo", json!({"id":"big","text": s})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(app.get("/tables/todo/big").await.json()["text"].as_str().unwrap().len(), 64 * 1024);
    // The limit is a setting.
    app.manage(Method::PATCH, &format!("/tenants/{}/settings", app.tenant), Some(json!({"max_body_kb": 1}))).await;
    let r = app.insert("todo", json!({"text": "y".repeat(2000)})).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
}

async fn method_override_and_content_type_rules(app: TestApp) {
    app.create_table("todo", json!({})).await;
    app.insert("todo", json!({"id":"o","n":1})).await;
    let r = app
        .request(
            Method::POST,
            "/tables/todo/o",
            &[("X-ZUMO-APPLICATION", &app.app_key), ("content-type", "application/json"), ("X-HTTP-Method-Override", "PATCH")],
            Some(r#"{"n":2}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.get("/tables/todo/o").await.json()["n"], 2);
    // A `_method` member overrides too, and is not stored.
    let r = app
        .request(
            Method::POST,
            "/tables/todo/o",
            &[("X-ZUMO-APPLICATION", &app.app_key), ("content-type", "application/json")],
            Some(r#"{"_method":"patch","n":4}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.get("/tables/todo/o").await.json(), json!({"id":"o","n":4}));
    // A form body is an object of strings.
    let r = app
        .request(
            Method::POST,
            "/tables/todo",
            &[("X-ZUMO-APPLICATION", &app.app_key), ("content-type", "application/x-www-form-urlencoded")],
            Some("id=f&text=hello+world"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(app.get("/tables/todo/f?$select=text").await.json(), json!({"text":"hello world"}));
    let r = app
        .request(Method::POST, "/tables/todo", &[("X-ZUMO-APPLICATION", &app.app_key), ("content-type", "application/x-www-form-urlencoded")], Some("a=1&a=2"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // No Content-Type but a body: JSON is assumed.
    let r = app.request(Method::POST, "/tables/todo", &[("X-ZUMO-APPLICATION", &app.app_key)], Some(r#"{"n":3}"#)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

async fn tenants_are_addressable_by_host(app: TestApp) {
    app.create_table("todo", json!({"permissions": {"read": "public"}})).await;
    app.insert("todo", json!({"id":"h"})).await;
    let r = send(app.client().get(format!("{}/tables/todo", app.base)).header("host", format!("{}.roost.test", app.tenant))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json(), json!([{"id":"h"}]));
    let r = send(app.client().get(format!("{}/tables/todo", app.base)).header("host", "other.roost.test")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn routes_are_case_insensitive_and_tolerate_a_trailing_slash(app: TestApp) {
    app.create_table("TodoItem", json!({})).await;
    app.insert("todoitem", json!({"id":"r"})).await;
    for path in ["/TABLES/todoitem", "/tables/TODOITEM/", "/Tables/TodoItem/r", "/tables/todoitem/r/"] {
        let r = app.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
    }
    let r = app.get("/tables/todoitem/r").await;
    assert_eq!(r.json(), json!({"id":"r"}));
}
