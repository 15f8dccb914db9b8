//! `/push/…` (protocol.md §7.2): registration ids, registrations, and the tenant's Web Push public
//! key. The rules are `crate::push`'s; this is the wire.
//!
//! | route | answer |
//! |---|---|
//! | `POST /push/registrationids` | 201, no body, `Location: …/push/registrations/<id>` |
//! | `PUT /push/registrations/{id}` | 204; 410 for an id this service never made (the client makes a new one) |
//! | `GET /push/registrations?platform&deviceId` | 200, the device's registrations |
//! | `GET /push/registrations/{id}` | 200, one registration |
//! | `DELETE /push/registrations/{id}` | 200, empty |
//! | `GET /push/vapidkey` | 200 `{"publicKey"}` (no key needed: it is public) |
//!
//! The registration routes need the application key (§5.1's default for push routes) or the master
//! key. Their sub-routes are case-insensitive (`registrationIds`).

use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::http::extract::{authenticate, TenantCall};
use crate::push;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use roost_api::Permission;
use serde_json::{json, Value as Json};

/// Every `/push` route.
pub async fn route(State(state): State<AppState>, r: TenantCall) -> Result<Response> {
    let at = r.raw_path.to_ascii_lowercase().rfind("/push").unwrap_or(0);
    let rest = r.raw_path[at + "/push".len()..].trim_end_matches('/').to_string();
    let segments: Vec<&str> = rest.split('/').skip(1).collect();
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    match (lower.iter().map(String::as_str).collect::<Vec<_>>().as_slice(), &r.method) {
        (["vapidkey"], &Method::GET) => {
            let v = push::vapid(&state, &r.tenant.record.name, false).await?;
            Ok(axum::Json(json!({ "publicKey": v.vapid_public })).into_response())
        }
        (["vapidkey"], _) => Err(ApiError::MethodNotAllowed("GET")),
        (["registrationids"], &Method::POST) => create_id(&state, &r, &permitted(&r, "/registrationids")?, at).await,
        (["registrationids"], _) => Err(ApiError::MethodNotAllowed("POST")),
        (["registrations"], &Method::GET) => list(&state, &r, &permitted(&r, "/registrations")?).await,
        (["registrations"], _) => Err(ApiError::MethodNotAllowed("GET")),
        (["registrations", _], m) => {
            let id = percent_encoding::percent_decode_str(segments[1]).decode_utf8_lossy().into_owned();
            match *m {
                Method::PUT => put(&state, &r, &permitted(&r, "/registrations/:id")?, &id).await,
                Method::GET => {
                    permitted(&r, "/registrations/:id")?;
                    let found = state.storage.registration(&r.tenant.record.name, &id).await?.filter(|g| !g.platform.is_empty());
                    let g = found.ok_or_else(|| ApiError::NotFound(format!("The registration '{id}' does not exist.")))?;
                    Ok(axum::Json(push::registration_json(&g)).into_response())
                }
                Method::DELETE => {
                    permitted(&r, "/registrations/:id")?;
                    if !state.storage.delete_registration(&r.tenant.record.name, &id).await? {
                        return Err(ApiError::NotFound(format!("The registration '{id}' does not exist.")));
                    }
                    Ok(StatusCode::OK.into_response())
                }
                _ => Err(ApiError::MethodNotAllowed("PUT, DELETE, GET")),
            }
        }
        _ => Err(ApiError::not_found()),
    }
}

/// The caller, if the route's permission lets them in: the one `extensions/push.json` names for the
/// route (`/registrationids`, `/registrations`, `/registrations/:id`) and verb, else application (§5.1).
fn permitted(r: &TenantCall, route: &str) -> Result<Caller> {
    let caller = authenticate(r)?;
    let metadata = r.tenant.script(roost_storage::scripts::ScriptKind::Extension, "push").and_then(|s| s.meta.get("permissions").cloned());
    let verb = r.method.as_str().to_ascii_lowercase();
    let required = metadata.and_then(|m| crate::auth::route_permission(&m, route, &verb)).unwrap_or(Permission::Application);
    if !caller.allows(required, false) {
        return Err(ApiError::unauthorized());
    }
    Ok(caller)
}

async fn create_id(state: &AppState, r: &TenantCall, _caller: &Caller, at: usize) -> Result<Response> {
    let id = push::reserve_id(state, &r.tenant.record.name).await?;
    let host = r.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let location = format!("{}://{host}{}/push/registrations/{id}", r.scheme, &r.raw_path[..at]);
    let mut resp = StatusCode::CREATED.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

async fn put(state: &AppState, r: &TenantCall, caller: &Caller, id: &str) -> Result<Response> {
    let tenant = &r.tenant.record.name;
    if state.storage.registration(tenant, id).await?.is_none() {
        return Err(ApiError::Gone(format!("The registration '{id}' does not exist: create a new registration id.")));
    }
    let body: Json = r.body.as_deref().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or(Json::Null);
    let mut g = push::registration_from_body(id, &body, &r.tenant.record.settings.outbound_allow)?;
    // §7.2: the device's installation id becomes one more tag.
    if let Some(installation) = r.headers.get("x-zumo-installation-id").and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty()) {
        if !push::is_valid_tag(installation) {
            return Err(ApiError::BadInput("X-ZUMO-INSTALLATION-ID is not a valid tag.".into()));
        }
        push::add_tag(&mut g, installation);
        g.installation_id = installation.to_string();
    }
    g.user_id = caller.user.as_ref().map(|u| u.user_id.clone()).unwrap_or_default();
    push::check_tags(&g)?;
    if let Some(script) = r.tenant.script(roost_storage::scripts::ScriptKind::Extension, "push") {
        // extensions/push.js may edit the registration (add the user's id as a tag, say); what it
        // leaves is checked again by the same rules.
        let input = json!({ "registration": push::registration_json(&g), "user": caller.script_user(&r.tenant.record.master_key) });
        let invocation = roost_scripts::Invocation { source: script.source(), script: script.body.clone(), entry: roost_scripts::Entry::PushRegister, input };
        let host = crate::scripting::Host::new(state.clone(), r.tenant.clone(), crate::scripting::Purpose::Background);
        let resp = crate::scripting::respond(state, &r.tenant, invocation, host).await?;
        let edited = match resp.body {
            roost_scripts::ScriptBody::Json(j) if resp.status < 400 => j,
            _ => return Ok(crate::scripting::into_http(resp)),
        };
        let (installation, user) = (g.installation_id.clone(), g.user_id.clone());
        g = push::registration_from_body(id, &edited, &r.tenant.record.settings.outbound_allow)?;
        g.installation_id = installation;
        g.user_id = user;
        push::check_tags(&g)?;
    }
    if !state.storage.put_registration(tenant, &g).await? {
        return Err(ApiError::Gone(format!("The registration '{id}' does not exist: create a new registration id.")));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list(state: &AppState, r: &TenantCall, _caller: &Caller) -> Result<Response> {
    let q = |name: &str| r.query.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    let device = q("deviceId").ok_or_else(|| ApiError::BadInput("GET /push/registrations needs the device's deviceId (and its platform).".into()))?;
    let platform = q("platform").map(str::to_ascii_lowercase);
    let found = state.storage.registrations(&r.tenant.record.name, platform.as_deref(), Some(device)).await?;
    Ok(axum::Json(Json::Array(found.iter().map(push::registration_json).collect())).into_response())
}
