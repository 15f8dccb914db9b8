//! Push (protocol.md §7): a tenant's device registrations (§7.2, with the `webpush` platform of
//! §7.3) and its Web Push key pair. The endpoints are `http::push`; the rows are
//! `roost_storage::push`.
//!
//! Rules kept here, and only here:
//! - platforms `webpush` (the subscription's `https` endpoint as `deviceId`, its `keys.p256dh` and
//!   `keys.auth`), `gcm`/`fcm` (an FCM registration token) and `apns` (a device token); `wns` and
//!   `mpns` are refused (their services are gone or out of reach);
//! - tags as Notification Hubs allowed them (at most 60, each 1 to 120 of `A-Za-z0-9_@#.:-`), the
//!   registering device's `X-ZUMO-INSTALLATION-ID` appended as one more tag;
//! - templates (`templateName` required with a `templateBody` of at most 4 KiB), headers, expiry;
//! - a tenant holds at most `push_max_registrations` registrations (reserved ids count; ids reserved a
//!   day ago and never filled are forgotten when room is needed).

pub mod admin;
pub mod deliver;
pub mod native;
pub mod scripts;
pub mod send;

use crate::error::{ApiError, Result};
use crate::AppState;
use roost_storage::push::{RegistrationRecord, VapidRecord};
use serde_json::{json, Map, Value as Json};

/// Tags one registration may carry (as Notification Hubs).
pub const MAX_TAGS: usize = 60;
const MAX_TAG: usize = 120;
const MAX_HANDLE: usize = 2048;
/// The largest template body.
pub const MAX_TEMPLATE: usize = 4096;
const MAX_HEADERS: usize = 20;
/// What the sealed VAPID private key is bound to, beside the tenant.
pub(crate) const VAPID_SEAL: &str = "\0push-vapid";

/// The platforms a registration may name.
pub const PLATFORMS: [&str; 4] = ["webpush", "gcm", "fcm", "apns"];

/// A tag Notification Hubs would accept.
pub fn is_valid_tag(tag: &str) -> bool {
    !tag.is_empty() && tag.len() <= MAX_TAG && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"_@#.:-".contains(&b))
}

/// The registration a `PUT /push/registrations/{id}` body describes (checked), before the
/// installation id and the caller are added.
/// A webpush endpoint is `https`, or `http` to a host the tenant's admin-set `outbound_allow` names.
pub fn registration_from_body(id: &str, body: &Json, outbound_allow: &[String]) -> Result<RegistrationRecord> {
    let bad = |m: String| ApiError::BadInput(m);
    let obj = body.as_object().ok_or_else(|| bad("The registration must be a JSON object.".into()))?;
    let platform = obj.get("platform").and_then(Json::as_str).unwrap_or_default().to_ascii_lowercase();
    if !PLATFORMS.contains(&platform.as_str()) {
        return Err(bad(format!("The platform '{platform}' is not supported: use webpush, gcm (fcm) or apns.")));
    }
    let device_id = obj.get("deviceId").and_then(Json::as_str).unwrap_or_default().trim().to_string();
    if device_id.is_empty() || device_id.len() > MAX_HANDLE || device_id.chars().any(char::is_control) {
        return Err(bad(format!("A registration needs its deviceId (the device's push handle, at most {MAX_HANDLE} characters).")));
    }
    let keys = if platform == "webpush" {
        let url = reqwest::Url::parse(&device_id).map_err(|_| bad("A webpush deviceId is the subscription's endpoint URL.".into()))?;
        let host = url.host_str().unwrap_or_default().trim_matches(|c| c == '[' || c == ']').to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        let allowed = outbound_allow.iter().any(|a| a.eq_ignore_ascii_case(&host) || a.eq_ignore_ascii_case(&format!("{host}:{port}")));
        if host.is_empty() || !(url.scheme() == "https" || url.scheme() == "http" && allowed) {
            return Err(bad("A webpush deviceId is the subscription's https:// endpoint URL.".into()));
        }
        let keys =
            obj.get("keys").and_then(Json::as_object).ok_or_else(|| bad("A webpush registration needs the subscription's keys (p256dh, auth).".into()))?;
        let p256dh = keys.get("p256dh").and_then(Json::as_str).unwrap_or_default();
        let auth = keys.get("auth").and_then(Json::as_str).unwrap_or_default();
        let point = b64url(p256dh).filter(|b| b.len() == 65 && b[0] == 4);
        if point.is_none() || web_push_native::p256::PublicKey::from_sec1_bytes(point.as_deref().unwrap_or_default()).is_err() {
            return Err(bad("keys.p256dh must be the subscription's P-256 public key (65 bytes, base64url).".into()));
        }
        if b64url(auth).is_none_or(|b| b.len() != 16) {
            return Err(bad("keys.auth must be the subscription's 16-byte secret (base64url).".into()));
        }
        json!({ "p256dh": p256dh, "auth": auth }).to_string()
    } else {
        if !device_id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("A device token has no spaces or control characters.".into()));
        }
        String::new()
    };
    let tags = match obj.get("tags") {
        None | Some(Json::Null) => vec![],
        Some(Json::Array(a)) => {
            a.iter().map(|t| t.as_str().map(str::to_string).ok_or_else(|| bad("tags must be strings.".into()))).collect::<Result<Vec<_>>>()?
        }
        Some(_) => return Err(bad("tags must be an array of strings.".into())),
    };
    let template_name = obj.get("templateName").and_then(Json::as_str).unwrap_or_default().to_string();
    let template_body = match obj.get("templateBody") {
        None | Some(Json::Null) => String::new(),
        Some(Json::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    if !template_body.is_empty() && template_name.is_empty() {
        return Err(bad("A registration with a templateBody needs its templateName.".into()));
    }
    if template_body.len() > MAX_TEMPLATE || template_name.len() > 256 || template_name.chars().any(char::is_control) {
        return Err(bad(format!("A template's body is at most {MAX_TEMPLATE} bytes and its name at most 256 characters.")));
    }
    let headers = match obj.get("headers") {
        None | Some(Json::Null) => String::new(),
        Some(Json::Object(h)) if h.len() <= MAX_HEADERS && h.values().all(|v| v.as_str().is_some_and(|s| s.len() <= 1024)) => {
            Json::Object(h.clone()).to_string()
        }
        Some(_) => return Err(bad(format!("headers must be an object of at most {MAX_HEADERS} string values."))),
    };
    let expiry = obj.get("expiration").or_else(|| obj.get("expiry")).and_then(Json::as_str).unwrap_or_default().to_string();
    if expiry.len() > 64 {
        return Err(bad("expiration is a date.".into()));
    }
    let record = RegistrationRecord {
        id: id.to_string(),
        platform,
        device_id,
        keys,
        tags: Json::from(tags).to_string(),
        template_name,
        template_body,
        headers,
        expiry,
        ..Default::default()
    };
    check_tags(&record)?;
    Ok(record)
}

/// The tags of a registration, as stored.
pub fn tags_of(r: &RegistrationRecord) -> Vec<String> {
    serde_json::from_str(&r.tags).unwrap_or_default()
}

/// Adds a tag unless the registration has it.
pub fn add_tag(r: &mut RegistrationRecord, tag: &str) {
    let mut tags = tags_of(r);
    if !tags.iter().any(|t| t == tag) {
        tags.push(tag.to_string());
    }
    r.tags = Json::from(tags).to_string();
}

/// Every tag valid, and not too many.
pub fn check_tags(r: &RegistrationRecord) -> Result<()> {
    let tags = tags_of(r);
    if tags.len() > MAX_TAGS {
        return Err(ApiError::BadInput(format!("A registration has at most {MAX_TAGS} tags.")));
    }
    if let Some(bad) = tags.iter().find(|t| !is_valid_tag(t)) {
        return Err(ApiError::BadInput(format!("'{bad}' is not a valid tag: 1 to {MAX_TAG} letters, digits or _@#.:-")));
    }
    Ok(())
}

/// Reserved ids never filled are forgotten after this long when a tenant needs room.
const RESERVATION_DAYS: i64 = 1;

/// A new registration id reserved for the tenant (`POST /push/registrationids`, a script's
/// `createRegistrationId`): within `push_max_registrations`, reserved ids counted, those reserved a day
/// ago and never filled forgotten when the tenant needs room.
pub async fn reserve_id(state: &AppState, tenant: &str) -> Result<String> {
    if state.storage.registration_count(tenant).await? >= state.push_max_registrations {
        let before = roost_odata::format_datetime(&(chrono::Utc::now() - chrono::Duration::days(RESERVATION_DAYS)));
        state.storage.prune_reserved_registrations(tenant, &before).await?;
        if state.storage.registration_count(tenant).await? >= state.push_max_registrations {
            return Err(ApiError::Forbidden(format!("The service has reached its limit of {} push registrations.", state.push_max_registrations)));
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    state.storage.reserve_registration(tenant, &id).await?;
    Ok(id)
}

/// A registration as `GET /push/registrations` answers it (§7.2).
pub fn registration_json(r: &RegistrationRecord) -> Json {
    let mut out = Map::new();
    out.insert("registrationId".into(), json!(r.id));
    out.insert("platform".into(), json!(r.platform));
    out.insert("deviceId".into(), json!(r.device_id));
    out.insert("tags".into(), json!(tags_of(r)));
    if let Ok(keys @ Json::Object(_)) = serde_json::from_str::<Json>(&r.keys) {
        out.insert("keys".into(), keys);
    }
    if !r.template_name.is_empty() {
        out.insert("templateName".into(), json!(r.template_name));
        out.insert("templateBody".into(), json!(r.template_body));
    }
    if let Ok(headers @ Json::Object(_)) = serde_json::from_str::<Json>(&r.headers) {
        out.insert("headers".into(), headers);
    }
    if !r.expiry.is_empty() {
        out.insert("expiry".into(), json!(r.expiry));
    }
    Json::Object(out)
}

fn b64url(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

/// The tenant's Web Push key pair, made (P-256, the private key sealed with the platform key) the
/// first time it is asked for; `rotate` replaces it (every Web Push subscription made with the old
/// public key then stops receiving).
pub async fn vapid(state: &AppState, tenant: &str, rotate: bool) -> Result<VapidRecord> {
    if !rotate {
        if let Some(v) = state.storage.vapid(tenant).await? {
            return Ok(v);
        }
    }
    use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint as _;
    let secret = loop {
        let bytes: [u8; 32] = rand::random();
        if let Ok(k) = web_push_native::p256::SecretKey::from_slice(&bytes) {
            break k;
        }
    };
    use base64::Engine as _;
    let public = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false).as_bytes());
    let private: String = secret.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let sealed = state.identity_key.seal(tenant, VAPID_SEAL, &private);
    // Two nodes making the first pair at once: the first stored wins, both answer it.
    Ok(state.storage.put_vapid(tenant, &public, &sealed, rotate).await?)
}
