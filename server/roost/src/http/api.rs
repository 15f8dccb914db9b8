//! Custom APIs: `/api/{name}[/...]` (protocol §6.10). The module runs in the tenant's script engine,
//! which routes (verb exports, `register` paths), checks the per-route permissions of `api/<name>.json`
//! (§5.2, default admin) and answers 405 with `Allow`.

use super::extract::TenantCall;
use super::TenantRequest;
use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::AppState;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::Response;
use roost_storage::scripts::{ScriptKind, ScriptRecord};
use serde_json::{json, Map, Value as Json};
use std::sync::Arc;

/// The body as a custom API sees it (§1.6): JSON parsed, forms as objects, other types as text,
/// no body as `''`, and `undefined` (null here) for GET/DELETE with a Content-Type.
fn api_body(r: &TenantRequest) -> Result<Json> {
    let Some(bytes) = &r.body else { return Ok(Json::Null) };
    if bytes.is_empty() {
        return Ok(Json::String(String::new()));
    }
    let ct = r.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    if ct.contains("json") {
        return match serde_json::from_slice::<Json>(bytes) {
            Ok(v @ (Json::Object(_) | Json::Array(_))) => Ok(v),
            Ok(_) => Err(ApiError::BadInput("invalid json".into())),
            Err(e) => Err(ApiError::Syntax(format!("SyntaxError: {e}"))),
        };
    }
    if ct.contains("x-www-form-urlencoded") {
        let mut obj = Map::new();
        for (k, v) in super::parse_query(&String::from_utf8_lossy(bytes)) {
            obj.insert(k, Json::String(v));
        }
        return Ok(Json::Object(obj));
    }
    Ok(Json::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// The custom API a route names (`{name}`), or 404 (before any credential is looked at).
pub struct ApiScript(Arc<ScriptRecord>);

impl<S: Send + Sync> FromRequestParts<S> for ApiScript {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let r = TenantCall::from_request_parts(parts, state).await?;
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state).await.map_err(|_| ApiError::not_found())?;
        let name = params.iter().find(|(k, _)| k == "name").map(|(_, v)| v.as_str()).unwrap_or("");
        r.tenant.script(ScriptKind::Api, name).map(ApiScript).ok_or_else(ApiError::not_found)
    }
}

/// `/api/{name}[/{*rest}]`, any method: the module routes it (§6.10).
pub async fn call_api(
    State(state): State<AppState>,
    ApiScript(script): ApiScript,
    caller: Caller,
    r: TenantCall,
    Path(params): Path<Vec<(String, String)>>,
) -> Result<Response> {
    let rest = params.iter().find(|(k, _)| k == "rest").map(|(_, v)| v.as_str()).unwrap_or("");
    let sub = format!("/{rest}");
    let mut query = Map::new();
    for (k, v) in &r.query {
        query.insert(k.clone(), Json::String(v.clone()));
    }
    let mut headers = Map::new();
    for (k, v) in r.headers.iter() {
        if let Ok(v) = v.to_str() {
            headers.insert(k.as_str().to_string(), Json::String(v.to_string()));
        }
    }
    let url = match r.raw_path.find("/api/") {
        Some(i) => r.raw_path[i..].to_string(),
        None => r.raw_path.clone(),
    };
    let input = json!({
        "method": r.method.as_str(),
        "path": sub,
        "url": url,
        "query": query,
        "headers": headers,
        "body": api_body(&r)?,
        "user": caller.script_user(&r.tenant.record.master_key),
    });
    let invocation = roost_scripts::Invocation { source: script.source(), script: script.body.clone(), entry: roost_scripts::Entry::Api, input };
    let permissions = script.meta.get("permissions").cloned().unwrap_or(Json::Null);
    let purpose = crate::scripting::Purpose::Api(crate::scripting::ApiCall { caller, permissions });
    let host = crate::scripting::Host::new(state.clone(), r.tenant.clone(), purpose);
    let resp = crate::scripting::respond(&state, &r.tenant, invocation, host).await?;
    Ok(crate::scripting::into_http(resp))
}
