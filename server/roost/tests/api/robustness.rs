//! Bad input never yields a 500 or a panic, every value is bound, every identifier checked, and one
//! tenant can never reach another's data.

use crate::helpers::{ids, TestApp};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

crate::on_both_backends!(
    injection_attempts_are_inert,
    odd_bodies_never_cause_a_500,
    random_bodies_never_cause_a_500,
    random_filters_never_cause_a_500,
    tenants_are_isolated,
    a_broken_database_gives_the_generic_500
);

/// A failure that is the server's, not the client's: 500 with the generic body (never the cause),
/// and the other tenants keep working.
async fn a_broken_database_gives_the_generic_500(app: TestApp) {
    // On PostgreSQL this test kills connections: it gets a database of its own, so that tests running
    // beside it on the shared server are untouched.
    let own_database = match app.backend {
        crate::helpers::Backend::Postgres => Some(own_database(&app.database_url).await),
        crate::helpers::Backend::Sqlite => None,
    };
    let app = match &own_database {
        Some((url, _)) => {
            let url = url.clone();
            TestApp::spawn_with(crate::helpers::Backend::Postgres, move |c| c.database_url = url.into()).await
        }
        None => app,
    };
    broken_database(&app).await;
    if let Some((_, name)) = own_database {
        use sqlx::Connection as _;
        let admin_url = std::env::var("ROOST_TEST_DATABASE_URL").expect("url");
        let mut c = sqlx::PgConnection::connect(&admin_url).await.expect("connect");
        sqlx::query(&format!("drop database \"{name}\" with (force)")).execute(&mut c).await.expect("drop database");
    }
}

/// Creates a fresh database on the test server; returns its URL and name.
async fn own_database(url: &str) -> (String, String) {
    use sqlx::Connection as _;
    let name = crate::helpers::random_name("roost_broken_");
    let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query(&format!("create database \"{name}\"")).execute(&mut c).await.expect("create database");
    let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(url);
    (format!("{base}/{name}"), name)
}

async fn broken_database(app: &TestApp) {
    app.create_table("todo", json!({"permissions":{"read":"public"}})).await;
    app.insert("todo", json!({"id":"a"})).await;
    let other = app.new_tenant().await;
    let other_name = other["name"].as_str().unwrap().to_string();
    app.manage(Method::POST, &format!("/tenants/{other_name}/tables"), Some(json!({"name":"todo","permissions":{"read":"public"}}))).await;
    match app.backend {
        crate::helpers::Backend::Sqlite => {
            // Storage destroyed under the server's feet.
            let file = app.data.join("tenants").join(format!("{}.db", app.tenant));
            for suffix in ["", "-wal", "-shm"] {
                let mut p = file.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::write(std::path::PathBuf::from(p), vec![0x5a; 8192]);
            }
        }
        crate::helpers::Backend::Postgres => {
            // The database server kills every connection of the pool.
            use sqlx::Connection as _;
            let mut c = sqlx::PgConnection::connect(&app.database_url).await.expect("connect");
            sqlx::query("select pg_terminate_backend(pid) from pg_stat_activity where pid <> pg_backend_pid() and datname = current_database() and application_name = ''")
                .execute(&mut c)
                .await
                .expect("terminate");
        }
    }
    if app.backend == crate::helpers::Backend::Sqlite {
        let r = app.request(Method::GET, "/tables/todo", &[], None).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text);
        assert_eq!(r.json(), json!({"code":500,"error":"Error: Internal Server Error"}));
        let r = crate::helpers::send(app.client().get(format!("{}/t/{other_name}/tables/todo", app.base))).await;
        assert_eq!(r.status, StatusCode::OK, "other tenants are unaffected: {}", r.text);
        return;
    }
    // PostgreSQL: a statement on a killed connection fails with the generic 500; the pool then replaces
    // its connections, so both tenants answer again within a few requests.
    for url in [app.url("/tables/todo"), format!("{}/t/{other_name}/tables/todo", app.base)] {
        let mut recovered = false;
        for _ in 0..8 {
            let r = crate::helpers::send(app.client().get(&url)).await;
            if r.status == StatusCode::OK {
                recovered = true;
                break;
            }
            assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text);
            assert_eq!(r.json(), json!({"code":500,"error":"Error: Internal Server Error"}));
        }
        assert!(recovered, "{url} did not recover");
    }
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

async fn injection_attempts_are_inert(app: TestApp) {
    app.create_table("todo", json!({})).await;
    app.seed("todo", &[json!({"id":"a","text":"x"}), json!({"id":"b'; drop table todo; --","text":"y"})]).await;
    // Quotes inside literals are data; `%` and `_` are LIKE wildcards, as in the original (§3.4).
    let filters = [
        ("text eq 'x'' or 1=1 --'", 0),
        ("id eq 'b''; drop table todo; --'", 1),
        ("text eq 'x\" or \"1\"=\"1'", 0),
        ("substringof('%', text)", 2),
        ("startswith(text, '_')", 2),
        ("startswith(text, '''')", 0),
    ];
    for (f, n) in filters {
        let r = app.get(&format!("/tables/todo?$filter={}", enc(f))).await;
        assert_eq!(r.status, StatusCode::OK, "{f}: {}", r.text);
        assert_eq!(r.json().as_array().unwrap().len(), n, "{f}");
    }
    assert_eq!(ids(&app.rows(&format!("/tables/todo?$filter={}", enc("id eq 'b''; drop table todo; --'"))).await), ["b'; drop table todo; --"]);
    for bad in [
        "$filter=text\"; drop table todo; --",
        "$filter=text eq 'x'); drop table todo; --'",
        "$filter=[text] eq 1",
        "$orderby=text; drop table todo",
        "$orderby=(select 1)",
        "$select=text, \"x\"",
        "$select=*, (select 1)",
        "$filter=text eq 'a' union select * from sqlite_master",
    ] {
        let (k, v) = bad.split_once('=').unwrap();
        let r = app.get(&format!("/tables/todo?{k}={}", enc(v))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
    }
    // Table and column names.
    for path in ["/tables/todo%22%3B%20drop%20table%20todo", "/tables/sqlite_master", "/tables/pg_class", "/tables/..%2Ftodo"] {
        assert_eq!(app.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    let r = app.insert("todo", json!({"x\"; drop table todo; --": 1})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Everything still there.
    assert_eq!(app.rows("/tables/todo").await.len(), 2);
}

async fn odd_bodies_never_cause_a_500(app: TestApp) {
    app.create_table("todo", json!({})).await;
    app.insert("todo", json!({"id":"z","n":1,"s":"x","d":"2014-01-01T00:00:00Z","b":true})).await;
    let bodies = [
        "",
        "{",
        "}",
        "null",
        "true",
        "[]",
        "[{}]",
        "{\"a\":",
        "{\"n\":1e400}",
        "{\"n\":-1e400}",
        "{\"n\":123456789012345678901234567890}",
        "{\"n\":\"1e999\"}",
        "{\"d\":\"0000-01-01T00:00:00Z\"}",
        "{\"d\":\"2014-13-45T99:99:99Z\"}",
        "{\"d\":\"/Date(99999999999999999)/\"}",
        "{\"d\":\"/Date(-62135596800000)/\"}",
        "{\"b\":\"yes\"}",
        "{\"s\":{\"nested\":true}}",
        "{\"\":1}",
        "{\"id\":\"\\u0000\"}",
        "{\"id\":\"\\ud800\"}",
        "\u{feff}{}",
        "{\"a\":1,\"a\":2}",
        "{\"é\":1}",
        "{\"x\":\"\\u0000 nul inside\"}",
    ];
    for body in bodies {
        for (method, path) in [(Method::POST, "/tables/todo"), (Method::PATCH, "/tables/todo/z")] {
            let r = app.request(method.clone(), path, &[("X-ZUMO-APPLICATION", &app.app_key), ("content-type", "application/json")], Some(body)).await;
            assert!(r.status.as_u16() < 500, "{method} {body:?}: {} {}", r.status, r.text);
            if r.status.is_client_error() {
                let j = r.json();
                assert_eq!(j["code"], r.status.as_u16(), "{body}");
            }
        }
    }
    for id in ["%27", "%22", "%E2%9C%93", "%F0%9F%98%80", "a%00b", "%2E%2E", "%25", "x".repeat(300).as_str()] {
        for method in [Method::GET, Method::PATCH, Method::DELETE, Method::POST] {
            let r = app
                .request(
                    method.clone(),
                    &format!("/tables/todo/{id}"),
                    &[("X-ZUMO-APPLICATION", &app.app_key), ("content-type", "application/json")],
                    Some("{\"n\":2}"),
                )
                .await;
            assert!(r.status.as_u16() < 500, "{method} {id}: {} {}", r.status, r.text);
        }
    }
    for q in
        ["$top=99999999999999999999999", "$skip=99999999999999999999", "$top=", "$filter=", "$orderby=", "$select=", "$filter=%FF%FE", "__systemproperties=%00"]
    {
        let r = app.get(&format!("/tables/todo?{q}")).await;
        assert!(r.status.as_u16() < 500, "{q}: {} {}", r.status, r.text);
    }
}

/// Fuzzing body conversion (§2.2 validation, dates, ids, dynamic columns) through the real pipeline:
/// random JSON objects inserted and patched never produce a 500. `ROOST_FUZZ_CASES` sets the count.
async fn random_bodies_never_cause_a_500(app: TestApp) {
    app.create_table("todo", json!({})).await;
    app.insert("todo", json!({"id": "z", "n": 1, "s": "x", "d": "2014-01-01T00:00:00Z", "b": true})).await;
    let key = prop_oneof![
        prop::sample::select(vec!["id", "Id", "n", "s", "d", "b", "__version", "__createdAt", "_method", "x", "é", ""]).prop_map(str::to_string),
        "[a-zA-Z_][a-zA-Z0-9_]{0,8}",
        ".{0,6}",
    ];
    let leaf = prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        ".{0,12}".prop_map(|s: String| json!(s)),
        prop::sample::select(vec![
            "2014-01-01T00:00:00Z",
            "2014-01-01T00:00:00.123Z",
            "9999-12-31T23:59:59.999Z",
            "0001-01-01T00:00:00Z",
            "/Date(0)/",
            "/Date(-62135596800000)/",
            "/Date(253402300800000+0100)/",
            "x".repeat(300).leak()
        ])
        .prop_map(|s| json!(s)),
    ];
    let value = leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,3}", inner, 0..3).prop_map(|m| Value::Object(m.into_iter().collect()))
        ]
    });
    let body = prop::collection::btree_map(key, value, 0..6).prop_map(|m| Value::Object(m.into_iter().collect()));
    let cases = std::env::var("ROOST_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    for _ in 0..cases {
        let b = body.new_tree(&mut runner).expect("tree").current().to_string();
        for (method, path) in [(Method::POST, "/tables/todo"), (Method::PATCH, "/tables/todo/z")] {
            let r = app.request(method.clone(), path, &[("X-ZUMO-APPLICATION", &app.app_key), ("content-type", "application/json")], Some(&b)).await;
            assert!(r.status.as_u16() < 500, "{method} {b}: {} {}", r.status, r.text);
        }
    }
}

/// Filters built from the grammar's pieces and from raw noise: parsing, rendering and running them
/// must never produce a 500.
async fn random_filters_never_cause_a_500(app: TestApp) {
    app.create_table("todo", json!({})).await;
    app.seed("todo", &[json!({"s":"abc","n":1.5,"b":true,"d":"2014-01-01T00:00:00Z"}), json!({"s":"O'Neil","n":-3,"b":false,"d":"1999-12-31T23:59:59.999Z"})])
        .await;
    let atom = prop_oneof![
        Just("s".to_string()),
        Just("n".to_string()),
        Just("b".to_string()),
        Just("d".to_string()),
        Just("id".to_string()),
        Just("__createdAt".to_string()),
        Just("__version".to_string()),
        Just("missing".to_string()),
        Just("null".to_string()),
        Just("true".to_string()),
        any::<i32>().prop_map(|i| i.to_string()),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| format!("{f:e}")),
        "[a-zA-Z' %_]{0,8}".prop_map(|s| format!("'{}'", s.replace('\'', "''"))),
        Just("datetime'2014-01-01T00:00:00Z'".to_string()),
    ];
    let expr = atom.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), prop::sample::select(vec!["eq", "ne", "lt", "le", "gt", "ge", "and", "or", "add", "sub", "mul", "div", "mod"]), inner.clone())
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            inner.clone().prop_map(|a| format!("not {a}")),
            (
                prop::sample::select(vec![
                    "length", "tolower", "toupper", "trim", "year", "month", "day", "hour", "minute", "second", "floor", "ceiling", "round"
                ]),
                inner.clone()
            )
                .prop_map(|(f, a)| format!("{f}({a})")),
            (prop::sample::select(vec!["substringof", "startswith", "endswith", "indexof", "concat", "substring"]), inner.clone(), inner.clone())
                .prop_map(|(f, a, b)| format!("{f}({a},{b})")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("replace({a},{b},'x')")),
        ]
    });
    let noise = "[ -~]{0,30}";
    let n: u32 = std::env::var("ROOST_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(150);
    let mut runner = TestRunner::new(Config { cases: n, failure_persistence: None, ..Config::default() });
    let mut cases: Vec<String> = Vec::new();
    for _ in 0..n {
        cases.push(expr.new_tree(&mut runner).expect("tree").current());
    }
    for _ in 0..n / 3 {
        cases.push(noise.new_tree(&mut runner).expect("tree").current());
    }
    for f in cases {
        for q in [format!("$filter={}", enc(&f)), format!("$orderby={}", enc(&f))] {
            let r = app.get(&format!("/tables/todo?{q}")).await;
            assert!(r.status == StatusCode::OK || r.status == StatusCode::BAD_REQUEST, "{q}: {} {}", r.status, r.text);
        }
    }
}

async fn tenants_are_isolated(app: TestApp) {
    app.create_table("secrets", json!({"permissions":{"read":"public"}})).await;
    app.insert("secrets", json!({"id":"s","v":"mine"})).await;
    let other = app.new_tenant().await;
    let other_name = other["name"].as_str().unwrap();
    let other_key = other["application_key"].as_str().unwrap();
    let other_master = other["master_key"].as_str().unwrap();
    // The other tenant has no such table, whatever key it uses.
    let r = crate::helpers::send(app.client().get(format!("{}/t/{other_name}/tables/secrets", app.base)).header("X-ZUMO-MASTER", other_master)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // A table of the same name there holds its own rows.
    app.manage(Method::POST, &format!("/tenants/{other_name}/tables"), Some(json!({"name":"secrets"}))).await;
    let r = crate::helpers::send(app.client().get(format!("{}/t/{other_name}/tables/secrets", app.base)).header("X-ZUMO-APPLICATION", other_key)).await;
    assert_eq!(r.json(), json!([]));
    // Its keys do not open this tenant.
    app.manage(Method::PUT, &format!("/tenants/{}/tables/secrets/permissions", app.tenant), Some(json!({"read":"application"}))).await;
    for (h, v) in [("X-ZUMO-APPLICATION", other_key), ("X-ZUMO-MASTER", other_master)] {
        let r = app.request(Method::GET, "/tables/secrets", &[(h, v)], None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{h}");
    }
    // Identifiers cannot reach out of the tenant's schema or file.
    for f in [format!("{other_name}/secrets/v eq 'mine'"), "main/secrets eq 1".to_string()] {
        let r = app.request(Method::GET, &format!("/tables/secrets?$filter={}", enc(&f)), &[("X-ZUMO-MASTER", &app.master_key)], None).await;
        assert!(r.status == StatusCode::OK || r.status == StatusCode::BAD_REQUEST, "{f}");
    }
}
