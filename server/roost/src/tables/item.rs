//! Items and ids as the protocol validates them (§2.2 steps 2 to 9, §2.4, §2.6, §2.7): the body of an
//! insert or update converted once into the values storage keeps, ids from URLs and from scripts,
//! `If-Match` tags and the `__systemproperties` list.

use crate::error::{msg, ApiError, Result};
use roost_api::IdKind;
use roost_odata::sql::Value;
use roost_storage::items::{Item, SystemProps};
use roost_storage::Table;
use serde_json::{json, Map, Value as Json};

/// An insert or update body, validated and converted (dates detected once, here).
#[derive(Debug, Default)]
pub struct Converted {
    /// The members storage writes (a string-id insert's client id included).
    pub item: Item,
    /// The body after conversions, in the client's member order, without `id`: the echo of a write.
    pub echo: Map<String, Json>,
    /// The body as a script sees it (dates as `{"$date"}`), when asked for.
    pub script: Option<Map<String, Json>>,
}

/// True if `id` passes the string-id rule of §2.2 step 4.
pub fn is_valid_string_id(id: &str) -> bool {
    id != "." && id != ".." && !id.chars().any(|c| (c as u32) <= 0x1F || (0x7F..=0x9F).contains(&(c as u32)) || matches!(c, '"' | '+' | '?' | '\\' | '/' | '`'))
}

/// An id from a URL, for the table's id kind.
pub fn url_id(table: &Table, id: &str) -> Result<Value> {
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

/// An id a script passed (`tables.*`), for the table's id kind.
pub fn script_id(table: &Table, id: &Json) -> Result<Value> {
    let bad = || ApiError::BadInput(format!("Operation on table '{}' failed. The id argument is invalid.", table.record.name));
    match (table.record.id_kind, id) {
        (IdKind::Integer, Json::Number(n)) => n.as_f64().filter(|f| f.fract() == 0.0).map(|f| Value::Int(f as i64)).ok_or_else(bad),
        (IdKind::Integer, Json::String(s)) => s.trim().parse::<i64>().map(Value::Int).map_err(|_| bad()),
        (IdKind::String, Json::String(s)) => url_id(table, s),
        (IdKind::String, Json::Number(n)) => Ok(Value::Text(n.to_string())),
        _ => Err(bad()),
    }
}

/// An id as messages show it.
pub fn shown_id(id: &Value) -> String {
    match id {
        Value::Text(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        _ => String::new(),
    }
}

/// Converts a member's value: a string that looks like a date becomes a date (§2.2 step 5).
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

/// Validates and converts an insert (`url_id` `None`) or update body (§2.2 steps 2 to 9, §2.4).
/// `for_script` also keeps the body as the operation's script gets it.
pub fn convert(body: Option<Json>, table: &Table, url_id: Option<&Value>, for_script: bool) -> Result<Converted> {
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
            return Err(ApiError::BadInput(format!("The property '{k}' can not be set. Properties that begin with a '__' are considered system properties.")));
        }
    } else if url_id.is_none() && obj.get("id").is_some_and(is_truthy) {
        return Err(ApiError::BadInput(msg::ID_NOT_ALLOWED.into()));
    }
    let mut out = Converted { script: for_script.then(Map::new), ..Converted::default() };
    for (k, v) in obj {
        if k == "id" {
            if string_id && url_id.is_none() {
                if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
                    out.item.push(("id".into(), Value::Text(s.to_string())));
                }
            }
            if let Some(s) = &mut out.script {
                s.insert(k, v);
            }
            continue;
        }
        if !roost_odata::is_valid_identifier(&k) {
            return Err(ApiError::BadInput(roost_odata::invalid_identifier_message(&k)));
        }
        let value =
            convert_value(&v).ok_or_else(|| ApiError::BadInput(format!("The value of property '{k}' is of type 'object' which is not a supported type.")))?;
        let (echo, script) = match &value {
            Value::Date(d) => {
                let s = roost_odata::format_datetime(d);
                (Json::String(s.clone()), json!({ "$date": s }))
            }
            _ => (v.clone(), v),
        };
        if let Some(s) = &mut out.script {
            s.insert(k.clone(), script);
        }
        out.echo.insert(k.clone(), echo);
        out.item.push((k, value));
    }
    Ok(out)
}

/// Parses an `If-Match` header (§2.6): `None` for `*`.
pub fn parse_if_match(h: &str) -> Result<Option<Vec<u8>>> {
    let h = h.trim();
    if h == "*" {
        return Ok(None);
    }
    let mut parsed = Vec::new();
    for t in h.split(',').map(str::trim) {
        match serde_json::from_str::<Json>(t) {
            Ok(Json::String(s)) => parsed.push(s),
            _ => return Err(ApiError::BadInput(msg::IF_MATCH_INVALID.into())),
        }
    }
    if parsed.len() > 1 {
        return Err(ApiError::BadInput(msg::IF_MATCH_MULTIPLE.into()));
    }
    Ok(Some(super::wire::version_tag(&parsed.pop().unwrap_or_default())))
}

/// Parses `__systemproperties` (§2.7), strictly: an unknown name is a 400.
pub fn parse_system_properties(v: &str) -> Result<SystemProps> {
    let entries: Vec<&str> = v.split(',').map(|e| e.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))).filter(|e| !e.is_empty()).collect();
    if entries == ["*"] {
        return Ok(SystemProps::ALL);
    }
    let mut p = SystemProps::default();
    for e in entries {
        if !set_system_property(&mut p, e) {
            return Err(ApiError::BadInput(format!("The value '{e}' is not a supported system property.")));
        }
    }
    Ok(p)
}

/// The system properties a script's options name (already normalised by the prelude; unknown
/// names are ignored).
pub fn script_system_properties<'a>(names: impl IntoIterator<Item = &'a str>) -> SystemProps {
    let mut p = SystemProps::default();
    for n in names {
        if n.trim_start_matches("__") == "*" {
            p = SystemProps::ALL;
        } else {
            set_system_property(&mut p, n);
        }
    }
    p
}

fn set_system_property(p: &mut SystemProps, name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    match lower.strip_prefix("__").unwrap_or(&lower) {
        "createdat" => p.created_at = true,
        "updatedat" => p.updated_at = true,
        "version" => p.version = true,
        "deleted" => p.deleted = true,
        _ => return false,
    }
    true
}

/// The names of system properties as scripts' `request.systemProperties` lists them.
pub fn system_names(s: SystemProps) -> Vec<&'static str> {
    [(s.created_at, "createdAt"), (s.updated_at, "updatedAt"), (s.version, "version"), (s.deleted, "deleted")]
        .into_iter()
        .filter_map(|(on, n)| on.then_some(n))
        .collect()
}
