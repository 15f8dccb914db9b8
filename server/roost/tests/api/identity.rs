//! Identity (protocol.md §5): custom authentication as Mobile Services apps wrote it.

use crate::helpers::TestApp;
use crate::oidc::{FacebookReceiver, OidcProvider};
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret as _;
use serde_json::{json, Value};

crate::on_both_backends!(
    the_custom_authentication_sample_mints_tokens_that_tables_accept,
    millisecond_expiries_expire_and_numeric_kids_are_accepted,
    the_master_key_and_service_settings_are_in_process_env,
    scripts_mint_tokens_with_roost_auth_within_bounds,
    the_readme_password_login_works_as_written,
    providers_are_configured_with_write_only_sealed_secrets,
    the_server_directed_login_runs_against_a_real_provider,
    client_directed_id_tokens_are_verified_and_every_forgery_refused,
    logins_are_rate_limited_per_address_and_per_provider,
    the_cli_configures_providers_beside_the_running_server,
    revoking_user_tokens_refuses_every_earlier_token_and_keeps_the_keys,
    provider_settings_of_mobile_services_are_read_on_import_and_written_on_export,
    live_sdk_tokens_log_in_with_microsoft_account,
    a_discovery_document_cannot_point_the_server_at_private_addresses,
    aad_accepts_tokens_of_any_entra_tenant_against_their_own_issuer,
    facebook_logs_in_both_ways_through_the_graph_api
);

/// The well-known AMS custom-authentication sample, unchanged but for the user store (a fixed
/// list, so the test needs no second table): Node 0.10's `'binary'` digest as an HMAC key,
/// `"kid":0`, `exp` in milliseconds, the master key from `process.env.MS_MasterKey`.
const SAMPLE: &str = r#"
var crypto = require('crypto');
var users = { alice: 'wonderland', bob: 'builder' };

exports.post = function (request, response) {
    var username = request.body.username, password = request.body.password;
    if (users[username] === undefined || users[username] !== password) {
        response.send(401, { error: 'Incorrect username or password' });
        return;
    }
    var expiry = new Date();
    expiry.setUTCDate(expiry.getUTCDate() + 30);
    var userId = 'Custom:' + username;
    response.send(200, {
        user: { userId: userId },
        authenticationToken: zumoJwt(expiry, 'Custom', userId, process.env.MS_MasterKey)
    });
};

function zumoJwt(expiryDate, aud, userId, masterKey) {
    var crypto = require('crypto');
    function base64(input) {
        return new Buffer(input, 'utf8').toString('base64');
    }
    function urlFriendly(b64) {
        return b64.replace(/\+/g, '-').replace(/\//g, '_').replace(new RegExp("=", "g"), '');
    }
    function signature(input) {
        var key = crypto.createHash('sha256').update(masterKey + "JWTSig").digest('binary');
        var str = crypto.createHmac('sha256', key).update(input).digest('base64');
        return urlFriendly(str);
    }
    var s1 = '{"alg":"HS256","typ":"JWT","kid":0}';
    var j2 = {
        "exp": expiryDate.valueOf(),
        "iss": "urn:microsoft:windows-azure:zumo",
        "ver": 2,
        "aud": aud,
        "uid": userId
    };
    var s2 = JSON.stringify(j2);
    var b1 = urlFriendly(base64(s1));
    var b2 = urlFriendly(base64(s2));
    var b3 = signature(b1 + "." + b2);
    return [b1, b2, b3].join(".");
}
"#;

async fn login(app: &TestApp, username: &str, password: &str) -> crate::helpers::Resp {
    let body = json!({ "username": username, "password": password }).to_string();
    app.request(Method::POST, "/api/login", &[("X-ZUMO-APPLICATION", &app.app_key), ("content-type", "application/json")], Some(&body)).await
}

async fn the_custom_authentication_sample_mints_tokens_that_tables_accept(app: TestApp) {
    let r = app.put_script("api", "login", SAMPLE, json!({"permissions": {"routes": {"*": {"permission": "application"}}}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.create_table("notes", json!({"permissions": {"insert": "user", "read": "user", "update": "user", "delete": "user"}})).await;
    // Each note belongs to its author; a user reads only their own.
    app.script("table", "notes.insert", "function insert(item, user, request) { item.owner = user.userId; request.execute(); }").await;
    app.script("table", "notes.read", "function read(query, user, request) { query.where({ owner: user.userId }); request.execute(); }").await;

    let wrong = login(&app, "alice", "not-her-password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.text);
    let alice = login(&app, "alice", "wonderland").await;
    assert_eq!(alice.status, StatusCode::OK, "{}", alice.text);
    let alice = alice.json();
    assert_eq!(alice["user"]["userId"], "Custom:alice");
    let alice_token = alice["authenticationToken"].as_str().expect("token").to_string();
    let bob_token = login(&app, "bob", "builder").await.json()["authenticationToken"].as_str().expect("token").to_string();

    let as_user =
        |token: &str| vec![("X-ZUMO-APPLICATION", app.app_key.clone()), ("X-ZUMO-AUTH", token.to_string()), ("content-type", "application/json".into())];
    for (token, text) in [(&alice_token, "alice's"), (&bob_token, "bob's"), (&alice_token, "alice's second")] {
        let h = as_user(token);
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = app.request(Method::POST, "/tables/notes", &h, Some(&json!({ "text": text }).to_string())).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let h = as_user(&alice_token);
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = app.request(Method::GET, "/tables/notes?$orderby=text", &h, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let rows = r.json();
    let texts: Vec<&str> = rows.as_array().expect("rows").iter().map(|r| r["text"].as_str().unwrap_or_default()).collect();
    assert_eq!(texts, ["alice's", "alice's second"]);
    assert!(rows.as_array().unwrap().iter().all(|r| r["owner"] == "Custom:alice"), "{rows}");

    // Without a token, or with one signed by another tenant's master key, the table refuses.
    let r = app.request(Method::GET, "/tables/notes", &[("X-ZUMO-APPLICATION", &app.app_key)], None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let other = app.new_tenant().await;
    let foreign = sample_token(other["master_key"].as_str().unwrap(), "Custom:alice", json!(chrono::Utc::now().timestamp_millis() + 86_400_000));
    let r = app.request(Method::GET, "/tables/notes", &[("X-ZUMO-APPLICATION", &app.app_key), ("X-ZUMO-AUTH", &foreign)], None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(r.error(), "Error: The authentication token has an invalid signature.");
}

/// A token as the sample makes it, signed in Rust.
fn sample_token(master_key: &str, uid: &str, exp: Value) -> String {
    use hmac::Mac as _;
    use sha2::Digest as _;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let header = b64(r#"{"alg":"HS256","typ":"JWT","kid":0}"#);
    let claims = b64(&json!({ "exp": exp, "iss": "urn:microsoft:windows-azure:zumo", "ver": 2, "aud": "Custom", "uid": uid }).to_string());
    let key = sha2::Sha256::digest(format!("{master_key}JWTSig").as_bytes());
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("key");
    mac.update(format!("{header}.{claims}").as_bytes());
    format!("{header}.{claims}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

async fn millisecond_expiries_expire_and_numeric_kids_are_accepted(app: TestApp) {
    app.create_table("private", json!({"permissions": {"read": "user"}})).await;
    let read = |token: String| {
        let app = &app;
        async move { app.request(Method::GET, "/tables/private", &[("X-ZUMO-APPLICATION", &app.app_key), ("X-ZUMO-AUTH", &token)], None).await }
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    // An `exp` above 10^11 is milliseconds: one in the past has expired (AMS compared it with seconds,
    // so such tokens never expired), one in the future is valid.
    let r = read(sample_token(&app.master_key, "Custom:1", json!(now_ms - 60_000))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(r.error(), "Error: The authentication token has expired.");
    let r = read(sample_token(&app.master_key, "Custom:1", json!(now_ms + 60_000))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Seconds still work both ways.
    let r = read(sample_token(&app.master_key, "Custom:1", json!(now_ms / 1000 + 60))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = read(sample_token(&app.master_key, "Custom:1", json!(now_ms / 1000 - 60))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
}

async fn the_master_key_and_service_settings_are_in_process_env(app: TestApp) {
    let api = "exports.get = function (request, response) { var e = process.env, c = require('mobileservice-config');\n\
               response.send(200, { master: e.MS_MasterKey, app: e.MS_ApplicationKey, name: e.MS_MobileServiceName,\n\
               dynamic: e.MS_DynamicSchemaEnabled, same: c.masterKey === e.MS_MasterKey, custom: e.greeting }); };";
    let r = app.put_script("api", "env", api, json!({"permissions": {"routes": {"*": {"permission": "admin"}}}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .manage(
            Method::PATCH,
            &format!("/tenants/{}/settings", app.tenant),
            Some(json!({"app_settings": {"greeting": "hello", "MS_MasterKey": "spoofed", "MS_MobileServiceName": "other"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // App settings named like the service's own cannot stand in for them.
    let r = app.request(Method::GET, "/api/env", &[("X-ZUMO-MASTER", &app.master_key)], None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = r.json();
    assert_eq!(v["master"], app.master_key.as_str());
    assert_eq!(v["app"], app.app_key.as_str());
    assert_eq!(v["name"], app.tenant.as_str());
    assert_eq!(v["dynamic"], "true");
    assert_eq!(v["same"], true);
    assert_eq!(v["custom"], "hello");
}

async fn scripts_mint_tokens_with_roost_auth_within_bounds(app: TestApp) {
    let api = r#"
var auth = require('roost-auth');
exports.post = function (request, response) {
    var b = request.body;
    try {
        var token = auth.createToken(b.userId, b.options);
        response.send(200, { user: { userId: b.userId }, authenticationToken: token });
    } catch (e) {
        response.send(400, { error: e.message });
    }
};"#;
    let r = app.put_script("api", "mint", api, json!({"permissions": {"routes": {"*": {"permission": "application"}}}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.create_table("mine", json!({"permissions": {"read": "user"}})).await;
    app.script("table", "mine.read", "function read(query, user, request) { request.respond(200, { userId: user.userId }); }").await;
    let mint = |body: Value| {
        let app = &app;
        async move {
            app.request(Method::POST, "/api/mint", &[("X-ZUMO-APPLICATION", &app.app_key), ("content-type", "application/json")], Some(&body.to_string())).await
        }
    };
    let r = mint(json!({"userId": "Custom:carol", "options": {"claims": {"role": "editor"}, "lifetimeSeconds": 600}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let token = r.json()["authenticationToken"].as_str().expect("token").to_string();
    let claims: Value = serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["uid"], "Custom:carol");
    assert_eq!(claims["role"], "editor");
    let exp = claims["exp"].as_i64().unwrap() - chrono::Utc::now().timestamp();
    assert!((590..=600).contains(&exp), "{claims}");
    let r = app.request(Method::GET, "/tables/mine", &[("X-ZUMO-APPLICATION", &app.app_key), ("X-ZUMO-AUTH", &token)], None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["userId"], "Custom:carol");
    // Bounds: the reserved claims, the lifetime, the size of the claims and of the user id.
    for (body, needle) in [
        (json!({"userId": "Custom:x", "options": {"claims": {"exp": 99999999999i64}}}), "'exp' is set by Roost"),
        (json!({"userId": "Custom:x", "options": {"claims": {"uid": "Custom:admin"}}}), "'uid' is set by Roost"),
        (json!({"userId": "Custom:x", "options": {"lifetimeSeconds": 0}}), "between 1 and"),
        (json!({"userId": "Custom:x", "options": {"lifetimeSeconds": 400 * 24 * 3600}}), "between 1 and"),
        (json!({"userId": "Custom:x", "options": {"claims": {"big": "x".repeat(5000)}}}), "more than 4096 bytes"),
        (json!({"userId": "x".repeat(300)}), "1 to 256 characters"),
        (json!({"userId": ""}), "needs a user id"),
        (json!({"userId": "Custom:x", "options": {"claims": [1]}}), "must be an object"),
    ] {
        let r = mint(body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert!(r.json()["error"].as_str().unwrap_or_default().contains(needle), "{body}: {}", r.text);
    }
}

/// The README's username and password login, as written there: register, log in, a token a
/// user-permission table accepts; wrong passwords, unknown users and a stored hash asking for too
/// much work are refused.
async fn the_readme_password_login_works_as_written(app: TestApp) {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README");
    let after = readme.split("<!-- login-example -->\n```js\n").nth(1).expect("the README's login example");
    let api = after.split("\n```").next().unwrap();
    let r = app.put_script("api", "auth", api, json!({"permissions": {"routes": {"*": {"permission": "application"}}}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let admin = json!({"read": "admin", "insert": "admin", "update": "admin", "delete": "admin"});
    app.create_table("accounts", json!({"permissions": admin})).await;
    app.create_table("notes", json!({"permissions": {"read": "user"}})).await;
    app.script("table", "notes.read", "function read(query, user, request) { request.respond(200, { userId: user.userId }); }").await;
    let call = |path: &'static str, body: Value| {
        let app = &app;
        async move { app.request(Method::POST, path, &[("X-ZUMO-APPLICATION", &app.app_key), ("content-type", "application/json")], Some(&body.to_string())).await }
    };
    let r = call("/api/auth/register", json!({"username": "dana", "password": "correct horse"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = call("/api/auth/register", json!({"username": "dana", "password": "another one"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let r = call("/api/auth/register", json!({"username": "dana2", "password": "short"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // The stored hash is argon2id, and clients cannot read it.
    let stored = app.request(Method::GET, "/tables/accounts/dana", &[("X-ZUMO-MASTER", &app.master_key)], None).await;
    assert!(stored.json()["hash"].as_str().unwrap_or_default().starts_with("$argon2id$"), "{}", stored.text);
    let r = app.request(Method::GET, "/tables/accounts", &[("X-ZUMO-APPLICATION", &app.app_key)], None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let r = call("/api/auth/login", json!({"username": "dana", "password": "correct horse"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["user"]["userId"], "Custom:dana");
    let token = r.json()["authenticationToken"].as_str().expect("token").to_string();
    let r = app.request(Method::GET, "/tables/notes", &[("X-ZUMO-APPLICATION", &app.app_key), ("X-ZUMO-AUTH", &token)], None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["userId"], "Custom:dana");
    for body in [json!({"username": "dana", "password": "wrong horse"}), json!({"username": "nobody", "password": "correct horse"}), json!({"username": 1})] {
        let r = call("/api/auth/login", body.clone()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{body}: {}", r.text);
    }

    // A hash a tenant stored that asks for 4 GiB and 1000 passes is refused at once, not run.
    let greedy = "$argon2id$v=19$m=4194304,t=1000,p=1$c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWY";
    let r = app
        .request(
            Method::PATCH,
            "/tables/accounts/dana",
            &[("X-ZUMO-MASTER", &app.master_key), ("content-type", "application/json")],
            Some(&json!({"hash": greedy}).to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let started = std::time::Instant::now();
    let r = call("/api/auth/login", json!({"username": "dana", "password": "correct horse"})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "the greedy hash was run");
    let check = r#"var auth = require('roost-auth');
exports.post = function (req, res) {
    auth.verifyPassword('x', req.body.hash, function (err, ok) { res.send(200, { error: err ? err.message : null, ok: ok }); });
};"#;
    let r = app.put_script("api", "check", check, json!({"permissions": {"routes": {"*": {"permission": "application"}}}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call("/api/check", json!({"hash": greedy})).await;
    assert!(r.json()["error"].as_str().unwrap_or_default().contains("more than Roost allows"), "{}", r.text);
}

/// Identity providers through `/manage/v1`: presets fill their discovery URL and user-id prefix, the
/// secret is write-only (only its last four characters come back) and sealed in the catalog, a
/// change without a secret keeps it, bad input is refused, the count is bounded.
async fn providers_are_configured_with_write_only_sealed_secrets(app: TestApp) {
    let t = &app.tenant;
    let put = |name: &str, body: Value| {
        let (app, path) = (&app, format!("/tenants/{t}/identity/providers/{name}"));
        async move { app.manage(Method::PUT, &path, Some(body)).await }
    };
    let r = put(
        "Google",
        json!({"client_id": "web.apps.googleusercontent.com", "client_secret": "GOCSPX-very-secret-1234", "audiences": ["ios.apps.googleusercontent.com"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let g = r.json();
    assert_eq!(g["name"], "google");
    assert_eq!(g["kind"], "google");
    assert_eq!(g["uid_prefix"], "Google");
    assert_eq!(g["discovery_url"], "https://accounts.google.com/.well-known/openid-configuration");
    assert_eq!(g["client_secret_set"], true);
    assert_eq!(g["client_secret_hint"], "…1234");
    assert_eq!(g["login_path"], "/login/google");
    assert_eq!(g["scopes"], json!(["profile", "email"]));
    assert!(!r.text.contains("very-secret"), "{}", r.text);
    // The catalog holds it sealed: neither the secret nor any part of it but the hint.
    let rows = app.state.storage.providers(t).await.expect("providers");
    assert_eq!(rows.len(), 1);
    assert!(rows[0].secret_sealed.starts_with("v1.") && !rows[0].secret_sealed.contains("very-secret"), "{:?}", rows[0]);
    assert_eq!(app.state.identity_key.open(t, "google", &rows[0].secret_sealed).expect("opens").expose_secret(), "GOCSPX-very-secret-1234");
    // A change without a secret keeps it; the tenant's cache sees the change at once.
    let r = put("google", json!({"client_id": "web2.apps.googleusercontent.com"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["client_secret_hint"], "…1234");
    let tenant = app.state.storage.tenant(t).await.unwrap().unwrap();
    assert_eq!(tenant.provider("GOOGLE").expect("cached provider").client_id, "web2.apps.googleusercontent.com");
    // Any OpenID Connect issuer by its discovery URL; its name is the user-id prefix.
    let r = put("corp", json!({"discovery_url": "https://login.corp.example/.well-known/openid-configuration", "client_id": "roost"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!((r.json()["kind"].clone(), r.json()["uid_prefix"].clone(), r.json()["client_secret_set"].clone()), (json!("oidc"), json!("corp"), json!(false)));
    let r = app.manage(Method::GET, &format!("/tenants/{t}/identity/providers"), None).await;
    assert_eq!(r.json().as_array().map(Vec::len), Some(2), "{}", r.text);
    assert!(!r.text.contains("very-secret"));
    for (name, body, needle) in [
        ("corp2", json!({"client_id": "x"}), "discovery_url"),
        ("corp2", json!({"client_id": "x", "discovery_url": "http://10.0.0.5/.well-known/openid-configuration"}), "https://"),
        ("bad_name", json!({"client_id": "x"}), "provider name"),
        ("google", json!({"client_id": "x", "unknown": 1}), "unknown"),
        ("google", json!({"client_id": "x", "kind": "myspace"}), "myspace"),
    ] {
        let r = put(name, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert!(r.text.contains(needle), "{body}: {}", r.text);
    }
    for i in 0..14 {
        let r = put(&format!("p{i}"), json!({"discovery_url": "https://idp.example/.well-known/openid-configuration", "client_id": "x"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let r = put("one-too-many", json!({"discovery_url": "https://idp.example/.well-known/openid-configuration", "client_id": "x"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("at most 16"), "{}", r.text);
    let r = app.manage(Method::DELETE, &format!("/tenants/{t}/identity/providers/corp"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = app.manage(Method::DELETE, &format!("/tenants/{t}/identity/providers/corp"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = app.manage(Method::GET, "/tenants/no-such-tenant/identity/providers", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}

/// A provider `name` of the app's tenant at `op`, its address allowed by the admin.
async fn configure(app: &TestApp, op: &OidcProvider, name: &str, extra: Value) -> Value {
    let mut body = json!({"discovery_url": op.discovery_url(), "client_id": "roost-web", "client_secret": "web-secret"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let r = app.manage(Method::PUT, &format!("/tenants/{}/identity/providers/{name}", app.tenant), Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json()
}

async fn allow_provider(app: &TestApp, op: &OidcProvider) {
    let r = app
        .manage(
            Method::PATCH,
            &format!("/tenants/{}/settings", app.tenant),
            Some(json!({"outbound_allow": [format!("127.0.0.1:{}", op.port)], "cors_origins": ["app.example"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

fn claims_of(token: &str) -> Value {
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

/// The `wams_*` cookies an answer sets, as a `Cookie` header, and the names it deletes.
fn flow_cookies(r: &reqwest::Response) -> (String, Vec<String>) {
    let (mut set, mut deleted) = (Vec::new(), Vec::new());
    for c in r.headers().get_all("set-cookie") {
        let c = c.to_str().unwrap();
        let pair = c.split(';').next().unwrap();
        let (name, value) = pair.split_once('=').unwrap();
        assert!(name.starts_with("wams_") && c.contains("HttpOnly"), "{c}");
        if value == "deleted" {
            deleted.push(name.to_string());
        } else {
            set.push(pair.to_string());
        }
    }
    (set.join("; "), deleted)
}

/// The table a user token is tried on: it answers the caller's `user` as the script sees it.
async fn whoami_table(app: &TestApp) {
    app.create_table("whoami", json!({"permissions": {"read": "user"}})).await;
    app.script("table", "whoami.read", "function read(query, user, request) { request.respond(200, { userId: user.userId, level: user.level }); }").await;
}

async fn the_server_directed_login_runs_against_a_real_provider(app: TestApp) {
    let base = format!("{}/t/{}", app.base, app.tenant);
    let op = OidcProvider::start(json!([{"client_id": "roost-web", "client_secret": "web-secret", "redirect_uris": [format!("{base}/login/local")]}]));
    let p = configure(&app, &op, "local", json!({})).await;
    assert_eq!((p["uid_prefix"].as_str(), p["login_path"].as_str()), (Some("local"), Some("/login/local")));
    whoami_table(&app).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    // The provider is on loopback: until the admin allows its address, Roost does not fetch it (a
    // tenant owner cannot point the server at the platform's own network).
    let r = http.get(format!("{base}/login/local")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("outbound_allow"));
    allow_provider(&app, &op).await;
    // Unknown and unconfigured providers (§5.5's messages).
    let r = http.get(format!("{base}/login/nosuch")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), r#"{"code":401,"error":"Error: Authentication with 'nosuch' is not supported."}"#);
    let r = http.get(format!("{base}/login/google")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), r#"{"code":401,"error":"Error: Logging in with google is not enabled."}"#);

    // Start: a redirect to the provider with PKCE, state and nonce; the flow's cookies set.
    let start = http.get(format!("{base}/login/local")).send().await.unwrap();
    assert_eq!(start.status(), StatusCode::FOUND);
    let authorize = start.headers()["location"].to_str().unwrap().to_string();
    assert!(authorize.starts_with(&format!("{}/auth?", op.issuer)), "{authorize}");
    for part in ["code_challenge_method=S256", "code_challenge=", "state=", "nonce=", "response_type=code", "scope=openid+profile+email"] {
        assert!(authorize.contains(part), "{part} in {authorize}");
    }
    let redirect = reqwest::Url::parse(&authorize).unwrap().query_pairs().find(|(k, _)| k == "redirect_uri").map(|(_, v)| v.into_owned());
    assert_eq!(redirect, Some(format!("{base}/login/local")));
    // §5.5's optional start parameters reach the provider (plain tokens only).
    let extra = http.get(format!("{base}/login/local?scope=offline_access,bad%22scope&display=touch&access_type=offline")).send().await.unwrap();
    let extra = extra.headers()["location"].to_str().unwrap().to_string();
    assert!(extra.contains("scope=openid+profile+email+offline_access&") || extra.ends_with("scope=openid+profile+email+offline_access"), "{extra}");
    assert!(extra.contains("display=touch") && extra.contains("access_type=offline"), "{extra}");
    // The bad token is dropped: the scope is exactly the four (a random `state` may hold "bad").
    let scope = reqwest::Url::parse(&extra).unwrap().query_pairs().find(|(k, _)| k == "scope").map(|(_, v)| v.into_owned());
    assert_eq!(scope.as_deref(), Some("openid profile email offline_access"), "{extra}");
    let (cookies, _) = flow_cookies(&start);
    for name in ["wams_state=", "wams_nonce=", "wams_pkce="] {
        assert!(cookies.contains(name), "{name} in {cookies}");
    }
    let back = op.sign_in(&authorize, "alice").await;
    assert!(back.starts_with(&format!("{base}/login/local?")), "{back}");
    // The redirect back without the cookies, or with a forged state, is refused.
    let r = http.get(&back).send().await.unwrap();
    let done = r.headers()["location"].to_str().unwrap().to_string();
    assert!(done.starts_with(&format!("{base}/login/done#error=")) && done.contains("wams_state%20cookie"), "{done}");
    let forged = back.replace("state=", "state=forged");
    let r = http.get(&forged).header("cookie", &cookies).send().await.unwrap();
    assert!(r.headers()["location"].to_str().unwrap().contains("valid%20state%20parameter"), "{:?}", r.headers());
    // With them: the token of §5.3 for `local:alice`, at /login/done, and the cookies deleted.
    let r = http.get(&back).header("cookie", &cookies).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let (_, deleted) = flow_cookies(&r);
    assert_eq!(deleted.len(), 3, "{deleted:?}");
    let done = r.headers()["location"].to_str().unwrap().to_string();
    let fragment = done.strip_prefix(&format!("{base}/login/done#token=")).unwrap_or_else(|| panic!("{done}"));
    let body: Value = serde_json::from_str(&percent_encoding::percent_decode_str(fragment).decode_utf8().unwrap()).unwrap();
    assert_eq!(body["user"]["userId"], "local:alice");
    let token = body["authenticationToken"].as_str().unwrap().to_string();
    let claims = claims_of(&token);
    assert_eq!((claims["uid"].as_str(), claims["aud"].as_str(), claims["ver"].as_i64()), (Some("local:alice"), Some("local"), Some(2)));
    let exp = claims["exp"].as_i64().unwrap() - chrono::Utc::now().timestamp();
    assert!((30 * 86400 - 60..=30 * 86400).contains(&exp), "{claims}");
    let credentials = claims["urn:microsoft:credentials"].as_str().expect("credentials claim");
    assert!(!credentials.contains("alice") && credentials.starts_with("v1."), "sealed: {credentials}");
    let r = app.request(Method::GET, "/tables/whoami", &[("X-ZUMO-APPLICATION", &app.app_key), ("X-ZUMO-AUTH", &token)], None).await;
    assert_eq!(r.json(), json!({"userId": "local:alice", "level": "authenticated"}), "{}", r.text);
    // user.getIdentities() (§5.6), in its three forms, from a table script; `user` itself
    // serialises without them.
    app.create_table("ids", json!({"permissions": {"read": "user"}})).await;
    let script = "function read(query, user, request) { user.getIdentities({ success: function (ids) { \
        user.getIdentities(function (err, viaCallback) { \
            request.respond(200, { user: JSON.parse(JSON.stringify(user)), ids: ids, same: JSON.stringify(viaCallback) === JSON.stringify(ids) && JSON.stringify(user.getIdentities()) === JSON.stringify(ids) }); }); } }); }";
    app.script("table", "ids.read", script).await;
    let r = app.request(Method::GET, "/tables/ids", &[("X-ZUMO-APPLICATION", &app.app_key), ("X-ZUMO-AUTH", &token)], None).await;
    let v = r.json();
    assert_eq!(v["user"], json!({"level": "authenticated", "userId": "local:alice"}), "{}", r.text);
    assert_eq!(v["ids"]["local"]["userId"], "local:alice", "{}", r.text);
    assert_eq!(v["ids"]["local"]["email"], "alice@example.test", "{}", r.text);
    assert_eq!(v["ids"]["local"]["sub"], "alice");
    assert!(v["ids"]["local"]["accessToken"].as_str().is_some_and(|t| !t.is_empty()), "{}", r.text);
    assert_eq!(v["same"], true);
    // A token without a credentials claim (custom authentication) has none.
    let custom = roost::auth::mint_token(&app.master_key, "Custom:zed", 600);
    let r = app.request(Method::GET, "/tables/ids", &[("X-ZUMO-APPLICATION", &app.app_key), ("X-ZUMO-AUTH", &custom)], None).await;
    assert_eq!(r.json()["ids"], Value::Null, "{}", r.text);
    // The code is single-use: the same redirect again fails at the provider.
    let r = http.get(&back).header("cookie", &cookies).send().await.unwrap();
    assert!(r.headers()["location"].to_str().unwrap().contains("#error="), "{:?}", r.headers());
    assert_eq!(http.get(format!("{base}/login/done")).send().await.unwrap().status(), StatusCode::OK);

    // The popup of the Mobile Services web client: postMessage to a whitelisted origin only.
    let r = http.get(format!("{base}/login/local?completion_type=postMessage&completion_origin=https://evil.example")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("Not a whitelisted origin: https://evil.example"));
    let start = http.get(format!("{base}/login/local?completion_type=postMessage&completion_origin=https://app.example")).send().await.unwrap();
    let (cookies, _) = flow_cookies(&start);
    assert!(cookies.contains("wams_completionAction="), "{cookies}");
    let back = op.sign_in(start.headers()["location"].to_str().unwrap(), "bob").await;
    let r = http.get(&back).header("cookie", &cookies).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-security-policy"].to_str().unwrap().starts_with("default-src 'none'"));
    let page = r.text().await.unwrap();
    assert!(page.contains("window.opener.postMessage(JSON.stringify(envelope), \"https://app.example\")"), "{page}");
    assert!(page.contains("\"LoginCompleted\"") && page.contains("\"userId\":\"local:bob\""), "{page}");
    // The error of a redirect is anyone's to write (a link to /login/local?error=…): it reaches the
    // page as a JSON string that cannot end the script.
    let start = http.get(format!("{base}/login/local?completion_type=postMessage&completion_origin=https://app.example")).send().await.unwrap();
    let (cookies, _) = flow_cookies(&start);
    let evil = format!("{base}/login/local?error=%3C%2Fscript%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E\u{2028}&state=x");
    let page = http.get(&evil).header("cookie", &cookies).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("</script><script>alert") && page.contains("\\u003c/script>\\u003cscript>alert(1)"), "{page}");
    assert_eq!(page.matches("</script>").count(), 1, "{page}");
    // The iframe completion (IE) hands the envelope to the login receiver frame.
    let start = http.get(format!("{base}/login/local?completion_type=iframe&completion_origin=https://app.example")).send().await.unwrap();
    let (cookies, _) = flow_cookies(&start);
    let back = op.sign_in(start.headers()["location"].to_str().unwrap(), "carol").await;
    let page = http.get(&back).header("cookie", &cookies).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("zumo-login-receiver") && page.contains("transferLoginResult") && page.contains("local:carol"), "{page}");
}

async fn client_directed_id_tokens_are_verified_and_every_forgery_refused(app: TestApp) {
    let op = OidcProvider::start(json!([{"client_id": "roost-web", "client_secret": "web-secret", "redirect_uris": ["https://unused.example/cb"]}]));
    let other = OidcProvider::start(json!([{"client_id": "roost-web", "client_secret": "x", "redirect_uris": ["https://unused.example/cb"]}]));
    configure(&app, &op, "local", json!({"audiences": ["roost-ios"]})).await;
    allow_provider(&app, &op).await;
    whoami_table(&app).await;
    let post = |body: Value| {
        let app = &app;
        async move { app.request(Method::POST, "/login/local", &[("content-type", "application/json")], Some(&body.to_string())).await }
    };
    let now = chrono::Utc::now().timestamp();
    let jti = |n: &str| format!("{n}-{}", uuid_like());
    // A real id token of the provider: the §5.4 answer, a token a user table accepts.
    let token = op.sign(json!({"sub": "dave", "aud": "roost-web", "jti": jti("a")}), "rs256").await;
    let r = post(json!({"id_token": token})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["user"]["userId"], "local:dave");
    let minted = r.json()["authenticationToken"].as_str().unwrap().to_string();
    let r = app.request(Method::GET, "/tables/whoami", &[("X-ZUMO-APPLICATION", &app.app_key), ("X-ZUMO-AUTH", &minted)], None).await;
    assert_eq!(r.json()["userId"], "local:dave", "{}", r.text);
    // The same id token again: a replay.
    let r = post(json!({"id_token": token})).await;
    assert_eq!((r.status, r.error()), (StatusCode::UNAUTHORIZED, "Error: The token has already been used.".to_string()), "{}", r.text);
    // Without jti, the nonce is the replay key.
    let with_nonce = op.sign(json!({"sub": "dave", "aud": "roost-web", "nonce": jti("n")}), "rs256").await;
    assert_eq!(post(json!({"id_token": with_nonce})).await.status, StatusCode::OK);
    let again = op.sign(json!({"sub": "dave", "aud": "roost-web", "nonce": claims_of(&with_nonce)["nonce"]}), "rs256").await;
    assert_eq!(post(json!({"id_token": again})).await.status, StatusCode::UNAUTHORIZED, "same nonce");
    // Another configured client of the same app (an iOS client) is an accepted audience; several
    // audiences need an authorized party that is one of them.
    assert_eq!(post(json!({"id_token": op.sign(json!({"sub": "erin", "aud": "roost-ios", "jti": jti("b")}), "rs256").await})).await.status, StatusCode::OK);
    let both = json!(["roost-web", "roost-ios"]);
    assert_eq!(
        post(json!({"id_token": op.sign(json!({"sub": "erin", "aud": both, "azp": "roost-ios", "jti": jti("c")}), "rs256").await})).await.status,
        StatusCode::OK
    );
    let mut tampered = op.sign(json!({"sub": "mallory", "aud": "roost-web", "jti": jti("t")}), "rs256").await;
    let flip = tampered.len() - 5;
    let c = if tampered.as_bytes()[flip] == b'A' { "B" } else { "A" };
    tampered.replace_range(flip..flip + 1, c);
    let forged_payload = {
        let real = op.sign(json!({"sub": "mallory", "aud": "roost-web", "jti": jti("p")}), "rs256").await;
        let parts: Vec<&str> = real.split('.').collect();
        let admin = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(json!({"iss": op.issuer, "sub": "admin", "aud": "roost-web", "exp": now + 300, "iat": now}).to_string());
        format!("{}.{admin}.{}", parts[0], parts[2])
    };
    let refusals = [
        ("a tampered signature", tampered),
        ("claims swapped under a real signature", forged_payload),
        ("expired", op.sign(json!({"sub": "m", "aud": "roost-web", "exp": now - 10, "iat": now - 400, "jti": jti("e")}), "rs256").await),
        ("not yet valid", op.sign(json!({"sub": "m", "aud": "roost-web", "nbf": now + 3600, "jti": jti("f")}), "rs256").await),
        ("issued in the future", op.sign(json!({"sub": "m", "aud": "roost-web", "iat": now + 3600, "exp": now + 7200, "jti": jti("g")}), "rs256").await),
        ("the wrong issuer", op.sign(json!({"sub": "m", "aud": "roost-web", "iss": "http://127.0.0.1:1", "jti": jti("h")}), "rs256").await),
        ("the wrong audience", op.sign(json!({"sub": "m", "aud": "someone-else", "jti": jti("i")}), "rs256").await),
        ("several audiences without azp", op.sign(json!({"sub": "m", "aud": both, "jti": jti("j")}), "rs256").await),
        ("an azp that is not ours", op.sign(json!({"sub": "m", "aud": both, "azp": "evil", "jti": jti("k")}), "rs256").await),
        ("alg none", op.sign(json!({"sub": "m", "aud": "roost-web", "jti": jti("l")}), "none").await),
        ("HS256 keyed with the provider's public key", op.sign(json!({"sub": "m", "aud": "roost-web", "jti": jti("m")}), "hs256-public").await),
        ("a key the provider never published", op.sign(json!({"sub": "m", "aud": "roost-web", "jti": jti("o")}), "foreign").await),
        ("another provider's token", other.sign(json!({"sub": "m", "aud": "roost-web", "jti": jti("q")}), "rs256").await),
        ("no subject", op.sign(json!({"aud": "roost-web", "jti": jti("r")}), "rs256").await),
        ("not a JWT", "not-a-token".to_string()),
    ];
    for (what, token) in refusals {
        let r = post(json!({"id_token": token})).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {}", r.text);
        assert!(r.error().starts_with("Error: The id_token is not valid"), "{what}: {}", r.text);
    }
    let r = post(json!({})).await;
    assert_eq!(r.error(), "Error: The POST local login request must contain an id_token or an access_token in the body of the request.");
    // Key rotation at the provider: a token with the new key id is accepted (the keys are fetched
    // again), and the old key's tokens no longer verify.
    let old = op.sign(json!({"sub": "frank", "aud": "roost-web", "jti": jti("s")}), "rs256").await;
    let mut op = op;
    op.rotate_key();
    let r = post(json!({"id_token": op.sign(json!({"sub": "frank", "aud": "roost-web", "jti": jti("u")}), "rs256").await})).await;
    assert_eq!(r.status, StatusCode::OK, "after rotation: {}", r.text);
    assert_eq!(post(json!({"id_token": old})).await.status, StatusCode::UNAUTHORIZED, "the old key is gone");
    // The tenant's token lifetime (login_token_days, at most tenant_max_login_token_days).
    let settings = format!("/tenants/{}/settings", app.tenant);
    assert_eq!(app.manage(Method::PATCH, &settings, Some(json!({"login_token_days": 2}))).await.status, StatusCode::OK);
    let r = post(json!({"id_token": op.sign(json!({"sub": "gina", "aud": "roost-web", "jti": jti("v")}), "rs256").await})).await;
    let exp = claims_of(r.json()["authenticationToken"].as_str().unwrap())["exp"].as_i64().unwrap() - chrono::Utc::now().timestamp();
    assert!((2 * 86400 - 60..=2 * 86400).contains(&exp), "{exp}");
    let r = app.manage(Method::PATCH, &settings, Some(json!({"login_token_days": 400}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // Tokens of this tenant never authenticate on another.
    let other_tenant = crate::helpers::random_name("other");
    let r = app.manage(Method::POST, "/tenants", Some(json!({"name": other_tenant}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = app.manage(Method::POST, &format!("/tenants/{other_tenant}/tables"), Some(json!({"name": "whoami", "permissions": {"read": "user"}}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = reqwest::Client::new().get(format!("{}/t/{other_tenant}/tables/whoami", app.base)).header("X-ZUMO-AUTH", &minted).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("invalid signature"));
}

fn uuid_like() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A client address may make 60 login requests a minute to a tenant, a provider gets 600 from all
/// addresses: beyond, 429 with Retry-After, before any work (names that are no provider share one
/// count).
async fn logins_are_rate_limited_per_address_and_per_provider(app: TestApp) {
    for name in ["google", "apple"] {
        let r = app.manage(Method::PUT, &format!("/tenants/{}/identity/providers/{name}", app.tenant), Some(json!({"client_id": "web"}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let url = format!("{}/t/{}/login/google", app.base, app.tenant);
    let from = |last: u8| reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, last])).build().unwrap();
    let first = from(2);
    for _ in 0..roost::identity::login::LOGINS_PER_ADDRESS {
        assert_eq!(first.post(&url).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let r = first.post(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(r.text().await.unwrap(), r#"{"code":429,"error":"Error: Too many login requests. Try again later."}"#);
    assert_eq!(first.get(&url).send().await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS, "GET counts too");
    // Another address still may, until the provider's own limit.
    let per_address = roost::identity::login::LOGINS_PER_ADDRESS;
    let mut sent = per_address;
    for last in 3..=250u8 {
        let c = from(last);
        for _ in 0..per_address {
            if sent == roost::identity::login::LOGINS_PER_PROVIDER {
                break;
            }
            assert_eq!(c.post(&url).send().await.unwrap().status(), StatusCode::UNAUTHORIZED, "from 127.0.0.{last}");
            sent += 1;
        }
        if sent == roost::identity::login::LOGINS_PER_PROVIDER {
            break;
        }
    }
    let r = from(251).post(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "the provider's limit");
    // Other providers of the tenant are counted apart.
    assert_eq!(from(252).post(format!("{}/t/{}/login/apple", app.base, app.tenant)).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    // Made-up names count against the address like any login request.
    let c = from(253);
    for i in 0..per_address {
        assert_eq!(c.post(format!("{}/t/{}/login/made-up-{i}", app.base, app.tenant)).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(c.post(format!("{}/t/{}/login/made-up-x", app.base, app.tenant)).send().await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
}

/// `roost identity …` beside the running server: the secret from the environment (never the command
/// line), sealed with the data folder's identity key the server shares, never printed back.
async fn the_cli_configures_providers_beside_the_running_server(app: TestApp) {
    let t = app.tenant.clone();
    let (ok, out, err) = app.cli_with(
        &["identity", "set", &t, "google", "--client-id", "cli.apps.googleusercontent.com", "--audience", "ios-client"],
        &[("ROOST_CLIENT_SECRET", "cli-secret-9876")],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("/login/google") && out.contains("Google:<subject>"), "{out}");
    // The running server sees it at once, and opens the secret with its own key.
    let tenant = app.state.storage.tenant(&t).await.unwrap().unwrap();
    let p = tenant.provider("google").expect("the server sees the CLI's provider");
    assert_eq!(p.client_id, "cli.apps.googleusercontent.com");
    assert_eq!(app.state.identity_key.open(&t, "google", &p.secret_sealed).expect("the server opens it").expose_secret(), "cli-secret-9876");
    let (ok, out, _) = app.cli(&["identity", "list", &t]);
    assert!(ok && out.contains("…9876") && !out.contains("cli-secret"), "{out}");
    let (ok, out, _) = app.cli(&["identity", "list", &t, "--json"]);
    let listed: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!((ok, listed[0]["audiences"].clone()), (true, json!(["ios-client"])));
    let (ok, _, err) = app.cli(&["identity", "set", &t, "corp", "--client-id", "x"]);
    assert!(!ok && err.contains("discovery_url"), "{err}");
    let (ok, _, _) = app.cli(&["identity", "remove", &t, "google"]);
    assert!(ok);
    assert!(app.state.storage.tenant(&t).await.unwrap().unwrap().provider("google").is_none());
}

/// "Revoke all user tokens": every token minted before (by a login, by a script, by the CLI) is
/// refused; new ones work; the keys stay. A new master key revokes them too.
async fn revoking_user_tokens_refuses_every_earlier_token_and_keeps_the_keys(app: TestApp) {
    let op = OidcProvider::start(json!([{"client_id": "roost-web", "client_secret": "web-secret", "redirect_uris": ["https://unused.example/cb"]}]));
    configure(&app, &op, "local", json!({})).await;
    allow_provider(&app, &op).await;
    whoami_table(&app).await;
    let login = |sub: &str| {
        let (app, op, sub) = (&app, &op, sub.to_string());
        async move {
            let id_token = op.sign(json!({"sub": sub, "aud": "roost-web", "jti": uuid_like()}), "rs256").await;
            let r = app.request(Method::POST, "/login/local", &[("content-type", "application/json")], Some(&json!({"id_token": id_token}).to_string())).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            r.json()["authenticationToken"].as_str().unwrap().to_string()
        }
    };
    let who = |token: String| {
        let app = &app;
        async move { app.request(Method::GET, "/tables/whoami", &[("X-ZUMO-APPLICATION", &app.app_key), ("X-ZUMO-AUTH", &token)], None).await }
    };
    let before = login("hana").await;
    let (ok, cli_token, err) = app.cli(&["tenant", "token", &app.tenant, "--user-id", "Custom:cli"]);
    assert!(ok, "{err}");
    let cli_token = cli_token.trim().to_string();
    assert_eq!(who(before.clone()).await.status, StatusCode::OK);
    assert_eq!(who(cli_token.clone()).await.status, StatusCode::OK);
    let r = app.manage(Method::POST, &format!("/tenants/{}/tokens/revoke", app.tenant), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.json()["revoked_at"].is_string());
    for (what, token) in [("login", before), ("CLI", cli_token)] {
        let r = who(token).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what} token after revocation: {}", r.text);
        assert_eq!(r.error(), "Error: The authentication token has an invalid signature.");
    }
    // New tokens work; the keys did not change.
    let after = login("hana").await;
    assert_eq!(who(after.clone()).await.json()["userId"], "local:hana");
    let r = app.request(Method::GET, "/tables/whoami", &[("X-ZUMO-MASTER", &app.master_key)], None).await;
    assert_eq!(r.status, StatusCode::OK, "the master key still works: {}", r.text);
    // A token signed with the master key itself (the custom-authentication sample's way) is refused
    // after a revocation.
    let sampled = roost::auth::mint_token(&app.master_key, "Custom:sample", 600);
    assert_eq!(who(sampled).await.status, StatusCode::UNAUTHORIZED);
    // The CLI revokes too; a new master key revokes as well, and tokens are then signed with it.
    let (ok, out, err) = app.cli(&["tenant", "revoke-tokens", &app.tenant]);
    assert!(ok && out.contains("Revoked"), "{out}{err}");
    assert_eq!(who(after).await.status, StatusCode::UNAUTHORIZED);
    let third = login("hana").await;
    let r = app.manage(Method::POST, &format!("/tenants/{}/keys/master/regenerate", app.tenant), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let master = r.json()["key"].as_str().unwrap().to_string();
    assert_eq!(who(third).await.status, StatusCode::UNAUTHORIZED);
    let sampled = roost::auth::mint_token(&master, "Custom:sample", 600);
    assert_eq!(who(sampled).await.json()["userId"], "Custom:sample", "after a new master key, the sample's tokens work again");
}

/// §6.13's provider settings in a folder's `settings.json`: imported as providers (secrets sealed),
/// other names as app settings, the platform's own `MS_` settings left out; exported back, the
/// secrets only when asked for.
async fn provider_settings_of_mobile_services_are_read_on_import_and_written_on_export(app: TestApp) {
    let dir = std::env::temp_dir().join(crate::helpers::random_name("ams-settings-"));
    std::fs::create_dir_all(dir.join("api")).unwrap();
    std::fs::write(dir.join("api/hello.js"), "exports.get = function (req, res) { res.send(200, { theme: process.env.THEME }); };").unwrap();
    let settings = json!({
        "MS_GoogleClientID": "imported.apps.googleusercontent.com", "MS_GoogleClientSecret": "google-secret-1111", "MS_GoogleScope": "email,profile",
        "MS_MicrosoftClientID": "0000000040112233", "MS_MicrosoftClientSecret": "msa-secret-2222",
        "MS_AadClientID": "aad-client", "MS_AadTenants": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "MS_MasterKey": "not-taken", "THEME": "dark"
    });
    std::fs::write(dir.join("settings.json"), settings.to_string()).unwrap();
    let (ok, out, err) = app.cli(&["tenant", "import", &app.tenant, dir.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("Identity provider google") && out.contains("Identity provider microsoftaccount") && out.contains("MS_MasterKey"), "{out}");
    let t = app.state.storage.tenant(&app.tenant).await.unwrap().unwrap();
    assert_eq!(t.record.master_key, app.master_key, "MS_MasterKey is never taken from a folder");
    assert_eq!(t.record.settings.app_settings.get("THEME").map(String::as_str), Some("dark"));
    let google = t.provider("google").expect("google");
    assert_eq!(google.client_id, "imported.apps.googleusercontent.com");
    assert_eq!(app.state.identity_key.open(&app.tenant, "google", &google.secret_sealed).unwrap().expose_secret(), "google-secret-1111");
    let r = app.manage(Method::GET, &format!("/tenants/{}/identity/providers/google", app.tenant), None).await;
    assert_eq!((r.json()["scopes"].clone(), r.json()["uid_prefix"].clone()), (json!(["email", "profile"]), json!("Google")));
    assert_eq!(t.provider("microsoftaccount").unwrap().client_id, "0000000040112233");

    let out_dir = dir.join("exported");
    let (ok, _, err) = app.cli(&["tenant", "export", &app.tenant, out_dir.to_str().unwrap()]);
    assert!(ok, "{err}");
    let exported: Value = serde_json::from_str(&std::fs::read_to_string(out_dir.join("settings.json")).unwrap()).unwrap();
    assert_eq!(exported["MS_GoogleClientID"], "imported.apps.googleusercontent.com");
    assert_eq!(exported["MS_GoogleScope"], "email profile");
    assert_eq!(exported["THEME"], "dark");
    assert_eq!((exported["MS_AadClientID"].as_str(), exported["MS_AadTenants"].as_str()), (Some("aad-client"), Some("72f988bf-86f1-41af-91ab-2d7cd011db47")));
    assert!(exported.get("MS_GoogleClientSecret").is_none(), "secrets only when asked for: {exported}");
    let with = dir.join("with-secrets");
    let (ok, _, err) = app.cli(&["tenant", "export", &app.tenant, with.to_str().unwrap(), "--with-secrets"]);
    assert!(ok, "{err}");
    let exported: Value = serde_json::from_str(&std::fs::read_to_string(with.join("settings.json")).unwrap()).unwrap();
    assert_eq!(
        (exported["MS_GoogleClientSecret"].as_str(), exported["MS_MicrosoftClientSecret"].as_str()),
        (Some("google-secret-1111"), Some("msa-secret-2222"))
    );
    // A settings file that is not an object of strings changes nothing.
    std::fs::write(dir.join("settings.json"), r#"{"MS_GoogleClientSecret": "x"}"#).unwrap();
    let (ok, _, err) = app.cli(&["tenant", "import", &app.tenant, dir.to_str().unwrap()]);
    assert!(!ok && err.contains("no client id"), "{err}");
    std::fs::write(dir.join("settings.json"), r#"{"THEME": 1}"#).unwrap();
    let (ok, _, err) = app.cli(&["tenant", "import", &app.tenant, dir.to_str().unwrap()]);
    assert!(!ok && err.contains("not a string"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// §5.5's `microsoftaccount` POST (also the bare `POST /login` of `login('<jwt>')`): the Live SDK's
/// token, HS256 keyed with SHA-256(client secret + "JWTSig"); its `uid` is the Microsoft user id.
async fn live_sdk_tokens_log_in_with_microsoft_account(app: TestApp) {
    let r = app
        .manage(
            Method::PUT,
            &format!("/tenants/{}/identity/providers/microsoftaccount", app.tenant),
            Some(json!({"client_id": "0000000048112233", "client_secret": "live-client-secret"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    whoami_table(&app).await;
    let live = roost::auth::mint_token("live-client-secret", "8f3c2e0a1b", 600);
    for path in ["/login/microsoftaccount", "/login"] {
        let r = app.request(Method::POST, path, &[("content-type", "application/json")], Some(&json!({"authenticationToken": live}).to_string())).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        assert_eq!(r.json()["user"]["userId"], "MicrosoftAccount:8f3c2e0a1b");
        let token = r.json()["authenticationToken"].as_str().unwrap().to_string();
        assert_eq!(claims_of(&token)["aud"], "MicrosoftAccount");
        let who = app.request(Method::GET, "/tables/whoami", &[("X-ZUMO-APPLICATION", &app.app_key), ("X-ZUMO-AUTH", &token)], None).await;
        assert_eq!(who.json()["userId"], "MicrosoftAccount:8f3c2e0a1b");
    }
    let forged = roost::auth::mint_token("another-secret", "8f3c2e0a1b", 600);
    let r = app.request(Method::POST, "/login", &[("content-type", "application/json")], Some(&json!({"authenticationToken": forged}).to_string())).await;
    assert_eq!((r.status, r.error()), (StatusCode::UNAUTHORIZED, "Error: The authentication token has an invalid signature.".to_string()));
}

/// The attack through the discovery document: an allowed provider whose document names its keys (or
/// token endpoint) at a private address. Every request to a provider is checked, not only the first.
async fn a_discovery_document_cannot_point_the_server_at_private_addresses(app: TestApp) {
    let port = reqwest::Url::parse(&app.base).unwrap().port().unwrap();
    // The tenant itself serves a discovery document from a custom API, on the allowed address.
    let issuer = format!("{}/t/{}/api/evil", app.base, app.tenant);
    serve_discovery(
        &app,
        "evil",
        json!({"issuer": issuer, "authorization_endpoint": "http://127.0.0.1:9/auth", "token_endpoint": "http://10.0.0.1/token",
            "jwks_uri": "http://127.0.0.1:9/keys", "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"]}),
    )
    .await;
    let r = app
        .manage(
            Method::PUT,
            &format!("/tenants/{}/identity/providers/evil", app.tenant),
            Some(json!({"discovery_url": format!("{issuer}/.well-known/openid-configuration"), "client_id": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.manage(Method::PATCH, &format!("/tenants/{}/settings", app.tenant), Some(json!({"outbound_allow": [format!("127.0.0.1:{port}")]}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let token = format!(
        "{}.{}.{}",
        b64(json!({"alg": "RS256", "kid": "k"})),
        b64(json!({"iss": issuer, "sub": "s", "aud": "x", "exp": 9999999999i64, "iat": 1})),
        "c2ln"
    );
    let r = app.request(Method::POST, "/login/evil", &[("content-type", "application/json")], Some(&json!({"id_token": token}).to_string())).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(r.text.contains("EACCES 127.0.0.1") && r.text.contains("outbound_allow"), "the keys at 127.0.0.1:9 were fetched: {}", r.text);
}

/// `aad` for any Entra tenant: the multi-tenant discovery document names the issuer
/// `…/{tenantid}/v2.0`; a token verifies against its own tenant's issuer (from its `tid`). The
/// document is served by the tenant (a custom API) with the real provider's keys, which sign the tokens.
async fn aad_accepts_tokens_of_any_entra_tenant_against_their_own_issuer(app: TestApp) {
    let op = OidcProvider::start(json!([{"client_id": "roost-web", "client_secret": "x", "redirect_uris": ["https://unused.example/cb"]}]));
    let port = reqwest::Url::parse(&app.base).unwrap().port().unwrap();
    let doc: Value = reqwest::get(op.discovery_url()).await.unwrap().json().await.unwrap();
    let base = format!("{}/t/{}/api/entra", app.base, app.tenant);
    let mut entra = json!({"issuer": format!("{base}/{{tenantid}}/v2.0"), "response_types_supported": ["code"],
        "subject_types_supported": ["pairwise"], "id_token_signing_alg_values_supported": ["RS256"]});
    for k in ["authorization_endpoint", "token_endpoint", "jwks_uri"] {
        entra[k] = doc[k].clone();
    }
    serve_discovery(&app, "entra", entra).await;
    let r = app
        .manage(
            Method::PUT,
            &format!("/tenants/{}/identity/providers/aad", app.tenant),
            Some(json!({"discovery_url": format!("{base}/.well-known/openid-configuration"), "client_id": "roost-web"})),
        )
        .await;
    assert_eq!((r.status, r.json()["uid_prefix"].clone()), (StatusCode::OK, json!("Aad")), "{}", r.text);
    let allow = json!({"outbound_allow": [format!("127.0.0.1:{port}"), format!("127.0.0.1:{}", op.port)]});
    assert_eq!(app.manage(Method::PATCH, &format!("/tenants/{}/settings", app.tenant), Some(allow)).await.status, StatusCode::OK);
    let post = |token: String| {
        let app = &app;
        async move { app.request(Method::POST, "/login/aad", &[("content-type", "application/json")], Some(&json!({"id_token": token}).to_string())).await }
    };
    for tid in ["72f988bf-86f1-41af-91ab-2d7cd011db47", "9188040d-6c67-4c5b-b112-36a304b66dad"] {
        let token =
            op.sign(json!({"iss": format!("{base}/{tid}/v2.0"), "tid": tid, "sub": format!("s-{tid}"), "aud": "roost-web", "jti": uuid_like()}), "rs256").await;
        let r = post(token).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json()["user"]["userId"], format!("Aad:s-{tid}"));
    }
    // Limited to some Entra tenants (MS_AadTenants), the others' users are refused.
    let only = json!({"discovery_url": format!("{base}/.well-known/openid-configuration"), "client_id": "roost-web", "entra_tenants": ["72F988BF-86F1-41AF-91AB-2D7CD011DB47"]});
    let r = app.manage(Method::PUT, &format!("/tenants/{}/identity/providers/aad", app.tenant), Some(only)).await;
    assert_eq!((r.status, r.json()["entra_tenants"].clone()), (StatusCode::OK, json!(["72f988bf-86f1-41af-91ab-2d7cd011db47"])), "{}", r.text);
    let other = "9188040d-6c67-4c5b-b112-36a304b66dad";
    let r =
        post(op.sign(json!({"iss": format!("{base}/{other}/v2.0"), "tid": other, "sub": "o", "aud": "roost-web", "jti": uuid_like()}), "rs256").await).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(r.error().contains("may not sign in"), "{}", r.text);
    let tid = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let r = post(op.sign(json!({"iss": format!("{base}/{tid}/v2.0"), "tid": tid, "sub": "p", "aud": "roost-web", "jti": uuid_like()}), "rs256").await).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .manage(Method::PUT, &format!("/tenants/{}/identity/providers/aad", app.tenant), Some(json!({"client_id": "x", "entra_tenants": ["not-a-guid"]})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    for (what, claims) in [
        (
            "an issuer of another tenant than its tid",
            json!({"iss": format!("{base}/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"), "tid": tid, "sub": "m", "aud": "roost-web"}),
        ),
        ("the template itself as issuer", json!({"iss": format!("{base}/{{tenantid}}/v2.0"), "tid": "{tenantid}", "sub": "m", "aud": "roost-web"})),
        ("no tid", json!({"iss": format!("{base}/{tid}/v2.0"), "sub": "m", "aud": "roost-web"})),
        ("a tid that is not a GUID", json!({"iss": format!("{base}/x/v2.0"), "tid": "x", "sub": "m", "aud": "roost-web"})),
    ] {
        let mut claims = claims;
        claims["jti"] = json!(uuid_like());
        let r = post(op.sign(claims, "rs256").await).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {}", r.text);
    }
}

/// A discovery document the tenant itself serves, from a custom API `name`, at
/// `…/api/{name}/.well-known/openid-configuration` (for documents no real provider would send).
async fn serve_discovery(app: &TestApp, name: &str, doc: Value) {
    let api = format!("var doc = {doc};\nexports.register = function (api) {{ api.get('/.well-known/openid-configuration', function (req, res) {{ res.send(200, doc); }}); }};");
    let r = app.put_script("api", name, &api, json!({"permissions": {"routes": {"*": {"permission": "public"}}}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// Facebook Login (§5.5) against the Facebook receiver (`tests/oidc/facebook.mjs`): Facebook's
/// dialog and Graph API with their checks (registered redirect URIs, single-use codes, the app
/// secret, `appsecret_proof`, tokens bound to their app).
async fn facebook_logs_in_both_ways_through_the_graph_api(app: TestApp) {
    let fb = FacebookReceiver::start(json!([]));
    let (dialog, graph) = (fb.dialog_url(), fb.graph_url());
    let app = TestApp::spawn_with(app.backend, move |c| {
        c.facebook_dialog_url = dialog;
        c.facebook_graph_url = graph;
    })
    .await;
    let base = format!("{}/t/{}", app.base, app.tenant);
    fb.register(json!({"app_id": "1001", "app_secret": "fb-secret", "redirect_uris": [format!("{base}/login/facebook")]})).await;
    fb.register(json!({"app_id": "2002", "app_secret": "other-secret", "redirect_uris": []})).await;
    let put = |body: Value| {
        let app = &app;
        async move { app.manage(Method::PUT, &format!("/tenants/{}/identity/providers/facebook", app.tenant), Some(body)).await }
    };
    // A Facebook app has no discovery document and accepts its own tokens only.
    let r = put(json!({"client_id": "1001", "audiences": ["2002"]})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = put(json!({"client_id": "1001"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let p = r.json();
    assert_eq!((p["kind"].as_str(), p["uid_prefix"].as_str()), (Some("facebook"), Some("Facebook")), "{p}");
    assert_eq!(p["scopes"], json!(["public_profile", "email"]));
    // Without the app secret it is not enabled (§5.5's message).
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = http.get(format!("{base}/login/facebook")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), r#"{"code":401,"error":"Error: Logging in with facebook is not enabled."}"#);
    assert_eq!(put(json!({"client_id": "1001", "client_secret": "fb-secret"})).await.status, StatusCode::OK);

    // Client-directed: the SDK's access token. Graph is on loopback here: until the admin allows
    // its address, the server does not call it.
    let (sdk, dana) = fb.sdk_token("1001", "dana").await;
    let post = |body: Value| {
        let (http, url) = (http.clone(), format!("{base}/login/facebook"));
        async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    let (status, text) = post(json!({"access_token": sdk})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(text.contains("outbound_allow"), "{text}");
    let r = app
        .manage(
            Method::PATCH,
            &format!("/tenants/{}/settings", app.tenant),
            Some(json!({"outbound_allow": [format!("127.0.0.1:{}", fb.port)], "cors_origins": ["app.example"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (status, text) = post(json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(text, r#"{"code":401,"error":"Error: The POST Facebook login request must specify the access token in the body of the request."}"#);
    let (status, text) = post(json!({"access_token": sdk})).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let user_id = format!("Facebook:{dana}");
    assert_eq!(body["user"]["userId"], user_id.as_str());
    let token = body["authenticationToken"].as_str().unwrap().to_string();
    let claims = claims_of(&token);
    assert_eq!((claims["aud"].as_str(), claims["uid"].as_str()), (Some("Facebook"), Some(user_id.as_str())), "{claims}");
    whoami_table(&app).await;
    let r = app.request(Method::GET, "/tables/whoami", &[("X-ZUMO-APPLICATION", &app.app_key), ("X-ZUMO-AUTH", &token)], None).await;
    assert_eq!(r.json(), json!({"userId": user_id, "level": "authenticated"}), "{}", r.text);
    // getIdentities() (§5.6): `facebook`, with the long-lived token the server exchanged the SDK's for.
    app.create_table("ids", json!({"permissions": {"read": "user"}})).await;
    app.script("table", "ids.read", "function read(query, user, request) { request.respond(200, user.getIdentities()); }").await;
    let r = app.request(Method::GET, "/tables/ids", &[("X-ZUMO-APPLICATION", &app.app_key), ("X-ZUMO-AUTH", &token)], None).await;
    let ids = r.json();
    assert_eq!(ids["facebook"]["userId"], user_id.as_str(), "{}", r.text);
    assert_eq!(ids["facebook"]["name"], "User dana", "{}", r.text);
    let long = ids["facebook"]["accessToken"].as_str().unwrap_or_default().to_string();
    assert!(!long.is_empty() && long != sdk, "the long-lived token: {}", r.text);
    // Graph answers for that token (and the server sent the proof Graph requires).
    let calls = fb.calls().await;
    assert_eq!((calls["/debug_token"].as_i64(), calls["/me"].as_i64()), (Some(1), Some(1)), "{calls}");

    // The token another app obtained for the same person is refused (token substitution); so are
    // tokens Facebook does not know.
    let (other, dana_elsewhere) = fb.sdk_token("2002", "dana").await;
    assert_ne!(dana_elsewhere, dana, "ids are app-scoped");
    let (status, text) = post(json!({"access_token": other})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(text.contains("issued to another Facebook app"), "{text}");
    let (status, text) = post(json!({"access_token": "EAAforged"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(text.contains("refused by Facebook: Invalid OAuth access token."), "{text}");

    // Server-directed: the dialog with state and `display=touch`, the code exchanged with the secret.
    let start = http.get(format!("{base}/login/facebook")).send().await.unwrap();
    assert_eq!(start.status(), StatusCode::FOUND);
    let authorize = start.headers()["location"].to_str().unwrap().to_string();
    assert!(authorize.starts_with(&format!("{}?", fb.dialog_url())), "{authorize}");
    let query: std::collections::HashMap<String, String> = reqwest::Url::parse(&authorize).unwrap().query_pairs().into_owned().collect();
    assert_eq!(query["client_id"], "1001");
    assert_eq!(query["redirect_uri"], format!("{base}/login/facebook"));
    assert_eq!((query["display"].as_str(), query["scope"].as_str()), ("touch", "public_profile,email"));
    assert!(query["state"].len() >= 16, "{authorize}");
    let (cookies, _) = flow_cookies(&start);
    assert!(cookies.contains("wams_state="), "{cookies}");
    let back = fb.sign_in(&authorize, "erin").await;
    assert!(back.starts_with(&format!("{base}/login/facebook?")), "{back}");
    let r = http.get(&back).send().await.unwrap();
    assert!(r.headers()["location"].to_str().unwrap().contains("wams_state%20cookie"), "{:?}", r.headers());
    let r = http.get(&back).header("cookie", &cookies).send().await.unwrap();
    let done = r.headers()["location"].to_str().unwrap().to_string();
    let fragment = done.strip_prefix(&format!("{base}/login/done#token=")).unwrap_or_else(|| panic!("{done}"));
    let body: Value = serde_json::from_str(&percent_encoding::percent_decode_str(fragment).decode_utf8().unwrap()).unwrap();
    let (_, erin) = fb.sdk_token("1001", "erin").await;
    assert_eq!(body["user"]["userId"], format!("Facebook:{erin}"));
    // Codes are single-use.
    let r = http.get(&back).header("cookie", &cookies).send().await.unwrap();
    let again = r.headers()["location"].to_str().unwrap().to_string();
    assert!(again.contains("#error=") && again.contains("expired"), "{again}");
    // A person who cancels at the dialog comes back with Facebook's error.
    let r = http
        .get(format!("{base}/login/facebook?error=access_denied&error_reason=user_denied&error_description=Permissions+error&state=x"))
        .header("cookie", &cookies)
        .send()
        .await
        .unwrap();
    assert!(r.headers()["location"].to_str().unwrap().contains("#error=Error%3A%20access_denied%3A%20Permissions%20error"), "{:?}", r.headers());

    // A wrong app secret: Graph refuses the exchange, and so does the server.
    assert_eq!(put(json!({"client_id": "1001", "client_secret": "not-the-secret"})).await.status, StatusCode::OK);
    let (sdk, _) = fb.sdk_token("1001", "dana").await;
    let (status, text) = post(json!({"access_token": sdk})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(text.contains("Invalid OAuth access token signature") || text.contains("client secret"), "{text}");
}
