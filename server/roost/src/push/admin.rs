//! A tenant's push as `/manage/v1`, the CLI and the portal's Push view see it: its keys and
//! credentials (never a private key), its registrations (by platform, tag, user), its sends and their
//! counts, the Web Push key's rotation and a test notification.

use super::send::{self, DEFAULT_TTL};
use crate::manage::ManageError;
use crate::AppState;
use roost_api::{PushOut, PushSendOut, PushTestIn, RegistrationOut};
use roost_scripts::host::PushSend;
use roost_storage::push::{RegistrationRecord, SendRecord};
use serde_json::{json, Map, Value as Json};

/// Registrations or sends one listing shows at most.
pub const MAX_LIST: i64 = 500;

fn internal(e: impl std::fmt::Display) -> ManageError {
    ManageError::Internal(e.to_string())
}

/// The tenant's push set-up.
pub async fn show(state: &AppState, tenant: &str) -> Result<PushOut, ManageError> {
    let record = crate::manage::show_tenant(&state.storage, tenant).await?;
    let vapid = super::vapid(state, &record.name, false).await.map_err(|e| internal(format!("{e:?}")))?;
    Ok(PushOut {
        vapid_public_key: vapid.vapid_public,
        vapid_updated_at: vapid.updated_at,
        fcm: super::native::fcm_out(state, &record.name).await?,
        apns: super::native::apns_out(state, &record.name).await?,
        registrations: state.storage.registration_count(&record.name).await.map_err(internal)?,
    })
}

/// A new Web Push key pair: every browser subscription made with the old public key stops receiving
/// (browsers subscribe again with the new key).
pub async fn rotate_vapid(state: &AppState, tenant: &str) -> Result<PushOut, ManageError> {
    let record = crate::manage::show_tenant(&state.storage, tenant).await?;
    super::vapid(state, &record.name, true).await.map_err(|e| internal(format!("{e:?}")))?;
    show(state, &record.name).await
}

fn registration_out(r: RegistrationRecord) -> RegistrationOut {
    RegistrationOut {
        tags: super::tags_of(&r),
        registration_id: r.id,
        platform: r.platform,
        device_id: r.device_id,
        template_name: r.template_name,
        installation_id: r.installation_id,
        user_id: r.user_id,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

/// The tenant's registrations, newest first, filtered by platform, tag and user.
pub async fn registrations(
    state: &AppState,
    tenant: &str,
    platform: Option<&str>,
    tag: Option<&str>,
    user: Option<&str>,
) -> Result<Vec<RegistrationOut>, ManageError> {
    let record = crate::manage::show_tenant(&state.storage, tenant).await?;
    if let Some(t) = tag {
        if !super::is_valid_tag(t) {
            return Err(ManageError::BadInput(format!("'{t}' is not a valid tag.")));
        }
    }
    let found = state.storage.find_registrations(&record.name, platform, tag, user, MAX_LIST).await.map_err(internal)?;
    Ok(found.into_iter().map(registration_out).collect())
}

/// Removes a registration.
pub async fn delete_registration(state: &AppState, tenant: &str, id: &str) -> Result<(), ManageError> {
    let record = crate::manage::show_tenant(&state.storage, tenant).await?;
    if !state.storage.delete_registration(&record.name, id).await.map_err(internal)? {
        return Err(ManageError::NotFound(format!("Registration '{id}'")));
    }
    Ok(())
}

fn send_out((s, waiting): (SendRecord, i64)) -> PushSendOut {
    PushSendOut {
        id: s.id,
        platform: s.platform,
        tags: s.tags,
        created_at: s.created_at,
        queued: s.queued,
        delivered: s.delivered,
        retried: s.retried,
        expired: s.expired,
        failed: s.failed,
        pruned: s.pruned,
        waiting,
    }
}

/// The tenant's recent sends, newest first.
pub async fn sends(state: &AppState, tenant: &str, limit: i64) -> Result<Vec<PushSendOut>, ManageError> {
    let record = crate::manage::show_tenant(&state.storage, tenant).await?;
    let found = state.storage.push_sends(&record.name, limit.clamp(1, MAX_LIST)).await.map_err(internal)?;
    Ok(found.into_iter().map(send_out).collect())
}

/// One send and its counts.
pub async fn send_status(state: &AppState, tenant: &str, id: &str) -> Result<PushSendOut, ManageError> {
    let record = crate::manage::show_tenant(&state.storage, tenant).await?;
    let found = state.storage.push_send(&record.name, id).await.map_err(internal)?;
    found.map(send_out).ok_or_else(|| ManageError::NotFound(format!("Push send '{id}'")))
}

/// A test notification (`{"message": …}` as template properties) to a tag expression or to one
/// registration (a native one without a template gets the text as its alert or data `message`).
pub async fn test(state: &AppState, tenant: &str, input: PushTestIn) -> Result<PushSendOut, ManageError> {
    let record = crate::manage::show_tenant(&state.storage, tenant).await?;
    if input.message.is_empty() || input.message.len() > 1024 {
        return Err(ManageError::BadInput("message is 1 to 1024 bytes of text.".into()));
    }
    let props = Json::Object(Map::from_iter([("message".to_string(), json!(input.message))]));
    let options = Map::from_iter([("ttl".to_string(), json!(DEFAULT_TTL.min(24 * 3600)))]);
    let (args, only) = match &input.registration_id {
        Some(id) => {
            let r = state.storage.registration(&record.name, id).await.map_err(internal)?.filter(|r| !r.platform.is_empty());
            let r = r.ok_or_else(|| ManageError::NotFound(format!("Registration '{id}'")))?;
            let (platform, payload) = match r.platform.as_str() {
                _ if !r.template_body.is_empty() || r.platform == "webpush" => ("template", props),
                "apns" => ("apns", json!({ "aps": { "alert": input.message } })),
                _ => ("gcm", json!({ "data": { "message": input.message } })),
            };
            (PushSend { platform: platform.into(), tags: Json::Null, payload, options }, Some(r.id))
        }
        None => (PushSend { platform: "template".into(), tags: input.tags.clone().map_or(Json::Null, Json::String), payload: props, options }, None),
    };
    let sent = send::send_to(state, &record.name, args, only.as_deref()).await.map_err(|e| {
        let m = e.message.unwrap_or_default();
        if e.status == 400 {
            ManageError::BadInput(m)
        } else {
            ManageError::Internal(m)
        }
    })?;
    let id = sent["id"].as_str().unwrap_or_default().to_string();
    send_status(state, &record.name, &id).await
}
