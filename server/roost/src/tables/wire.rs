//! The JSON forms of stored values: the wire form of §2.2 (dates as `…sssZ`, binary as base64,
//! numbers as doubles) and the script form (dates as `{"$date"}`, binary as `{"$bytes"}`, which the
//! prelude revives into `Date` and `Buffer`).

use crate::auth;
use base64::Engine as _;
use roost_odata::sql::Value;
use roost_storage::items::Row;
use serde_json::{json, Value as Json};

/// The wire form of a stored value.
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

/// A stored row in the wire form.
pub fn row_to_json(row: Row) -> Json {
    Json::Object(row.into_iter().map(|(k, v)| (k, value_to_json(v))).collect())
}

/// The `ETag` of a base64 version: its JSON string form (§2.6).
pub fn etag_of(version_b64: &str) -> String {
    Json::String(version_b64.to_string()).to_string()
}

/// The `ETag` of a JSON item: its `__version`'s, if it has one (a script's answer, a 412's item).
pub fn etag_of_item(item: &Json) -> Option<String> {
    item.get("__version").and_then(Json::as_str).map(etag_of)
}

/// A stored value as a script sees it. `binary_as_bytes` keeps binary columns as buffers (SQL
/// results); a table row's only binary column is `__version`, which scripts see as base64.
pub fn value_for_script(v: Value, binary_as_bytes: bool) -> Json {
    match v {
        Value::Date(d) => json!({ "$date": roost_odata::format_datetime(&d) }),
        Value::Bytes(b) if binary_as_bytes => json!({ "$bytes": base64::engine::general_purpose::STANDARD.encode(b) }),
        other => value_to_json(other),
    }
}

/// A stored row as a script sees it.
pub fn row_for_script(row: Row) -> Json {
    Json::Object(row.into_iter().map(|(k, v)| (k, value_for_script(v, false))).collect())
}

/// An item's `__version` (base64) as an `If-Match` tag: a value that is not 8 bytes of base64 can
/// never match (the write conflicts, §2.6).
pub fn version_tag(b64: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(b64).ok().filter(|b| b.len() == 8).unwrap_or_else(|| vec![0xFF; 9])
}
