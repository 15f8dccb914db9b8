//! Custom APIs: `/api/{name}[/...]` (protocol §6.10). The module runs in the tenant's script engine,
//! which routes (verb exports, `register` paths), checks the per-route permissions of `api/<name>.json`
//! (§5.2, default admin) and answers 405 with `Allow`.

use super::TenantRequest;
use crate::error::{ApiError, Result};
use axum::http::header;
use axum::response::Response;
use roost_storage::scripts::ScriptKind;
use serde_json::{json, Map, Value as Json};

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

/// Entry point for `/api/...`.
pub async fn dispatch(state: &crate::AppState, r: TenantRequest) -> Result<Response> {
    let Some(name) = r.segments.get(1) else { return Err(ApiError::not_found()) };
    let script = r.tenant.script(ScriptKind::Api, name).ok_or_else(ApiError::not_found)?;
    let caller = super::authenticate(&r)?;
    let sub = format!("/{}", r.segments[2..].join("/"));
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
        "user": caller.script_user(),
    });
    let invocation = roost_scripts::Invocation { source: script.source(), script: script.body.clone(), entry: roost_scripts::Entry::Api, input };
    let permissions = script.meta.get("permissions").cloned().unwrap_or(Json::Null);
    let purpose = crate::scripting::Purpose::Api(crate::scripting::ApiCall { caller, permissions });
    let host = crate::scripting::Host::new(state.clone(), r.tenant.clone(), purpose);
    let resp = crate::scripting::respond(state, &r.tenant, invocation, host).await?;
    Ok(crate::scripting::into_http(resp))
}

