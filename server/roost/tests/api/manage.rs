//! `/manage/v1` and the CLI: tenants, keys, settings, tables, columns, permissions; a CLI change takes
//! effect on the running server at once.

use crate::helpers::{send, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

crate::on_both_backends!(
    configuration_comes_from_defaults_file_and_environment,
    management_api_requires_the_admin_token,
    tenant_lifecycle_through_the_api,
    table_management_through_the_api,
    cli_changes_apply_to_the_running_server_at_once,
    scripts_logs_and_job_runs_through_the_api_and_the_cli,
);

async fn configuration_comes_from_defaults_file_and_environment(app: TestApp) {
    let (ok, out, _) = app.cli(&["default-config"]);
    assert!(ok && out.contains("listen = \"127.0.0.1:8080\"") && out.contains("database_url"));
    let (ok, out, _) = app.cli(&["--help"]);
    for var in ["ROOST_LISTEN", "ROOST_DATA", "ROOST_DATABASE_URL", "ROOST_ADMIN_TOKEN", "ROOST_TENANT_DOMAIN", "ROOST_LOG"] {
        assert!(ok && out.contains(var), "--help documents {var}");
    }
    let file = app.data.join("bad.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:1\"\nmystery = 1\n").unwrap();
    let (ok, _, err) = app.cli(&["--config", file.to_str().unwrap(), "tenant", "list"]);
    assert!(!ok && err.contains("unknown setting `mystery`"), "{err}");
    std::fs::write(&file, "listen = \"not an address\"\n").unwrap();
    let (ok, _, err) = app.cli(&["--config", file.to_str().unwrap(), "tenant", "list"]);
    assert!(!ok && err.contains("listen"), "{err}");
    // The file's data folder is used unless ROOST_DATA overrides it (the helper sets ROOST_DATA).
    std::fs::write(&file, "data = \"/nonexistent/never\"\n").unwrap();
    let (ok, out, err) = app.cli(&["--config", file.to_str().unwrap(), "tenant", "list"]);
    assert!(ok && out.contains(&app.tenant), "{out} {err}");
}

async fn management_api_requires_the_admin_token(app: TestApp) {
    let r = send(app.client().get(format!("{}/manage/v1/tenants", app.base))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = send(app.client().get(format!("{}/manage/v1/tenants", app.base)).bearer_auth("wrong")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = send(app.client().get(format!("{}/manage/v1/tenants", app.base)).header("X-ZUMO-MASTER", &app.master_key)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a tenant's master key is not a platform credential");
    assert_eq!(app.manage(Method::GET, "/tenants", None).await.status, StatusCode::OK);
}

async fn tenant_lifecycle_through_the_api(app: TestApp) {
    let name = crate::helpers::random_name("life-");
    let r = app.manage(Method::POST, "/tenants", Some(json!({"name": name}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let t = r.json();
    assert_eq!(t["name"], name.to_lowercase());
    assert_eq!(
        t["settings"],
        json!({"dynamic_schema":true,"cors_origins":["localhost"],"max_body_kb":1024,"request_timeout_ms":30000,"require_https":false,
        "script_cpu_ms":1000,"script_memory_mb":64,"script_max_concurrent":32,"app_settings":{},"outbound_allow":[],
        "packages_install_seconds":300,"packages_max_mb":200,"login_token_days":30,"log_retention_days":7,"log_max_mb":50})
    );
    assert_ne!(t["application_key"], t["master_key"]);
    assert_eq!(app.manage(Method::POST, "/tenants", Some(json!({"name": name.to_uppercase()}))).await.status, StatusCode::CONFLICT);
    for bad in ["", "1abc", "has space", "under_score", "x".repeat(49).as_str(), "a'b"] {
        let r = app.manage(Method::POST, "/tenants", Some(json!({"name": bad}))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}: {}", r.text);
    }
    let r = app.manage(Method::POST, "/tenants", Some(json!({"nom": 1}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["error"].is_string());
    let list = app.manage(Method::GET, "/tenants", None).await.json();
    assert!(list.as_array().unwrap().iter().any(|x| x["name"] == name.to_lowercase()));
    assert_eq!(app.manage(Method::GET, &format!("/tenants/{}", name.to_uppercase()), None).await.json()["name"], name.to_lowercase());
    let r = app.manage(Method::PATCH, &format!("/tenants/{name}/settings"), Some(json!({"request_timeout_ms": 5}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app.manage(Method::POST, &format!("/tenants/{name}/keys/other/regenerate"), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.manage(Method::DELETE, &format!("/tenants/{name}"), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.manage(Method::GET, &format!("/tenants/{name}"), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.manage(Method::DELETE, &format!("/tenants/{name}"), None).await.status, StatusCode::NOT_FOUND);
    let r = send(app.client().get(format!("{}/t/{name}/status", app.base))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // The name can be reused, with fresh, empty storage.
    assert_eq!(app.manage(Method::POST, "/tenants", Some(json!({"name": name}))).await.status, StatusCode::CREATED);
    assert_eq!(app.manage(Method::GET, &format!("/tenants/{name}/tables"), None).await.json(), json!([]));
}

async fn table_management_through_the_api(app: TestApp) {
    let t = format!("/tenants/{}/tables", app.tenant);
    let r = app.manage(Method::POST, &t, Some(json!({"name":"Orders","soft_delete":true,"permissions":{"read":"public"}}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let body = r.json();
    assert_eq!(body["permissions"], json!({"insert":"application","read":"public","update":"application","delete":"application"}));
    let names: Vec<&str> = body["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["id", "__createdAt", "__updatedAt", "__version", "__deleted"]);
    assert_eq!(app.manage(Method::POST, &t, Some(json!({"name":"orders"}))).await.status, StatusCode::CONFLICT);
    for bad in ["1x", "a-b", "__users", "drop table x", "x".repeat(129).as_str()] {
        assert_eq!(app.manage(Method::POST, &t, Some(json!({"name": bad}))).await.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(app.manage(Method::POST, &t, Some(json!({"name":"x","id_kind":"integer","soft_delete":true}))).await.status, StatusCode::BAD_REQUEST);
    // Columns.
    let r = app.manage(Method::POST, &format!("{t}/orders/columns"), Some(json!({"name":"total","type":"number"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.json()["columns"].as_array().unwrap().iter().any(|c| c == &json!({"name":"total","type":"number","system":false})));
    assert_eq!(app.manage(Method::POST, &format!("{t}/orders/columns"), Some(json!({"name":"TOTAL","type":"string"}))).await.status, StatusCode::CONFLICT);
    assert_eq!(app.manage(Method::POST, &format!("{t}/orders/columns"), Some(json!({"name":"x","type":"blob"}))).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.manage(Method::POST, &format!("{t}/orders/columns"), Some(json!({"name":"__x","type":"string"}))).await.status, StatusCode::BAD_REQUEST);
    let r = app.insert("orders", json!({"id":"o1","total":"12.5"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(app.get("/tables/orders/o1").await.json()["total"], 12.5);
    assert_eq!(app.manage(Method::DELETE, &format!("{t}/orders/columns/__version"), None).await.status, StatusCode::BAD_REQUEST);
    let r = app.manage(Method::DELETE, &format!("{t}/orders/columns/Total"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.get("/tables/orders/o1").await.json(), json!({"id":"o1"}));
    // Permissions.
    let r = app.manage(Method::PUT, &format!("{t}/orders/permissions"), Some(json!({"read":"admin","insert":"public"}))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(app.get("/tables/orders").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.request(Method::POST, "/tables/orders", &[("content-type", "application/json")], Some("{}")).await.status, StatusCode::CREATED);
    let r = app.manage(Method::PUT, &format!("{t}/orders/permissions"), Some(json!({"read":"everyone"}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // List and drop.
    let list: Value = app.manage(Method::GET, &t, None).await.json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(app.manage(Method::DELETE, &format!("{t}/ORDERS"), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/tables/orders").await.error(), "Error: Table 'orders' does not exist.");
    assert_eq!(app.manage(Method::DELETE, &format!("{t}/orders"), None).await.status, StatusCode::NOT_FOUND);
}

async fn cli_changes_apply_to_the_running_server_at_once(app: TestApp) {
    let (ok, out, err) =
        app.cli(&["table", "create", &app.tenant, "notes", "--soft-delete", "--permissions", "insert=public,read=public,update=user,delete=admin"]);
    assert!(ok, "{err}");
    assert!(out.contains("notes"));
    let r = app.request(Method::POST, "/tables/notes", &[("content-type", "application/json")], Some(r#"{"id":"n1","text":"hi"}"#)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let (ok, out, _) = app.cli(&["table", "list", &app.tenant]);
    assert!(ok && out.contains("insert=public read=public update=user delete=admin"), "{out}");
    let (ok, out, _) = app.cli(&["table", "columns", &app.tenant, "notes", "--json"]);
    assert!(ok);
    let cols: Value = serde_json::from_str(&out).unwrap();
    assert!(cols.as_array().unwrap().iter().any(|c| c["name"] == "text"));
    let (ok, _, err) = app.cli(&["table", "permissions", &app.tenant, "notes", "read=admin"]);
    assert!(ok, "{err}");
    assert_eq!(app.request(Method::GET, "/tables/notes", &[], None).await.status, StatusCode::UNAUTHORIZED);
    let (ok, _, err) = app.cli(&["table", "add-column", &app.tenant, "notes", "stars", "number"]);
    assert!(ok, "{err}");
    let r = app.request(Method::GET, "/tables/notes?$select=stars", &[("X-ZUMO-MASTER", &app.master_key)], None).await;
    assert_eq!(r.json(), json!([{"stars": null}]));
    let (ok, _, err) = app.cli(&["table", "drop-column", &app.tenant, "notes", "stars"]);
    assert!(ok, "{err}");
    let r = app.request(Method::GET, "/tables/notes", &[("X-ZUMO-MASTER", &app.master_key)], None).await;
    assert_eq!(r.json(), json!([{"id":"n1","text":"hi"}]));
    let (ok, _, err) = app.cli(&["tenant", "set", &app.tenant, "--dynamic-schema", "false"]);
    assert!(ok, "{err}");
    let r = app.request(Method::POST, "/tables/notes", &[("content-type", "application/json")], Some(r#"{"newcol":1}"#)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let (ok, _, err) = app.cli(&["table", "drop", &app.tenant, "notes"]);
    assert!(ok, "{err}");
    assert_eq!(app.request(Method::GET, "/tables/notes", &[], None).await.status, StatusCode::NOT_FOUND);
    // Errors are clear and the exit status says so.
    let (ok, _, err) = app.cli(&["table", "create", &app.tenant, "bad name"]);
    assert!(!ok && err.contains("is not a valid identifier"), "{err}");
    let (ok, _, err) = app.cli(&["tenant", "show", "no-such-tenant"]);
    assert!(!ok && err.contains("does not exist"), "{err}");
    // A second server cannot take an SQLite data folder that is being served.
    if app.database_url.is_empty() {
        let (ok, _, err) = app.cli(&["serve", "--listen", "127.0.0.1:0"]);
        assert!(!ok && err.contains("another Roost server is already serving"), "{err}");
    }
    // A tenant created by the CLI answers at once; `--json` prints the keys.
    let name = crate::helpers::random_name("cli-");
    let (ok, out, err) = app.cli(&["tenant", "create", &name, "--json"]);
    assert!(ok, "{err}");
    let t: Value = serde_json::from_str(&out).unwrap();
    for k in ["name", "application_key", "master_key"] {
        assert!(t[k].is_string(), "{k}");
    }
    let r = send(app.client().get(format!("{}/t/{name}/status", app.base))).await;
    assert_eq!(r.status, StatusCode::OK);
    let (ok, _, _) = app.cli(&["tenant", "delete", &name]);
    assert!(ok);
    let r = send(app.client().get(format!("{}/t/{name}/status", app.base))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn scripts_logs_and_job_runs_through_the_api_and_the_cli(app: TestApp) {
    app.create_table("todo", json!({})).await;
    let t = &app.tenant;
    // Without the admin token: 401, as every /manage/v1 route.
    let r = send(app.client().get(format!("{}/manage/v1/tenants/{t}/scripts", app.base))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    app.script("table", "todo.insert", "function insert(item, user, request) { console.log('one'); console.log('two'); request.execute(); }").await;
    app.script("shared", "util", "exports.x = 1;").await;
    let r = app
        .put_script(
            "api",
            "hello",
            "exports.get = function (req, res) { res.send(200, 'hi'); };",
            json!({"permissions": {"routes": {"*": {"permission": "public"}}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["path"], "/api/hello.js");
    assert_eq!(r.json()["permissions"]["routes"]["*"]["permission"], "public");
    // Unknown permission levels and kinds are refused.
    let r = app.put_script("api", "bad", "exports.get = function () {};", json!({"permissions": {"routes": {"*": {"permission": "everyone"}}}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = app.put_script("macro", "x", "1", json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = app.put_script("shared", "util", "exports.x = 1;", json!({"schedule": {"interval": 1, "unit": "hour", "enabled": true}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // List and get (case-insensitive names, stored casing kept).
    let list = app.manage(Method::GET, &format!("/tenants/{t}/scripts"), None).await.json();
    let names: Vec<(String, String)> =
        list.as_array().unwrap().iter().map(|s| (s["kind"].as_str().unwrap().to_string(), s["name"].as_str().unwrap().to_string())).collect();
    assert_eq!(names, vec![("table".into(), "todo.insert".into()), ("api".into(), "hello".into()), ("shared".into(), "util".into())]);
    let r = app.manage(Method::GET, &format!("/tenants/{t}/scripts/table/TODO.insert"), None).await;
    assert!(r.json()["body"].as_str().unwrap().contains("console.log('one')"));
    let (ok, out, _) = app.cli(&["script", "get", t, "shared", "util"]);
    assert!(ok && out == "exports.x = 1;", "{out}");
    let (ok, out, _) = app.cli(&["script", "list", t]);
    assert!(ok && out.contains("api\thello"), "{out}");
    // Logs page with `after`.
    app.insert("todo", json!({"a": 1})).await;
    app.wait_for_log("two").await;
    let all = app.manage(Method::GET, &format!("/tenants/{t}/logs"), None).await.json();
    let first = all[0]["id"].as_i64().unwrap();
    let rest = app.manage(Method::GET, &format!("/tenants/{t}/logs?after={first}"), None).await.json();
    assert_eq!(rest.as_array().unwrap().len(), all.as_array().unwrap().len() - 1);
    assert_eq!(rest[0]["message"], "two");
    let (ok, out, _) = app.cli(&["script", "logs", t]);
    assert!(ok && out.contains("\tinformation\t/table/todo.insert.js\tone"), "{out}");
    // Job runs of a job nobody ran: empty.
    assert_eq!(app.manage(Method::GET, &format!("/tenants/{t}/jobs/none/runs"), None).await.json(), json!([]));
    // Delete; a second delete is 404; the request runs without the script again.
    let path = format!("/tenants/{t}/scripts/table/todo.insert");
    assert_eq!(app.manage(Method::DELETE, &path, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.manage(Method::DELETE, &path, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.manage(Method::GET, &path, None).await.status, StatusCode::NOT_FOUND);
    let (ok, _, err) = app.cli(&["script", "delete", t, "api", "hello"]);
    assert!(ok, "{err}");
    assert_eq!(app.request(Method::GET, "/api/hello", &[], None).await.status, StatusCode::NOT_FOUND);
    // Deleting the tenant deletes its scripts and logs.
    let other = app.new_tenant().await;
    let o = other["name"].as_str().unwrap();
    assert_eq!(app.manage(Method::DELETE, &format!("/tenants/{o}"), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.manage(Method::GET, &format!("/tenants/{o}/scripts"), None).await.status, StatusCode::NOT_FOUND);
}
