//! Server scripts over HTTP (protocol §6): table scripts with execute/respond and their misuse
//! messages, the query object, the tables object, custom APIs, logs, limits and isolation.

use crate::helpers::{ids, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

crate::on_both_backends!(
    insert_script_adds_a_field_and_logs,
    saving_a_script_with_a_syntax_error_is_400_with_line_and_column,
    success_callbacks_hold_the_response_until_respond,
    respond_forms_and_misuse_messages,
    read_script_query_where_forms_restrict_results,
    read_script_mutates_results_before_respond,
    update_conflict_callback_lets_the_client_win,
    delete_error_callback_and_default_error_responses,
    no_script_with_the_master_key_skips_the_script,
    tables_object_api_and_its_validation_errors,
    custom_api_verbs_register_routes_permissions_and_405,
    shared_modules_app_settings_and_config,
    runaway_scripts_are_stopped_and_other_tenants_keep_answering,
    a_script_cannot_reach_other_tenants_files_or_private_addresses,
    mssql_runs_the_t_sql_subset_in_the_tenants_own_database,
    request_flags_query_components_and_late_responses,
    invocations_beyond_the_concurrency_cap_wait_for_a_slot,
    log_lines_are_capped_per_invocation_and_pruned_per_tenant,
);

async fn insert_script_adds_a_field_and_logs(app: TestApp) {
    app.create_table("todo", json!({})).await;
    app.script(
        "table",
        "todo.insert",
        "function insert(item, user, request) {\n  item.stamped = 'yes';\n  console.log('inserting %s for %j', item.text, user);\n  request.execute();\n}",
    )
    .await;
    let r = app.insert("todo", json!({"text": "milk", "when": "2024-02-03T04:05:06.789Z"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let body = r.json();
    assert_eq!(body["stamped"], "yes");
    assert_eq!(body["when"], "2024-02-03T04:05:06.789Z");
    assert!(r.header("location").unwrap().ends_with(&format!("/tables/todo/{}", body["id"].as_str().unwrap())));
    let row = app.get(&format!("/tables/todo/{}", body["id"].as_str().unwrap())).await.json();
    assert_eq!(row["stamped"], "yes");
    let line = app.wait_for_log("inserting milk").await;
    assert_eq!(line["message"], r#"inserting milk for {"level":"anonymous"}"#);
    assert_eq!(line["level"], "information");
    assert_eq!(line["source"], "/table/todo.insert.js");
}

async fn saving_a_script_with_a_syntax_error_is_400_with_line_and_column(app: TestApp) {
    app.create_table("todo", json!({})).await;
    let r = app.put_script("table", "todo.insert", "function insert(item, user, request) {\n  request.execute(;\n}", json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!((r.json()["line"].as_u64(), r.json()["column"].as_u64()), (Some(2), Some(19)));
    let r = app.put_script("table", "todo.insert", "function ins(item, user, request) { request.execute(); }", json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error().contains("'insert'"), "{}", r.text);
    let r = app.put_script("table", "nosuch.insert", "function insert(i,u,r) { r.execute(); }", json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = app.put_script("table", "todo.upsert", "function upsert() {}", json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // Nothing was stored: inserts still run without a script.
    assert_eq!(app.insert("todo", json!({"a": 1})).await.status, StatusCode::CREATED);
    // The CLI checks the same way.
    let dir = app.data.join("cli-script.js");
    std::fs::write(&dir, "function insert(item, user, request) {\n\n  var = 1;\n}").unwrap();
    let (ok, _, err) = app.cli(&["script", "set", &app.tenant, "table", "todo.insert", dir.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("line 3"), "{err}");
}

async fn success_callbacks_hold_the_response_until_respond(app: TestApp) {
    app.create_table("todo", json!({})).await;
    app.script(
        "table",
        "todo.insert",
        r#"function insert(item, user, request) {
            request.execute({ success: function () {
                item.seen = typeof item.id + ':' + (item.__createdAt instanceof Date);
                setTimeout(function () { request.respond(); }, 30);
            }, systemProperties: ['createdAt'] });
        }"#,
    )
    .await;
    let r = app.insert("todo", json!({"text": "x"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json()["seen"], "string:true");
    assert!(r.json()["__createdAt"].as_str().unwrap().ends_with('Z'));
}

async fn respond_forms_and_misuse_messages(app: TestApp) {
    app.create_table("todo", json!({})).await;
    let cases: &[(&str, u16, &str)] = &[
        ("request.respond(statusCodes.ACCEPTED, { custom: item.text });", 202, r#"{"custom":"x"}"#),
        ("request.respond(200, 'just text');", 200, r#""just text""#),
        ("var e = new Error('nope'); e.statusCode = 409; request.respond(e);", 409, "{\"statusCode\":409}"),
        ("request.execute(); request.execute();", 500, "Execute cannot be called more than once."),
        ("request.respond(200, {}); request.execute();", 200, "Execute cannot be called after respond has been called."),
        ("request.respond();", 500, "Execute must be called before respond."),
        ("request.respond(201, {}); request.respond(201, {});", 201, "Respond cannot be called more than once."),
        ("request.respond('200', {});", 500, "Invalid parameters passed to respond. The first parameter must be a valid status code."),
        ("request.execute({ parameters: {} });", 500, "Invalid callback options passed to 'execute'. Callback options must be an object with at least one 'success' or 'error' property of type 'function' or a systemProperties property of type 'Array'."),
        ("throw new Error('boom');", 500, "boom"),
    ];
    for (i, (code, status, expect)) in cases.iter().enumerate() {
        let body = format!("function insert(item, user, request) {{ {code} }}");
        app.script("table", "todo.insert", &body).await;
        let r = app.insert("todo", json!({"text": "x", "case": i})).await;
        assert_eq!(r.status.as_u16(), *status, "{code}: {}", r.text);
        if *status == 500 {
            assert_eq!(r.json(), json!({"code": 500, "error": "Error: Internal Server Error"}));
            let line = app.wait_for_log(expect).await;
            assert!(line["message"].as_str().unwrap().starts_with("Error in script '/table/todo.insert.js'."), "{line}");
            assert_eq!(line["level"], "error");
        } else if expect.starts_with('{') || expect.starts_with('"') {
            assert_eq!(r.json(), serde_json::from_str::<Value>(expect).unwrap(), "{code}");
        } else {
            app.wait_for_log(expect).await;
        }
    }
    // On versioned tables the message also names 'conflict'.
    let r = app.manage(Method::DELETE, &format!("/tenants/{}/scripts/table/todo.insert", app.tenant), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.script("table", "todo.update", "function update(item, user, request) { request.execute({ bad: 1 }); }").await;
    let id = app.insert("todo", json!({"text": "y"})).await.json()["id"].as_str().unwrap().to_string();
    let r = app.call(Method::PATCH, &format!("/tables/todo/{id}"), Some(json!({"text": "z"}))).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    app.wait_for_log("at least one 'success', 'error' or 'conflict' property").await;
}

async fn read_script_query_where_forms_restrict_results(app: TestApp) {
    app.create_table("movies", json!({"permissions": {"read": "public"}})).await;
    app.seed(
        "movies",
        &[
            json!({"id": "a", "title": "Alien", "year": 1979, "rating": "R"}),
            json!({"id": "b", "title": "Brazil", "year": 1985, "rating": "R"}),
            json!({"id": "c", "title": "Cars", "year": 2006, "rating": "G"}),
            json!({"id": "d", "title": "Dune", "year": 1984, "rating": "PG"}),
        ],
    )
    .await;
    let cases = [
        ("query.where({ rating: 'R' });", vec!["a", "b"]),
        ("query.where(function (lo, hi) { return this.year >= lo && this.year < hi; }, 1980, 2000);", vec!["b", "d"]),
        ("query.where(function (rs) { return this.rating in rs; }, ['G', 'PG']);", vec!["c", "d"]),
        ("query.where(function () { return this.title.toLowerCase().indexOf('a') === 1; });", vec!["c"]),
        ("query.where('year gt ? and rating eq ?', 1980, 'R');", vec!["b"]),
    ];
    for (code, expect) in cases {
        app.script("table", "movies.read", &format!("function read(query, user, request) {{ {code} request.execute(); }}")).await;
        // The request's own filter is ANDed with the script's.
        let rows = app.rows("/tables/movies?$orderby=id").await;
        assert_eq!(ids(&rows), expect, "{code}");
    }
    app.script("table", "movies.read", "function read(query, user, request) { query.where({ rating: 'R' }); request.execute(); }").await;
    assert_eq!(ids(&app.rows("/tables/movies?$filter=year%20gt%201980").await), vec!["b"]);
    // Script ordering comes after the request's; paging applies to the result.
    app.script(
        "table",
        "movies.read",
        "function read(query, user, request) { query.where({ rating: 'R' }).orderByDescending('year').take(1); request.execute(); }",
    )
    .await;
    assert_eq!(ids(&app.rows("/tables/movies").await), vec!["b"]);
    assert_eq!(ids(&app.rows("/tables/movies?$orderby=title").await), vec!["a"]);
    // A predicate with a free variable fails the request (and says why in the log).
    app.script(
        "table",
        "movies.read",
        "function read(query, user, request) { var y = 1; query.where(function () { return this.year > y; }); request.execute(); }",
    )
    .await;
    assert_eq!(app.get("/tables/movies").await.status, StatusCode::INTERNAL_SERVER_ERROR);
    app.wait_for_log("The variable 'y' is not defined in the predicate").await;
    // getComponents and select with names.
    app.script(
        "table",
        "movies.read",
        "function read(query, user, request) { query.select('title'); var c = query.getComponents(); console.log('%j', [c.table, c.take, c.selections]); request.execute(); }",
    )
    .await;
    let rows = app.rows("/tables/movies?$top=2").await;
    assert_eq!(rows, vec![json!({"title": "Alien"}), json!({"title": "Brazil"})]);
    app.wait_for_log(r#"["movies",2,["title"]]"#).await;
}

async fn read_script_mutates_results_before_respond(app: TestApp) {
    app.create_table("todo", json!({})).await;
    app.seed("todo", &[json!({"id": "1", "text": "a"}), json!({"id": "2", "text": "b"})]).await;
    app.script(
        "table",
        "todo.read",
        r#"function read(query, user, request) {
            request.execute({ success: function (results) {
                results.forEach(function (r) { r.upper = r.text.toUpperCase(); r.byId = query.id || null; });
                request.respond();
            } });
        }"#,
    )
    .await;
    let rows = app.rows("/tables/todo").await;
    assert_eq!(rows.iter().map(|r| r["upper"].clone()).collect::<Vec<_>>(), vec![json!("A"), json!("B")]);
    let one = app.get("/tables/todo/2").await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text);
    assert_eq!((one.json()["upper"].clone(), one.json()["byId"].clone()), (json!("B"), json!("2")));
    assert_eq!(app.get("/tables/todo/3").await.status, StatusCode::NOT_FOUND);
    // Inline count survives the script.
    let r = app.get("/tables/todo?$inlinecount=allpages&$top=1").await;
    assert_eq!(r.json()["count"], 2);
    assert_eq!(r.json()["results"][0]["upper"], "A");
}

async fn update_conflict_callback_lets_the_client_win(app: TestApp) {
    app.create_table("todo", json!({})).await;
    app.insert("todo", json!({"id": "x", "text": "one"})).await;
    let stale = app.get("/tables/todo/x?__systemproperties=__version").await.header("etag").unwrap();
    app.call(Method::PATCH, "/tables/todo/x", Some(json!({"text": "two"}))).await;
    app.script(
        "table",
        "todo.update",
        r#"function update(item, user, request) {
            request.execute({ conflict: function (server) {
                console.log('conflict with %s', server.text);
                request.execute();
            } });
        }"#,
    )
    .await;
    let r = app
        .client()
        .patch(app.url("/tables/todo/x"))
        .header("X-ZUMO-APPLICATION", &app.app_key)
        .header("If-Match", stale)
        .json(&json!({"text": "three"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.wait_for_log("conflict with two").await;
    assert_eq!(app.get("/tables/todo/x").await.json()["text"], "three");
    // Without a conflict callback the 412 with the server item goes out.
    app.script("table", "todo.update", "function update(item, user, request) { request.execute(); }").await;
    let r = app
        .request(
            Method::PATCH,
            "/tables/todo/x",
            &[("X-ZUMO-APPLICATION", &app.app_key), ("If-Match", "\"AAAAAAAAAAA=\""), ("Content-Type", "application/json")],
            Some(r#"{"text":"four"}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{}", r.text);
    assert_eq!(r.json()["text"], "three");
}

async fn delete_error_callback_and_default_error_responses(app: TestApp) {
    app.create_table("todo", json!({})).await;
    app.script(
        "table",
        "todo.delete",
        r#"function del(id, user, request) {
            request.execute({ error: function (err) { request.respond(statusCodes.BAD_REQUEST, { why: err.message, status: err.statusCode, id: id }); } });
        }"#,
    )
    .await;
    let r = app.call(Method::DELETE, "/tables/todo/missing", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.json(), json!({"why": "An item with id 'missing' does not exist.", "status": 404, "id": "missing"}));
    app.script("table", "todo.delete", "function del(id, user, request) { request.execute(); }").await;
    assert_eq!(app.call(Method::DELETE, "/tables/todo/missing", None).await.status, StatusCode::NOT_FOUND);
    app.insert("todo", json!({"id": "here"})).await;
    assert_eq!(app.call(Method::DELETE, "/tables/todo/here", None).await.status, StatusCode::NO_CONTENT);
    // Validation happens before the script, as without one.
    app.script("table", "todo.insert", "function insert(item, user, request) { console.log('ran'); request.execute(); }").await;
    let r = app.insert("todo", json!({"__secret": 1})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // A value the script sets is validated when it executes.
    app.script("table", "todo.insert", "function insert(item, user, request) { item.nested = { a: 1 }; request.execute(); }").await;
    let r = app.insert("todo", json!({"a": 1})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error(), "Error: The value of property 'nested' is of type 'object' which is not a supported type.");
}

async fn no_script_with_the_master_key_skips_the_script(app: TestApp) {
    app.create_table("todo", json!({})).await;
    app.script("table", "todo.insert", "function insert(item, user, request) { request.respond(403, { blocked: true }); }").await;
    assert_eq!(app.insert("todo", json!({"a": 1})).await.status, StatusCode::FORBIDDEN);
    let r = app
        .request(Method::POST, "/tables/todo?noScript=true", &[("X-ZUMO-APPLICATION", &app.app_key), ("Content-Type", "application/json")], Some(r#"{"a":1}"#))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .request(Method::POST, "/tables/todo?noScript=true", &[("X-ZUMO-MASTER", &app.master_key), ("Content-Type", "application/json")], Some(r#"{"a":1}"#))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // Scripts see custom parameters and the user level.
    app.script(
        "table",
        "todo.insert",
        "function insert(item, user, request) { request.respond(200, { p: request.parameters, op: request.operation, level: user.level }); }",
    )
    .await;
    let r =
        app.request(Method::POST, "/tables/todo?mode=fast&x=1", &[("X-ZUMO-MASTER", &app.master_key), ("Content-Type", "application/json")], Some("{}")).await;
    assert_eq!(r.json(), json!({"p": {"mode": "fast", "x": "1"}, "op": "insert", "level": "admin"}));
}

async fn tables_object_api_and_its_validation_errors(app: TestApp) {
    app.create_table("items", json!({})).await;
    app.create_table("counters", json!({"id_kind": "integer"})).await;
    let api = r#"
    exports.post = function (req, res) {
        var items = req.service.tables.getTable('Items'), out = {};
        items.insert({ id: 'k1', n: 1, when: new Date(Date.UTC(2020, 0, 2)) }, { success: function (inserted) {
            out.inserted = [inserted.id, typeof inserted.__createdAt];
            items.where(function (min) { return this.n >= min; }, 1).read({ success: function (rows) {
                out.read = rows.map(function (r) { return [r.id, r.when instanceof Date ? r.when.toISOString() : r.when]; });
                items.update({ id: 'k1', n: 5 }, { success: function (u) {
                    items.lookup('k1', { success: function (one) {
                        out.lookup = one.n;
                        items.lookup('nope', { error: function (e) {
                            out.lookupError = [e.statusCode, e.message];
                            items.del('k1', { success: function (x) {
                                out.deleted = x;
                                var errors = [];
                                [function () { items.insert(null); }, function () { items.insert(5); }, function () { items.update({ n: 1 }); },
                                 function () { items.lookup({}); }, function () { req.service.tables.getTable(''); },
                                 function () { items.read(req.service.tables.getTable('counters').where({ a: 1 })); }].forEach(function (f) {
                                    try { f(); errors.push('no error'); } catch (e) { errors.push(e.message); }
                                });
                                out.errors = errors;
                                req.service.tables.getTable('counters').insert({ v: 1 }, { success: function (c) {
                                    out.counter = typeof c.id;
                                    res.send(200, out);
                                } });
                            } });
                        } });
                    } });
                } });
            } });
        }, systemProperties: ['*'] });
    };"#;
    let r = app.put_script("api", "flow", api, json!({"permissions": {"routes": {"*": {"permission": "application"}}}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.call(Method::POST, "/api/flow", Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.json(),
        json!({
            "inserted": ["k1", "object"],
            "read": [["k1", "2020-01-02T00:00:00.000Z"]],
            "lookup": 5,
            "lookupError": [404, "An item with id 'nope' does not exist."],
            "deleted": null,
            "errors": [
                "Arguments to table operations cannot be null or undefined.",
                "Operation 'insert' on table 'Items' failed. The parameter 'item' must be an object.",
                "Operation 'update' on table 'Items' failed. The parameter 'item' must be an object with an 'id' property.",
                "Operation 'lookup' on table 'Items' failed. The id argument is invalid.",
                "Table name cannot be null or empty.",
                "Cannot get the results of a query for table 'counters' via table 'Items'.",
            ],
            "counter": "number",
        })
    );
    // tables calls run no table scripts.
    app.script("table", "items.insert", "function insert(item, user, request) { request.respond(500, {}); }").await;
    let r = app.call(Method::POST, "/api/flow", Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn custom_api_verbs_register_routes_permissions_and_405(app: TestApp) {
    let api = r#"
    exports.get = function (req, res) { res.send(200, { q: req.query, user: req.user, h: req.get('x-custom') }); };
    exports.post = function (req, res) { res.send(201, { body: req.body }); };
    exports.register = function (api) {
        api.get('/title/:title', function (req, res) { res.json({ title: req.params.title }); });
        api.put('echo/:a/:b', function (req, res) { res.send(req.params.a + '+' + req.params.b); });
    };"#;
    let perms = json!({"routes": {"*": {"get": {"permission": "public"}, "post": {"permission": "application"}}, "/title/:title": {"permission": "public"}, "echo/:a/:b": {"put": {"permission": "user"}}}});
    let r = app.put_script("api", "movies", api, json!({"permissions": perms})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.request(Method::GET, "/api/movies?x=1", &[("x-custom", "v")], None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json(), json!({"q": {"x": "1"}, "user": {"level": "anonymous"}, "h": "v"}));
    assert!(r.header("x-zumo-version").is_some());
    assert_eq!(app.request(Method::POST, "/api/movies", &[("Content-Type", "application/json")], Some("{}")).await.status, StatusCode::UNAUTHORIZED);
    let r = app.call(Method::POST, "/api/movies", Some(json!({"k": [1]}))).await;
    assert_eq!((r.status, r.json()), (StatusCode::CREATED, json!({"body": {"k": [1]}})));
    let r = app.request(Method::GET, "/api/MOVIES/title/Alien%20Story", &[], None).await;
    assert_eq!(r.json(), json!({"title": "Alien Story"}));
    assert_eq!(app.call(Method::PUT, "/api/movies/echo/1/2", None).await.status, StatusCode::UNAUTHORIZED);
    let token = app.cli(&["tenant", "token", &app.tenant, "--user-id", "Custom:7"]).1.trim().to_string();
    let r = app.request(Method::PUT, "/api/movies/echo/1/2", &[("X-ZUMO-AUTH", &token)], None).await;
    assert_eq!((r.status, r.text.as_str(), r.header("content-type").unwrap().as_str()), (StatusCode::OK, "1+2", "text/html"));
    let r = app.request(Method::DELETE, "/api/movies/echo/1/2", &[("X-ZUMO-MASTER", &app.master_key)], None).await;
    assert_eq!((r.status, r.header("allow")), (StatusCode::METHOD_NOT_ALLOWED, Some("PUT".to_string())));
    assert_eq!(app.request(Method::GET, "/api/nosuch", &[], None).await.status, StatusCode::NOT_FOUND);
    // Without permissions every route needs the master key (§5.1).
    app.script("api", "secret", "exports.get = function (req, res) { res.send(200, { ok: true }); };").await;
    assert_eq!(app.call(Method::GET, "/api/secret", None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.request(Method::GET, "/api/secret", &[("X-ZUMO-MASTER", &app.master_key)], None).await.status, StatusCode::OK);
    // A throwing handler is a 500 with a log line.
    app.script("api", "broken", "exports.get = function (req, res) { null.x; };").await;
    let r = app.request(Method::GET, "/api/broken", &[("X-ZUMO-MASTER", &app.master_key)], None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    app.wait_for_log("Error in script '/api/broken.js'.").await;
}

async fn shared_modules_app_settings_and_config(app: TestApp) {
    app.create_table("todo", json!({})).await;
    let (ok, _, err) = app.cli(&["tenant", "set", &app.tenant, "--app-setting", "GREETING=hello", "--app-setting", "N=3"]);
    assert!(ok, "{err}");
    app.script(
        "shared",
        "util",
        "var cfg = require('mobileservice-config'); exports.greet = function (n) { return process.env.GREETING + ' ' + n + ' ' + cfg.appSettings.N; };",
    )
    .await;
    app.script(
        "table",
        "todo.insert",
        "var util = require('../shared/util'); function insert(item, user, request) { item.greeting = util.greet(item.name); request.execute(); }",
    )
    .await;
    let r = app.insert("todo", json!({"name": "ann"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json()["greeting"], "hello ann 3");
    app.script("table", "todo.insert", "function insert(item, user, request) { require('../shared/nothere'); }").await;
    assert_eq!(app.insert("todo", json!({})).await.status, StatusCode::INTERNAL_SERVER_ERROR);
    app.wait_for_log("Cannot find module '../shared/nothere'").await;
}

async fn runaway_scripts_are_stopped_and_other_tenants_keep_answering(app: TestApp) {
    app.create_table("todo", json!({})).await;
    let (ok, _, err) = app.cli(&["tenant", "set", &app.tenant, "--script-cpu-ms", "400", "--script-memory-mb", "24", "--request-timeout-ms", "1500"]);
    assert!(ok, "{err}");
    // Another tenant with an ordinary table answers throughout.
    let other = app.new_tenant().await;
    let other_name = other["name"].as_str().unwrap().to_string();
    let r = app.manage(Method::POST, &format!("/tenants/{other_name}/tables"), Some(json!({"name": "t", "permissions": {"read": "public"}}))).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let other_url = format!("{}/t/{other_name}/tables/t", app.base);

    app.script("table", "todo.insert", "function insert(item, user, request) { while (true) {} }").await;
    let started = Instant::now();
    let spin = app.insert("todo", json!({}));
    let probe = async {
        let mut n = 0;
        let mut worst = Duration::ZERO;
        while started.elapsed() < Duration::from_millis(350) {
            let t = Instant::now();
            let r = app.client().get(&other_url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            worst = worst.max(t.elapsed());
            n += 1;
        }
        (n, worst)
    };
    let (r, (n, worst)) = tokio::join!(spin, probe);
    let took = started.elapsed();
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(took < Duration::from_millis(440), "the busy loop ran {took:?} for a 400 ms limit");
    assert!(n >= 10 && worst < Duration::from_millis(100), "other tenant: {n} answers, worst {worst:?}");
    app.wait_for_log("exceeded its CPU time limit of 400 ms").await;

    app.script("table", "todo.insert", "function insert(item, user, request) { var a = []; while (true) { a.push(new Array(50000).fill(a.length)); } }").await;
    assert_eq!(app.insert("todo", json!({})).await.status, StatusCode::INTERNAL_SERVER_ERROR);
    app.wait_for_log("exceeded the memory limit of 24 MB").await;

    app.script("table", "todo.insert", "function insert(item, user, request) { setTimeout(function () {}, 10); }").await;
    let started = Instant::now();
    let r = app.insert("todo", json!({})).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert!(started.elapsed() >= Duration::from_millis(1400) && started.elapsed() < Duration::from_millis(2500), "{:?}", started.elapsed());
    // The tenant still works afterwards.
    app.script("table", "todo.insert", "function insert(item, user, request) { request.execute(); }").await;
    assert_eq!(app.insert("todo", json!({})).await.status, StatusCode::CREATED);
}

async fn a_script_cannot_reach_other_tenants_files_or_private_addresses(app: TestApp) {
    // Another tenant's table, by name.
    let other = app.new_tenant().await;
    let other_name = other["name"].as_str().unwrap().to_string();
    let r = app.manage(Method::POST, &format!("/tenants/{other_name}/tables"), Some(json!({"name": "secrets"}))).await;
    assert_eq!(r.status, StatusCode::CREATED);
    // A real HTTP receiver on loopback.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let receiver = axum::Router::new().route("/hello", axum::routing::get(|| async { "hi from loopback" }));
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let api = format!(
        r#"exports.get = function (req, res) {{
        var out = {{}};
        req.service.tables.getTable('secrets').read({{ error: function (e) {{
            out.table = e.statusCode;
            out.fs = (function () {{ try {{ require('fs'); return 'loaded'; }} catch (e) {{ return e.code; }} }})();
            out.std = typeof std + ' ' + typeof os;
            require('request')('http://127.0.0.1:{port}/hello', function (err, resp, body) {{
                out.loopback = err ? err.message.split(':')[0] : body;
                res.send(200, out);
            }});
        }} }});
    }};"#
    );
    let r = app.put_script("api", "probe", &api, json!({"permissions": {"routes": {"*": {"permission": "public"}}}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.request(Method::GET, "/api/probe", &[], None).await;
    assert_eq!(r.json(), json!({"table": 404, "fs": "MODULE_NOT_FOUND", "std": "undefined undefined", "loopback": "connect EACCES 127.0.0.1"}), "{}", r.text);
    // Allowed explicitly, the same call goes through.
    let (ok, _, err) = app.cli(&["tenant", "set", &app.tenant, "--outbound-allow", "127.0.0.1"]);
    assert!(ok, "{err}");
    let r = app.request(Method::GET, "/api/probe", &[], None).await;
    assert_eq!(r.json()["loopback"], "hi from loopback", "{}", r.text);
}

async fn mssql_runs_the_t_sql_subset_in_the_tenants_own_database(app: TestApp) {
    app.create_table("todo", json!({})).await;
    app.seed(
        "todo",
        &[
            json!({"id": "a", "text": "Alpha", "complete": false, "n": 1, "when": "2024-01-02T03:04:05.678Z"}),
            json!({"id": "b", "text": "Beta", "complete": false, "n": 2, "when": "2024-01-02T03:04:05.678Z"}),
            json!({"id": "c", "text": "Gamma", "complete": true, "n": 3, "when": "2024-01-02T03:04:05.678Z"}),
        ],
    )
    .await;
    let api = r#"
    exports.post = function (req, res) {
        var sql = req.service.mssql, out = {};
        var fail = function (what) { return function (err) { out[what] = err.message; next(); }; };
        var steps = [
            function () { sql.query('SELECT TOP 2 [ID], [TEXT], [when] FROM [todo] WHERE complete = ? ORDER BY n DESC', [false], { success: function (rows) {
                out.top = rows.map(function (r) { return [r.id, r.text, r.when instanceof Date]; }); next(); } }); },
            function () { var sets = []; sql.query('UPDATE todo SET complete = 1 WHERE n > ?; SELECT COUNT(*) AS c FROM todo WHERE complete = 1', 1, { success: function (rows, more) {
                sets.push([rows.length ? rows[0].c : null, more]); if (!more) { out.batch = sets; next(); } } }); },
            function () { sql.query('INSERT INTO todo (text, n) VALUES (?, ?)', ['Delta', 4], { success: function () { next(); } }); },
            function () { sql.query('SELECT *, LEN(text) AS l, GETUTCDATE() AS now FROM todo WHERE text = ?', 'DELTA', { success: function (rows) {
                var r = rows[0]; out.inserted = [typeof r.id, r.id.length, r.__createdAt instanceof Date, Buffer.isBuffer(r.__version), r.l, r.now instanceof Date, Object.keys(r).indexOf('__seq')]; next(); } }); },
            function () { sql.queryRaw('SELECT id, n FROM todo WHERE id = ?', ['a'], { success: function (raw) { out.raw = raw; next(); } }); },
            function () { sql.query('DROP TABLE todo', { error: fail('drop') }); },
            function () { sql.query('SELECT * FROM roost.tenants', [], { error: fail('catalog') }); },
            function () { sql.query('SELECT pg_sleep(1)', [], { error: fail('func') }); },
            function () { sql.query('SELECT * FROM secrets', [], { error: fail('other') }); },
            function () { sql.query('TRUNCATE TABLE todo; SELECT COUNT(*) AS c FROM todo', [], { success: function (rows, more) { if (!more) { out.truncated = rows[0].c; next(); } } }); },
        ];
        function next() { var s = steps.shift(); if (s) s(); else res.send(200, out); }
        next();
    };"#;
    let r = app.put_script("api", "sql", api, json!({"permissions": {"routes": {"*": {"permission": "application"}}}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.call(Method::POST, "/api/sql", Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{} {:?}", r.text, app.logs().await);
    let out = r.json();
    assert_eq!(out["top"], json!([["b", "Beta", true], ["a", "Alpha", true]]));
    assert_eq!(out["batch"], json!([[null, true], [2, false]]));
    assert_eq!(out["inserted"], json!(["string", 36, true, true, 5, true, -1]));
    assert_eq!(out["raw"]["meta"][0]["name"], "id");
    assert_eq!(out["raw"]["rows"], json!([["a", 1]]));
    assert!(out["drop"].as_str().unwrap().contains("'DROP TABLE' is not supported"), "{out}");
    assert!(out["catalog"].as_str().unwrap().contains("Invalid object name"), "{out}");
    assert!(out["func"].as_str().unwrap().contains("The function 'pg_sleep' is not supported"), "{out}");
    assert!(out["other"].as_str().unwrap().contains("Invalid object name 'secrets'"), "{out}");
    assert_eq!(out["truncated"], 0);
}

async fn request_flags_query_components_and_late_responses(app: TestApp) {
    app.create_table("notes", json!({"soft_delete": true})).await;
    app.seed("notes", &[json!({"id": "1", "n": 1}), json!({"id": "2", "n": 2}), json!({"id": "3", "n": 3})]).await;
    // Undelete runs the update script with request.undelete.
    app.script(
        "table",
        "notes.update",
        "function update(item, user, request) { console.log('undelete=%s op=%s', request.undelete, request.operation); request.execute(); }",
    )
    .await;
    assert_eq!(app.call(Method::DELETE, "/tables/notes/3", None).await.status, StatusCode::NO_CONTENT);
    let r = app.call(Method::POST, "/tables/notes/3", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.wait_for_log("undelete=true op=update").await;
    assert_eq!(app.call(Method::DELETE, "/tables/notes/3", None).await.status, StatusCode::NO_CONTENT);
    // execute({includeDeleted}) on a soft-delete table; select(function), skip and the total count.
    app.script(
        "table",
        "notes.read",
        r#"function read(query, user, request) {
            query.select(function () { return this.id + ':' + this.n; }).orderByDescending('n').skip(1).includeTotalCount();
            console.log('%s %s', tables.current.getTableName(), query.toOData());
            var copy = new (Object.getPrototypeOf(query).constructor)('notes').setComponents(query.getComponents());
            console.log('copy %s', copy.toOData());
            user.getIdentities({ success: function (ids) { console.log('identities %j', ids); } });
            request.execute({ includeDeleted: true });
        }"#,
    )
    .await;
    let r = app.get("/tables/notes").await;
    assert_eq!(r.json(), json!({"results": ["2:2", "1:1"], "count": 3}), "{}", r.text);
    app.wait_for_log("notes /notes?$orderby=n desc&$skip=1&$top=50&$inlinecount=allpages").await;
    app.wait_for_log("copy /notes?$orderby=n desc&$skip=1&$top=50&$inlinecount=allpages").await;
    app.wait_for_log("identities null").await;
    // A response after the default response went out only logs a warning.
    app.script("table", "notes.insert", "function insert(item, user, request) { request.execute({ success: function () { request.respond(201, item); setTimeout(function () { request.respond(200, {}); }, 5); } }); }").await;
    let r = app.insert("notes", json!({"n": 9})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    app.wait_for_log("Respond cannot be called more than once.").await;
    // The late respond waits well past the insert (a PostgreSQL insert on a busy machine can take tens of ms).
    app.script(
        "table",
        "notes.insert",
        "function insert(item, user, request) { request.execute(); setTimeout(function () { request.respond(200, {}); }, 400); }",
    )
    .await;
    assert_eq!(app.insert("notes", json!({"n": 10})).await.status, StatusCode::CREATED);
    let w = app.wait_for_log("Unable to write to the response - it has already been written.").await;
    assert_eq!(w["level"], "warning");
    // Integer-id tables have no versions: 'conflict' is not a valid option there.
    app.create_table("counters", json!({"id_kind": "integer"})).await;
    app.insert("counters", json!({"v": 1})).await;
    app.script("table", "counters.update", "function update(item, user, request) { request.execute({ conflict: function () {} }); }").await;
    assert_eq!(app.call(Method::PATCH, "/tables/counters/1", Some(json!({"v": 2}))).await.status, StatusCode::INTERNAL_SERVER_ERROR);
    app.wait_for_log("at least one 'success' or 'error' property of type 'function'").await;
}

async fn invocations_beyond_the_concurrency_cap_wait_for_a_slot(app: TestApp) {
    let api = "exports.get = function (req, res) { setTimeout(function () { res.send(200, { ok: true }); }, 300); };";
    let r = app.put_script("api", "slow", api, json!({"permissions": {"routes": {"*": {"permission": "public"}}}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let three = || async {
        let started = Instant::now();
        let calls = (0..3).map(|_| app.request(Method::GET, "/api/slow", &[], None));
        for r in futures::future::join_all(calls).await {
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
        started.elapsed()
    };
    // Three at once with room for three: about one timer's worth.
    let together = three().await;
    assert!(together < Duration::from_millis(800), "{together:?}");
    // With one slot, each waits for the one before (a waiting script holds its slot).
    let (ok, _, err) = app.cli(&["tenant", "set", &app.tenant, "--script-max-concurrent", "1"]);
    assert!(ok, "{err}");
    let queued = three().await;
    assert!(queued >= Duration::from_millis(900), "{queued:?}");
}

async fn log_lines_are_capped_per_invocation_and_pruned_per_tenant(app: TestApp) {
    app.create_table("todo", json!({})).await;
    app.script(
        "table",
        "todo.insert",
        "function insert(item, user, request) { for (var i = 0; i < 1500; i++) { console.log('line %d', i); } request.execute(); }",
    )
    .await;
    assert_eq!(app.insert("todo", json!({})).await.status, StatusCode::CREATED);
    app.wait_for_log("further lines are dropped").await;
    let logs = app.logs().await;
    assert_eq!(logs.len(), roost_scripts::MAX_LOG_LINES, "{}", logs.len());
    assert_eq!(
        logs[0]["message"],
        "line 0",
        "{:?}",
        logs.iter().take(3).chain(logs.iter().skip(260).take(3)).map(|l| (l["id"].clone(), l["message"].clone())).collect::<Vec<_>>()
    );
    assert_eq!(logs[998]["message"], "line 998");
    // Retention keeps the newest lines.
    app.state.storage.prune_logs(&app.tenant, 5).await.unwrap();
    let kept = app.logs().await;
    assert_eq!(kept.len(), 5);
    assert!(kept[4]["message"].as_str().unwrap().contains("further lines are dropped"));
    assert_eq!(kept[0]["message"], "line 995");
}
