//! `/portal/`: the built portal (`scripts/build-portal` writes `portal/dist`), served as static
//! files with a strict Content-Security-Policy. The app routes in the URL fragment, so every file is
//! a real file; a missing build answers a page saying how to build it.

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

/// `GET /portal/{*file}`.
pub async fn serve(State(state): State<AppState>, req: Request) -> Response {
    if !state.portal_dir.join("index.html").is_file() {
        let body = format!(
            "The portal is not built. Run scripts/build-portal (it writes portal/dist), or point portal_dir / ROOST_PORTAL_DIR at a built portal (now: {}).\n",
            state.portal_dir.display()
        );
        return (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response();
    }
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path().strip_prefix("/portal").unwrap_or("/").to_string();
    let is_page = path == "/" || path == "/index.html";
    parts.uri = match path.parse() {
        Ok(u) => u,
        Err(_) => return StatusCode::NOT_FOUND.into_response(),
    };
    let mut r = match ServeDir::new(&state.portal_dir).oneshot(Request::from_parts(parts, body)).await {
        Ok(r) => r.into_response(),
        Err(e) => match e {},
    };
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    // The page always revalidates, so a new build's files are picked up.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(if is_page { "no-cache" } else { "public, max-age=300" }));
    r
}
