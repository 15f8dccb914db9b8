//! Push (protocol.md §7): the registration endpoints of §7.2 with the `webpush` platform of §7.3,
//! and the tenant's Web Push key pair.

use crate::helpers::TestApp;
use crate::oidc::{NativeReceiver, WebPushReceiver};
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

crate::on_both_backends!(
    registrations_follow_the_protocol,
    registrations_are_checked_and_kept_per_tenant,
    each_tenant_has_its_own_web_push_key,
    a_client_cannot_reserve_ids_without_end,
    sends_reach_web_push_subscriptions_through_the_outbox,
    native_credentials_are_checked_and_never_shown,
    sends_reach_fcm_and_apns_devices,
    the_push_extension_edits_registrations_before_they_are_saved,
    scripts_manage_registrations_with_the_notification_hubs_methods,
    extensions_push_json_sets_the_push_routes_permissions
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

/// A subscription of the receiver registered with `tags` (and a template when given); its id at
/// the receiver.
async fn subscribe(app: &TestApp, rx: &WebPushReceiver, behaviour: Value, tags: Value, template: Option<&str>) -> String {
    let sub = rx.subscribe(behaviour).await;
    let id = new_id(app).await;
    let mut body = json!({"platform": "webpush", "deviceId": sub["endpoint"], "keys": sub["keys"], "tags": tags});
    if let Some(t) = template {
        body["templateName"] = json!("t");
        body["templateBody"] = json!(t);
    }
    let r = put(app, &id, body, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    sub["endpoint"].as_str().unwrap().rsplit('/').next().unwrap().to_string()
}

/// Waits (at most 20 s) until the receiver holds `n` messages.
async fn wait_for_messages(rx: &WebPushReceiver, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let m = rx.messages().await;
        if m.len() >= n {
            return m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the receiver has {:?}, not {n} messages; stats {}", rx.messages().await, rx.stats().await)
}

async fn sends_reach_web_push_subscriptions_through_the_outbox(app: TestApp) {
    let rx = WebPushReceiver::start();
    let app = TestApp::spawn_alone(app.backend, |_| {}).await;
    let r = app.manage(Method::PATCH, &format!("/tenants/{}/settings", app.tenant), Some(json!({"outbound_allow": [format!("127.0.0.1:{}", rx.port)]}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let plain = subscribe(&app, &rx, json!({}), json!(["news"]), None).await;
    let sport = subscribe(&app, &rx, json!({}), json!(["sport"]), None).await;
    let gone = subscribe(&app, &rx, json!({"behaviour": "gone"}), json!(["news"]), None).await;
    let flaky = subscribe(&app, &rx, json!({"behaviour": "flaky", "failures": 2}), json!(["news"]), None).await;
    let templated = subscribe(&app, &rx, json!({}), json!(["news"]), Some(r#"{"title":"{'News: ' + $(title)}","count":#(n)}"#)).await;
    // A custom API sends as Mobile Services scripts did; `success` hears of it once it is queued.
    let api = r#"exports.post = function (request, response) {
        var b = request.body;
        var send = b.platform === 'template' ? request.service.push.send : request.service.push[b.platform].send;
        send(b.tags, b.payload, b.options || {}, {
            success: function (result) { response.send(200, result); },
            error: function (err) { response.send(400, { message: err.message }); }
        });
    };"#;
    let r = app.put_script("api", "notify", api, json!({"permissions": {"routes": {"*": {"permission": "application"}}}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let notify = |body: Value| {
        let app = &app;
        async move { app.call(Method::POST, "/api/notify", Some(body)).await }
    };
    let r = notify(json!({"platform": "template", "tags": "news", "payload": {"title": "Hi \"all\"", "n": 3}, "options": {"ttl": 600, "urgency": "high", "topic": "updates"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{} {:?}", r.text, app.logs().await);
    let result = r.json();
    assert_eq!((result["queued"].as_i64(), &result["skipped"]), (Some(4), &json!({})), "{result}");
    let send_id = result["id"].as_str().unwrap().to_string();

    // Three delivered (the flaky one after two 503s with Retry-After), the gone one pruned.
    let messages = wait_for_messages(&rx, 3).await;
    let of = |sub: &str| messages.iter().find(|m| m["subscription"] == sub).cloned();
    let m = of(&plain).expect("the plain subscription's message");
    assert_eq!(serde_json::from_str::<Value>(m["payload"].as_str().unwrap()).unwrap(), json!({"title": "Hi \"all\"", "n": 3}));
    assert_eq!((m["ttl"].as_i64(), m["urgency"].as_str(), m["topic"].as_str()), (Some(600), Some("high"), Some("updates")), "{m}");
    let m = of(&templated).expect("the template's message");
    assert_eq!(serde_json::from_str::<Value>(m["payload"].as_str().unwrap()).unwrap(), json!({"title": "News: Hi \"all\"", "count": 3}));
    assert!(of(&flaky).is_some() && of(&sport).is_none() && of(&gone).is_none(), "{messages:?}");
    let stats = rx.stats().await;
    assert_eq!(stats["refused"], json!({}), "the receiver refused nothing: {stats}");
    assert_eq!((stats["byStatus"]["503"].as_i64(), stats["byStatus"]["410"].as_i64()), (Some(2), Some(1)), "{stats}");
    // The send's counts add up, and the gone registration is removed.
    let mut counts = None;
    for _ in 0..100 {
        let sends = app.state.storage.push_sends(&app.tenant, 10).await.unwrap();
        let (s, waiting) = sends.into_iter().find(|(s, _)| s.id == send_id).expect("the send");
        if waiting == 0 {
            counts = Some(s);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let s = counts.expect("every notification of the send ended");
    assert_eq!((s.queued, s.delivered, s.pruned, s.retried, s.failed, s.expired), (4, 3, 1, 2, 0, 0), "{s:?}");
    let left: Vec<String> = app.state.storage.registrations(&app.tenant, Some("webpush"), None).await.unwrap().iter().map(|g| g.device_id.clone()).collect();
    assert_eq!(left.len(), 4);
    assert!(!left.iter().any(|d| d.ends_with(&gone)), "{left:?}");

    // A native Web Push send with a tag expression reaches only the matching subscription.
    let r = notify(json!({"platform": "webpush", "tags": "sport && !news", "payload": "plain text"})).await;
    assert_eq!(r.json()["queued"], 1, "{}", r.text);
    let messages = wait_for_messages(&rx, 4).await;
    assert!(messages.iter().any(|m| m["subscription"] == sport && m["payload"] == "plain text"), "{messages:?}");
    // Clear errors, asynchronously through `error`: Windows push, oversized payloads, bad tags.
    for (body, why) in [
        (json!({"platform": "wns", "tags": null, "payload": "x"}), "not supported"),
        (json!({"platform": "webpush", "tags": null, "payload": "x".repeat(4000)}), "at most 3993"),
        (json!({"platform": "webpush", "tags": "a &&", "payload": "x"}), "tag expression"),
        (json!({"platform": "webpush", "tags": null, "payload": "x", "options": {"urgency": "now"}}), "urgency"),
    ] {
        let r = notify(body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert!(r.json()["message"].as_str().unwrap_or_default().contains(why), "{body}: {why} in {}", r.text);
    }
    // Nothing was queued by the refused sends.
    assert_eq!(app.state.storage.push_waiting().await.unwrap(), 0);
}

/// The custom API the send tests call: `{platform, tags, payload, options}` → the send's result.
const NOTIFY_API: &str = r#"exports.post = function (request, response) {
    var b = request.body;
    var send = b.platform === 'template' ? request.service.push.send : request.service.push[b.platform].send;
    send(b.tags, b.payload, b.options || {}, {
        success: function (result) { response.send(200, result); },
        error: function (err) { response.send(400, { message: err.message }); }
    });
};"#;

async fn native_credentials_are_checked_and_never_shown(app: TestApp) {
    let rx = NativeReceiver::start();
    let path = |p: &str| format!("/tenants/{}/push{p}", app.tenant);
    // Bad service accounts and keys: clear 400s, nothing stored.
    let account: Value = serde_json::from_str(&rx.service_account).unwrap();
    let mut wrong_key = account.clone();
    wrong_key["private_key"] = json!(rx.apns_key);
    let mut no_project = account.clone();
    no_project["project_id"] = json!("");
    for (body, why) in [
        (json!({"service_account": "not json"}), "JSON key file"),
        (json!({"service_account": wrong_key.to_string()}), "not an RSA private key"),
        (json!({"service_account": no_project.to_string()}), "project_id"),
        (json!({"service_account": json!({"type": "authorized_user"}).to_string()}), "not a service account"),
    ] {
        let r = app.manage(Method::PUT, &path("/fcm"), Some(body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert!(r.text.contains(why), "{why}: {}", r.text);
    }
    let apns = json!({"key": rx.apns_key, "key_id": rx.key_id, "team_id": rx.team_id, "topic": rx.topic, "environment": "sandbox"});
    for (patch, why) in [
        (json!({"key_id": "short"}), "key_id"),
        (json!({"team_id": "lower12345"}), "team_id"),
        (json!({"topic": "com.example/../x"}), "topic"),
        (json!({"key": account["private_key"]}), ".p8"),
        (json!({"key": null}), "no APNs key is stored"),
    ] {
        let mut body = apns.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = app.manage(Method::PUT, &path("/apns"), Some(body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert!(r.text.contains(why), "{why}: {}", r.text);
    }
    let r = app.manage(Method::GET, &path(""), None).await;
    assert_eq!((r.json()["fcm"].clone(), r.json()["apns"].clone()), (Value::Null, Value::Null), "{}", r.text);

    // Stored: shown without their keys, sealed at rest.
    let r = app.manage(Method::PUT, &path("/fcm"), Some(json!({"service_account": rx.service_account}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!((r.json()["project_id"].as_str(), r.json()["private_key_id"].as_str()), (Some("roost-test-project"), Some("key-1")), "{}", r.text);
    let r = app.manage(Method::PUT, &path("/apns"), Some(apns.clone())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["environment"], "sandbox");
    // A change without the key keeps the stored one.
    let mut change = apns.clone();
    change.as_object_mut().unwrap().remove("key");
    change["environment"] = json!("production");
    let r = app.manage(Method::PUT, &path("/apns"), Some(change)).await;
    assert_eq!((r.status, r.json()["environment"].as_str()), (StatusCode::OK, Some("production")), "{}", r.text);
    let r = app.manage(Method::GET, &path(""), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.text.contains("PRIVATE KEY") && !r.text.contains("private_key\""), "{}", r.text);
    assert_eq!(
        (r.json()["fcm"]["client_email"].as_str(), r.json()["apns"]["key_id"].as_str()),
        (Some(account["client_email"].as_str().unwrap()), Some(rx.key_id.as_str()))
    );
    assert!(r.json()["vapid_public_key"].as_str().is_some_and(|k| k.len() == 87), "{}", r.text);
    let stored = app.state.storage.platform_credentials(&app.tenant).await.unwrap();
    assert_eq!(stored.len(), 2);
    for c in &stored {
        assert!(!c.secret.contains("PRIVATE") && !c.config.contains("PRIVATE") && c.secret.starts_with("v1."), "{c:?}");
    }
    // Another tenant cannot read or replace them, and has none.
    let other = app.new_tenant().await;
    let r = app.manage(Method::GET, &format!("/tenants/{}/push", other["name"].as_str().unwrap()), None).await;
    assert_eq!((r.json()["fcm"].clone(), r.json()["apns"].clone()), (Value::Null, Value::Null));
    // The CLI sets and shows them the same way (here for the other tenant).
    let other_name = other["name"].as_str().unwrap();
    let key_file = app.data.join("service-account.json");
    std::fs::write(&key_file, &rx.service_account).unwrap();
    let p8 = app.data.join("AuthKey.p8");
    std::fs::write(&p8, &rx.apns_key).unwrap();
    let (ok, out, err) = app.cli(&["push", "fcm", other_name, "--service-account", key_file.to_str().unwrap()]);
    assert!(ok && out.contains("project roost-test-project"), "{out} {err}");
    let (ok, out, err) = app.cli(&[
        "push",
        "apns",
        other_name,
        "--key",
        p8.to_str().unwrap(),
        "--key-id",
        &rx.key_id,
        "--team-id",
        &rx.team_id,
        "--topic",
        &rx.topic,
        "--sandbox",
    ]);
    assert!(ok && out.contains("Sandbox"), "{out} {err}");
    let (ok, out, err) = app.cli(&["push", "apns", other_name, "--key-id", "bad", "--team-id", &rx.team_id, "--topic", &rx.topic]);
    assert!(!ok && err.contains("key_id"), "{out} {err}");
    let (ok, out, _) = app.cli(&["push", "show", other_name, "--json"]);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert!(ok && !out.contains("PRIVATE KEY"), "{out}");
    assert_eq!((shown["fcm"]["project_id"].as_str(), shown["apns"]["environment"].as_str()), (Some("roost-test-project"), Some("sandbox")), "{out}");

    // Rotation: a new Web Push key.
    let before = app.manage(Method::GET, &path(""), None).await.json()["vapid_public_key"].clone();
    let r = app.manage(Method::POST, &path("/vapid/rotate"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_ne!(r.json()["vapid_public_key"], before);
    let served = app.request(Method::GET, "/push/vapidkey", &[], None).await.json()["publicKey"].clone();
    assert_eq!(served, r.json()["vapid_public_key"]);
    // Removal.
    assert_eq!(app.manage(Method::DELETE, &path("/fcm"), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.manage(Method::DELETE, &path("/fcm"), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.manage(Method::GET, &path(""), None).await.json()["fcm"], Value::Null);
}

/// Waits (at most 20 s) until the native receiver holds `n` messages.
async fn wait_for_native(rx: &NativeReceiver, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let m = rx.messages().await;
        if m.len() >= n {
            return m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the receiver has {:?}, not {n} messages; stats {}", rx.messages().await, rx.stats().await)
}

/// Waits until a send has nothing waiting; its counts.
async fn settled(app: &TestApp, send: &str) -> Value {
    for _ in 0..300 {
        let r = app.manage(Method::GET, &format!("/tenants/{}/push/sends/{send}", app.tenant), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        if r.json()["waiting"] == 0 {
            return r.json();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the send {send} did not settle")
}

async fn sends_reach_fcm_and_apns_devices(app: TestApp) {
    let rx = NativeReceiver::start();
    let app = TestApp::spawn_alone(app.backend, |c| rx.configure(c)).await;
    let r = app.put_script("api", "notify", NOTIFY_API, json!({"permissions": {"routes": {"*": {"permission": "application"}}}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let notify = |body: Value| {
        let app = &app;
        async move { app.call(Method::POST, "/api/notify", Some(body)).await }
    };
    let register = |body: Value| {
        let app = &app;
        async move {
            let id = new_id(app).await;
            let r = put(app, &id, body, None).await;
            assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
            id
        }
    };
    let hex = |p: &str| format!("{p}{}", "0123456789abcdef".repeat(4))[..64].to_string();
    register(json!({"platform": "gcm", "deviceId": "fcm-ok-1", "tags": ["news"], "templateName": "t", "templateBody": r#"{"data":{"message":"$(message)","n":#(n)}}"#})).await;
    register(json!({"platform": "gcm", "deviceId": "fcm-native-1", "tags": ["news"]})).await;
    let gone_fcm = register(json!({"platform": "fcm", "deviceId": "gone-1", "tags": ["news"]})).await;
    register(json!({"platform": "gcm", "deviceId": "flaky-1", "tags": ["news"]})).await;
    register(json!({"platform": "apns", "deviceId": hex("aa"), "tags": ["news"], "templateName": "t", "templateBody": r#"{"aps":{"alert":"{'News: ' + $(message)}","badge":#(n)}}"#})).await;
    register(json!({"platform": "apns", "deviceId": hex("ab"), "tags": ["news"]})).await;
    let dead = register(json!({"platform": "apns", "deviceId": hex("dead"), "tags": ["news"]})).await;
    let bad = register(json!({"platform": "apns", "deviceId": hex("bad0"), "tags": ["news"]})).await;
    register(json!({"platform": "apns", "deviceId": hex("eeee"), "tags": ["news"]})).await;

    // Without credentials, native registrations are counted as skipped, and nothing is queued.
    let r = notify(json!({"platform": "gcm", "tags": "news", "payload": {"data": {"m": "x"}}})).await;
    assert_eq!((r.json()["queued"].as_i64(), r.json()["skipped"].clone()), (Some(0), json!({"fcm": 3})), "{}", r.text);
    let path = |p: &str| format!("/tenants/{}/push{p}", app.tenant);
    let r = app.manage(Method::PUT, &path("/fcm"), Some(json!({"service_account": rx.service_account}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let apns = json!({"key": rx.apns_key, "key_id": rx.key_id, "team_id": rx.team_id, "topic": rx.topic});
    assert_eq!(app.manage(Method::PUT, &path("/apns"), Some(apns)).await.status, StatusCode::OK);

    // A template send reaches the two template registrations, rendered for each platform.
    let r = notify(json!({"platform": "template", "tags": "news", "payload": {"message": "Hi \"all\"", "n": 4}})).await;
    assert_eq!((r.json()["queued"].as_i64(), r.json()["skipped"].clone()), (Some(2), json!({})), "{}", r.text);
    let template_send = r.json()["id"].as_str().unwrap().to_string();
    let messages = wait_for_native(&rx, 2).await;
    let fcm = messages.iter().find(|m| m["platform"] == "fcm").expect("fcm");
    assert_eq!(fcm["token"], "fcm-ok-1");
    assert_eq!(fcm["message"]["data"], json!({"message": "Hi \"all\"", "n": "4"}), "FCM data values are strings: {fcm}");
    let apple = messages.iter().find(|m| m["platform"] == "apns").expect("apns");
    assert_eq!(apple["payload"], json!({"aps": {"alert": "News: Hi \"all\"", "badge": 4}}));
    assert_eq!((apple["headers"]["pushType"].as_str(), apple["headers"]["priority"].as_str()), (Some("alert"), Some("10")), "{apple}");
    let s = settled(&app, &template_send).await;
    assert_eq!((s["queued"].as_i64(), s["delivered"].as_i64()), (Some(2), Some(2)), "{s}");

    // Native sends, in Mobile Services' payload forms: the legacy GCM form becomes a v1 message,
    // the legacy APNs form `aps`. The gone and bad tokens are pruned, the flaky ones retried.
    let r = notify(
        json!({"platform": "gcm", "tags": "news", "payload": {"data": {"m": "x", "k": 1}, "collapse_key": "c1", "priority": "high"}, "options": {"ttl": 120}}),
    )
    .await;
    assert_eq!(r.json()["queued"], 3, "{}", r.text);
    let gcm_send = r.json()["id"].as_str().unwrap().to_string();
    let r = notify(json!({"platform": "apns", "tags": "news", "payload": {"alert": "Ping", "badge": 1, "payload": {"id": 9}}, "options": {"urgency": "low", "topic": "c2"}})).await;
    assert_eq!(r.json()["queued"], 4, "{}", r.text);
    let apns_send = r.json()["id"].as_str().unwrap().to_string();
    let g = settled(&app, &gcm_send).await;
    let logs = app.logs().await;
    assert_eq!(
        (g["queued"].as_i64(), g["delivered"].as_i64(), g["pruned"].as_i64(), g["retried"].as_i64(), g["failed"].as_i64()),
        (Some(3), Some(2), Some(1), Some(2), Some(0)),
        "{g} {logs:?}"
    );
    let a = settled(&app, &apns_send).await;
    assert_eq!(
        (a["queued"].as_i64(), a["delivered"].as_i64(), a["pruned"].as_i64(), a["retried"].as_i64(), a["failed"].as_i64()),
        (Some(4), Some(2), Some(2), Some(1), Some(0)),
        "{a}"
    );
    let messages = rx.messages().await;
    let native = messages.iter().find(|m| m["token"] == "fcm-native-1").expect("the native FCM message");
    assert_eq!(native["message"]["data"], json!({"m": "x", "k": "1"}));
    assert_eq!(native["message"]["android"], json!({"collapse_key": "c1", "priority": "HIGH", "ttl": "120s"}));
    assert!(messages.iter().any(|m| m["token"] == "flaky-1"), "retried until delivered");
    let ping = messages.iter().find(|m| m["token"] == hex("ab")).expect("the native APNs message");
    assert_eq!(ping["payload"], json!({"id": 9, "aps": {"alert": "Ping", "badge": 1}}));
    assert_eq!((ping["headers"]["priority"].as_str(), ping["headers"]["collapseId"].as_str()), (Some("5"), Some("c2")), "{ping}");
    assert!(messages.iter().any(|m| m["token"] == hex("eeee")), "retried after 429");
    let stats = rx.stats().await;
    // One OAuth token served every FCM request (cached); nothing was refused for its form.
    assert_eq!(stats["tokens"], 1, "{stats}");
    let refused: Vec<&String> = stats["refused"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| !k.contains("unregistered") && !k.contains("Unregistered") && !k.contains("BadDeviceToken"))
        .collect();
    assert!(refused.is_empty(), "{stats}");
    // Pruned registrations are gone.
    for id in [&gone_fcm, &dead, &bad] {
        assert!(app.state.storage.registration(&app.tenant, id).await.unwrap().is_none(), "{id} is pruned");
    }
    // The send list shows them with their counts; a test send from the portal reaches one device.
    let r = app.manage(Method::GET, &path("/sends?limit=10"), None).await;
    assert_eq!(r.json().as_array().map(Vec::len), Some(4), "{}", r.text);
    let regs = app.manage(Method::GET, &path("/registrations?platform=apns&tag=news"), None).await.json();
    assert_eq!(regs.as_array().map(Vec::len), Some(3), "{regs}");
    let one = regs.as_array().unwrap().iter().find(|g| g["device_id"] == hex("ab")).unwrap()["registration_id"].as_str().unwrap().to_string();
    let r = app.manage(Method::POST, &path("/test"), Some(json!({"registration_id": one, "message": "Test"}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!((r.json()["queued"].as_i64(), r.json()["tags"].as_str()), (Some(1), Some(format!("registration {one}").as_str())), "{}", r.text);
    let t = settled(&app, r.json()["id"].as_str().unwrap()).await;
    assert_eq!(t["delivered"], 1, "{t}");
    assert!(rx.messages().await.iter().any(|m| m["token"] == hex("ab") && m["payload"]["aps"]["alert"] == "Test"));
}

async fn the_push_extension_edits_registrations_before_they_are_saved(app: TestApp) {
    // §6.12: `register(registration, context, done)` runs on every PUT before the save; here it tags
    // the registration with its user, refuses one platform and records each call in a table.
    app.create_table("regs", json!({})).await;
    app.script(
        "extension",
        "push",
        r#"exports.register = function (registration, context, done) {
            if (registration.platform === 'apns') return done(new Error('no iPhones here'));
            if (registration.deviceId === 'fcm-rewrite') registration.deviceId = 'bad token with spaces';
            if (context.user.userId) registration.tags.push(context.user.userId.replace(':', '_'));
            context.tables.getTable('regs').insert({ rid: registration.registrationId, level: context.user.level }, {
                success: function () { done(); },
                error: function (e) { done(e); }
            });
        };"#,
    )
    .await;
    let token = roost::auth::mint_token(&app.master_key, "Custom:ana", 3600);
    let id = new_id(&app).await;
    let headers = [
        ("X-ZUMO-APPLICATION", app.app_key.as_str()),
        ("X-ZUMO-AUTH", token.as_str()),
        ("content-type", "application/json"),
        ("X-ZUMO-INSTALLATION-ID", "inst-1"),
    ];
    let body = json!({"platform": "gcm", "deviceId": "fcm-ana", "tags": ["news"]});
    let r = app.request(Method::PUT, &format!("/push/registrations/{id}"), &headers, Some(&body.to_string())).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{} {:?}", r.text, app.logs().await);
    let saved = list(&app, "gcm", "fcm-ana").await;
    assert_eq!(saved[0]["tags"], json!(["news", "inst-1", "Custom_ana"]), "{saved}");
    let rows = app.rows("/tables/regs").await;
    assert_eq!((rows[0]["rid"].as_str(), rows[0]["level"].as_str()), (Some(id.as_str()), Some("authenticated")), "{rows:?}");
    // done(error): 500, the registration not saved, the error logged as the original runtime did.
    let apple = new_id(&app).await;
    let r = put(&app, &apple, json!({"platform": "apns", "deviceId": "ab".repeat(32)}), None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text);
    assert_eq!(list(&app, "apns", &"ab".repeat(32)).await, json!([]));
    // Script logs are written behind the response: wait for the line.
    let line = app.wait_for_log("no iPhones here").await;
    assert!(line["message"].as_str().unwrap_or_default().contains("Registration script failed with error-"), "{line}");
    // What the script leaves is checked by the same rules as the client's body.
    let rewrite = new_id(&app).await;
    let r = put(&app, &rewrite, json!({"platform": "gcm", "deviceId": "fcm-rewrite"}), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(list(&app, "gcm", "bad token with spaces").await, json!([]));
}

/// A custom API that calls one of push's registration methods per request.
const REGISTRATIONS_API: &str = r#"exports.post = function (req, res) {
    var b = req.body, p = req.service.push;
    var cb = { success: function (r) { res.send(200, { result: r === undefined ? null : r }); },
               error: function (e) { res.send(200, { status: e.statusCode || 500, error: e.message }); } };
    switch (b.op) {
        case 'id': return p.createRegistrationId(cb);
        case 'native': return p[b.platform].createNativeRegistration(b.handle, b.tags, cb);
        case 'template': return p[b.platform].createTemplateRegistration(b.handle, b.tags, b.template, { templateName: b.name }, cb);
        case 'get': return p.getRegistration(b.id, cb);
        case 'put': return p.createOrUpdateRegistration(b.registration, cb);
        case 'update': return p.updateRegistration(b.registration, cb);
        case 'delete': return p.deleteRegistration(b.id, cb);
        case 'byTag': return p.listRegistrationsByTag(b.tag, { top: b.top }, cb);
        case 'all': return p.listRegistrations(function (err, list) { res.send(200, err ? { error: err.message } : { result: list }); });
        case 'byToken': return p.apns.listRegistrationsByToken(b.handle, cb);
        case 'byGcm': return p.gcm.listRegistrationsByGcmRegistrationId(b.handle, cb);
    }
    res.send(400, { error: 'no such op' });
};"#;

async fn registration_op(app: &TestApp, body: Value) -> Value {
    let r = app
        .request(Method::POST, "/api/regs", &[("X-ZUMO-MASTER", app.master_key.as_str()), ("content-type", "application/json")], Some(&body.to_string()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json()
}

async fn scripts_manage_registrations_with_the_notification_hubs_methods(app: TestApp) {
    // §7.1: the Notification Hubs registration methods, on the same registrations clients make.
    app.script("api", "regs", REGISTRATIONS_API).await;
    let token = "ab".repeat(32);
    let gcm = registration_op(&app, json!({"op": "native", "platform": "gcm", "handle": "fcm-one", "tags": "news, sport"})).await;
    let gcm = &gcm["result"];
    let gcm_id = gcm["RegistrationId"].as_str().expect("an id").to_string();
    assert_eq!(
        (gcm["Tags"].as_str(), gcm["GcmRegistrationId"].as_str(), gcm["platform"].as_str()),
        (Some("news,sport"), Some("fcm-one"), Some("gcm")),
        "{gcm}"
    );
    let apns =
        registration_op(&app, json!({"op": "template", "platform": "apns", "handle": token, "tags": ["news"], "template": {"aps": {"alert": "$(msg)"}}})).await;
    let apns = &apns["result"];
    assert_eq!((apns["DeviceToken"].as_str(), apns["TemplateName"].as_str()), (Some(token.as_str()), Some("$Default")), "{apns}");
    assert_eq!(serde_json::from_str::<Value>(apns["BodyTemplate"].as_str().unwrap()).unwrap(), json!({"aps": {"alert": "$(msg)"}}));
    // What a script made, a client sees through §7.2, and the other way round.
    assert_eq!(list(&app, "gcm", "fcm-one").await[0]["tags"], json!(["news", "sport"]));
    let client_id = new_id(&app).await;
    let r = put(&app, &client_id, json!({"platform": "gcm", "deviceId": "fcm-client", "tags": ["news"]}), Some("inst-9")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let by_tag = registration_op(&app, json!({"op": "byTag", "tag": "news"})).await;
    assert_eq!(by_tag["result"].as_array().map(Vec::len), Some(3), "{by_tag}");
    let top = registration_op(&app, json!({"op": "byTag", "tag": "news", "top": 1})).await;
    assert_eq!(top["result"].as_array().map(Vec::len), Some(1), "{top}");
    assert_eq!(registration_op(&app, json!({"op": "byTag", "tag": "sport"})).await["result"][0]["RegistrationId"], gcm_id.as_str());
    assert_eq!(registration_op(&app, json!({"op": "byToken", "handle": token})).await["result"][0]["DeviceToken"], token.as_str());
    assert_eq!(registration_op(&app, json!({"op": "byGcm", "handle": "fcm-client"})).await["result"][0]["RegistrationId"], client_id.as_str());
    assert_eq!(registration_op(&app, json!({"op": "all"})).await["result"].as_array().map(Vec::len), Some(3));
    // createRegistrationId, then createOrUpdateRegistration with Notification Hubs' names.
    let id = registration_op(&app, json!({"op": "id"})).await["result"].as_str().expect("id").to_string();
    let stored = registration_op(&app, json!({"op": "put", "registration": {"RegistrationId": id, "GcmRegistrationId": "fcm-two", "Tags": "a,b"}})).await;
    assert_eq!((stored["result"]["deviceId"].as_str(), stored["result"]["Tags"].as_str()), (Some("fcm-two"), Some("a,b")), "{stored}");
    // An update keeps the client's installation tag owner and checks the same rules as a client's body.
    let got = registration_op(&app, json!({"op": "get", "id": client_id})).await["result"].clone();
    assert_eq!(got["tags"], json!(["news", "inst-9"]), "{got}");
    let mut changed = got.clone();
    changed["tags"] = json!(["inst-9", "vip"]);
    changed.as_object_mut().unwrap().remove("Tags");
    let r = registration_op(&app, json!({"op": "update", "registration": changed})).await;
    assert_eq!(r["result"]["tags"], json!(["inst-9", "vip"]), "{r}");
    let stored = app.state.storage.registration(&app.tenant, &client_id).await.unwrap().unwrap();
    assert_eq!(stored.installation_id, "inst-9");
    let bad = registration_op(&app, json!({"op": "native", "platform": "gcm", "handle": "a token with spaces", "tags": []})).await;
    assert_eq!(bad["status"], 400, "{bad}");
    let bad = registration_op(&app, json!({"op": "native", "platform": "gcm", "handle": "fcm-x", "tags": ["no spaces allowed"]})).await;
    assert_eq!(bad["status"], 400, "{bad}");
    let unknown = uuid::Uuid::new_v4().to_string();
    let missing = registration_op(&app, json!({"op": "update", "registration": {"RegistrationId": unknown, "GcmRegistrationId": "fcm-3"}})).await;
    assert_eq!(missing["status"], 404, "{missing}");
    // Refused registrations leave nothing behind: the same four as before.
    assert_eq!(app.state.storage.registrations(&app.tenant, None, None).await.unwrap().len(), 4);
    // Another tenant's registration is not this script's to read, change or delete.
    let other = app.new_tenant().await;
    let other_name = other["name"].as_str().unwrap();
    let theirs = uuid::Uuid::new_v4().to_string();
    app.state.storage.reserve_registration(other_name, &theirs).await.unwrap();
    let r = reqwest::Client::new()
        .put(format!("{}/t/{other_name}/push/registrations/{theirs}", app.base))
        .header("X-ZUMO-APPLICATION", other["application_key"].as_str().unwrap())
        .json(&json!({"platform": "gcm", "deviceId": "fcm-theirs"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(registration_op(&app, json!({"op": "get", "id": theirs})).await["status"], 404);
    assert_eq!(registration_op(&app, json!({"op": "delete", "id": theirs})).await["status"], 404);
    let taken = registration_op(&app, json!({"op": "put", "registration": {"RegistrationId": theirs, "GcmRegistrationId": "fcm-mine"}})).await;
    assert_eq!(taken["status"], 404, "{taken}");
    let kept = app.state.storage.registration(other_name, &theirs).await.unwrap().unwrap();
    assert_eq!(kept.device_id, "fcm-theirs");
    // deleteRegistration, then it is gone.
    assert_eq!(registration_op(&app, json!({"op": "delete", "id": gcm_id})).await["result"], Value::Null);
    assert_eq!(registration_op(&app, json!({"op": "get", "id": gcm_id})).await["status"], 404);
    assert!(list(&app, "gcm", "fcm-one").await.as_array().unwrap().is_empty());
}

async fn extensions_push_json_sets_the_push_routes_permissions(app: TestApp) {
    // §5.2: extensions/push.json, keyed by push sub-route; what it does not name stays application.
    let permissions = json!({"routes": {
        "/registrationids": {"post": {"permission": "user"}},
        "/registrations/:id": {"permission": "public"}
    }});
    let r = app
        .put_script("extension", "push", "exports.register = function (registration, context, done) { done(); };", json!({"permissions": permissions}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["permissions"], permissions);
    // A new id now needs a signed-in user: the application key alone is refused.
    let r = app.request(Method::POST, "/push/registrationids", &[("X-ZUMO-APPLICATION", app.app_key.as_str())], None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let token = roost::auth::mint_token(&app.master_key, "Custom:ana", 3600);
    let user = [("X-ZUMO-APPLICATION", app.app_key.as_str()), ("X-ZUMO-AUTH", token.as_str())];
    let r = app.request(Method::POST, "/push/registrationids", &user, None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.header("location").unwrap().rsplit('/').next().unwrap().to_string();
    // /registrations/:id is public: no key at all.
    let body = json!({"platform": "gcm", "deviceId": "fcm-public"}).to_string();
    let r = app.request(Method::PUT, &format!("/push/registrations/{id}"), &[("content-type", "application/json")], Some(&body)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    // /registrations is not named: application, as without the file.
    let r = app.request(Method::GET, "/push/registrations?platform=gcm&deviceId=fcm-public", &[], None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(list(&app, "gcm", "fcm-public").await[0]["registrationId"], id.as_str());
    // Export writes extensions/push.json beside push.js; importing that folder as a new tenant
    // gives it the same permissions.
    let out = app.data.join(crate::helpers::random_name("push-export"));
    let (ok, _, err) = app.cli(&["tenant", "export", &app.tenant, out.to_str().unwrap()]);
    assert!(ok, "{err}");
    let exported: Value = serde_json::from_str(&std::fs::read_to_string(out.join("extensions/push.json")).unwrap()).unwrap();
    assert_eq!(exported, permissions);
    assert!(out.join("extensions/push.js").is_file());
    let copy = crate::helpers::random_name("t");
    let (ok, _, err) = app.cli(&["tenant", "import", &copy, out.to_str().unwrap()]);
    assert!(ok, "{err}");
    let r = app.manage(Method::GET, &format!("/tenants/{copy}/scripts/extension/push"), None).await;
    assert_eq!(r.json()["permissions"], permissions, "{}", r.text);
    // Only the push extension and APIs carry permissions; values are checked.
    let r = app.put_script("extension", "startup", "exports.startup = function (context, done) { done(); };", json!({"permissions": permissions})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = app
        .put_script(
            "extension",
            "push",
            "exports.register = function (r, c, done) { done(); };",
            json!({"permissions": {"routes": {"/registrations": {"permission": "everyone"}}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}
