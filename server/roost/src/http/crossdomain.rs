//! `/crossdomain/bridge` and `/crossdomain/loginreceiver` (protocol.md §1.9): the HTML pages old
//! browsers (IE8/9) load in an iframe to reach the tenant. The caller's origin must pass the tenant's
//! CORS whitelist; it is embedded as a JSON string with `<` escaped, so it can never close the script.

use super::extract::TenantCall;
use crate::error::{ApiError, Result};
use axum::extract::Path;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

const BRIDGE: &str = r##"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Cross-domain bridge</title></head><body><script>
(function () {
    var originRoot = __ORIGIN__;
    var tenantBase = __BASE__;
    function onMessage(evt) {
        if (evt.origin !== originRoot || /^file:/i.test(evt.origin)) { return; }
        var message;
        try { message = JSON.parse(evt.data); } catch (e) { return; }
        var contents = message.contents || {};
        var method = String(contents.type || "GET").toUpperCase();
        var url = String(contents.url || "").split("#")[0];
        var link = document.createElement("a");
        link.href = url;
        var path = link.pathname.charAt(0) === "/" ? link.pathname : "/" + link.pathname;
        if (link.host !== location.host || path.toLowerCase().indexOf(tenantBase.toLowerCase()) !== 0 || /(^|\/)\.\.?(\/|$)|%2e/i.test(path)) { return; }
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
pub async fn serve_page(r: TenantCall, Path((_tenant, page)): Path<(String, String)>) -> Result<Response> {
    let (template, param) = match page.to_ascii_lowercase().as_str() {
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
    // The bridge forwards requests to this tenant's endpoints only (never to /manage/v1 or another
    // tenant on the same origin).
    let at = r.raw_path.to_ascii_lowercase().rfind("/crossdomain").unwrap_or(0);
    let base = serde_json::Value::String(format!("{}/", &r.raw_path[..at])).to_string().replace('<', "\\u003c");
    let page = template.replace("__ORIGIN__", &embedded).replace("__BASE__", &base);
    let mut resp = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            // Roost's page, with nothing of the tenant's in it: its inline script runs, nothing else.
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; script-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'"),
            ),
        ],
        page,
    )
        .into_response();
    resp.extensions_mut().insert(super::OwnPage);
    Ok(resp)
}
