//! The native push services: FCM HTTP v1 and APNs' provider API (token authentication), as the
//! outbox's worker (`push::deliver`) reaches them, and the payloads `push.gcm.send` and
//! `push.apns.send` (or a gcm/apns template) come to.
//!
//! - **FCM**: a tenant's Google service account signs an RS256 assertion (RFC 7523) that the OAuth
//!   2.0 token endpoint (the server setting `push_oauth_token_url`, never the key file's own
//!   `token_uri`) trades for an access token, cached per tenant until five minutes before it ends;
//!   each notification is `POST {push_fcm_url}/v1/projects/{project}/messages:send`. A legacy GCM
//!   payload (`{data, notification, collapse_key, priority, time_to_live}`) becomes a v1 message.
//! - **APNs**: `POST {push_apns_url}/3/device/{token}` over HTTP/2 with an ES256 provider token
//!   (`kid` the key id, `iss` the team id), made at most every 50 minutes (Apple refuses tokens older
//!   than an hour and throttles ones made more often than every 20 minutes); `apns-topic`,
//!   `apns-push-type`, `apns-priority`, `apns-expiration`, `apns-collapse-id`. A legacy payload
//!   (`{alert, badge, sound, payload}`) becomes `{aps: {…}, …payload}`.
//!
//! These services are the platform's, named by server settings: they are not reached under a
//! tenant's outbound address rules (a tenant chooses only its device tokens, which are path
//! segments and JSON members here, never hosts).

use super::deliver::Answer;
use crate::manage::ManageError;
use crate::AppState;
use roost_api::{ApnsCredentialsIn, ApnsCredentialsOut, ApnsEnvironment, FcmCredentialsIn, FcmCredentialsOut};
use roost_storage::push::{OutboxRow, PlatformCredentialRecord};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use web_push_native::jwt_simple::prelude::*;

/// What the sealed FCM private key is bound to, beside the tenant.
pub(crate) const FCM_SEAL: &str = "\0push-fcm";
/// What the sealed APNs key is bound to, beside the tenant.
pub(crate) const APNS_SEAL: &str = "\0push-apns";
/// FCM's OAuth scope.
const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// How long an APNs provider token is used.
const APNS_TOKEN_FOR: Duration = Duration::from_secs(50 * 60);
/// How long before its end an FCM access token is replaced.
const FCM_TOKEN_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Where the native push services are (server settings, no trailing slash).
#[derive(Debug, Clone)]
pub struct Services {
    /// FCM's API.
    pub fcm: String,
    /// The OAuth 2.0 token endpoint of service accounts.
    pub oauth_token: String,
    /// APNs, production.
    pub apns: String,
    /// APNs, sandbox.
    pub apns_sandbox: String,
}

/// The shown parts of FCM credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FcmConfig {
    project_id: String,
    client_email: String,
    #[serde(default)]
    private_key_id: String,
}

/// The shown parts of APNs credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ApnsConfig {
    key_id: String,
    team_id: String,
    topic: String,
    environment: ApnsEnvironment,
}

/// A tenant's FCM credentials, opened for sending.
pub struct Fcm {
    config: FcmConfig,
    key: RS256KeyPair,
    /// Which stored credentials these are (their `updated_at`): a cached token is theirs only.
    version: String,
}

/// A tenant's APNs credentials, opened for sending.
pub struct Apns {
    config: ApnsConfig,
    key: ES256KeyPair,
    version: String,
}

/// Tokens and HTTP clients the native services share across deliveries.
#[derive(Default)]
pub struct Clients {
    fcm_tokens: Mutex<HashMap<String, (String, Instant, String)>>,
    /// Held while a token is asked for, so that concurrent deliveries ask once.
    fcm_asking: tokio::sync::Mutex<()>,
    apns_tokens: Mutex<HashMap<String, (String, Instant, String)>>,
    http: std::sync::OnceLock<reqwest::Client>,
    http2: std::sync::OnceLock<reqwest::Client>,
}

impl Clients {
    fn http(&self) -> &reqwest::Client {
        self.http
            .get_or_init(|| reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(15)).build().unwrap_or_default())
    }

    /// APNs speaks HTTP/2 only.
    fn http2(&self) -> &reqwest::Client {
        self.http2.get_or_init(|| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(15))
                .http2_prior_knowledge()
                .build()
                .unwrap_or_default()
        })
    }

    /// Forgets a tenant's cached FCM token (the service refused it).
    fn forget_fcm(&self, tenant: &str) {
        self.fcm_tokens.lock().unwrap_or_else(|e| e.into_inner()).remove(tenant);
    }

    fn forget_apns(&self, tenant: &str) {
        self.apns_tokens.lock().unwrap_or_else(|e| e.into_inner()).remove(tenant);
    }
}

fn internal(e: impl std::fmt::Display) -> ManageError {
    ManageError::Internal(e.to_string())
}

/// Checks and stores a tenant's FCM service account (the private key sealed).
pub async fn put_fcm(state: &AppState, tenant: &str, input: FcmCredentialsIn) -> Result<FcmCredentialsOut, ManageError> {
    let record = crate::manage::show_tenant(&state.storage, tenant).await?;
    let bad = |m: &str| ManageError::BadInput(m.to_string());
    if input.service_account.len() > 16 * 1024 {
        return Err(bad("The service account file is at most 16 KiB."));
    }
    let file: Json = serde_json::from_str(&input.service_account).map_err(|_| bad("service_account is the service account's JSON key file."))?;
    let text = |k: &str| file.get(k).and_then(Json::as_str).unwrap_or_default().trim().to_string();
    if !matches!(file.get("type").and_then(Json::as_str), None | Some("service_account")) {
        return Err(bad("The key file is not a service account's (its type is not service_account)."));
    }
    let project_id = text("project_id");
    if project_id.is_empty()
        || project_id.len() > 64
        || !project_id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b':' || b == b'.')
    {
        return Err(bad("The key file's project_id is missing or not a Google Cloud project id."));
    }
    let client_email = text("client_email");
    if !client_email.contains('@') || client_email.len() > 320 || client_email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("The key file's client_email is missing or not an e-mail address."));
    }
    let private_key = text("private_key");
    RS256KeyPair::from_pem(&private_key).map_err(|_| bad("The key file's private_key is not an RSA private key (PEM)."))?;
    let private_key_id = text("private_key_id").chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').take(64).collect();
    let config = FcmConfig { project_id, client_email, private_key_id };
    let sealed = state.identity_key.seal(&record.name, FCM_SEAL, &private_key);
    let config_text = serde_json::to_string(&config).map_err(internal)?;
    state.storage.put_platform_credential(&record.name, "fcm", &config_text, &sealed).await.map_err(internal)?;
    fcm_out(state, &record.name).await?.ok_or_else(|| internal("the FCM credentials were not stored"))
}

/// Checks and stores a tenant's APNs signing key (sealed) and ids; without a key, the stored one is
/// kept.
pub async fn put_apns(state: &AppState, tenant: &str, input: ApnsCredentialsIn) -> Result<ApnsCredentialsOut, ManageError> {
    let record = crate::manage::show_tenant(&state.storage, tenant).await?;
    let bad = |m: &str| ManageError::BadInput(m.to_string());
    let ten = |s: &str| s.len() == 10 && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !ten(&input.key_id) {
        return Err(bad("key_id is the APNs key's 10-character id (A-Z, 0-9)."));
    }
    if !ten(&input.team_id) {
        return Err(bad("team_id is the 10-character Apple team id (A-Z, 0-9)."));
    }
    let topic = input.topic.trim();
    if topic.is_empty() || topic.len() > 255 || !topic.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) {
        return Err(bad("topic is the app's bundle id (for example com.example.app)."));
    }
    let sealed = match input.key.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
        Some(key) => {
            if key.len() > 8192 {
                return Err(bad("The APNs key is at most 8 KiB."));
            }
            ES256KeyPair::from_pem(key).map_err(|_| bad("key is the APNs signing key (.p8: a P-256 private key in PEM)."))?;
            state.identity_key.seal(&record.name, APNS_SEAL, key)
        }
        None => {
            let stored = state.storage.platform_credentials(&record.name).await.map_err(internal)?;
            stored.into_iter().find(|c| c.platform == "apns").map(|c| c.secret).ok_or_else(|| bad("key is required: no APNs key is stored yet."))?
        }
    };
    let config = ApnsConfig { key_id: input.key_id, team_id: input.team_id, topic: topic.to_string(), environment: input.environment };
    let config_text = serde_json::to_string(&config).map_err(internal)?;
    state.storage.put_platform_credential(&record.name, "apns", &config_text, &sealed).await.map_err(internal)?;
    apns_out(state, &record.name).await?.ok_or_else(|| internal("the APNs credentials were not stored"))
}

/// Removes a platform's credentials (`fcm` or `apns`).
pub async fn remove(state: &AppState, tenant: &str, platform: &str) -> Result<(), ManageError> {
    let record = crate::manage::show_tenant(&state.storage, tenant).await?;
    if !state.storage.delete_platform_credential(&record.name, platform).await.map_err(internal)? {
        return Err(ManageError::NotFound(format!("{} credentials of '{}'", platform.to_ascii_uppercase(), record.name)));
    }
    Ok(())
}

fn stored<'a>(all: &'a [PlatformCredentialRecord], platform: &str) -> Option<&'a PlatformCredentialRecord> {
    all.iter().find(|c| c.platform == platform)
}

/// The FCM credentials as shown.
pub async fn fcm_out(state: &AppState, tenant: &str) -> Result<Option<FcmCredentialsOut>, ManageError> {
    let all = state.storage.platform_credentials(tenant).await.map_err(internal)?;
    Ok(stored(&all, "fcm").and_then(|c| {
        let f: FcmConfig = serde_json::from_str(&c.config).ok()?;
        Some(FcmCredentialsOut { project_id: f.project_id, client_email: f.client_email, private_key_id: f.private_key_id, updated_at: c.updated_at.clone() })
    }))
}

/// The APNs credentials as shown.
pub async fn apns_out(state: &AppState, tenant: &str) -> Result<Option<ApnsCredentialsOut>, ManageError> {
    let all = state.storage.platform_credentials(tenant).await.map_err(internal)?;
    Ok(stored(&all, "apns").and_then(|c| {
        let a: ApnsConfig = serde_json::from_str(&c.config).ok()?;
        Some(ApnsCredentialsOut { key_id: a.key_id, team_id: a.team_id, topic: a.topic, environment: a.environment, updated_at: c.updated_at.clone() })
    }))
}

/// A tenant's native credentials, opened (`None` where a platform has none, or its row does not
/// open with this server's key).
pub async fn open(state: &AppState, tenant: &str) -> (Option<Arc<Fcm>>, Option<Arc<Apns>>) {
    let Ok(all) = state.storage.platform_credentials(tenant).await else { return (None, None) };
    use secrecy::ExposeSecret as _;
    let fcm = stored(&all, "fcm").and_then(|c| {
        let config: FcmConfig = serde_json::from_str(&c.config).ok()?;
        let pem = state.identity_key.open(tenant, FCM_SEAL, &c.secret).ok()?;
        let mut key = RS256KeyPair::from_pem(pem.expose_secret()).ok()?;
        if !config.private_key_id.is_empty() {
            key = key.with_key_id(&config.private_key_id);
        }
        Some(Arc::new(Fcm { config, key, version: c.updated_at.clone() }))
    });
    let apns = stored(&all, "apns").and_then(|c| {
        let config: ApnsConfig = serde_json::from_str(&c.config).ok()?;
        let pem = state.identity_key.open(tenant, APNS_SEAL, &c.secret).ok()?;
        let key = ES256KeyPair::from_pem(pem.expose_secret()).ok()?.with_key_id(&config.key_id);
        Some(Arc::new(Apns { config, key, version: c.updated_at.clone() }))
    });
    (fcm, apns)
}

/// Which native platforms a tenant can deliver to (for `push.send`'s `skipped`).
pub async fn configured(state: &AppState, tenant: &str) -> Result<Vec<String>, roost_storage::StorageError> {
    Ok(state.storage.platform_credentials(tenant).await?.into_iter().map(|c| c.platform).collect())
}

/// The FCM v1 message (without its `token`) for a gcm payload, with the send's options.
pub fn fcm_message(payload: &str, ttl: i64, urgency: &str, topic: &str) -> Result<Json, String> {
    let given = match serde_json::from_str::<Json>(payload) {
        Ok(Json::Object(o)) => o,
        Ok(_) | Err(_) => {
            let mut data = Map::new();
            data.insert("message".into(), json!(payload));
            Map::from_iter([("data".to_string(), Json::Object(data))])
        }
    };
    let mut message = Map::new();
    let mut android = Map::new();
    if let Some(Json::Object(m)) = given.get("message") {
        // Already a v1 message: its target is the registration's.
        message = m.clone();
        for k in ["token", "topic", "condition"] {
            message.remove(k);
        }
        if let Some(Json::Object(a)) = message.remove("android") {
            android = a;
        }
    } else {
        // The legacy GCM form (what Mobile Services scripts send); an object without `data` or
        // `notification` is the data itself.
        let legacy = given.contains_key("data") || given.contains_key("notification");
        let data: Map<String, Json> = match (legacy, given.get("data")) {
            (false, _) => given.clone(),
            (true, Some(Json::Object(d))) => d.clone(),
            (true, None | Some(Json::Null)) => Map::new(),
            (true, Some(other)) => Map::from_iter([("message".to_string(), other.clone())]),
        };
        let rest = if legacy { given.clone() } else { Map::new() };
        if !data.is_empty() {
            // FCM v1 data values are strings.
            let strings: Map<String, Json> =
                data.into_iter().map(|(k, v)| (k, Json::String(v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))).collect();
            message.insert("data".into(), Json::Object(strings));
        }
        if let Some(Json::Object(n)) = rest.get("notification") {
            let mut common = Map::new();
            let mut native = Map::new();
            for (k, v) in n {
                match k.as_str() {
                    "title" | "body" | "image" => common.insert(k.clone(), v.clone()),
                    _ => native.insert(k.clone(), v.clone()),
                };
            }
            if !common.is_empty() {
                message.insert("notification".into(), Json::Object(common));
            }
            if !native.is_empty() {
                android.insert("notification".into(), Json::Object(native));
            }
        }
        if let Some(Json::String(c)) = rest.get("collapse_key") {
            android.insert("collapse_key".into(), json!(c));
        }
        match rest.get("priority").and_then(Json::as_str) {
            Some("high") => {
                android.insert("priority".into(), json!("HIGH"));
            }
            Some("normal") => {
                android.insert("priority".into(), json!("NORMAL"));
            }
            _ => {}
        }
        if let Some(t) = rest.get("time_to_live").and_then(Json::as_i64) {
            android.insert("ttl".into(), json!(format!("{}s", t.clamp(0, super::send::DEFAULT_TTL))));
        }
    }
    android.entry("ttl").or_insert_with(|| json!(format!("{ttl}s")));
    if !android.contains_key("priority") {
        match urgency {
            "high" => {
                android.insert("priority".into(), json!("HIGH"));
            }
            "low" | "very-low" | "normal" => {
                android.insert("priority".into(), json!("NORMAL"));
            }
            _ => {}
        }
    }
    if !topic.is_empty() {
        android.entry("collapse_key").or_insert_with(|| json!(topic));
    }
    message.insert("android".into(), Json::Object(android));
    if !message.contains_key("data") && !message.contains_key("notification") {
        return Err("An FCM notification needs data or a notification.".into());
    }
    Ok(Json::Object(message))
}

/// The APNs payload for an apns payload (`{aps: …}`, or the legacy `{alert, badge, sound, payload}`,
/// or a text, which becomes the alert).
pub fn apns_payload(payload: &str) -> Result<Json, String> {
    match serde_json::from_str::<Json>(payload) {
        Ok(Json::Object(o)) if o.get("aps").is_some_and(Json::is_object) => Ok(Json::Object(o)),
        Ok(Json::Object(o)) => {
            let mut aps = Map::new();
            let mut out = Map::new();
            for (k, v) in o {
                match k.as_str() {
                    "alert" | "badge" | "sound" | "category" | "content-available" | "mutable-content" | "thread-id" => {
                        aps.insert(k, v);
                    }
                    "contentAvailable" => {
                        aps.insert("content-available".into(), v);
                    }
                    "payload" => {
                        if let Json::Object(p) = v {
                            out.extend(p);
                        }
                    }
                    "expiry" => {}
                    _ => {
                        out.insert(k, v);
                    }
                }
            }
            if aps.is_empty() {
                return Err("An APNs notification needs aps (or alert, badge, sound or content-available).".into());
            }
            out.insert("aps".into(), Json::Object(aps));
            Ok(Json::Object(out))
        }
        _ => Ok(json!({ "aps": { "alert": payload } })),
    }
}

/// An access token for the tenant's service account, cached.
async fn fcm_token(state: &AppState, tenant: &str, fcm: &Fcm) -> Result<String, Answer> {
    let clients = &state.outbox.native;
    let cached = || {
        let tokens = clients.fcm_tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.get(tenant).filter(|(_, until, version)| *until > Instant::now() && *version == fcm.version).map(|(t, ..)| t.clone())
    };
    if let Some(token) = cached() {
        return Ok(token);
    }
    let _asking = clients.fcm_asking.lock().await;
    if let Some(token) = cached() {
        return Ok(token);
    }
    #[derive(Serialize, Deserialize)]
    struct Scope {
        scope: String,
    }
    let token_url = &state.push_services.oauth_token;
    let claims = Claims::with_custom_claims(Scope { scope: FCM_SCOPE.into() }, coarsetime_hour())
        .with_issuer(&fcm.config.client_email)
        .with_audience(token_url)
        .with_subject(&fcm.config.client_email);
    let assertion = fcm.key.sign(claims).map_err(|e| Answer::Refused(format!("the service account's key does not sign: {e}")))?;
    let form = [("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion.as_str())];
    let resp = clients.http().post(token_url).form(&form).send().await.map_err(|e| Answer::Retry(None, format!("the OAuth token endpoint: {e}")))?;
    let status = resp.status();
    let retry_after = retry_after(resp.headers());
    let body: Json = resp.json().await.unwrap_or(Json::Null);
    if status.as_u16() == 429 || status.is_server_error() {
        return Err(Answer::Retry(retry_after, format!("the OAuth token endpoint answered HTTP {status}")));
    }
    let Some(token) = body.get("access_token").and_then(Json::as_str).filter(|_| status.is_success()) else {
        let why = body.get("error_description").or_else(|| body.get("error")).and_then(Json::as_str).unwrap_or("no access_token");
        return Err(Answer::Refused(format!("the OAuth token endpoint refused the service account: HTTP {status} {}", clip(why))));
    };
    let lifetime = Duration::from_secs(body.get("expires_in").and_then(Json::as_u64).unwrap_or(3600).clamp(60, 24 * 3600));
    let until = Instant::now() + lifetime.saturating_sub(FCM_TOKEN_MARGIN).max(Duration::from_secs(30));
    clients.fcm_tokens.lock().unwrap_or_else(|e| e.into_inner()).insert(tenant.to_string(), (token.to_string(), until, fcm.version.clone()));
    Ok(token.to_string())
}

fn coarsetime_hour() -> web_push_native::jwt_simple::prelude::Duration {
    web_push_native::jwt_simple::prelude::Duration::from_hours(1)
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<i64> {
    headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<i64>().ok())
}

fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}

/// One FCM delivery.
pub async fn fcm_send(state: &AppState, tenant: &str, fcm: &Fcm, row: &OutboxRow) -> Answer {
    let token = match fcm_token(state, tenant, fcm).await {
        Ok(t) => t,
        Err(a) => return a,
    };
    let mut message: Json = match serde_json::from_str(&row.payload) {
        Ok(m @ Json::Object(_)) => m,
        _ => return Answer::Refused("the queued FCM message is unreadable".into()),
    };
    message["token"] = json!(row.endpoint);
    let url = format!("{}/v1/projects/{}/messages:send", state.push_services.fcm, fcm.config.project_id);
    let resp = match state.outbox.native.http().post(url).bearer_auth(&token).json(&json!({ "message": message })).send().await {
        Ok(r) => r,
        Err(e) => return Answer::Retry(None, format!("FCM: {e}")),
    };
    let status = resp.status().as_u16();
    let after = retry_after(resp.headers());
    if (200..300).contains(&status) {
        return Answer::Delivered;
    }
    let body: Json = resp.json().await.unwrap_or(Json::Null);
    let detail = body["error"]["details"].as_array().and_then(|d| d.iter().find_map(|x| x["errorCode"].as_str())).unwrap_or_default().to_string();
    let message = body["error"]["message"].as_str().unwrap_or_default();
    match (status, detail.as_str()) {
        (404, _) | (_, "UNREGISTERED") => Answer::Gone,
        (401, _) => {
            state.outbox.native.forget_fcm(tenant);
            Answer::Retry(None, format!("FCM refused the access token: {}", clip(message)))
        }
        (429 | 500..=599, _) => Answer::Retry(after, format!("FCM answered HTTP {status} {detail}")),
        _ => Answer::Refused(format!("FCM refused it: HTTP {status} {detail} {}", clip(message))),
    }
}

/// The tenant's APNs provider token, cached.
fn apns_token(state: &AppState, tenant: &str, apns: &Apns) -> Result<String, Answer> {
    let mut tokens = state.outbox.native.apns_tokens.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((token, until, version)) = tokens.get(tenant) {
        if *until > Instant::now() && *version == apns.version {
            return Ok(token.clone());
        }
    }
    // Apple reads `iss` and `iat` only; the token is used for 50 minutes.
    let claims = Claims::create(coarsetime_hour()).with_issuer(&apns.config.team_id);
    let token = apns.key.sign(claims).map_err(|e| Answer::Refused(format!("the APNs key does not sign: {e}")))?;
    tokens.insert(tenant.to_string(), (token.clone(), Instant::now() + APNS_TOKEN_FOR, apns.version.clone()));
    Ok(token)
}

/// One APNs delivery.
pub async fn apns_send(state: &AppState, tenant: &str, apns: &Apns, row: &OutboxRow) -> Answer {
    let token = match apns_token(state, tenant, apns) {
        Ok(t) => t,
        Err(a) => return a,
    };
    let device = &row.endpoint;
    if device.is_empty() || device.len() > 200 || !device.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Answer::Gone;
    }
    let payload: Json = serde_json::from_str(&row.payload).unwrap_or(Json::Null);
    let aps = &payload["aps"];
    let background =
        aps.get("content-available").is_some_and(|v| v == 1) && aps.get("alert").is_none() && aps.get("badge").is_none() && aps.get("sound").is_none();
    let priority = if background || row.urgency == "low" || row.urgency == "very-low" { "5" } else { "10" };
    let base = match apns.config.environment {
        ApnsEnvironment::Production => &state.push_services.apns,
        ApnsEnvironment::Sandbox => &state.push_services.apns_sandbox,
    };
    let mut req = state
        .outbox
        .native
        .http2()
        .post(format!("{base}/3/device/{}", device.to_ascii_lowercase()))
        .header("authorization", format!("bearer {token}"))
        .header("apns-topic", &apns.config.topic)
        .header("apns-push-type", if background { "background" } else { "alert" })
        .header("apns-priority", priority)
        .header("apns-expiration", (row.expires_at / 1000).to_string())
        .header("content-type", "application/json")
        .body(row.payload.clone());
    if !row.topic.is_empty() {
        req = req.header("apns-collapse-id", &row.topic);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return Answer::Retry(None, format!("APNs: {e}")),
    };
    let status = resp.status().as_u16();
    let after = retry_after(resp.headers());
    if status == 200 {
        return Answer::Delivered;
    }
    let body: Json = resp.json().await.unwrap_or(Json::Null);
    let reason = body["reason"].as_str().unwrap_or_default().to_string();
    match (status, reason.as_str()) {
        (410, _) | (400, "BadDeviceToken") => Answer::Gone,
        (403, "ExpiredProviderToken" | "InvalidProviderToken") => {
            state.outbox.native.forget_apns(tenant);
            Answer::Retry(None, format!("APNs refused the provider token ({reason})"))
        }
        (429 | 500..=599, _) => Answer::Retry(after, format!("APNs answered HTTP {status} {reason}")),
        _ => Answer::Refused(format!("APNs refused it: HTTP {status} {reason}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_gcm_payloads_become_v1_messages() {
        let m = fcm_message(r#"{"data":{"message":"hi","n":3},"collapse_key":"c","priority":"high","time_to_live":60}"#, 100, "", "").unwrap();
        assert_eq!(m, json!({"data": {"message": "hi", "n": "3"}, "android": {"collapse_key": "c", "priority": "HIGH", "ttl": "60s"}}));
        let m = fcm_message(r#"{"notification":{"title":"T","body":"B","icon":"i"}}"#, 100, "low", "t1").unwrap();
        assert_eq!(
            m,
            json!({"notification": {"title": "T", "body": "B"}, "android": {"notification": {"icon": "i"}, "ttl": "100s", "priority": "NORMAL", "collapse_key": "t1"}})
        );
        // A bare text, and an object of members without data: both data.
        assert_eq!(fcm_message("hello", 5, "", "").unwrap()["data"], json!({"message": "hello"}));
        assert_eq!(fcm_message(r#"{"a":1}"#, 5, "", "").unwrap()["data"], json!({"a": "1"}));
        // A v1 message keeps its members; its target is the registration's.
        let m = fcm_message(r#"{"message":{"token":"other","data":{"x":"y"}}}"#, 5, "", "").unwrap();
        assert_eq!(m, json!({"data": {"x": "y"}, "android": {"ttl": "5s"}}));
        assert!(fcm_message(r#"{"message":{"token":"x"}}"#, 5, "", "").is_err());
    }

    #[test]
    fn legacy_apns_payloads_become_aps() {
        assert_eq!(apns_payload(r#"{"aps":{"alert":"x"},"k":1}"#).unwrap(), json!({"aps": {"alert": "x"}, "k": 1}));
        assert_eq!(
            apns_payload(r#"{"alert":"Hi","badge":2,"sound":"s.aiff","payload":{"id":7},"expiry":123}"#).unwrap(),
            json!({"id": 7, "aps": {"alert": "Hi", "badge": 2, "sound": "s.aiff"}})
        );
        assert_eq!(apns_payload("plain").unwrap(), json!({"aps": {"alert": "plain"}}));
        assert!(apns_payload(r#"{"x":1}"#).is_err());
    }
}
