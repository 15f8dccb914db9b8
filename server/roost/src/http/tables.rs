//! `/tables/{table}[/{id}]` (protocol.md §2): query, read, insert, update, delete, undelete.
//!
//! The order of checks follows §1.1: table existence (404), query parsing (400), authentication (401),
//! permission (401), query validation (400), then the operation. Body validation follows §2.2's steps.

use super::TenantRequest;
use crate::auth;
use crate::error::{msg, ApiError, Result};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use roost_api::{IdKind, Permission};
use roost_odata::sql::Value;
use roost_odata::{Expr, OrderBy};
use roost_storage::items::{Item, Query, Row, SystemProps, Written};
use roost_storage::scripts::{ScriptKind, ScriptRecord};
use roost_storage::{StorageError, Table};
use std::sync::Arc;
use serde_json::{Map, Value as Json};

/// The operation a request maps to (§1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Insert,
    Undelete,
    Update,
    Delete,
}

/// Query-string parameters of a table request (§2.11).
#[derive(Debug, Default)]
struct TableParams {
    filter: Option<Expr>,
    orderby: Vec<OrderBy>,
    has_orderby: bool,
    select: Option<Vec<String>>,
    top: Option<String>,
    skip: Option<String>,
    inlinecount: Option<String>,
    system: SystemProps,
    include_deleted: bool,
    no_script: bool,
    /// Custom parameters (§2.11), in order, for scripts (`request.parameters`).
    parameters: Vec<(String, String)>,
}

fn invalid_query(e: impl std::fmt::Display) -> ApiError {
    ApiError::BadInput(format!("Invalid query specified. Error: {e}"))
}

/// Parses `__systemproperties` (§2.7).
fn parse_system_properties(v: &str) -> Result<SystemProps> {
    let entries: Vec<&str> = v.split(',').map(|e| e.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))).filter(|e| !e.is_empty()).collect();
    if entries == ["*"] {
        return Ok(SystemProps::ALL);
    }
    let mut p = SystemProps::default();
    for e in entries {
        let lower = e.to_ascii_lowercase();
        let name = lower.strip_prefix("__").unwrap_or(&lower);
        match name {
            "createdat" => p.created_at = true,
            "updatedat" => p.updated_at = true,
            "version" => p.version = true,
            "deleted" => p.deleted = true,
            _ => return Err(ApiError::BadInput(format!("The value '{e}' is not a supported system property."))),
        }
    }
    Ok(p)
}

impl TableParams {
    fn parse(query: &[(String, String)], is_get: bool) -> Result<Self> {
        let mut p = TableParams::default();
        for (k, v) in query {
            match k.as_str() {
                "$filter" => {
                    if is_get && !v.trim().is_empty() {
                        p.filter = Some(roost_odata::parse_filter(v).map_err(invalid_query)?);
                    }
                }
                "$orderby" => {
                    if is_get && !v.trim().is_empty() {
                        p.orderby = roost_odata::parse_orderby(v).map_err(invalid_query)?;
                        p.has_orderby = true;
                    }
                }
                "$select" => {
                    if is_get && !v.trim().is_empty() {
                        p.select = Some(roost_odata::parse_select(v).map_err(invalid_query)?);
                    }
                }
                "$top" => p.top = Some(v.clone()),
                "$skip" => p.skip = Some(v.clone()),
                "$inlinecount" => p.inlinecount = Some(v.clone()),
                _ => {
                    let lower = k.to_ascii_lowercase();
                    if lower == "__systemproperties" {
                        p.system = parse_system_properties(v)?;
                    } else if lower == "__includedeleted" {
                        p.include_deleted = v.eq_ignore_ascii_case("true");
                    } else if lower == "noscript" {
                        p.no_script = !v.is_empty();
                        p.parameters.push((k.clone(), v.clone()));
                    } else if k.starts_with('$') || k.starts_with("__") {
                        return Err(ApiError::BadInput(format!(
                            "Invalid query parameter name '{k}'. Custom query parameter names must not start with $ or __."
                        )));
                    } else {
                        p.parameters.push((k.clone(), v.clone()));
                    }
                }
            }
        }
        Ok(p)
    }
}

fn parse_count(v: &str, name: &str) -> Result<i64> {
    let t = v.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::BadInput(format!("The value specified for '{name}' must be a number.")));
    }
    // Out-of-range values are still numbers: saturate, the limits below decide.
    Ok(t.parse::<i64>().unwrap_or(if t.starts_with('-') { i64::MIN } else { i64::MAX }))
}

/// `$top` (default 50, at most 1000), `$skip` and `$inlinecount` of a read, validated (§2.11); a read
/// by id takes none of them. `None` where absent (a read by id has no `$top`).
fn paging(p: &TableParams, by_id: bool) -> Result<(Option<u64>, Option<u64>, bool)> {
    if by_id {
        if p.has_orderby || p.inlinecount.is_some() || p.skip.is_some() || p.top.is_some() {
            return Err(ApiError::BadInput(msg::ID_QUERY_OPTIONS.into()));
        }
        return Ok((None, None, false));
    }
    let top = match &p.top {
        None => 50,
        Some(v) => {
            let n = parse_count(v, "$top")?;
            if n > 1000 {
                return Err(ApiError::BadInput(msg::TOP_MAX.into()));
            }
            if n < 0 {
                return Err(ApiError::BadInput(msg::TOP_NEGATIVE.into()));
            }
            n as u64
        }
    };
    let skip = p.skip.as_deref().map(|v| parse_count(v, "$skip")).transpose()?.map(|s| s.max(0) as u64);
    let count = match p.inlinecount.as_deref() {
        None | Some("none") => false,
        Some("allpages") => true,
        Some(_) => return Err(ApiError::BadInput(msg::INLINECOUNT.into())),
    };
    Ok((Some(top), skip, count))
}

/// Entry point for `/tables/...`.
pub async fn dispatch(state: &crate::AppState, r: TenantRequest) -> Result<Response> {
    if r.segments.len() < 2 || r.segments.len() > 3 {
        return Err(ApiError::not_found());
    }
    let name = &r.segments[1];
    let table = r.tenant.table(name).ok_or_else(|| ApiError::NotFound(format!("Table '{name}' does not exist.")))?;
    let id = r.segments.get(2).cloned();
    let op = match (&r.method, id.is_some()) {
        (&Method::GET, _) => Op::Read,
        (&Method::POST, false) => Op::Insert,
        (&Method::POST, true) => Op::Undelete,
        (&Method::PATCH, _) => Op::Update,
        (&Method::DELETE, true) => Op::Delete,
        (_, false) => return Err(ApiError::MethodNotAllowed("GET, POST")),
        (_, true) => return Err(ApiError::MethodNotAllowed("GET, POST, PATCH, DELETE")),
    };
    let params = TableParams::parse(&r.query, r.method == Method::GET)?;
    let caller = super::authenticate(&r)?;
    let perms = &table.record.permissions;
    let required: Permission = match op {
        Op::Read => perms.read,
        Op::Insert | Op::Undelete => perms.insert,
        Op::Update => perms.update,
        Op::Delete => perms.delete,
    };
    if !caller.allows(required, params.no_script) {
        return Err(ApiError::unauthorized());
    }
    // §6.3: the operation's script runs unless the master key asked for `noScript`.
    if !params.no_script && r.tenant.has_scripts() {
        let op_name = match op {
            Op::Read => "read",
            Op::Insert => "insert",
            Op::Update | Op::Undelete => "update",
            Op::Delete => "delete",
        };
        if let Some(script) = r.tenant.script(ScriptKind::Table, &format!("{}.{op_name}", table.record.name)) {
            return scripted(state, &r, table, op, id.as_deref(), &params, &caller, &script).await;
        }
    }
    match op {
        Op::Read => read(&r, &table, id.as_deref(), &params).await,
        Op::Insert => insert(&r, &table, &params).await,
        Op::Update => update(&r, &table, id.as_deref(), &params).await,
        Op::Delete => delete(&r, &table, id.as_deref().unwrap_or_default()).await,
        Op::Undelete => undelete(&r, &table, id.as_deref().unwrap_or_default(), &params).await,
    }
}

/// True if `id` passes the string-id rule of §2.2 step 4.
pub fn is_valid_string_id(id: &str) -> bool {
    id != "."
        && id != ".."
        && !id.chars().any(|c| (c as u32) <= 0x1F || (0x7F..=0x9F).contains(&(c as u32)) || matches!(c, '"' | '+' | '?' | '\\' | '/' | '`'))
}

/// Parses a URL id for the table's id kind.
pub(crate) fn url_id_of(table: &Table, id: &str) -> Result<Value> {
    url_id(table, id)
}

fn url_id(table: &Table, id: &str) -> Result<Value> {
    match table.record.id_kind {
        IdKind::Integer => id.trim().parse::<i64>().map(Value::Int).map_err(|_| ApiError::BadInput(msg::ID_NUMBER.into())),
        IdKind::String => {
            if !is_valid_string_id(id) {
                return Err(ApiError::BadInput(msg::ID_INVALID.into()));
            }
            if id.chars().count() > 255 {
                return Err(ApiError::BadInput(msg::ID_TOO_LONG.into()));
            }
            Ok(Value::Text(id.to_string()))
        }
    }
}

/// The JSON form of a stored value (§2.2: dates as `…sssZ`, binary as base64, numbers as doubles).
pub fn value_to_json(v: Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(b),
        Value::Int(i) => Json::from(i),
        Value::Number(n) => number_to_json(n),
        Value::Text(s) => Json::String(s),
        Value::Date(d) => Json::String(roost_odata::format_datetime(&d)),
        Value::Bytes(b) => Json::String(auth::version_b64(&b)),
    }
}

/// Writes integral doubles without a fraction, as JavaScript does.
fn number_to_json(n: f64) -> Json {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Json::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map(Json::Number).unwrap_or(Json::Null)
    }
}

/// A stored row as a JSON object.
pub fn row_to_json(row: Row) -> Json {
    Json::Object(row.into_iter().map(|(k, v)| (k, value_to_json(v))).collect())
}

/// `ETag` value for a base64 version: its JSON string form.
pub fn etag_of(version_b64: &str) -> String {
    Json::String(version_b64.to_string()).to_string()
}

fn json_response(status: StatusCode, body: &Json) -> Response {
    let mut r = (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.to_string()).into_response();
    if let Some(v) = body.get("__version").and_then(|v| v.as_str()) {
        if let Ok(h) = HeaderValue::from_str(&etag_of(v)) {
            r.headers_mut().insert(header::ETAG, h);
        }
    }
    r
}

async fn read(r: &TenantRequest, table: &Table, id: Option<&str>, p: &TableParams) -> Result<Response> {
    let id_value = id.map(|id| url_id(table, id)).transpose()?;
    let (top, skip, count) = paging(p, id.is_some())?;
    let (top, skip) = (Some(top.unwrap_or(1)), skip.unwrap_or(0));
    let system = if table.record.id_kind == IdKind::String { p.system } else { SystemProps::default() };
    let q = Query {
        filter: p.filter.as_ref(),
        orderby: &p.orderby,
        select: p.select.as_deref(),
        system,
        include_deleted: p.include_deleted,
        top,
        skip,
        id: id_value,
        count,
    };
    let (rows, total) = match r.tenant.query(table, &q).await {
        Ok(x) => x,
        // §2.3: an unknown column gives [] under dynamic schema, 400 otherwise.
        Err(StorageError::UnknownColumn(_)) if r.tenant.record.settings.dynamic_schema => {
            return Ok(json_response(StatusCode::OK, &Json::Array(vec![])));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(id) = id {
        let row = rows.into_iter().next().ok_or_else(|| ApiError::item_not_found(id))?;
        let body = row_to_json(row);
        if let (Some(v), Some(inm)) = (body.get("__version").and_then(|v| v.as_str()), r.headers.get(header::IF_NONE_MATCH).and_then(|h| h.to_str().ok())) {
            let inm = inm.trim();
            if inm == "*" || inm == etag_of(v) {
                let mut resp = StatusCode::NOT_MODIFIED.into_response();
                if let Ok(h) = HeaderValue::from_str(&etag_of(v)) {
                    resp.headers_mut().insert(header::ETAG, h);
                }
                return Ok(resp);
            }
        }
        return Ok(json_response(StatusCode::OK, &body));
    }
    let items = Json::Array(rows.into_iter().map(row_to_json).collect());
    let body = match total {
        Some(n) => serde_json::json!({ "results": items, "count": n }),
        None => items,
    };
    Ok(json_response(StatusCode::OK, &body))
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

/// Converts a string member that looks like a date into a date (§2.2 step 5).
fn convert_value(v: &Json) -> Option<Value> {
    Some(match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => Value::Number(n.as_f64()?),
        Json::String(s) => match roost_odata::parse_strict_datetime(s).or_else(|| roost_odata::parse_msjson_datetime(s)) {
            Some(d) => Value::Date(d),
            None => Value::Text(s.clone()),
        },
        Json::Array(_) | Json::Object(_) => return None,
    })
}

fn is_truthy(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Json::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// Validates and converts an insert or update body (§2.2 steps 2 to 9, §2.4). Returns the item for
/// storage and the echo object (the body after conversions) without `id`.
pub(crate) fn convert_item(body: Option<Json>, table: &Table, url_id: Option<&Value>) -> Result<(Item, Map<String, Json>)> {
    let Some(Json::Object(obj)) = body else { return Err(ApiError::BadInput(msg::SINGLE_OBJECT.into())) };
    if obj.keys().any(|k| k != "id" && k.eq_ignore_ascii_case("id")) {
        return Err(ApiError::BadInput(msg::ID_CASING.into()));
    }
    let string_id = table.record.id_kind == IdKind::String;
    let body_id = obj.get("id").filter(|v| !v.is_null());
    if string_id {
        if let Some(id) = body_id {
            let s = id.as_str().ok_or_else(|| ApiError::BadInput(msg::ID_STRING.into()))?;
            if !s.is_empty() && !is_valid_string_id(s) {
                return Err(ApiError::BadInput(msg::ID_INVALID.into()));
            }
            if s.chars().count() > 255 {
                return Err(ApiError::BadInput(msg::ID_TOO_LONG.into()));
            }
        }
    }
    if let (Some(url), Some(body)) = (url_id, body_id) {
        // Loose comparison: "5" equals 5.
        let same = match (url, body) {
            (Value::Text(a), Json::String(b)) => a == b,
            (Value::Int(a), Json::Number(b)) => b.as_f64() == Some(*a as f64),
            (Value::Int(a), Json::String(b)) => b.trim().parse::<f64>().ok() == Some(*a as f64),
            _ => false,
        };
        if !same {
            return Err(ApiError::BadInput(msg::ID_MISMATCH.into()));
        }
    }
    if string_id {
        if let Some(k) = obj.keys().find(|k| k.starts_with("__")) {
            return Err(ApiError::BadInput(format!(
                "The property '{k}' can not be set. Properties that begin with a '__' are considered system properties."
            )));
        }
    } else if url_id.is_none() && obj.get("id").is_some_and(is_truthy) {
        return Err(ApiError::BadInput(msg::ID_NOT_ALLOWED.into()));
    }
    let mut item = Item::new();
    let mut echo = Map::new();
    for (k, v) in obj {
        if k == "id" {
            if string_id && url_id.is_none() {
                if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
                    item.push(("id".into(), Value::Text(s.to_string())));
                }
            }
            continue;
        }
        if !roost_odata::is_valid_identifier(&k) {
            return Err(ApiError::BadInput(roost_odata::invalid_identifier_message(&k)));
        }
        let value = convert_value(&v).ok_or_else(|| ApiError::BadInput(format!("The value of property '{k}' is of type 'object' which is not a supported type.")))?;
        echo.insert(k.clone(), match &value {
            Value::Date(d) => Json::String(roost_odata::format_datetime(d)),
            _ => v,
        });
        item.push((k, value));
    }
    Ok((item, echo))
}

/// Adds the requested system properties from a write to the echo object.
pub(crate) fn add_system(echo: &mut Map<String, Json>, w: &Written, system: SystemProps, extra: Option<&Row>) {
    let mut put = |name: &str, v: Option<Value>| {
        if let Some(v) = v {
            echo.insert(name.to_string(), value_to_json(v));
        }
    };
    let from_row = |name: &str| extra.and_then(|r| r.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()));
    if system.created_at {
        put("__createdAt", w.created_at.map(Value::Date).or_else(|| from_row("__createdAt")));
    }
    if system.updated_at {
        put("__updatedAt", w.updated_at.map(Value::Date).or_else(|| from_row("__updatedAt")));
    }
    if system.version {
        put("__version", w.version.clone().map(Value::Bytes));
    }
    if system.deleted {
        put("__deleted", from_row("__deleted").or(Some(Value::Bool(false))));
    }
}

/// Characters JavaScript's `encodeURI` escapes.
const ENCODE_URI: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%').add(b'<').add(b'>').add(b'[').add(b'\\').add(b']').add(b'^').add(b'`').add(b'{').add(b'|').add(b'}');

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

fn table_system(table: &Table, p: &TableParams) -> SystemProps {
    system_for(table, p.system)
}

/// The system properties a table can give, of those asked for.
pub(crate) fn system_for(table: &Table, asked: SystemProps) -> SystemProps {
    let mut s = if table.record.id_kind == IdKind::String { asked } else { SystemProps::default() };
    s.deleted &= table.record.soft_delete;
    s
}

async fn insert(r: &TenantRequest, table: &Table, p: &TableParams) -> Result<Response> {
    let (item, mut echo) = convert_item(json_body(r)?, table, None)?;
    let written = r.tenant.insert(table, item).await?;
    // The echo keeps the client's member order; `id` goes where the client put it, or last.
    echo.insert("id".into(), value_to_json(written.id.clone()));
    add_system(&mut echo, &written, table_system(table, p), None);
    let mut resp = json_response(StatusCode::CREATED, &Json::Object(echo));
    if let Some(loc) = location(r, &written.id) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(resp)
}

/// Parses `If-Match` (§2.6): `None` for absent or `*`.
fn if_match(r: &TenantRequest) -> Result<Option<Vec<u8>>> {
    let Some(h) = r.headers.get(header::IF_MATCH) else { return Ok(None) };
    let h = h.to_str().map_err(|_| ApiError::BadInput(msg::IF_MATCH_INVALID.into()))?.trim();
    if h == "*" {
        return Ok(None);
    }
    let tags: Vec<&str> = h.split(',').map(str::trim).collect();
    let mut parsed = Vec::new();
    for t in tags {
        match serde_json::from_str::<Json>(t) {
            Ok(Json::String(s)) => parsed.push(s),
            _ => return Err(ApiError::BadInput(msg::IF_MATCH_INVALID.into())),
        }
    }
    if parsed.len() > 1 {
        return Err(ApiError::BadInput(msg::IF_MATCH_MULTIPLE.into()));
    }
    let tag = parsed.pop().unwrap_or_default();
    // Not 8 bytes of base64: a value that can never match, so the write conflicts (not a 400).
    Ok(Some(base64::engine::general_purpose::STANDARD.decode(tag).ok().filter(|b| b.len() == 8).unwrap_or_else(|| vec![0xFF; 9])))
}

async fn update(r: &TenantRequest, table: &Table, id: Option<&str>, p: &TableParams) -> Result<Response> {
    let id = id.ok_or_else(|| ApiError::BadInput(msg::ID_REQUIRED.into()))?;
    let body = json_body(r)?;
    let id_value = url_id(table, id)?;
    let (item, mut echo) = convert_item(body, table, Some(&id_value))?;
    let tag = if table.record.id_kind == IdKind::String { if_match(r)? } else { None };
    let written = r.tenant.update(table, &id_value, item, tag.as_deref(), false).await.map_err(|e| not_found_as_item(e.into(), id))?;
    let mut system = table_system(table, p);
    system.version |= tag.is_some() && table.record.id_kind == IdKind::String;
    let extra = if system.created_at || system.deleted { r.tenant.read_full(table, &id_value).await? } else { None };
    echo.insert("id".into(), value_to_json(id_value));
    add_system(&mut echo, &written, system, extra.as_ref());
    Ok(json_response(StatusCode::OK, &Json::Object(echo)))
}

async fn delete(r: &TenantRequest, table: &Table, id: &str) -> Result<Response> {
    let id_value = url_id(table, id)?;
    let tag = if table.record.id_kind == IdKind::String { if_match(r)? } else { None };
    r.tenant.delete(table, &id_value, tag.as_deref()).await.map_err(|e| not_found_as_item(e.into(), id))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn undelete(r: &TenantRequest, table: &Table, id: &str, p: &TableParams) -> Result<Response> {
    if !table.record.soft_delete {
        return Err(ApiError::BadInput(msg::UNDELETE_UNSUPPORTED.into()));
    }
    if matches!(json_body(r), Ok(Some(Json::Object(_)))) {
        return Err(ApiError::BadInput(msg::UNDELETE_CONTENT.into()));
    }
    let id_value = url_id(table, id)?;
    let tag = if_match(r)?;
    let written = r.tenant.update(table, &id_value, Item::new(), tag.as_deref(), true).await.map_err(|e| not_found_as_item(e.into(), id))?;
    let mut echo = Map::new();
    echo.insert("id".into(), value_to_json(id_value.clone()));
    echo.insert("__deleted".into(), Json::Bool(false));
    let mut system = table_system(table, p);
    system.version |= tag.is_some();
    let extra = if system.created_at { r.tenant.read_full(table, &id_value).await? } else { None };
    add_system(&mut echo, &written, system, extra.as_ref());
    Ok(json_response(StatusCode::OK, &Json::Object(echo)))
}

/// Storage reports a missing row as a bare 404; the protocol names the item.
fn not_found_as_item(e: ApiError, id: &str) -> ApiError {
    match e {
        ApiError::NotFound(m) if m == msg::NOT_FOUND => ApiError::item_not_found(id),
        other => other,
    }
}

/// A row with dates as `{"$date": …}`, so scripts get `Date` objects.
pub(crate) fn row_values_for_script(row: Row) -> Json {
    Json::Object(
        row.into_iter()
            .map(|(k, v)| {
                let j = match v {
                    Value::Date(d) => serde_json::json!({ "$date": roost_odata::format_datetime(&d) }),
                    other => value_to_json(other),
                };
                (k, j)
            })
            .collect(),
    )
}

/// A request body as a script sees it: strings that convert to dates are `Date` objects (§6.3).
fn item_for_script(obj: Map<String, Json>) -> Json {
    Json::Object(
        obj.into_iter()
            .map(|(k, v)| {
                let v = match &v {
                    Json::String(s) => match roost_odata::parse_strict_datetime(s).or_else(|| roost_odata::parse_msjson_datetime(s)) {
                        Some(d) => serde_json::json!({ "$date": roost_odata::format_datetime(&d) }),
                        None => v,
                    },
                    _ => v,
                };
                (k, v)
            })
            .collect(),
    )
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

fn system_names(s: SystemProps) -> Vec<&'static str> {
    let mut v = Vec::new();
    if s.created_at {
        v.push("createdAt");
    }
    if s.updated_at {
        v.push("updatedAt");
    }
    if s.version {
        v.push("version");
    }
    if s.deleted {
        v.push("deleted");
    }
    v
}

/// Runs the operation's table script (§6.3, §6.4): the request is validated as without a script, the
/// script gets the item, query or id, and `request.execute()` performs the operation through the host.
#[expect(clippy::too_many_arguments, reason = "one call site; the parts of a validated request")]
async fn scripted(
    state: &crate::AppState,
    r: &TenantRequest,
    table: Arc<Table>,
    op: Op,
    id: Option<&str>,
    p: &TableParams,
    caller: &auth::Caller,
    script: &ScriptRecord,
) -> Result<Response> {
    use crate::scripting::{Host, TableCall};
    let operation = match op {
        Op::Read => "read",
        Op::Insert => "insert",
        Op::Update | Op::Undelete => "update",
        Op::Delete => "del",
    };
    let mut parameters = Map::new();
    for (k, v) in &p.parameters {
        parameters.insert(k.clone(), Json::String(v.clone()));
    }
    let mut user = serde_json::json!({ "level": caller.level() });
    if let Some(u) = &caller.user {
        user["userId"] = Json::String(u.user_id.clone());
    }
    let string_id = table.record.id_kind == IdKind::String;
    let mut input = serde_json::json!({
        "operation": operation,
        "table": table.record.name,
        "user": user,
        "parameters": parameters,
        "systemProperties": system_names(table_system(&table, p)),
        "includeDeleted": p.include_deleted,
        "undelete": op == Op::Undelete,
        "versioned": string_id,
        "softDelete": table.record.soft_delete,
    });
    let mut call = TableCall { table: table.clone(), url_id: None, if_match: None, undelete: op == Op::Undelete };
    let tag_b64 = |tag: &Option<Vec<u8>>| tag.as_ref().filter(|t| t.len() == 8).map(|t| Json::String(auth::version_b64(t)));
    match op {
        Op::Read => {
            let id_value = id.map(|id| url_id(&table, id)).transpose()?;
            let (top, skip, count) = paging(p, id.is_some())?;
            let raw = |name: &str| r.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_string()).filter(|v| !v.is_empty());
            input["query"] = serde_json::json!({
                "filter": raw("$filter"),
                "ordering": raw("$orderby").map(|o| ordering_terms(&o)).unwrap_or_default(),
                "selections": p.select.clone().unwrap_or_default(),
                "skip": skip,
                "take": top,
                "includeTotalCount": count,
                "id": id_value.clone().map(value_to_json),
            });
            call.url_id = id_value;
        }
        Op::Insert => {
            let body = json_body(r)?;
            convert_item(body.clone(), &table, None)?;
            let Some(Json::Object(obj)) = body else { return Err(ApiError::BadInput(msg::SINGLE_OBJECT.into())) };
            input["item"] = item_for_script(obj);
        }
        Op::Update | Op::Undelete => {
            let id = id.ok_or_else(|| ApiError::BadInput(msg::ID_REQUIRED.into()))?;
            let id_value = url_id(&table, id)?;
            let mut obj = if op == Op::Update {
                let body = json_body(r)?;
                convert_item(body.clone(), &table, Some(&id_value))?;
                match body {
                    Some(Json::Object(o)) => o,
                    _ => return Err(ApiError::BadInput(msg::SINGLE_OBJECT.into())),
                }
            } else {
                if !table.record.soft_delete {
                    return Err(ApiError::BadInput(msg::UNDELETE_UNSUPPORTED.into()));
                }
                Map::new()
            };
            call.if_match = if string_id { if_match(r)? } else { None };
            obj.insert("id".into(), value_to_json(id_value.clone()));
            if let Some(v) = tag_b64(&call.if_match) {
                obj.insert("__version".into(), v);
            }
            input["item"] = item_for_script(obj);
            call.url_id = Some(id_value);
        }
        Op::Delete => {
            let id = id.unwrap_or_default();
            let id_value = url_id(&table, id)?;
            call.if_match = if string_id { if_match(r)? } else { None };
            input["id"] = value_to_json(id_value.clone());
            input["version"] = tag_b64(&call.if_match).unwrap_or(Json::Null);
            call.url_id = Some(id_value);
        }
    }
    let invocation = roost_scripts::Invocation { source: script.source(), script: script.body.clone(), entry: roost_scripts::Entry::Table, input };
    let host = Host::new(state.clone(), r.tenant.clone(), Some(call));
    let resp = crate::scripting::respond(state, &r.tenant, invocation, host).await?;
    // A JSON item answers as a plain request would: its version as ETag, and Location after an insert.
    let (etag, created) = match &resp.body {
        roost_scripts::ScriptBody::Json(j) => {
            let etag = j.get("__version").and_then(Json::as_str).and_then(|v| HeaderValue::from_str(&etag_of(v)).ok());
            let id = match j.get("id") {
                Some(Json::String(s)) => Some(Value::Text(s.clone())),
                Some(Json::Number(n)) => n.as_i64().map(Value::Int),
                _ => None,
            };
            (etag, id.filter(|_| op == Op::Insert && resp.status == 201).and_then(|id| location(r, &id)))
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
