//! The registration methods scripts call on `push` (§7.1, Notification Hubs mode), mapped onto the
//! tenant's stored registrations as §7.3 says: `createRegistrationId`, `getRegistration`,
//! `deleteRegistration`, `createOrUpdateRegistration`, `updateRegistration`, `listRegistrations`,
//! `listRegistrationsByTag`, and per platform `createNativeRegistration`, `createTemplateRegistration`
//! and `listRegistrationsByGcmRegistrationId|ByToken|ByEndpoint`.
//!
//! A registration a script stores is checked by the same rules as a client's (`registration_from_body`,
//! `check_tags`, `reserve_id` within `push_max_registrations`); the script runs with the master key's
//! trust within its own tenant, so it may read and change any of the tenant's registrations, never
//! another tenant's (every statement is keyed by the tenant). What a script reads carries the §7.2 form
//! and the names Notification Hubs gave (`RegistrationId`, `Tags` as a comma-separated string,
//! `GcmRegistrationId` or `DeviceToken`, `BodyTemplate`), which Mobile Services scripts read.

use super::{check_tags, registration_from_body, registration_json, reserve_id};
use crate::error::{ApiError, Result};
use crate::AppState;
use roost_scripts::host::RegistrationAction;
use roost_storage::push::RegistrationRecord;
use serde_json::{json, Map, Value as Json};

/// Registrations a list answers at most (`top` is capped to it).
const MAX_LIST: i64 = 1000;

pub async fn registrations(state: &AppState, tenant: &roost_storage::Tenant, action: RegistrationAction) -> Result<Json> {
    let name = &tenant.record.name;
    match action {
        RegistrationAction::CreateId => Ok(json!(reserve_id(state, name).await?)),
        RegistrationAction::Get { id } => Ok(script_json(&filled(state, name, &id).await?)),
        RegistrationAction::Delete { id } => {
            filled(state, name, &id).await?;
            state.storage.delete_registration(name, &id).await?;
            Ok(Json::Null)
        }
        RegistrationAction::Put { registration, create } => {
            let body = from_hub_names(&registration);
            let id = body.get("registrationId").and_then(Json::as_str).map(str::to_string).filter(|i| !i.is_empty());
            let id = match id {
                Some(id) => id,
                None if create => reserve_id(state, name).await?,
                None => return Err(ApiError::BadInput("The registration has no RegistrationId.".into())),
            };
            // The id must be one this tenant holds (reserved by createRegistrationId, or filled):
            // a script never chooses ids, so it cannot shadow another tenant's.
            let existing = state.storage.registration(name, &id).await?;
            let Some(existing) = existing else {
                return Err(ApiError::NotFound(format!("The registration '{id}' does not exist: create an id with createRegistrationId.")));
            };
            if !create && existing.platform.is_empty() {
                return Err(ApiError::NotFound(format!("The registration '{id}' does not exist.")));
            }
            let existing = Some(existing).filter(|e| !e.platform.is_empty());
            store(state, tenant, &id, &Json::Object(body), existing.as_ref()).await
        }
        RegistrationAction::Create { platform, handle, tags, template, template_name } => {
            let mut body = Map::new();
            body.insert("platform".into(), json!(platform));
            match (platform.as_str(), handle) {
                // A Web Push handle is the browser's subscription: {endpoint, keys}.
                ("webpush", Json::Object(sub)) => {
                    body.insert("deviceId".into(), sub.get("endpoint").cloned().unwrap_or(Json::Null));
                    body.insert("keys".into(), sub.get("keys").cloned().unwrap_or(Json::Null));
                }
                (_, h) => {
                    body.insert("deviceId".into(), h);
                }
            }
            body.insert("tags".into(), tags_value(&tags)?);
            if let Some(t) = template {
                let text = match t {
                    Json::String(s) => s,
                    other => other.to_string(),
                };
                body.insert("templateBody".into(), json!(text));
                body.insert("templateName".into(), json!(template_name.unwrap_or_else(|| "$Default".into())));
            }
            let id = reserve_id(state, name).await?;
            match store(state, tenant, &id, &Json::Object(body), None).await {
                Ok(out) => Ok(out),
                Err(e) => {
                    // Nothing half-made stays behind a refused registration.
                    state.storage.delete_registration(name, &id).await?;
                    Err(e)
                }
            }
        }
        RegistrationAction::List { tag, platform, handle, top, skip } => {
            let (top, skip) = (top.unwrap_or(100).clamp(0, MAX_LIST), skip.unwrap_or(0).clamp(0, 100_000));
            let platform = platform.map(|p| if p == "fcm" { "gcm".to_string() } else { p });
            let found = match handle {
                Some(h) => state.storage.registrations(name, platform.as_deref(), Some(&h)).await?,
                None => state.storage.find_registrations(name, platform.as_deref(), tag.as_deref(), None, top + skip).await?,
            };
            let found = found.iter().filter(|r| tag.as_deref().is_none_or(|t| super::tags_of(r).iter().any(|x| x == t)));
            Ok(Json::Array(found.skip(skip as usize).take(top as usize).map(script_json).collect()))
        }
    }
}

/// A filled registration of the tenant, or 404.
async fn filled(state: &AppState, tenant: &str, id: &str) -> Result<RegistrationRecord> {
    match state.storage.registration(tenant, id).await? {
        Some(r) if !r.platform.is_empty() => Ok(r),
        _ => Err(ApiError::NotFound(format!("The registration '{id}' does not exist."))),
    }
}

/// Checks and stores a registration under `id` (reserved), keeping the installation and the user
/// of the one it replaces; answers what was stored.
async fn store(state: &AppState, tenant: &roost_storage::Tenant, id: &str, body: &Json, before: Option<&RegistrationRecord>) -> Result<Json> {
    let mut g = registration_from_body(id, body, &tenant.record.settings.outbound_allow)?;
    if let Some(b) = before {
        g.installation_id = b.installation_id.clone();
        g.user_id = b.user_id.clone();
    }
    check_tags(&g)?;
    if !state.storage.put_registration(&tenant.record.name, &g).await? {
        return Err(ApiError::NotFound(format!("The registration '{id}' does not exist.")));
    }
    Ok(script_json(&g))
}

/// Tags as a script gives them: an array, a comma-separated string, or none.
fn tags_value(tags: &Json) -> Result<Json> {
    Ok(match tags {
        Json::Null => json!([]),
        Json::String(s) => json!(s.split(',').map(str::trim).filter(|t| !t.is_empty()).collect::<Vec<_>>()),
        Json::Array(_) => tags.clone(),
        _ => return Err(ApiError::BadInput("Tags are an array of strings or a comma-separated string.".into())),
    })
}

/// A registration in the §7.2 form, taking Notification Hubs' names where the script used them.
fn from_hub_names(r: &Json) -> Map<String, Json> {
    let mut out = r.as_object().cloned().unwrap_or_default();
    let mut take = |from: &str, to: &str| {
        if let Some(v) = out.remove(from) {
            out.entry(to.to_string()).or_insert(v);
        }
    };
    take("RegistrationId", "registrationId");
    take("BodyTemplate", "templateBody");
    take("TemplateName", "templateName");
    take("Tags", "tags");
    if let Some(v) = out.remove("GcmRegistrationId") {
        out.entry("deviceId").or_insert(v);
        out.entry("platform").or_insert(json!("gcm"));
    }
    if let Some(v) = out.remove("DeviceToken") {
        out.entry("deviceId").or_insert(v);
        out.entry("platform").or_insert(json!("apns"));
    }
    if let Some(Json::String(s)) = out.get("tags") {
        let list: Vec<Json> = s.split(',').map(str::trim).filter(|t| !t.is_empty()).map(|t| json!(t)).collect();
        out.insert("tags".into(), Json::Array(list));
    }
    out
}

/// What a script reads: the §7.2 form plus Notification Hubs' names.
fn script_json(r: &RegistrationRecord) -> Json {
    let mut out = registration_json(r);
    if let Json::Object(m) = &mut out {
        m.insert("RegistrationId".into(), json!(r.id));
        m.insert("Tags".into(), json!(super::tags_of(r).join(",")));
        match r.platform.as_str() {
            "gcm" => {
                m.insert("GcmRegistrationId".into(), json!(r.device_id));
            }
            "apns" => {
                m.insert("DeviceToken".into(), json!(r.device_id));
            }
            _ => {}
        }
        if !r.template_name.is_empty() {
            m.insert("BodyTemplate".into(), json!(r.template_body));
            m.insert("TemplateName".into(), json!(r.template_name));
        }
    }
    out
}
