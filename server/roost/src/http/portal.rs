//! `/portal/`: the built portal (`scripts/build-portal` writes `portal/dist`), served as static
//! files with a strict Content-Security-Policy. The app routes in the URL fragment, so every file is
//! a real file; a missing build answers a page saying how to build it.
//!
//! The binary embeds `portal/dist` as it was when it was compiled ([`Embedded`]), so `roost serve`
//! started from any folder serves the portal; `portal_dir` (`ROOST_PORTAL_DIR`) serves a folder
//! instead, for portal development.

use crate::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use tower::ServiceExt;
use tower_http::services::ServeDir;

/// `default-src 'self'`; wasm compiles under `'wasm-unsafe-eval'`; CodeMirror injects its styles.
const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// `GET /portal` → `/portal/`.
pub async fn redirect() -> Redirect {
    Redirect::permanent("/portal/")
}

/// The portal build the binary was compiled with (empty when `portal/dist` did not exist then).
#[derive(rust_embed::Embed)]
#[folder = "../../portal/dist"]
#[allow_missing = true]
struct Embedded;

/// `GET /portal/{*file}`.
pub async fn serve(State(state): State<AppState>, req: Request) -> Response {
    let mut r = if state.portal_dir.as_os_str().is_empty() { embedded(&req) } else { from_folder(&state, req).await };
    let is_page = matches!(r.extensions().get::<Page>(), Some(Page));
    let ok = r.status().is_success();
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    // The page always revalidates, so a new build's files are picked up.
    if ok {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(if is_page { "no-cache" } else { "public, max-age=300" }));
    }
    r
}

/// Marks the response of the page itself (`index.html`).
#[derive(Clone, Copy)]
struct Page;

fn file_path(req: &Request) -> String {
    let path = req.uri().path().strip_prefix("/portal").unwrap_or("/");
    let path = path.trim_start_matches('/');
    if path.is_empty() {
        "index.html".to_string()
    } else {
        path.to_string()
    }
}

fn not_built(what: &str) -> Response {
    let body = format!("The portal is not built. Run scripts/build-portal (it writes portal/dist) and build Roost again, or point portal_dir / ROOST_PORTAL_DIR at a built portal ({what}).\n");
    (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// A file of the embedded build. Paths are looked up as names: `..` finds nothing.
fn embedded(req: &Request) -> Response {
    if Embedded::get("index.html").is_none() {
        return not_built("this binary was compiled without one");
    }
    let path = file_path(req);
    let Some(file) = Embedded::get(&path) else { return StatusCode::NOT_FOUND.into_response() };
    let etag = format!("\"{}\"", file.metadata.sha256_hash().iter().take(16).map(|b| format!("{b:02x}")).collect::<String>());
    if req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut r = ([(header::CONTENT_TYPE, file.metadata.mimetype().to_string()), (header::ETAG, etag)], file.data.into_owned()).into_response();
    if path == "index.html" {
        r.extensions_mut().insert(Page);
    }
    r
}

async fn from_folder(state: &AppState, req: Request) -> Response {
    if !state.portal_dir.join("index.html").is_file() {
        let body = format!(
            "The portal is not built. Run scripts/build-portal (it writes portal/dist), or point portal_dir / ROOST_PORTAL_DIR at a built portal (now: {}).\n",
            state.portal_dir.display()
        );
        return (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response();
    }
    let is_page = file_path(&req) == "index.html";
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path().strip_prefix("/portal").unwrap_or("/").to_string();
    parts.uri = match path.parse() {
        Ok(u) => u,
        Err(_) => return StatusCode::NOT_FOUND.into_response(),
    };
    let mut r = match ServeDir::new(&state.portal_dir).oneshot(Request::from_parts(parts, body)).await {
        Ok(r) => r.into_response(),
        Err(e) => match e {},
    };
    if is_page {
        r.extensions_mut().insert(Page);
    }
    r
}
