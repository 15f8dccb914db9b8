//! Calls to `/manage/v1`: JSON in and out, the session cookie, and the session's CSRF token on every
//! state-changing call. Errors carry the server's message (and a script's line and column).

use leptos::prelude::*;
use roost_api::{ErrorOut, SessionOut};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::cell::RefCell;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

thread_local! {
    static CSRF: RefCell<String> = const { RefCell::new(String::new()) };
    static SESSION: RefCell<Option<RwSignal<Option<SessionOut>>>> = const { RefCell::new(None) };
}

/// Remembers the session (its CSRF token goes on every state change; a 401 signs the app out).
pub fn set_session(signal: RwSignal<Option<SessionOut>>, csrf: Option<&str>) {
    CSRF.with(|c| *c.borrow_mut() = csrf.unwrap_or_default().to_string());
    SESSION.with(|s| *s.borrow_mut() = Some(signal));
}

/// A failed call.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status (0: the request did not get an answer).
    pub status: u16,
    /// What the server said.
    pub message: String,
    /// A script's syntax error position.
    pub line: Option<u32>,
    /// A script's syntax error column.
    pub column: Option<u32>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn js_error(e: JsValue) -> ApiError {
    let message = e.as_string().or_else(|| js_sys::JSON::stringify(&e).ok().and_then(|s| s.as_string())).unwrap_or_else(|| "network error".into());
    ApiError { status: 0, message: format!("The server could not be reached: {message}"), line: None, column: None }
}

/// Sends a request; the status and the body text.
pub async fn raw(method: &str, path: &str, body: Option<String>) -> Result<(u16, String), ApiError> {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_credentials(web_sys::RequestCredentials::SameOrigin);
    let headers = web_sys::Headers::new().map_err(js_error)?;
    headers.set("Accept", "application/json").map_err(js_error)?;
    if body.is_some() {
        headers.set("Content-Type", "application/json").map_err(js_error)?;
    }
    if method != "GET" {
        let token = CSRF.with(|c| c.borrow().clone());
        if !token.is_empty() {
            headers.set("X-CSRF-Token", &token).map_err(js_error)?;
        }
    }
    init.set_headers(&headers);
    if let Some(b) = &body {
        init.set_body(&JsValue::from_str(b));
    }
    let request = web_sys::Request::new_with_str_and_init(&format!("/manage/v1{path}"), &init).map_err(js_error)?;
    let response: web_sys::Response = JsFuture::from(window().fetch_with_request(&request)).await.map_err(js_error)?.dyn_into().map_err(js_error)?;
    let text = JsFuture::from(response.text().map_err(js_error)?).await.map_err(js_error)?.as_string().unwrap_or_default();
    let status = response.status();
    if status == 401 && path != "/session" {
        // The session ended (expired, signed out elsewhere, account deleted): back to sign-in.
        SESSION.with(|s| {
            if let Some(s) = *s.borrow() {
                s.set(None);
            }
        });
    }
    Ok((status, text))
}

/// POSTs a file as the body (a backup archive to restore): the status and the body text.
pub async fn post_file(path: &str, file: &web_sys::File) -> Result<(u16, String), ApiError> {
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_credentials(web_sys::RequestCredentials::SameOrigin);
    let headers = web_sys::Headers::new().map_err(js_error)?;
    headers.set("Accept", "application/json").map_err(js_error)?;
    headers.set("Content-Type", "application/gzip").map_err(js_error)?;
    headers.set("X-CSRF-Token", &CSRF.with(|c| c.borrow().clone())).map_err(js_error)?;
    init.set_headers(&headers);
    init.set_body(file);
    let request = web_sys::Request::new_with_str_and_init(&format!("/manage/v1{path}"), &init).map_err(js_error)?;
    let response: web_sys::Response = JsFuture::from(window().fetch_with_request(&request)).await.map_err(js_error)?.dyn_into().map_err(js_error)?;
    let text = JsFuture::from(response.text().map_err(js_error)?).await.map_err(js_error)?.as_string().unwrap_or_default();
    let status = response.status();
    if status >= 400 {
        return Err(error_of(status, &text));
    }
    Ok((status, text))
}

fn error_of(status: u16, text: &str) -> ApiError {
    match serde_json::from_str::<ErrorOut>(text) {
        Ok(e) => ApiError { status, message: e.error, line: e.line, column: e.column },
        Err(_) => ApiError { status, message: if text.is_empty() { format!("HTTP {status}") } else { text.to_string() }, line: None, column: None },
    }
}

/// Sends a request and parses the JSON answer (an empty answer parses as `null`).
pub async fn call<T: DeserializeOwned>(method: &str, path: &str, body: Option<&impl Serialize>) -> Result<T, ApiError> {
    let body = body.map(|b| serde_json::to_string(b).unwrap_or_default());
    let (status, text) = raw(method, path, body).await?;
    if status >= 400 {
        return Err(error_of(status, &text));
    }
    serde_json::from_str(if text.trim().is_empty() { "null" } else { &text }).map_err(|e| ApiError {
        status,
        message: format!("Unexpected answer from the server: {e}"),
        line: None,
        column: None,
    })
}

/// GET.
pub async fn get<T: DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    call::<T>("GET", path, None::<&()>).await
}

/// A request without a meaningful answer.
pub async fn send(method: &str, path: &str, body: Option<&impl Serialize>) -> Result<(), ApiError> {
    call::<serde_json::Value>(method, path, body).await.map(|_| ())
}

/// Percent-encodes a path segment or query value.
pub fn enc(s: &str) -> String {
    js_sys::encode_uri_component(s).as_string().unwrap_or_default()
}
