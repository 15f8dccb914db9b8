//! Push (protocol.md §7): the registration endpoints of §7.2 with the `webpush` platform of §7.3,
//! and the tenant's Web Push key pair.

use crate::helpers::TestApp;
use crate::oidc::WebPushReceiver;
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

crate::on_both_backends!(
    registrations_follow_the_protocol,
    registrations_are_checked_and_kept_per_tenant,
    each_tenant_has_its_own_web_push_key,
    a_client_cannot_reserve_ids_without_end,
    sends_reach_web_push_subscriptions_through_the_outbox
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
