//! Push (protocol.md §7): the registration endpoints of §7.2 with the `webpush` platform of §7.3,
//! and the tenant's Web Push key pair.

use crate::helpers::TestApp;
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

crate::on_both_backends!(
    registrations_follow_the_protocol,
    registrations_are_checked_and_kept_per_tenant,
    each_tenant_has_its_own_web_push_key,
    a_client_cannot_reserve_ids_without_end
);

/// A browser subscription's keys (RFC 8291's example user agent).
const P256DH: &str = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
const ENDPOINT: &str = "https://push.example.test/send/abc123";

async fn new_id(app: &TestApp) -> String {
    let r = app.request(Method::POST, "/push/registrationids", &[("X-ZUMO-APPLICATION", &app.app_key)], None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.text, "");
    let location = r.headers["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&format!("{}/push/registrations/", app.url(""))), "{location}");
    location.rsplit('/').next().unwrap().to_string()
}

async fn put(app: &TestApp, id: &str, body: Value, installation: Option<&str>) -> crate::helpers::Resp {
    let mut headers = vec![("X-ZUMO-APPLICATION", app.app_key.as_str()), ("content-type", "application/json")];
    if let Some(i) = installation {
        headers.push(("X-ZUMO-INSTALLATION-ID", i));
    }
    app.request(Method::PUT, &format!("/push/registrations/{id}"), &headers, Some(&body.to_string())).await
}

async fn list(app: &TestApp, platform: &str, device: &str) -> Value {
    let path =
        format!("/push/registrations?platform={platform}&deviceId={}", percent_encoding::utf8_percent_encode(device, percent_encoding::NON_ALPHANUMERIC));
    let r = app.request(Method::GET, &path, &[("X-ZUMO-APPLICATION", &app.app_key), ("If-Modified-Since", "Mon, 27 Mar 1972 00:00:00 GMT")], None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json()
}

async fn registrations_follow_the_protocol(app: TestApp) {
    // The routes need the application key (§5.1's default for push routes).
    let r = app.request(Method::POST, "/push/registrationids", &[], None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let id = new_id(&app).await;
    // The JS client posts to `registrationIds`: the sub-routes are case-insensitive.
    let r = app.request(Method::POST, "/push/registrationIds", &[("X-ZUMO-APPLICATION", &app.app_key)], None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    // A Web Push subscription, with the device's installation id added as one more tag.
    let installation = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    let body = json!({"platform": "webpush", "deviceId": ENDPOINT, "keys": {"p256dh": P256DH, "auth": AUTH}, "tags": ["news", "sport"]});
    let r = put(&app, &id, body.clone(), Some(installation)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let found = list(&app, "webpush", ENDPOINT).await;
    assert_eq!(
        found,
        json!([{"registrationId": id, "platform": "webpush", "deviceId": ENDPOINT, "tags": ["news", "sport", installation], "keys": {"p256dh": P256DH, "auth": AUTH}}])
    );
    // PUT again (the client's refresh): replaced, the installation tag not doubled.
    let r = put(
        &app,
        &id,
        json!({"platform": "webpush", "deviceId": ENDPOINT, "keys": {"p256dh": P256DH, "auth": AUTH}, "tags": ["news", installation]}),
        Some(installation),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(list(&app, "webpush", ENDPOINT).await[0]["tags"], json!(["news", installation]));

    // A template registration (FCM), as `registerTemplate(handle, name, body, tags)` sends it.
    let template_id = new_id(&app).await;
    let template = r#"{"data":{"message":"$(message)"}}"#;
    let r = put(&app, &template_id, json!({"platform": "gcm", "deviceId": "fcm-token-1", "templateName": "news", "templateBody": template, "tags": []}), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let found = list(&app, "gcm", "fcm-token-1").await;
    assert_eq!(
        found,
        json!([{"registrationId": template_id, "platform": "gcm", "deviceId": "fcm-token-1", "tags": [], "templateName": "news", "templateBody": template}])
    );
    let r = app.request(Method::GET, &format!("/push/registrations/{template_id}"), &[("X-ZUMO-APPLICATION", &app.app_key)], None).await;
    assert_eq!(r.json(), found[0]);

    // An id this service never made: 410, so that the client makes a new one (§7.2).
    let r = put(&app, "made-up", body.clone(), None).await;
    assert_eq!(r.status, StatusCode::GONE, "{}", r.text);

    // DELETE: 200 with an empty body; the second time 404 (which the JS client treats as done).
    let r = app.request(Method::DELETE, &format!("/push/registrations/{id}"), &[("X-ZUMO-APPLICATION", &app.app_key)], None).await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, ""));
    let r = app.request(Method::DELETE, &format!("/push/registrations/{id}"), &[("X-ZUMO-APPLICATION", &app.app_key)], None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(list(&app, "webpush", ENDPOINT).await, json!([]));
    // A deleted id is gone: PUT answers 410.
    assert_eq!(put(&app, &id, body, None).await.status, StatusCode::GONE);

    // Other verbs: 405 with the protocol's Allow.
    let r = app.request(Method::GET, "/push/registrationids", &[("X-ZUMO-APPLICATION", &app.app_key)], None).await;
    assert_eq!((r.status, r.headers["allow"].to_str().unwrap()), (StatusCode::METHOD_NOT_ALLOWED, "POST"));
    let r = app.request(Method::POST, &format!("/push/registrations/{template_id}"), &[("X-ZUMO-APPLICATION", &app.app_key)], None).await;
    assert_eq!((r.status, r.headers["allow"].to_str().unwrap()), (StatusCode::METHOD_NOT_ALLOWED, "PUT, DELETE, GET"));
    // A list without the device's handle is a clear 400.
    let r = app.request(Method::GET, "/push/registrations?platform=gcm", &[("X-ZUMO-APPLICATION", &app.app_key)], None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("deviceId"), "{}", r.text);
}

async fn registrations_are_checked_and_kept_per_tenant(app: TestApp) {
    let id = new_id(&app).await;
    let keys = json!({"p256dh": P256DH, "auth": AUTH});
    for (body, why) in [
        (json!({"platform": "wns", "deviceId": "https://x.notify.windows.com/?token=1"}), "not supported"),
        (json!({"platform": "webpush", "deviceId": "http://push.example.test/x", "keys": keys}), "https://"),
        (json!({"platform": "webpush", "deviceId": "file:///etc/passwd", "keys": keys}), "https://"),
        (json!({"platform": "webpush", "deviceId": ENDPOINT}), "keys"),
        (json!({"platform": "webpush", "deviceId": ENDPOINT, "keys": {"p256dh": "AAAA", "auth": AUTH}}), "p256dh"),
        (json!({"platform": "webpush", "deviceId": ENDPOINT, "keys": {"p256dh": P256DH, "auth": "AAAA"}}), "keys.auth"),
        (json!({"platform": "gcm"}), "deviceId"),
        (json!({"platform": "apns", "deviceId": "AB CD"}), "spaces"),
        (json!({"platform": "gcm", "deviceId": "t", "templateBody": "{}"}), "templateName"),
        (json!({"platform": "gcm", "deviceId": "t", "tags": ["a,b"]}), "not a valid tag"),
        (json!({"platform": "gcm", "deviceId": "t", "tags": ["x".repeat(121)]}), "not a valid tag"),
        (json!({"platform": "gcm", "deviceId": "t", "tags": (0..61).map(|i| format!("t{i}")).collect::<Vec<_>>()}), "at most 60 tags"),
        (json!({"platform": "gcm", "deviceId": "t", "templateName": "n", "templateBody": "x".repeat(4097)}), "4096"),
        (json!("not an object"), "JSON object"),
    ] {
        let r = put(&app, &id, body.clone(), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert!(r.text.contains(why), "{body}: {why} in {}", r.text);
    }
    // An installation id that is no tag is refused too (it would become one).
    let r = put(&app, &id, json!({"platform": "gcm", "deviceId": "t"}), Some("bad id, with spaces")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // A loopback endpoint over http only once an admin allows its address (a test receiver's way in).
    let local = "http://127.0.0.1:9/push/1";
    assert_eq!(put(&app, &id, json!({"platform": "webpush", "deviceId": local, "keys": keys}), None).await.status, StatusCode::BAD_REQUEST);
    let r = app.manage(Method::PATCH, &format!("/tenants/{}/settings", app.tenant), Some(json!({"outbound_allow": ["127.0.0.1:9"]}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(put(&app, &id, json!({"platform": "webpush", "deviceId": local, "keys": keys}), None).await.status, StatusCode::NO_CONTENT);

    // Another tenant neither sees nor fills this tenant's registrations.
    let other = app.new_tenant().await;
    let other_key = other["application_key"].as_str().unwrap();
    let other_path = |p: &str| format!("{}/t/{}{p}", app.base, other["name"].as_str().unwrap());
    let r = reqwest::Client::new()
        .put(other_path(&format!("/push/registrations/{id}")))
        .header("X-ZUMO-APPLICATION", other_key)
        .json(&json!({"platform": "gcm", "deviceId": "stolen"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::GONE);
    let r = reqwest::Client::new()
        .get(other_path(&format!("/push/registrations?platform=webpush&deviceId={local}")))
        .header("X-ZUMO-APPLICATION", other_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!([]));
    let r = reqwest::Client::new().delete(other_path(&format!("/push/registrations/{id}"))).header("X-ZUMO-APPLICATION", other_key).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // This tenant's key does not open the other's routes.
    let r = reqwest::Client::new().post(other_path("/push/registrationids")).header("X-ZUMO-APPLICATION", &app.app_key).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(list(&app, "webpush", local).await.as_array().map(Vec::len), Some(1));

    // Deleting the tenant deletes its registrations: a new tenant of the same name starts empty.
    let name = app.tenant.clone();
    assert_eq!(app.manage(Method::DELETE, &format!("/tenants/{name}"), None).await.status, StatusCode::NO_CONTENT);
    let r = app.manage(Method::POST, "/tenants", Some(json!({"name": name}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(app.state.storage.registrations(&name, None, None).await.unwrap(), vec![]);
}

async fn each_tenant_has_its_own_web_push_key(app: TestApp) {
    // Public: a page subscribes with it before it has anything else.
    let r = app.request(Method::GET, "/push/vapidkey", &[], None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let key = r.json()["publicKey"].as_str().unwrap().to_string();
    let point = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&key).unwrap();
    assert_eq!((point.len(), point[0]), (65, 4), "an uncompressed P-256 point");
    assert_eq!(app.request(Method::GET, "/push/vapidkey", &[], None).await.json()["publicKey"], key.as_str(), "kept");
    let other = app.new_tenant().await;
    let r = reqwest::Client::new().get(format!("{}/t/{}/push/vapidkey", app.base, other["name"].as_str().unwrap())).send().await.unwrap();
    assert_ne!(r.json::<Value>().await.unwrap()["publicKey"], key.as_str());
    // The private key is stored sealed, never in the clear.
    let stored = app.state.storage.vapid(&app.tenant).await.unwrap().unwrap();
    assert!(stored.vapid_private.starts_with("v1.") && stored.vapid_private.len() > 80, "{}", stored.vapid_private);
    let r = app.request(Method::POST, "/push/vapidkey", &[], None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

async fn a_client_cannot_reserve_ids_without_end(app: TestApp) {
    let app = TestApp::spawn_with(app.backend, |c| c.push_max_registrations = 3).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(new_id(&app).await);
    }
    let r = app.request(Method::POST, "/push/registrationids", &[("X-ZUMO-APPLICATION", &app.app_key)], None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.text.contains("limit of 3 push registrations"), "{}", r.text);
    // Another tenant has its own room.
    let other = app.new_tenant().await;
    let r = reqwest::Client::new()
        .post(format!("{}/t/{}/push/registrationids", app.base, other["name"].as_str().unwrap()))
        .header("X-ZUMO-APPLICATION", other["application_key"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(app.state.storage.registration_count(&app.tenant).await.unwrap(), 3);
    // Deleting one (a reserved id too) makes room again.
    let r = app.request(Method::DELETE, &format!("/push/registrations/{}", ids[0]), &[("X-ZUMO-APPLICATION", &app.app_key)], None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    new_id(&app).await;
}
