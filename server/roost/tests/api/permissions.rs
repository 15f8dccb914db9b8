//! Keys, tokens and the permission matrix of protocol.md §5.1 and §5.3.

use crate::helpers::TestApp;
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::json;

crate::on_both_backends!(
    permission_matrix_for_every_operation,
    invalid_tokens_get_their_messages,
    no_script_requires_the_master_key,
    regenerated_application_key_replaces_the_old_one
);

async fn permission_matrix_for_every_operation(app: TestApp) {
    let token = app.cli(&["tenant", "token", &app.tenant, "--user-id", "Custom:42"]);
    assert!(token.0, "{}", token.2);
    let token = token.1.trim().to_string();
    let callers: [(&str, Vec<(&str, String)>); 5] = [
        ("anonymous", vec![]),
        ("application", vec![("X-ZUMO-APPLICATION", app.app_key.clone())]),
        ("user", vec![("X-ZUMO-AUTH", token.clone())]),
        ("master", vec![("X-ZUMO-MASTER", app.master_key.clone())]),
        ("wrong key", vec![("X-ZUMO-APPLICATION", "wrong".into()), ("X-ZUMO-MASTER", "wrong".into())]),
    ];
    // Expected success per permission, in caller order.
    let matrix = [
        ("public", [true, true, true, true, true]),
        ("application", [false, true, false, true, false]),
        ("user", [false, false, true, true, false]),
        ("admin", [false, false, false, true, false]),
    ];
    for (perm, allowed) in matrix {
        let table = format!("t_{perm}");
        app.create_table(&table, json!({"permissions": {"insert": perm, "read": perm, "update": perm, "delete": perm}})).await;
        let master = [("X-ZUMO-MASTER", app.master_key.as_str()), ("content-type", "application/json")];
        for ((who, headers), ok) in callers.iter().zip(allowed) {
            let id = format!("{who}-{perm}").replace(' ', "_");
            let mut h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            h.push(("content-type", "application/json"));
            // Seed the row with the master key so read/update/delete have a target.
            let seeded = app.request(Method::POST, &format!("/tables/{table}"), &master, Some(&format!(r#"{{"id":"{id}-seed"}}"#))).await;
            assert_eq!(seeded.status, StatusCode::CREATED);
            let ops: [(Method, String, Option<String>, StatusCode); 5] = [
                (Method::POST, format!("/tables/{table}"), Some(format!(r#"{{"id":"{id}"}}"#)), StatusCode::CREATED),
                (Method::GET, format!("/tables/{table}"), None, StatusCode::OK),
                (Method::GET, format!("/tables/{table}/{id}-seed"), None, StatusCode::OK),
                (Method::PATCH, format!("/tables/{table}/{id}-seed"), Some(r#"{"n":1}"#.into()), StatusCode::OK),
                (Method::DELETE, format!("/tables/{table}/{id}-seed"), None, StatusCode::NO_CONTENT),
            ];
            for (method, path, body, success) in ops {
                let r = app.request(method.clone(), &path, &h, body.as_deref()).await;
                let expected = if ok { success } else { StatusCode::UNAUTHORIZED };
                assert_eq!(r.status, expected, "{perm} {who} {method} {path}: {}", r.text);
                if !ok {
                    assert_eq!(r.json(), json!({"code":401,"error":"Error: Unauthorized"}));
                }
            }
        }
    }
    // The default permission is application for every operation.
    app.create_table("defaults", json!({})).await;
    assert_eq!(app.request(Method::GET, "/tables/defaults", &[], None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/tables/defaults").await.status, StatusCode::OK);
    // A table that does not exist is a 404 before any permission check.
    let r = app.request(Method::GET, "/tables/nothere", &[], None).await;
    assert_eq!(r.json(), json!({"code":404,"error":"Error: Table 'nothere' does not exist."}));
}

async fn invalid_tokens_get_their_messages(app: TestApp) {
    app.create_table("pub", json!({"permissions": {"read": "public"}})).await;
    let (_, good, _) = app.cli(&["tenant", "token", &app.tenant, "--user-id", "Custom:1"]);
    let good = good.trim().to_string();
    let (ok, _, err) = app.cli(&["tenant", "token", &app.tenant, "--user-id", "Custom:1", "--ttl=-5"]);
    assert!(!ok && err.contains("lifetime must be positive"), "{err}");
    let parts: Vec<&str> = good.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none_alg = format!("{}.{}.{}", b64.encode(r#"{"alg":"none","typ":"JWT"}"#), parts[1], parts[2]);
    let bad_typ = format!("{}.{}.{}", b64.encode(r#"{"alg":"HS256","typ":"JWS"}"#), parts[1], parts[2]);
    let wrong_sig = format!("{}.{}.{}", parts[0], parts[1], b64.encode([0u8; 32]));
    let cases = [
        ("a.b", "Error: Invalid token format. Expected Envelope.Claims.Signature."),
        (".b.c", "Error: Invalid token format. Envelope must not be empty."),
        ("a..c", "Error: Invalid token format. Claims must not be empty."),
        ("a.b.", "Error: Invalid token format. Signature must not be empty."),
        (none_alg.as_str(), "Error: The authentication token alg is not supported."),
        (bad_typ.as_str(), "Error: The authentication token type is invalid."),
        (wrong_sig.as_str(), "Error: The authentication token has an invalid signature."),
    ];
    for (token, m) in cases {
        // Even on a public table, a present token must be valid.
        let r = app.request(Method::GET, "/tables/pub", &[("X-ZUMO-AUTH", token)], None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{token}");
        assert_eq!(r.error(), m, "{token}");
    }
    assert_eq!(app.request(Method::GET, "/tables/pub", &[("X-ZUMO-AUTH", &good)], None).await.status, StatusCode::OK);
    // An expired token minted through the management API.
    let r = app.manage(Method::POST, &format!("/tenants/{}/token", app.tenant), Some(json!({"user_id":"Custom:1","ttl_seconds":1}))).await;
    let short = r.json()["token"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = app.request(Method::GET, "/tables/pub", &[("X-ZUMO-AUTH", &short)], None).await;
    assert_eq!(r.error(), "Error: The authentication token has expired.");
    // A token of another tenant (other master key) is refused.
    let other = app.new_tenant().await;
    let foreign = app.manage(Method::POST, &format!("/tenants/{}/token", other["name"].as_str().unwrap()), Some(json!({"user_id":"Custom:1"}))).await.json()
        ["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app.request(Method::GET, "/tables/pub", &[("X-ZUMO-AUTH", &foreign)], None).await;
    assert_eq!(r.error(), "Error: The authentication token has an invalid signature.");
}

async fn no_script_requires_the_master_key(app: TestApp) {
    app.create_table("pub", json!({"permissions": {"read": "public", "insert": "public"}})).await;
    let r = app.request(Method::GET, "/tables/pub?noScript=true", &[("X-ZUMO-APPLICATION", &app.app_key)], None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app.request(Method::GET, "/tables/pub?NOSCRIPT=false", &[], None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "any non-empty value counts");
    let r = app.request(Method::GET, "/tables/pub?noscript=1", &[("X-ZUMO-MASTER", &app.master_key)], None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app.request(Method::GET, "/tables/pub?noscript=", &[], None).await;
    assert_eq!(r.status, StatusCode::OK, "an empty value is not a request");
}

async fn regenerated_application_key_replaces_the_old_one(app: TestApp) {
    app.create_table("todo", json!({})).await;
    assert_eq!(app.get("/tables/todo").await.status, StatusCode::OK);
    let r = app.manage(Method::POST, &format!("/tenants/{}/keys/application/regenerate", app.tenant), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let new_key = r.json()["key"].as_str().unwrap().to_string();
    assert_ne!(new_key, app.app_key);
    assert_eq!(app.get("/tables/todo").await.status, StatusCode::UNAUTHORIZED, "the old key is refused at once");
    assert_eq!(app.request(Method::GET, "/tables/todo", &[("X-ZUMO-APPLICATION", &new_key)], None).await.status, StatusCode::OK);
    // Regenerating the master key invalidates tokens signed with the old one.
    let (_, token, _) = app.cli(&["tenant", "token", &app.tenant, "--user-id", "Custom:9"]);
    app.manage(Method::PUT, &format!("/tenants/{}/tables/todo/permissions", app.tenant), Some(json!({"read":"user"}))).await;
    assert_eq!(app.request(Method::GET, "/tables/todo", &[("X-ZUMO-AUTH", token.trim())], None).await.status, StatusCode::OK);
    let (ok, _, err) = app.cli(&["tenant", "regenerate-key", &app.tenant, "master"]);
    assert!(ok, "{err}");
    assert_eq!(app.request(Method::GET, "/tables/todo", &[("X-ZUMO-AUTH", token.trim())], None).await.status, StatusCode::UNAUTHORIZED);
}
