//! `/crossdomain/bridge` and `/crossdomain/loginreceiver` (protocol.md §1.9): the HTML pages old
//! browsers (IE8/9) load in an iframe to reach the tenant. The caller's origin must pass the tenant's
//! CORS whitelist; it is embedded as a JSON string with `<` escaped, so it can never close the script.

use super::TenantRequest;
use crate::error::{ApiError, Result};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

const BRIDGE: &str = r##"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Cross-domain bridge</title></head><body><script>
(function () {
    var originRoot = __ORIGIN__;
    function onMessage(evt) {
        if (evt.origin !== originRoot || /^file:/i.test(evt.origin)) { return; }
        var message;
        try { message = JSON.parse(evt.data); } catch (e) { return; }
        var contents = message.contents || {};
        var method = String(contents.type || "GET").toUpperCase();
        var url = String(contents.url || "").split("#")[0];
        var xhr = new XMLHttpRequest();
        xhr.open(method === "GET" || method === "POST" ? method : "POST", url, true);
        if (method !== "GET" && method !== "POST") { xhr.setRequestHeader("X-HTTP-Method-Override", method); }
        var headers = contents.headers || {};
        for (var name in headers) {
            if (Object.prototype.hasOwnProperty.call(headers, name)) { xhr.setRequestHeader(name, headers[name]); }
        }
        xhr.onreadystatechange = function () {
            if (xhr.readyState === 4) {
                evt.source.postMessage(JSON.stringify({
                    messageId: message.messageId,
                    contents: { status: xhr.status, statusText: xhr.statusText, responseText: xhr.responseText }
                }), originRoot);
            }
        };
        xhr.send(contents.data);
    }
    if (window.addEventListener) { window.addEventListener("message", onMessage, false); } else { window.attachEvent("onmessage", onMessage); }
})();
</script></body></html>
"##;

const LOGIN_RECEIVER: &str = r##"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Login receiver</title></head><body><script>
(function () {
    var completionOrigin = __ORIGIN__;
    window.transferLoginResult = function (envelope) {
        window.parent.postMessage(JSON.stringify(envelope), completionOrigin);
    };
})();
</script></body></html>
"##;

/// Serves the two pages; other items are 404, other verbs 405.
pub fn dispatch(r: TenantRequest) -> Result<Response> {
    if r.segments.len() != 2 {
        return Err(ApiError::not_found());
    }
    let (template, param) = match r.segments[1].to_ascii_lowercase().as_str() {
        "bridge" => (BRIDGE, "origin"),
        "loginreceiver" => (LOGIN_RECEIVER, "completion_origin"),
        _ => return Err(ApiError::not_found()),
    };
    if r.method != Method::GET {
        return Err(ApiError::MethodNotAllowed("GET"));
    }
    let origin = r.query.iter().find(|(k, _)| k == param).map(|(_, v)| v.clone()).unwrap_or_default();
    if !super::cors::origin_allowed(&r.tenant.record.settings.cors_origins, &origin) {
        return Err(ApiError::Unauthorized(format!("Not a whitelisted origin: {origin}")));
    }
    let embedded = serde_json::Value::String(origin).to_string().replace('<', "\\u003c");
    let page = template.replace("__ORIGIN__", &embedded);
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"))], page).into_response())
}
