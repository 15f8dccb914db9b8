//! Platform accounts: sign-in, sessions in the catalog, CSRF, personal API tokens, roles and tenant
//! ownership on every `/manage/v1` route, the sign-in rate limit, and the portal's static files.

use crate::helpers::{random_name, send, Resp, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

// Alone on PostgreSQL: every server of the shared catalog prunes expired sessions when it starts.
crate::on_both_backends_alone!(failed_sign_ins_are_rate_limited, sessions_are_cookies_in_the_catalog_and_end);

crate::on_both_backends!(
    every_manage_route_checks_role_tenant_and_csrf,
    personal_tokens_and_password_change,
    owners_see_and_share_only_their_tenants,
    rows_logs_and_monitor_for_the_portal,
    admin_create_on_the_command_line,
);

/// A signed-in portal session: its cookie and CSRF token.
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

fn body_text(body: &Option<Value>) -> Option<String> {
    body.as_ref().map(Value::to_string)
}

impl TestApp {
    pub async fn account(&self, role: &str) -> (String, String) {
        let email = format!("{}@example.com", random_name(role));
        let password = "a good long password".to_string();
        let r = self.manage(Method::POST, "/accounts", Some(json!({"email": email, "password": password, "role": role}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        (email, password)
    }

    pub async fn sign_in_raw(&self, email: &str, password: &str) -> Resp {
        send(self.client().post(format!("{}/manage/v1/session", self.base)).json(&json!({"email": email, "password": password}))).await
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> Session {
        let r = self.sign_in_raw(email, password).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let set = r.header("set-cookie").expect("a session cookie");
        let cookie = set.split(';').next().unwrap_or_default().to_string();
        Session { cookie, csrf: r.json()["csrf_token"].as_str().unwrap_or_default().to_string() }
    }

    /// A `/manage/v1` call with a session cookie, with or without its CSRF token.
    pub async fn as_session(&self, s: &Session, method: Method, path: &str, body: Option<Value>, csrf: bool) -> Resp {
        let mut rb = self.client().request(method, format!("{}/manage/v1{path}", self.base)).header("cookie", &s.cookie);
        if csrf {
            rb = rb.header("x-csrf-token", &s.csrf);
        }
        if let Some(b) = body_text(&body) {
            rb = rb.header("content-type", "application/json").body(b);
        }
        send(rb).await
    }

    pub async fn anonymous(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let mut rb = self.client().request(method, format!("{}/manage/v1{path}", self.base));
        if let Some(b) = body_text(&body) {
            rb = rb.header("content-type", "application/json").body(b);
        }
        send(rb).await
    }

    pub async fn with_bearer(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> Resp {
        let mut rb = self.client().request(method, format!("{}/manage/v1{path}", self.base)).bearer_auth(token);
        if let Some(b) = body_text(&body) {
            rb = rb.header("content-type", "application/json").body(b);
        }
        send(rb).await
    }
}

/// What a route needs, as the issue states it (not read from the server's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Any signed-in account.
    Signed,
    /// Any role (answer filtered).
    Listing,
    /// Admin or owner.
    Create,
    /// Admin, owner of the tenant, support.
    Monitor,
    /// Admin or owner of the tenant.
    Tenant,
    /// Admin.
    Admin,
    /// Admin or support (the platform's monitoring view).
    Watch,
}

/// Every `/manage/v1` route but sign-in itself, on tenant `t`.
fn routes(t: &str) -> Vec<(Method, String, Option<Value>, Need)> {
    use Method as M;
    use Need::*;
    let p = |s: &str| s.replace("{t}", t);
    vec![
        (M::GET, p("/session"), None, Signed),
        (M::DELETE, p("/session"), None, Signed),
        (M::PUT, p("/account/password"), Some(json!({"current_password": "x", "new_password": "y"})), Signed),
        (M::GET, p("/account/tokens"), None, Signed),
        (M::POST, p("/account/tokens"), Some(json!({"name": "t"})), Signed),
        (M::DELETE, p("/account/tokens/nope"), None, Signed),
        (M::GET, p("/accounts"), None, Admin),
        (M::POST, p("/accounts"), Some(json!({"email": "x@example.com", "password": "0123456789", "role": "admin"})), Admin),
        (M::DELETE, p("/accounts/nope"), None, Admin),
        (M::GET, p("/tenants"), None, Listing),
        (M::POST, p("/tenants"), Some(json!({"name": random_name("x")})), Create),
        (M::GET, p("/tenants/{t}"), None, Tenant),
        (M::DELETE, p("/tenants/{t}"), None, Tenant),
        (M::GET, p("/tenants/{t}/owners"), None, Tenant),
        (M::POST, p("/tenants/{t}/owners"), Some(json!({"email": "nobody@example.com"})), Tenant),
        (M::DELETE, p("/tenants/{t}/owners/nope"), None, Tenant),
        (M::GET, p("/tenants/{t}/monitor"), None, Monitor),
        (M::GET, p("/tenants/{t}/dashboard?range=24h"), None, Monitor),
        (M::GET, p("/tenants/{t}/usage"), None, Monitor),
        (M::PUT, p("/tenants/{t}/tier"), Some(json!({"tier": "standard"})), Admin),
        (M::GET, p("/tenants/{t}/backup"), None, Admin),
        (M::POST, p("/restore?as=never-restored"), Some(json!({"not": "an archive"})), Admin),
        (M::GET, p("/tiers"), None, Signed),
        (M::GET, p("/monitor"), None, Watch),
        (M::PATCH, p("/tenants/{t}/settings"), Some(json!({"dynamic_schema": false})), Tenant),
        (M::POST, p("/tenants/{t}/keys/application/regenerate"), None, Tenant),
        (M::POST, p("/tenants/{t}/token"), Some(json!({"user_id": "u"})), Tenant),
        (M::POST, p("/tenants/{t}/tokens/revoke"), None, Tenant),
        (M::GET, p("/tenants/{t}/tables"), None, Tenant),
        (M::POST, p("/tenants/{t}/tables"), Some(json!({"name": "other"})), Tenant),
        (M::GET, p("/tenants/{t}/tables/items"), None, Tenant),
        (M::DELETE, p("/tenants/{t}/tables/items"), None, Tenant),
        (M::PUT, p("/tenants/{t}/tables/items/permissions"), Some(json!({"read": "public"})), Tenant),
        (M::POST, p("/tenants/{t}/tables/items/columns"), Some(json!({"name": "m", "type": "number"})), Tenant),
        (M::DELETE, p("/tenants/{t}/tables/items/columns/n"), None, Tenant),
        (M::GET, p("/tenants/{t}/tables/items/rows"), None, Tenant),
        (M::POST, p("/tenants/{t}/tables/items/rows"), Some(json!({"n": 1})), Tenant),
        (M::GET, p("/tenants/{t}/tables/items/rows/nope"), None, Tenant),
        (M::PATCH, p("/tenants/{t}/tables/items/rows/nope"), Some(json!({"n": 2})), Tenant),
        (M::DELETE, p("/tenants/{t}/tables/items/rows/nope"), None, Tenant),
        (M::GET, p("/tenants/{t}/scripts"), None, Tenant),
        (M::GET, p("/tenants/{t}/scripts/shared/util"), None, Tenant),
        (M::PUT, p("/tenants/{t}/scripts/shared/util"), Some(json!({"body": "exports.x = 1;"})), Tenant),
        (M::DELETE, p("/tenants/{t}/scripts/shared/util"), None, Tenant),
        (M::GET, p("/tenants/{t}/packages"), None, Tenant),
        (M::PUT, p("/tenants/{t}/packages"), Some(json!({"dependencies": {}})), Tenant),
        (M::GET, p("/tenants/{t}/identity/providers"), None, Tenant),
        (M::GET, p("/tenants/{t}/identity/providers/google"), None, Tenant),
        (M::PUT, p("/tenants/{t}/identity/providers/google"), Some(json!({"client_id": "web-client", "client_secret": "changed"})), Tenant),
        (M::DELETE, p("/tenants/{t}/identity/providers/google"), None, Tenant),
        (M::GET, p("/tenants/{t}/logs"), None, Monitor),
        (M::GET, p("/tenants/{t}/jobs/nightly/runs"), None, Monitor),
        (M::POST, p("/tenants/{t}/jobs/nightly/run"), None, Tenant),
    ]
}

async fn furnish(app: &TestApp, tenant: &str) {
    let r = app.manage(Method::POST, &format!("/tenants/{tenant}/tables"), Some(json!({"name": "items"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = app.manage(Method::POST, &format!("/tenants/{tenant}/tables/items/columns"), Some(json!({"name": "n", "type": "number"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for (kind, name, body) in [("shared", "util", "exports.x = 1;"), ("job", "nightly", "function nightly() { console.log('nightly ran'); }")] {
        let r = app.manage(Method::PUT, &format!("/tenants/{tenant}/scripts/{kind}/{name}"), Some(json!({"body": body}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let r = app
        .manage(Method::PUT, &format!("/tenants/{tenant}/identity/providers/google"), Some(json!({"client_id": "web-client", "client_secret": "s3cret"})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

fn refused(r: &Resp) -> bool {
    r.status == StatusCode::UNAUTHORIZED || r.status == StatusCode::FORBIDDEN
}

async fn every_manage_route_checks_role_tenant_and_csrf(app: TestApp) {
    // Tenant B is the app's (created with the platform token: nobody owns it); owner1 creates A.
    let (owner_email, owner_pw) = app.account("owner").await;
    let (support_email, support_pw) = app.account("support").await;
    let owner = app.sign_in(&owner_email, &owner_pw).await;
    let support = app.sign_in(&support_email, &support_pw).await;
    let a = random_name("own");
    let r = app.as_session(&owner, Method::POST, "/tenants", Some(json!({"name": a})), true).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    furnish(&app, &a).await;
    furnish(&app, &app.tenant).await;
    let b = app.tenant.clone();

    for (method, path, body, need) in routes(&b) {
        // No credentials: 401, whatever the route.
        let r = app.anonymous(method.clone(), &path, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "anonymous {method} {path}: {}", r.text);
        assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer"));
        // A wrong bearer token: 401.
        let r = app.with_bearer("roost_pat_not-a-token", method.clone(), &path, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "bad token {method} {path}: {}", r.text);
        // Support: only the signed-in, listing and monitoring routes (sign-out is tried elsewhere).
        if method == Method::DELETE && path == "/session" {
            continue;
        }
        let r = app.as_session(&support, method.clone(), &path, body.clone(), true).await;
        let support_may = matches!(need, Need::Signed | Need::Listing | Need::Monitor | Need::Watch);
        if support_may {
            assert!(!refused(&r), "support {method} {path} refused: {} {}", r.status, r.text);
        } else {
            assert_eq!(r.status, StatusCode::FORBIDDEN, "support {method} {path}: {}", r.text);
        }
        // The owner of A on B (the wrong tenant): refused on every tenant route and on admin routes.
        if matches!(need, Need::Tenant | Need::Monitor | Need::Admin | Need::Watch) {
            let r = app.as_session(&owner, method.clone(), &path, body.clone(), true).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "owner of another tenant {method} {path}: {}", r.text);
        }
    }
    // Every state change of a session needs its CSRF token: on the owner's own tenant A, without the
    // token or with a wrong one, every non-GET route is refused before it does anything.
    for (method, path, body, _) in routes(&a) {
        if method == Method::GET {
            continue;
        }
        let r = app.as_session(&owner, method.clone(), &path, body.clone(), false).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "no CSRF {method} {path}: {}", r.text);
        assert!(r.error().contains("CSRF"), "{}", r.text);
        let forged = Session { cookie: owner.cookie.clone(), csrf: "forged".into() };
        let r = app.as_session(&forged, method.clone(), &path, body.clone(), true).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "forged CSRF {method} {path}: {}", r.text);
    }
    // Nothing changed on A: its table, column, scripts and provider are all there, and the session still works.
    let r = app.as_session(&owner, Method::GET, &format!("/tenants/{a}/tables/items"), None, false).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("\"n\""), "{}", r.text);
    let r = app.as_session(&owner, Method::GET, &format!("/tenants/{a}/identity/providers/google"), None, false).await;
    assert_eq!(r.json()["client_secret_hint"], "…cret", "{}", r.text);
    // The owner may read everything of A (GET needs no CSRF token).
    for (method, path, _, need) in routes(&a) {
        if method == Method::GET && matches!(need, Need::Tenant | Need::Monitor) {
            let r = app.as_session(&owner, method.clone(), &path, None, false).await;
            assert!(!refused(&r), "owner GET {path}: {} {}", r.status, r.text);
        }
    }
    // Support reads monitoring, logs and runs of any tenant.
    for path in [format!("/tenants/{b}/monitor"), format!("/tenants/{b}/logs"), format!("/tenants/{b}/jobs/nightly/runs")] {
        let r = app.as_session(&support, Method::GET, &path, None, false).await;
        assert_eq!(r.status, StatusCode::OK, "support GET {path}: {}", r.text);
    }
    // An owner may write to A with the token.
    let r = app.as_session(&owner, Method::POST, &format!("/tenants/{a}/tables/items/rows"), Some(json!({"n": 5})), true).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

async fn sessions_are_cookies_in_the_catalog_and_end(app: TestApp) {
    let (email, pw) = app.account("admin").await;
    let r = app.sign_in_raw(&email, &pw).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let set = r.header("set-cookie").expect("cookie");
    assert!(set.starts_with("roost_session="), "{set}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/manage/v1"] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    assert!(!set.contains("Secure"), "not Secure unless configured: {set}");
    let j = r.json();
    assert_eq!(j["account"]["email"], email);
    assert_eq!(j["account"]["role"], "admin");
    assert!(j["account"].get("password_hash").is_none());
    let s = app.sign_in(&email, &pw).await;
    let me = app.as_session(&s, Method::GET, "/session", None, false).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["csrf_token"], s.csrf.as_str(), "the session's CSRF token is stable");
    // The catalog holds the session under the hash of its id, never the id itself.
    let id = s.cookie.trim_start_matches("roost_session=");
    let hash = roost::accounts::secret_hash(id);
    let now = chrono::Utc::now().timestamp();
    let data = app.state.storage.load_session(&hash, now).await.expect("load").expect("stored under the hash");
    assert!(!data.contains(id));
    assert!(app.state.storage.load_session(id, 0).await.expect("load").is_none());
    // An expired record no longer signs anyone in.
    app.state.storage.save_session(&hash, &data, now - 5).await.expect("save");
    assert_eq!(app.as_session(&s, Method::GET, "/session", None, false).await.status, StatusCode::UNAUTHORIZED);
    assert!(app.state.storage.prune_sessions(now).await.expect("prune") >= 1);
    assert!(app.state.storage.load_session(&hash, 0).await.expect("load").is_none(), "pruned");
    // Sign-out ends the session (with its CSRF token).
    let s = app.sign_in(&email, &pw).await;
    let r = app.as_session(&s, Method::DELETE, "/session", None, true).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(app.as_session(&s, Method::GET, "/tenants", None, false).await.status, StatusCode::UNAUTHORIZED);
    // Deleting an account ends its sessions.
    let s = app.sign_in(&email, &pw).await;
    let id = app.as_session(&s, Method::GET, "/session", None, false).await.json()["account"]["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(app.manage(Method::DELETE, &format!("/accounts/{id}"), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.as_session(&s, Method::GET, "/tenants", None, false).await.status, StatusCode::UNAUTHORIZED);
    // Bad input to account creation.
    for (body, want) in [
        (json!({"email": "not-an-email", "password": "0123456789", "role": "owner"}), "e-mail"),
        (json!({"email": "short@example.com", "password": "123", "role": "owner"}), "10 characters"),
        (json!({"email": "r@example.com", "password": "0123456789", "role": "king"}), "role"),
    ] {
        let r = app.manage(Method::POST, "/accounts", Some(body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert!(r.error().contains(want), "{want}: {}", r.text);
    }
    let r = app.manage(Method::POST, "/accounts", Some(json!({"email": email.to_uppercase(), "password": "0123456789", "role": "owner"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "a deleted account's e-mail is free again: {}", r.text);
    let r = app.manage(Method::POST, "/accounts", Some(json!({"email": email, "password": "0123456789", "role": "owner"}))).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "e-mails are unique, case-insensitively: {}", r.text);
}

async fn failed_sign_ins_are_rate_limited(app: TestApp) {
    let (email, pw) = app.account("owner").await;
    let (other, other_pw) = app.account("owner").await;
    for i in 0..5 {
        let r = app.sign_in_raw(&email, "wrong password!").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}: {}", r.text);
        assert_eq!(r.error(), "The e-mail or password is wrong.");
    }
    // An unknown e-mail gets the same answer.
    let r = app.sign_in_raw("nobody-here@example.com", "whatever it is").await;
    assert_eq!((r.status, r.error()), (StatusCode::UNAUTHORIZED, "The e-mail or password is wrong.".to_string()));
    // The sixth attempt is refused even with the right password, and says when to retry.
    let r = app.sign_in_raw(&email.to_uppercase(), &pw).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    let retry: u64 = r.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
    assert!(retry > 0 && retry <= 15 * 60, "{retry}");
    assert!(r.error().contains("Too many failed sign-ins"), "{}", r.text);
    // Another account from the same address still signs in.
    let r = app.sign_in_raw(&other, &other_pw).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn personal_tokens_and_password_change(app: TestApp) {
    let (email, pw) = app.account("owner").await;
    let s = app.sign_in(&email, &pw).await;
    let r = app.as_session(&s, Method::POST, "/account/tokens", Some(json!({"name": "ci"})), true).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let created = r.json();
    let token = created["token"].as_str().expect("the secret, once").to_string();
    assert!(token.starts_with("roost_pat_"));
    let list = app.as_session(&s, Method::GET, "/account/tokens", None, false).await.json();
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert!(list[0].get("token").is_none(), "never listed: {list}");
    // The token acts as its account, with its role, and needs no CSRF token.
    let me = app.with_bearer(&token, Method::GET, "/session", None).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["account"]["email"], email.as_str());
    assert_eq!(me.json()["csrf_token"], Value::Null);
    assert_eq!(app.with_bearer(&token, Method::GET, "/accounts", None).await.status, StatusCode::FORBIDDEN);
    let name = random_name("tok");
    let r = app.with_bearer(&token, Method::POST, "/tenants", Some(json!({"name": name}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(app.with_bearer(&token, Method::GET, &format!("/tenants/{name}"), None).await.status, StatusCode::OK);
    assert_eq!(app.with_bearer(&token, Method::GET, &format!("/tenants/{}", app.tenant), None).await.status, StatusCode::FORBIDDEN);
    let used = app.as_session(&s, Method::GET, "/account/tokens", None, false).await.json();
    assert!(used[0]["last_used_at"].is_string(), "{used}");
    // Revoked: refused.
    let id = created["id"].as_str().unwrap_or_default();
    assert_eq!(app.as_session(&s, Method::DELETE, &format!("/account/tokens/{id}"), None, true).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.with_bearer(&token, Method::GET, "/session", None).await.status, StatusCode::UNAUTHORIZED);
    // Password change: the current one is checked, the new one must be long enough.
    let r =
        app.as_session(&s, Method::PUT, "/account/password", Some(json!({"current_password": "nope", "new_password": "another long password"})), true).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = app.as_session(&s, Method::PUT, "/account/password", Some(json!({"current_password": pw, "new_password": "short"})), true).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = app.as_session(&s, Method::PUT, "/account/password", Some(json!({"current_password": pw, "new_password": "another long password"})), true).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(app.sign_in_raw(&email, &pw).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.sign_in_raw(&email, "another long password").await.status, StatusCode::OK);
    // The platform admin token has no account of its own.
    let r = app.manage(Method::POST, "/account/tokens", Some(json!({"name": "x"}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}

async fn owners_see_and_share_only_their_tenants(app: TestApp) {
    let (e1, p1) = app.account("owner").await;
    let (e2, p2) = app.account("owner").await;
    let (e3, _) = app.account("support").await;
    let (o1, o2) = (app.sign_in(&e1, &p1).await, app.sign_in(&e2, &p2).await);
    let name = random_name("mine");
    assert_eq!(app.as_session(&o1, Method::POST, "/tenants", Some(json!({"name": name})), true).await.status, StatusCode::CREATED);
    let names =
        |r: Resp| r.json().as_array().cloned().unwrap_or_default().iter().map(|t| t["name"].as_str().unwrap_or_default().to_string()).collect::<Vec<_>>();
    assert_eq!(names(app.as_session(&o1, Method::GET, "/tenants", None, false).await), vec![name.clone()]);
    assert!(names(app.as_session(&o2, Method::GET, "/tenants", None, false).await).is_empty());
    // The list carries no keys (support sees it too).
    let all = app.manage(Method::GET, "/tenants", None).await.json();
    assert!(all.as_array().is_some_and(|v| v.len() >= 2) && !all.to_string().contains("key"), "{all}");
    // The owner shares the tenant with another owner account; support accounts cannot own one.
    let r = app.as_session(&o1, Method::POST, &format!("/tenants/{name}/owners"), Some(json!({"email": e3})), true).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = app.as_session(&o1, Method::POST, &format!("/tenants/{name}/owners"), Some(json!({"email": e2})), true).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json().as_array().map(Vec::len), Some(2));
    assert_eq!(names(app.as_session(&o2, Method::GET, "/tenants", None, false).await), vec![name.clone()]);
    let o1_id = r
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .find(|a| a["email"] == e1.as_str())
        .map(|a| a["id"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    // The second owner removes the first, who then loses access.
    let r = app.as_session(&o2, Method::DELETE, &format!("/tenants/{name}/owners/{o1_id}"), None, true).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(app.as_session(&o1, Method::GET, &format!("/tenants/{name}"), None, false).await.status, StatusCode::FORBIDDEN);
    // Deleting the tenant forgets its owners: a new tenant of the same name is nobody's.
    assert_eq!(app.as_session(&o2, Method::DELETE, &format!("/tenants/{name}"), None, true).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.manage(Method::POST, "/tenants", Some(json!({"name": name}))).await.status, StatusCode::CREATED);
    assert_eq!(app.as_session(&o2, Method::GET, &format!("/tenants/{name}"), None, false).await.status, StatusCode::FORBIDDEN);
}

async fn rows_logs_and_monitor_for_the_portal(app: TestApp) {
    let t = app.tenant.clone();
    furnish(&app, &t).await;
    let r = app
        .put_script(
            "table",
            "items.insert",
            "function insert(item, user, request) { item.scripted = true; console.warn('insert %d', item.n); request.execute(); }",
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Rows through the tenant pipeline with the master key and no script.
    let r = app.manage(Method::POST, &format!("/tenants/{t}/tables/items/rows"), Some(json!({"n": 1, "label": "direct"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(r.json().get("scripted").is_none(), "no script: {}", r.text);
    let id = r.json()["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(app.insert("items", json!({"n": 7})).await.status, StatusCode::CREATED);
    let r = app.manage(Method::GET, &format!("/tenants/{t}/tables/items/rows?$filter=n%20gt%205&$inlinecount=allpages&__systemproperties=*"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let j = r.json();
    assert_eq!(j["count"], 1);
    assert_eq!(j["results"][0]["n"], 7);
    assert_eq!(j["results"][0]["scripted"], true);
    assert!(j["results"][0]["__createdAt"].is_string());
    let r = app.manage(Method::PATCH, &format!("/tenants/{t}/tables/items/rows/{id}"), Some(json!({"label": "edited"}))).await;
    assert_eq!((r.status, r.json()["label"].clone()), (StatusCode::OK, json!("edited")));
    let r = app.manage(Method::GET, &format!("/tenants/{t}/tables/items/rows?$filter=n%20eq"), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "the protocol's own error: {}", r.text);
    assert_eq!(app.manage(Method::DELETE, &format!("/tenants/{t}/tables/items/rows/{id}"), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.manage(Method::GET, &format!("/tenants/{t}/tables/missing/rows"), None).await.status, StatusCode::NOT_FOUND);
    // Logs: filters, newest first, paging, time range.
    app.wait_for_log("insert 7").await;
    for n in 0..3 {
        assert_eq!(app.insert("items", json!({"n": 100 + n})).await.status, StatusCode::CREATED);
    }
    app.wait_for_log("insert 102").await;
    let logs = |q: &str| {
        let q = q.to_string();
        let app = &app;
        async move {
            let r = app.manage(Method::GET, &format!("/tenants/{}/logs{q}", app.tenant), None).await;
            assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.text);
            r.json().as_array().cloned().unwrap_or_default()
        }
    };
    let newest = logs("?order=desc&limit=2").await;
    assert_eq!(newest.iter().map(|l| l["message"].as_str().unwrap_or_default()).collect::<Vec<_>>(), vec!["insert 102", "insert 101"]);
    let older = logs(&format!("?order=desc&limit=10&before={}", newest[1]["id"])).await;
    assert_eq!(older[0]["message"], "insert 100");
    assert_eq!(logs("?level=warning&q=INSERT%2010").await.len(), 3, "text search is case-insensitive");
    assert!(logs("?level=error").await.is_empty());
    assert_eq!(logs("?source=items.insert&q=insert%207").await.len(), 1);
    assert!(logs("?q=100%25").await.is_empty(), "% is a literal");
    assert!(logs("?since=2999-01-01T00:00:00Z").await.is_empty());
    assert_eq!(logs("?until=2999-01-01T00:00:00Z&q=insert%20102").await.len(), 1);
    for bad in ["?order=sideways", "?level=loud", "?since=yesterday", "?limit=many"] {
        let r = app.manage(Method::GET, &format!("/tenants/{t}/logs{bad}"), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
    }
    // Run a job now, then the monitor shows it with its outcome.
    let r = app.manage(Method::POST, &format!("/tenants/{t}/jobs/nightly/run"), None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    app.wait_for_log("nightly ran").await;
    let mut m = Value::Null;
    for _ in 0..50 {
        m = app.manage(Method::GET, &format!("/tenants/{t}/monitor"), None).await.json();
        if m["jobs"][0]["last_run"]["outcome"].is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(m["tables"], 1);
    assert_eq!(m["scripts"], 3);
    assert_eq!(m["jobs"][0]["name"], "nightly");
    assert_eq!(m["jobs"][0]["last_run"]["outcome"], "succeeded", "{m}");
    assert_eq!(m["recent_log_levels"], json!([["information", 1], ["warning", 4], ["error", 0]]), "{m}");
    assert_eq!(app.manage(Method::POST, &format!("/tenants/{t}/jobs/missing/run"), None).await.status, StatusCode::NOT_FOUND);
}

async fn admin_create_on_the_command_line(app: TestApp) {
    let email = format!("{}@example.com", random_name("cli"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(["admin", "create", "--email", &email, "--role", "support"])
        .env("ROOST_DATA", &app.data)
        .env("ROOST_DATABASE_URL", &app.database_url)
        .env("ROOST_PASSWORD", "from the environment")
        .output()
        .expect("run roost");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = app.sign_in_raw(&email, "from the environment").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["account"]["role"], "support");
    // From stdin, and the errors say what is wrong.
    use std::io::Write;
    let second = format!("{}@example.com", random_name("cli"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(["admin", "create", "--email", &second])
        .env("ROOST_DATA", &app.data)
        .env("ROOST_DATABASE_URL", &app.database_url)
        .env_remove("ROOST_PASSWORD")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().expect("stdin").write_all(b"typed on stdin ok\n").expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(app.sign_in_raw(&second, "typed on stdin ok").await.json()["account"]["role"], "admin");
    let (ok, out, _) = app.cli(&["admin", "list"]);
    assert!(ok && out.contains(&email) && out.contains(&second), "{out}");
    let dup = std::process::Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(["admin", "create", "--email", &email])
        .env("ROOST_DATA", &app.data)
        .env("ROOST_DATABASE_URL", &app.database_url)
        .env("ROOST_PASSWORD", "from the environment")
        .output()
        .expect("run roost");
    assert!(!dup.status.success() && String::from_utf8_lossy(&dup.stderr).contains("already exists"), "{}", String::from_utf8_lossy(&dup.stderr));
    // The portal's static files: a clear 503 until built.
    let r = send(app.client().get(format!("{}/portal/", app.base))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.text.contains("scripts/build-portal"), "{}", r.text);
    let r = send(app.client().get(format!("{}/portal", app.base))).await;
    assert_eq!((r.status, r.header("location").as_deref()), (StatusCode::PERMANENT_REDIRECT, Some("/portal/")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_files_are_served_with_a_strict_policy() {
    let dist = std::env::temp_dir().join(random_name("portal-dist-"));
    std::fs::create_dir_all(&dist).expect("dist");
    std::fs::write(dist.join("index.html"), "<!doctype html><title>Roost portal</title>").expect("index");
    std::fs::write(dist.join("boot.js"), "import init from './portal.js';").expect("boot");
    let d = dist.clone();
    let app = TestApp::spawn_with(crate::helpers::Backend::Sqlite, move |c| c.portal_dir = d).await;
    let r = send(app.client().get(format!("{}/portal/", app.base))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("Roost portal"));
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(r.header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(r.header("cache-control").as_deref(), Some("no-cache"));
    let r = send(app.client().get(format!("{}/portal/boot.js", app.base))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").unwrap_or_default().contains("javascript"));
    assert_eq!(send(app.client().get(format!("{}/portal/missing.js", app.base))).await.status, StatusCode::NOT_FOUND);
    assert_eq!(send(app.client().get(format!("{}/portal/..%2f..%2fetc%2fpasswd", app.base))).await.status, StatusCode::NOT_FOUND);
    let _ = std::fs::remove_dir_all(&dist);
}
