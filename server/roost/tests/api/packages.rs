//! npm packages of a tenant: package.json imported and installed with the real npm from the
//! registry, bundled Mobile Services packages added, `require` resolved the Node way, and failures
//! that name the package and change nothing.

use crate::helpers::{random_name, send, Backend, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

crate::on_both_backends!(
    importing_a_service_with_packages_gives_working_scripts_and_export_gives_package_json_back,
    package_failures_name_the_package_and_change_nothing,
    install_limits_and_a_missing_npm_are_clear_errors,
);

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/packages-service");

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}

async fn importing_a_service_with_packages_gives_working_scripts_and_export_gives_package_json_back(app: TestApp) {
    let name = random_name("pkg");
    let (ok, out, err) = app.cli(&["tenant", "import", &name, FIXTURE]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("Added xml2js@^0.2.8 to package.json"), "the import says what it added: {out}");
    assert!(out.contains("async@1.") && out.contains("underscore@1.") && out.contains("xml2js@0.2."), "{out}");
    assert!(out.contains("Ran /extensions/startup.js"), "{out}");
    let t = app.manage(Method::GET, &format!("/tenants/{name}"), None).await.json();
    let key = t["application_key"].as_str().unwrap_or_default().to_string();
    let base = format!("{}/t/{}", app.base, t["name"].as_str().unwrap_or_default());
    // The startup script seeded rows with async.series / async.eachSeries, in order.
    let rows = send(app.client().get(format!("{base}/tables/orders?$orderby=id")).header("X-ZUMO-APPLICATION", &key)).await;
    assert_eq!(rows.status, StatusCode::OK, "{}", rows.text);
    let ids: Vec<String> = rows.json().as_array().cloned().unwrap_or_default().iter().map(|r| r["id"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(ids, vec!["seed-first", "seed-second", "seed-third"]);
    // The table script uses underscore's _.pick.
    let r =
        send(app.client().post(format!("{base}/tables/orders")).header("X-ZUMO-APPLICATION", &key).json(&json!({"title": "x", "qty": 2, "junk": true}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json()["fields"], "qty,title");
    assert!(r.json().get("junk").is_none(), "{}", r.text);
    // The API requires xml2js, which package.json did not declare: Roost added it.
    let r = send(
        app.client()
            .post(format!("{base}/api/feed"))
            .header("X-ZUMO-APPLICATION", &key)
            .json(&json!({"xml": "<order><title>book</title><qty>3</qty></order>"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["parsed"], json!({"order": {"title": ["book"], "qty": ["3"]}}), "xml2js 0.2 defaults: {}", r.text);
    // The tenant's log says what was added; the packages are listed.
    app.state.logs.flush().await;
    let logs = app.manage(Method::GET, &format!("/tenants/{name}/logs?source=package.json"), None).await.json();
    assert!(logs.to_string().contains("Added xml2js@^0.2.8"), "{logs}");
    let p = app.manage(Method::GET, &format!("/tenants/{name}/packages"), None).await.json();
    for (pkg, major) in [("async", "1."), ("underscore", "1."), ("xml2js", "0.2."), ("sax", "0.")] {
        assert!(p["resolved"][pkg].as_str().is_some_and(|v| v.starts_with(major)), "{pkg}: {p}");
    }
    // Export gives the package.json back with the added dependency, and no node_modules.
    let out_dir = app.data.join(random_name("export"));
    let (ok, _, err) = app.cli(&["tenant", "export", &name, out_dir.to_str().unwrap_or_default()]);
    assert!(ok, "{err}");
    let exported: Value = serde_json::from_str(&std::fs::read_to_string(out_dir.join("package.json")).expect("package.json")).expect("json");
    assert_eq!(exported["name"], "orders-service");
    assert_eq!(exported["dependencies"], json!({"async": "^1.5.2", "underscore": "^1.4.4", "xml2js": "^0.2.8"}));
    assert!(!out_dir.join("node_modules").exists());
    // A second node on the same PostgreSQL installs the same versions from the stored lock when it
    // first loads the tenant, and serves the scripts.
    if app.backend == Backend::Postgres {
        let other = TestApp::spawn(Backend::Postgres).await;
        let r = send(
            other
                .client()
                .post(format!("{}/t/{}/api/feed", other.base, t["name"].as_str().unwrap_or_default()))
                .header("X-ZUMO-APPLICATION", &key)
                .json(&json!({"xml": "<a>1</a>"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json()["parsed"], json!({"a": "1"}));
        let hash = p["lock_hash"].as_str().unwrap_or_default();
        let lock = |data: &std::path::Path| std::fs::read_to_string(data.join("packages").join(hash).join("package-lock.json")).expect("installed lock");
        assert_eq!(lock(&other.data), lock(&app.data), "both nodes installed the same lock");
        assert_eq!(other.manage(Method::GET, &format!("/tenants/{name}/packages"), None).await.json()["resolved"], p["resolved"]);
    }
}

async fn package_failures_name_the_package_and_change_nothing(app: TestApp) {
    // An unknown package fails the import, which changes nothing.
    let dir = app.data.join(random_name("bad-folder"));
    copy_dir(std::path::Path::new(FIXTURE), &dir);
    std::fs::write(dir.join("package.json"), r#"{"dependencies": {"roost-no-such-package-zq9x": "^1.0.0"}}"#).expect("write");
    let name = random_name("nope");
    let (ok, out, err) = app.cli(&["tenant", "import", &name, dir.to_str().unwrap_or_default()]);
    assert!(!ok, "{out}");
    assert!(err.contains("roost-no-such-package-zq9x") && err.contains("does not exist"), "{err}");
    assert_eq!(app.manage(Method::GET, &format!("/tenants/{name}"), None).await.status, StatusCode::NOT_FOUND, "nothing created");
    // Through /manage/v1 on an existing tenant: refused, and the previous packages stay.
    let t = app.tenant.clone();
    let r = app.manage(Method::PUT, &format!("/tenants/{t}/packages"), Some(json!({"dependencies": {"mkdirp": "0.5.1", "bufferutil": "4.0.8"}}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let before = r.json();
    assert_eq!(before["resolved"]["mkdirp"], "0.5.1");
    let r = app.manage(Method::PUT, &format!("/tenants/{t}/packages"), Some(json!({"dependencies": {"roost-no-such-package-zq9x": "1"}}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.error().contains("roost-no-such-package-zq9x"), "{}", r.text);
    assert_eq!(app.manage(Method::GET, &format!("/tenants/{t}/packages"), None).await.json()["resolved"], before["resolved"]);
    let r = app.manage(Method::PUT, &format!("/tenants/{t}/packages"), Some(json!({"dependencies": {"Bad Name": "1"}}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // A package needing an unprovided built-in, and one with a native addon, fail at require with
    // an error naming the package; the tenant keeps working.
    let api = "exports.get = function (req, res) {\n  try { require(req.query.p); res.send(200, { loaded: true }); }\n  catch (e) { res.send(200, { code: e.code || null, message: e.message }); }\n};\n";
    let r = app.put_script("api", "probe", api, json!({"permissions": {"routes": {"*": {"permission": "public"}}}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let probe = |p: &'static str| {
        let app = &app;
        async move { send(app.client().get(app.url(&format!("/api/probe?p={p}")))).await.json() }
    };
    let r = probe("mkdirp").await;
    assert_eq!(r["code"], "MODULE_NOT_FOUND", "Node's code, so scripts that fall back on it keep working: {r}");
    assert!(r["message"].as_str().is_some_and(|m| m.contains("Package 'mkdirp'") && m.contains("Node built-in 'path'")), "{r}");
    let r = probe("bufferutil").await;
    assert!(r["message"].as_str().is_some_and(|m| m.contains("Package 'bufferutil'") && m.contains("native addon")), "{r}");
    let r = probe("left-pad").await;
    assert_eq!(r["code"], "MODULE_NOT_FOUND", "{r}");
    assert_eq!(app.get("/api/probe?p=util").await.json(), json!({"loaded": true}));
}

async fn install_limits_and_a_missing_npm_are_clear_errors(app: TestApp) {
    let t = app.tenant.clone();
    // Without npm the import fails before it changes anything, naming the packages and the cause.
    let name = random_name("nonpm");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(["tenant", "import", &name, FIXTURE])
        .env("ROOST_DATA", &app.data)
        .env("ROOST_DATABASE_URL", &app.database_url)
        .env("ROOST_NPM", "/nonexistent/npm")
        .output()
        .expect("run roost");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("needs npm") && err.contains("async") && err.contains("/nonexistent/npm"), "{err}");
    assert_eq!(app.manage(Method::GET, &format!("/tenants/{name}"), None).await.status, StatusCode::NOT_FOUND);
    // The disk limit: lodash takes more than 1 MB installed.
    let r = app.manage(Method::PATCH, &format!("/tenants/{t}/settings"), Some(json!({"packages_max_mb": 1}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.manage(Method::PUT, &format!("/tenants/{t}/packages"), Some(json!({"dependencies": {"lodash": "4.17.21"}}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.error().contains("more than the tenant's limit of 1 MB"), "{}", r.text);
    assert_eq!(app.manage(Method::GET, &format!("/tenants/{t}/packages"), None).await.json()["package_json"], Value::Null, "nothing stored");
    for bad in [json!({"packages_max_mb": 0}), json!({"packages_install_seconds": 1})] {
        assert_eq!(app.manage(Method::PATCH, &format!("/tenants/{t}/settings"), Some(bad)).await.status, StatusCode::BAD_REQUEST);
    }
    // A staging folder never stays behind.
    let left: Vec<_> = std::fs::read_dir(app.data.join("packages"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("staging-")).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}
