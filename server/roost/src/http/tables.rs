//! `/tables/{table}[/{id}]` (protocol.md §2): the wire adapter of the table service
//! (`crate::tables`). It reads the query string, the body and the headers, runs the operation's
//! script if there is one, and writes the answer (`ETag`, `Location`, 304).
//!
//! The order of checks follows §1.1: table existence (404), query parsing (400), authentication (401),
//! permission (401), query validation (400), then the operation. Body validation follows §2.2's steps.

use super::extract::{self, Delete, Insert, Permitted, Read, TenantCall, Undelete, Update};
use super::TenantRequest;
use crate::auth::{self, Caller};
use crate::error::{msg, ApiError, Result};
use crate::tables::{item, wire, ReadParams, TableOp, TableService};
use crate::AppState;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use roost_odata::sql::Value;
use roost_storage::scripts::{ScriptKind, ScriptRecord};
use roost_storage::Table;
use serde_json::{Map, Value as Json};
use std::sync::Arc;

/// `GET /tables/{table}`: a query.
pub async fn read_items(State(state): State<AppState>, p: Permitted<Read>) -> Result<Response> {
    run(&state, p.op(), p.req, p.table, None, p.params, p.caller).await
}

/// `GET /tables/{table}/{id}`: a read by id.
pub async fn read_item(State(state): State<AppState>, p: Permitted<Read>) -> Result<Response> {
    run(&state, p.op(), p.req, p.table, p.id, p.params, p.caller).await
}

/// `POST /tables/{table}`: an insert.
pub async fn insert_item(State(state): State<AppState>, p: Permitted<Insert>) -> Result<Response> {
    run(&state, p.op(), p.req, p.table, None, p.params, p.caller).await
}

/// `PATCH /tables/{table}/{id}`: an update.
pub async fn update_item(State(state): State<AppState>, p: Permitted<Update>) -> Result<Response> {
    run(&state, p.op(), p.req, p.table, p.id, p.params, p.caller).await
}

/// `PATCH /tables/{table}`: an update without an id, which the protocol answers with its 400.
pub async fn update_without_id(State(state): State<AppState>, p: Permitted<Update>) -> Result<Response> {
    run(&state, p.op(), p.req, p.table, None, p.params, p.caller).await
}

/// `DELETE /tables/{table}/{id}`: a delete.
pub async fn delete_item(State(state): State<AppState>, p: Permitted<Delete>) -> Result<Response> {
    run(&state, p.op(), p.req, p.table, p.id, p.params, p.caller).await
}

/// `POST /tables/{table}/{id}`: an undelete (§2.5).
pub async fn undelete_item(State(state): State<AppState>, p: Permitted<Undelete>) -> Result<Response> {
    run(&state, p.op(), p.req, p.table, p.id, p.params, p.caller).await
}

/// Another method on a table: 404 if there is no such table, else 405 (§1.1's order).
pub async fn collection_method_not_allowed(req: TenantCall, mut parts: Parts) -> ApiError {
    match extract::route_table(&mut parts, &req).await {
        Err(e) => e,
        Ok(_) => ApiError::MethodNotAllowed("GET, POST"),
    }
}

/// Another method on an item: 404 if there is no such table, else 405.
pub async fn item_method_not_allowed(req: TenantCall, mut parts: Parts) -> ApiError {
    match extract::route_table(&mut parts, &req).await {
        Err(e) => e,
        Ok(_) => ApiError::MethodNotAllowed("GET, POST, PATCH, DELETE"),
    }
}

/// Runs a permitted operation: its script if it has one (§6.3: unless the master key asked for
/// `noScript`), else the table service.
async fn run(state: &AppState, op: TableOp, r: TenantCall, table: Arc<Table>, id: Option<String>, params: ReadParams, caller: Caller) -> Result<Response> {
    if !params.no_script && r.tenant.has_scripts() {
        if let Some(script) = r.tenant.script(ScriptKind::Table, &format!("{}.{}", table.record.name, op.script_name())) {
            return scripted(state, &r, table, op, id.as_deref(), params, &caller, &script).await;
        }
    }
    let svc = TableService::new(&r.tenant, &table);
    match op {
        TableOp::Read => read(&r, &svc, &table, id.as_deref(), params).await,
        TableOp::Insert => {
            let body = item::convert(json_body(&r)?, &table, None, false)?;
            let saved = svc.insert(body.item, params.system).await?;
            let mut resp = json_response(StatusCode::CREATED, &saved.echo(body.echo), saved.etag());
            if let Some(loc) = location(&r, &saved.id) {
                resp.headers_mut().insert(header::LOCATION, loc);
            }
            Ok(resp)
        }
        TableOp::Update => {
            let id = id.as_deref().ok_or_else(|| ApiError::BadInput(msg::ID_REQUIRED.into()))?;
            let body = json_body(&r)?;
            let id = item::url_id(&table, id)?;
            let body = item::convert(body, &table, Some(&id), false)?;
            let tag = if svc.versioned() { if_match(&r)? } else { None };
            let saved = svc.update(&id, body.item, tag.as_deref(), params.system).await?;
            Ok(json_response(StatusCode::OK, &saved.echo(body.echo), saved.etag()))
        }
        TableOp::Delete => {
            let id = item::url_id(&table, id.as_deref().unwrap_or_default())?;
            let tag = if svc.versioned() { if_match(&r)? } else { None };
            svc.delete(&id, tag.as_deref()).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        TableOp::Undelete => {
            if !table.record.soft_delete {
                return Err(ApiError::BadInput(msg::UNDELETE_UNSUPPORTED.into()));
            }
            if matches!(json_body(&r), Ok(Some(Json::Object(_)))) {
                return Err(ApiError::BadInput(msg::UNDELETE_CONTENT.into()));
            }
            let id = item::url_id(&table, id.as_deref().unwrap_or_default())?;
            let tag = if_match(&r)?;
            let saved = svc.undelete(&id, tag.as_deref(), params.system).await?;
            Ok(json_response(StatusCode::OK, &saved.echo(Map::new()), saved.etag()))
        }
    }
}

fn json_response(status: StatusCode, body: &Json, etag: Option<String>) -> Response {
    let mut r = (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.to_string()).into_response();
    if let Some(h) = etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        r.headers_mut().insert(header::ETAG, h);
    }
    r
}

async fn read(r: &TenantRequest, svc: &TableService<'_>, table: &Table, id: Option<&str>, p: ReadParams) -> Result<Response> {
    let id_value = id.map(|id| item::url_id(table, id)).transpose()?;
    let q = p.into_query(id_value)?;
    let page = svc.read(&q).await?;
    if page.unknown_column {
        return Ok(json_response(StatusCode::OK, &Json::Array(vec![]), None));
    }
    if let Some(id) = id {
        let row = page.rows.into_iter().next().ok_or_else(|| ApiError::item_not_found(id))?;
        let body = wire::row_to_json(row);
        let etag = wire::etag_of_item(&body);
        if let (Some(tag), Some(inm)) = (&etag, r.headers.get(header::IF_NONE_MATCH).and_then(|h| h.to_str().ok())) {
            let inm = inm.trim();
            if inm == "*" || inm == tag {
                let mut resp = StatusCode::NOT_MODIFIED.into_response();
                if let Ok(h) = HeaderValue::from_str(tag) {
                    resp.headers_mut().insert(header::ETAG, h);
                }
                return Ok(resp);
            }
        }
        return Ok(json_response(StatusCode::OK, &body, etag));
    }
    let items = Json::Array(page.rows.into_iter().map(wire::row_to_json).collect());
    let body = match page.count {
        Some(n) => serde_json::json!({ "results": items, "count": n }),
        None => items,
    };
    Ok(json_response(StatusCode::OK, &body, None))
}

/// Parses the request body as JSON (strict: an object or an array at the top level).
fn json_body(r: &TenantRequest) -> Result<Option<Json>> {
    let Some(bytes) = r.body.as_ref().filter(|b| !b.is_empty()) else { return Ok(None) };
    let ct = r.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase);
    if ct.as_deref().is_some_and(|c| c.contains("x-www-form-urlencoded")) {
        // Forms parse into an object of strings (§1.6); repeated names become arrays.
        let mut obj = Map::new();
        for (k, v) in super::parse_query(&String::from_utf8_lossy(bytes)) {
            match obj.get_mut(&k) {
                Some(Json::Array(a)) => a.push(Json::String(v)),
                Some(prev) => *prev = Json::Array(vec![prev.take(), Json::String(v)]),
                None => {
                    obj.insert(k, Json::String(v));
                }
            }
        }
        return Ok(Some(Json::Object(obj)));
    }
    if ct.as_deref().is_some_and(|c| !c.contains("json")) {
        // Any other content type arrives as a raw string (§1.6): never an object.
        return Ok(Some(Json::String(String::from_utf8_lossy(bytes).into_owned())));
    }
    match serde_json::from_slice::<Json>(bytes) {
        Ok(v @ (Json::Object(_) | Json::Array(_))) => Ok(Some(v)),
        Ok(_) => Err(ApiError::BadInput("invalid json".into())),
        Err(e) => Err(ApiError::Syntax(format!("SyntaxError: {e}"))),
    }
}

/// The request's `If-Match` (§2.6): `None` for absent or `*`.
fn if_match(r: &TenantRequest) -> Result<Option<Vec<u8>>> {
    let Some(h) = r.headers.get(header::IF_MATCH) else { return Ok(None) };
    item::parse_if_match(h.to_str().map_err(|_| ApiError::BadInput(msg::IF_MATCH_INVALID.into()))?)
}

/// Characters JavaScript's `encodeURI` escapes.
const ENCODE_URI: &AsciiSet =
    &CONTROLS.add(b' ').add(b'"').add(b'%').add(b'<').add(b'>').add(b'[').add(b'\\').add(b']').add(b'^').add(b'`').add(b'{').add(b'|').add(b'}');

fn location(r: &TenantRequest, id: &Value) -> Option<HeaderValue> {
    let host = r.headers.get(header::HOST).and_then(|h| h.to_str().ok())?;
    let id = match id {
        Value::Int(i) => i.to_string(),
        Value::Text(s) => s.clone(),
        _ => return None,
    };
    let path = r.raw_path.trim_end_matches('/');
    HeaderValue::from_str(&format!("{}://{host}{path}/{}", r.scheme, utf8_percent_encode(&id, ENCODE_URI))).ok()
}

/// Splits a raw `$orderby` at its top-level commas into `[expression, ascending]` pairs.
fn ordering_terms(raw: &str) -> Vec<Json> {
    let mut terms = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0usize);
    let bytes = raw.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\'' => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth -= 1,
            b',' if !quoted && depth == 0 => {
                terms.push(&raw[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&raw[start..]);
    terms
        .into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            let lower = t.to_ascii_lowercase();
            if let Some(e) = lower.strip_suffix(" desc").map(|_| &t[..t.len() - 5]) {
                serde_json::json!([e.trim(), false])
            } else if let Some(e) = lower.strip_suffix(" asc").map(|_| &t[..t.len() - 4]) {
                serde_json::json!([e.trim(), true])
            } else {
                serde_json::json!([t, true])
            }
        })
        .collect()
}

/// Runs the operation's table script (§6.3, §6.4): the request is validated as without a script, the
/// script gets the item, query or id, and `request.execute()` performs the operation through the
/// host, with the table service.
#[expect(clippy::too_many_arguments, reason = "one call site; the parts of a validated request")]
async fn scripted(
    state: &AppState,
    r: &TenantRequest,
    table: Arc<Table>,
    op: TableOp,
    id: Option<&str>,
    p: ReadParams,
    caller: &auth::Caller,
    script: &ScriptRecord,
) -> Result<Response> {
    use crate::scripting::{Host, Purpose, TableCall};
    let mut parameters = Map::new();
    for (k, v) in &p.parameters {
        parameters.insert(k.clone(), Json::String(v.clone()));
    }
    let svc = TableService::new(&r.tenant, &table);
    let mut input = serde_json::json!({
        "operation": op.script_operation(),
        "table": table.record.name,
        "user": caller.script_user(&r.tenant.record.master_key),
        "parameters": parameters,
        "systemProperties": item::system_names(svc.system(p.system)),
        "includeDeleted": p.include_deleted,
        "undelete": op == TableOp::Undelete,
        "versioned": svc.versioned(),
        "softDelete": table.record.soft_delete,
    });
    let mut call = TableCall { table: table.clone(), url_id: None, if_match: None, undelete: op == TableOp::Undelete };
    let tag_b64 = |tag: &Option<Vec<u8>>| tag.as_ref().filter(|t| t.len() == 8).map(|t| Json::String(auth::version_b64(t)));
    match op {
        TableOp::Read => {
            let id_value = id.map(|id| item::url_id(&table, id)).transpose()?;
            let (top, skip, count) = p.paging(id.is_some())?;
            let raw = |name: &str| r.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_string()).filter(|v| !v.is_empty());
            input["query"] = serde_json::json!({
                "filter": raw("$filter"),
                "ordering": raw("$orderby").map(|o| ordering_terms(&o)).unwrap_or_default(),
                "selections": p.select.clone().unwrap_or_default(),
                "skip": skip,
                "take": top,
                "includeTotalCount": count,
                "id": id_value.clone().map(wire::value_to_json),
            });
            call.url_id = id_value;
        }
        TableOp::Insert => {
            let body = item::convert(json_body(r)?, &table, None, true)?;
            input["item"] = Json::Object(body.script.unwrap_or_default());
        }
        TableOp::Update | TableOp::Undelete => {
            let id = id.ok_or_else(|| ApiError::BadInput(msg::ID_REQUIRED.into()))?;
            let id_value = item::url_id(&table, id)?;
            let mut obj = if op == TableOp::Update {
                item::convert(json_body(r)?, &table, Some(&id_value), true)?.script.unwrap_or_default()
            } else {
                if !table.record.soft_delete {
                    return Err(ApiError::BadInput(msg::UNDELETE_UNSUPPORTED.into()));
                }
                Map::new()
            };
            call.if_match = if svc.versioned() { if_match(r)? } else { None };
            obj.insert("id".into(), wire::value_to_json(id_value.clone()));
            if let Some(v) = tag_b64(&call.if_match) {
                obj.insert("__version".into(), v);
            }
            input["item"] = Json::Object(obj);
            call.url_id = Some(id_value);
        }
        TableOp::Delete => {
            let id_value = item::url_id(&table, id.unwrap_or_default())?;
            call.if_match = if svc.versioned() { if_match(r)? } else { None };
            input["id"] = wire::value_to_json(id_value.clone());
            input["version"] = tag_b64(&call.if_match).unwrap_or(Json::Null);
            call.url_id = Some(id_value);
        }
    }
    let invocation = roost_scripts::Invocation { source: script.source(), script: script.body.clone(), entry: roost_scripts::Entry::Table, input };
    let host = Host::new(state.clone(), r.tenant.clone(), Purpose::Table(call));
    let resp = crate::scripting::respond(state, &r.tenant, invocation, host).await?;
    // The script wrote this answer: a JSON item answers as a plain request would, with its version
    // as ETag, and Location after an insert.
    let (etag, created) = match &resp.body {
        roost_scripts::ScriptBody::Json(j) => {
            let etag = wire::etag_of_item(j).and_then(|e| HeaderValue::from_str(&e).ok());
            let id = match j.get("id") {
                Some(Json::String(s)) => Some(Value::Text(s.clone())),
                Some(Json::Number(n)) => n.as_i64().map(Value::Int),
                _ => None,
            };
            (etag, id.filter(|_| op == TableOp::Insert && resp.status == 201).and_then(|id| location(r, &id)))
        }
        _ => (None, None),
    };
    let mut out = crate::scripting::into_http(resp);
    for (name, value) in [(header::ETAG, etag), (header::LOCATION, created)] {
        if let Some(v) = value.filter(|_| !out.headers().contains_key(&name)) {
            out.headers_mut().insert(name, v);
        }
    }
    Ok(out)
}
