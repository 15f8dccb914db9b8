//! HTTP transport: the root service ([`router`]), and the tenant-endpoint pipeline of protocol.md
//! §1.1 (tenant lookup, CORS, version check, method override, body limit, timeout, common headers)
//! in front of the tenant surface, an axum router ([`tenant_routes`]). The pipeline runs before any
//! routing: it normalises the path (the protocol's resource segment is case-insensitive and a
//! trailing slash is tolerated) and applies the method overrides, so the surface routes, once, the
//! request the protocol means.

pub mod api;
pub mod backup;
pub mod cors;
pub mod crossdomain;
pub mod diagnostics;
pub mod extract;
pub mod health;
pub mod jobs;
pub mod manage;
pub mod monitor;
pub mod portal;
pub mod push;
pub mod tables;

use crate::auth;
use crate::error::ApiError;
use crate::monitor::tiers::Refusal;
use crate::monitor::{Kind, Limit};
use crate::telemetry::{Telemetry, TelemetryLayer};
use crate::{AppState, ExposeSecret};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, MethodRouter};
use axum::Router;
pub use extract::{authenticate, TenantCall, TenantRequest};
use percent_encoding::percent_decode_str;
use roost_storage::Tenant;
use std::sync::Arc;
use std::time::Duration;
use tower::Layer as _;

/// The root service: tenant endpoints under `/t/{tenant}/` and host-addressed tenants, and, unless
/// they have a listener of their own (`manage_listen`), `/manage/v1` and the portal.
///
/// A request is routed once. A path under `/t/` goes straight to the tenant pipeline, which finds
/// the tenant, normalises the path and applies the method overrides before the tenant surface
/// routes it ([`Root`]); any other path goes to the platform's router, whose fallback sends a
/// host-addressed tenant's request to the pipeline.
pub fn router(state: AppState) -> Telemetry<Root> {
    let surface = tenant_routes(state.clone());
    let platform = {
        let surface = surface.clone();
        let tenants = Router::new().fallback(move |State(state): State<AppState>, req: Request| async move { by_host(state, surface, req).await });
        let router = if state.manage_apart { tenants } else { tenants.merge(crate::telemetry::record_routes(platform(&state))) };
        router.with_state(state.clone())
    };
    TelemetryLayer.layer(Root(Arc::new(RootRoutes { state, surface, platform })))
}

/// The service [`router`] builds (inside its telemetry layer). The server clones it for each
/// request: one reference count, which every core's requests touch.
#[derive(Clone)]
pub struct Root(Arc<RootRoutes>);

struct RootRoutes {
    state: AppState,
    surface: Router,
    platform: Router,
}

impl tower::Service<Request> for Root {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response, std::convert::Infallible>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // `/t/{tenant}[/rest]`: the tenant is the second raw segment, wherever its name also occurs.
        let by_path = req.uri().path().strip_prefix("/t/").map(|after| match after.find('/') {
            Some(i) => (after[..i].to_string(), after[i..].to_string()),
            None => (after.to_string(), String::new()),
        });
        match by_path {
            Some((raw_tenant, rest)) if !raw_tenant.is_empty() => {
                let root = self.0.clone();
                let tenant = percent_decode_str(&raw_tenant).decode_utf8_lossy().into_owned();
                Box::pin(async move { Ok(tenant_request(&root.state, &root.surface, tenant, Base::Path(raw_tenant), rest, req).await) })
            }
            _ if req.uri().path() == "/healthz" => Box::pin(async { Ok(health::healthz()) }),
            _ if req.uri().path() == "/readyz" => {
                let root = self.0.clone();
                Box::pin(async move { Ok(health::readyz(&root.state).await) })
            }
            _ if req.uri().path() == "/metrics" => {
                let root = self.0.clone();
                Box::pin(async move { Ok(monitor::prometheus(&root.state, req.headers(), false).await) })
            }
            _ => {
                use tower::ServiceExt as _;
                Box::pin(self.0.platform.clone().oneshot(req))
            }
        }
    }
}

/// The tenant surface's routes start with `/t/{tenant}`; the pipeline routes a host-addressed
/// tenant's request there too.
const SURFACE_BASE: &str = "/t/{tenant}";

/// The tenant surface, below a tenant's base (`/t/{tenant}`, where the pipeline also puts a
/// host-addressed tenant's request). The pipeline has found the tenant and lower-cased the resource
/// segment; each handler's extractors make the checks of its route ([`extract`]). A wrong method
/// answers 405 with the protocol's `Allow`.
pub fn tenant_routes(state: AppState) -> Router {
    let only = |allow: &'static str, m: MethodRouter<AppState>| {
        let refuse = move || async move { ApiError::MethodNotAllowed(allow) };
        m.head(refuse).fallback(refuse)
    };
    let at = |path: &str| format!("{SURFACE_BASE}{path}");
    Router::new()
        .route(
            &at("/tables/{table}"),
            get(tables::read_items)
                .post(tables::insert_item)
                .patch(tables::update_without_id)
                .head(tables::collection_method_not_allowed)
                .fallback(tables::collection_method_not_allowed),
        )
        .route(
            &at("/tables/{table}/{id}"),
            get(tables::read_item)
                .post(tables::undelete_item)
                .patch(tables::update_item)
                .delete(tables::delete_item)
                .head(tables::item_method_not_allowed)
                .fallback(tables::item_method_not_allowed),
        )
        .route(&at("/api/{name}"), any(api::call_api))
        .route(&at("/api/{name}/{*rest}"), any(api::call_api))
        .route(&at("/jobs/{name}"), any(jobs::run_job))
        .route(&at("/login/{provider}"), get(crate::identity::login::login_get).post(crate::identity::login::login_post))
        .route(&at("/login"), axum::routing::post(crate::identity::login::login_post_bare))
        .route(&at("/push"), any(push::route))
        .route(&at("/push/{*rest}"), any(push::route))
        .route(&at("/diagnostics"), only("GET", get(diagnostics::get_diagnostics)))
        .route(&at("/crossdomain/{page}"), any(crossdomain::serve_page))
        .route(&at("/status"), only("GET", get(|| async { StatusCode::OK })))
        .fallback(|| async { ApiError::not_found() })
        .with_state(state)
}

/// `/metrics` alone: what the `metrics_listen` listener serves (no token there).
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(|State(s): State<AppState>, headers: HeaderMap| async move { monitor::prometheus(&s, &headers, true).await }))
        .route("/healthz", get(|| async { health::healthz() }))
        .route("/readyz", get(|State(s): State<AppState>| async move { health::readyz(&s).await }))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(state)
}

/// The portal and `/manage/v1` alone: what the `manage_listen` listener serves (their own origin).
pub fn manage_router(state: AppState) -> Router {
    let platform = platform(&state)
        .route("/healthz", get(|| async { health::healthz() }))
        .route("/readyz", get(|State(s): State<AppState>| async move { health::readyz(&s).await }));
    crate::telemetry::layer(platform.fallback(|| async { StatusCode::NOT_FOUND }).with_state(state))
}

fn platform(state: &AppState) -> Router<AppState> {
    Router::new()
        .nest("/manage/v1", manage::router(state.clone()))
        .route("/portal", get(portal::redirect))
        .route("/portal/", get(portal::serve))
        .route("/portal/{*file}", get(portal::serve))
}

/// The policy of every tenant response: whatever a tenant's script answers (HTML included) runs,
/// if at all, in a sandbox with an opaque origin, so it can never act as the origin the portal and
/// `/manage/v1` may share with it, nor read their answers. Scripts, forms and pop-ups still work.
pub const TENANT_CSP: &str = "sandbox allow-scripts allow-forms allow-popups";

/// Marks a response as a page Roost wrote itself, with a policy of its own (no tenant content).
#[derive(Clone, Copy)]
pub struct OwnPage;

/// The portal's session cookie: tenant responses may not set it (no session fixation through a
/// script's `Set-Cookie`).
pub const SESSION_COOKIE: &str = "roost_session";

/// The platform router's fallback: a host-addressed tenant's request (`{tenant}.{tenant_domain}`),
/// else 404.
async fn by_host(state: AppState, surface: Router, req: Request) -> Response {
    if let Some(domain) = &state.tenant_domain {
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        let host = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host).to_ascii_lowercase();
        if let Some(tenant) = host.strip_suffix(domain.as_str()).and_then(|t| t.strip_suffix('.')) {
            if !tenant.is_empty() && !tenant.contains('.') {
                let rest = req.uri().path().to_string();
                return tenant_request(&state, &surface, tenant.to_string(), Base::Host, rest, req).await;
            }
        }
    }
    ApiError::not_found().into_response()
}

/// Parses an `application/x-www-form-urlencoded` query string (`+` is a space).
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// Where a tenant request addressed its tenant.
pub(crate) enum Base {
    /// `/t/{tenant}`, with the segment as sent: the request's URI already has the surface's form.
    Path(String),
    /// The request's host name.
    Host,
}

/// Runs a request through the pipeline and the tenant surface (`rest` is the path below the tenant's
/// base).
pub(crate) async fn tenant_request(state: &AppState, surface: &Router, tenant_name: String, base: Base, rest: String, req: Request) -> Response {
    let started = std::time::Instant::now();
    let (parts, body) = req.into_parts();
    let tenant = match state.storage.tenant(&tenant_name).await {
        Ok(Some(t)) => {
            crate::telemetry::record_tenant(&t.record.name);
            t
        }
        Ok(None) => return finish(ApiError::not_found().into_response(), None),
        Err(e) => return finish(ApiError::Internal(e.to_string()).into_response(), None),
    };
    let cors = cors::headers_for(&tenant.record.settings.cors_origins, &parts.headers, parts.method == Method::OPTIONS);
    // OPTIONS on any path: 204 with CORS headers, no auth (§1.1).
    if parts.method == Method::OPTIONS {
        return finish(StatusCode::NO_CONTENT.into_response(), Some(cors));
    }
    let metrics = state.metrics.tenant(&tenant.record.name);
    let kind = Kind::of(&rest);
    let request_id = parts.headers.get(crate::telemetry::REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    // The tier: its request rate and daily quota, before any work.
    if let Some(m) = &metrics {
        let (_, tier) = state.tier_of(&tenant.record);
        if let Err(refusal) = m.admit(tier) {
            let (response, line) = match refusal {
                Refusal::Rate(wait) => (
                    ApiError::RateLimited(wait).into_response(),
                    format!(
                        "{} {rest} refused (429): over the tier's {} requests per second (request id {request_id})",
                        parts.method, tier.requests_per_second
                    ),
                ),
                Refusal::DailyQuota => (
                    ApiError::Forbidden(crate::error::msg::DAILY_QUOTA.into()).into_response(),
                    format!(
                        "{} {rest} refused (403): the tier's {} API calls per day are used (request id {request_id})",
                        parts.method, tier.api_calls_per_day
                    ),
                ),
            };
            if m.may_log() {
                state.logs.write(&tenant.record.name, roost_api::LogLevel::Warning, REQUEST_LOG_SOURCE, &line);
            }
            return finish(response, Some(cors));
        }
        // Writes stop once the database is over the tier's size (measured each minute); reads and
        // deletes go on, so the owner can make room.
        if kind == Kind::Tables && (parts.method == Method::POST || parts.method == Method::PATCH) && m.over_database(tier) {
            m.limit(Limit::Database);
            if m.may_log() {
                let line = format!("{} {rest} refused (403): the database is over the tier's {} MB (request id {request_id})", parts.method, tier.database_mb);
                state.logs.write(&tenant.record.name, roost_api::LogLevel::Warning, REQUEST_LOG_SOURCE, &line);
            }
            let message = format!("This service's database is over its tier's {} MB; delete data or ask for a larger tier.", tier.database_mb);
            return finish(ApiError::Forbidden(message).into_response(), Some(cors));
        }
        if let Some(id) = parts.headers.get("x-zumo-installation-id") {
            m.device(id.as_bytes());
        }
    }
    crate::scripting::ensure_started(state, &tenant).await;
    let timeout = Duration::from_millis(tenant.record.settings.request_timeout_ms.min(state.maxima.request_timeout_ms));
    // Every statement the request starts is interrupted at the same deadline.
    let deadline = std::time::Instant::now() + timeout;
    let method = parts.method.clone();
    let mut bytes_in = 0u64;
    let work = roost_storage::deadline::scope(deadline, handle(state, surface, tenant.clone(), base, rest.clone(), parts, body));
    let response = match tokio::time::timeout(timeout, work).await {
        Ok(Ok((r, n))) => {
            bytes_in = n;
            r
        }
        Ok(Err(e)) => {
            if let (Some(m), ApiError::TooLarge) = (&metrics, &e) {
                m.limit(Limit::Body);
            }
            e.into_response()
        }
        Err(_) => {
            tracing::warn!(tenant.name = %tenant.record.name, "The request has timed out");
            if let Some(m) = &metrics {
                m.limit(Limit::Timeout);
            }
            ApiError::Timeout.into_response()
        }
    };
    if let Some(m) = &metrics {
        use axum::body::HttpBody as _;
        let status = response.status().as_u16();
        let bytes_out = response.body().size_hint().exact().unwrap_or_else(|| response.body().size_hint().lower());
        let name = match kind {
            Kind::Tables | Kind::Api => rest.trim_start_matches('/').split('/').nth(1).filter(|n| !n.is_empty() && n.len() <= 128),
            _ => None,
        };
        m.request(kind, name.map(|n| percent_decode_str(n).decode_utf8_lossy()).as_deref(), status, bytes_in, bytes_out, started.elapsed());
        if status >= 500 && m.may_log() {
            let line = format!("{method} {rest} answered {status} (request id {request_id})");
            state.logs.write(&tenant.record.name, roost_api::LogLevel::Error, REQUEST_LOG_SOURCE, &line);
        }
    }
    finish(response, Some(cors))
}

/// The source of the log lines the pipeline writes into a tenant's log (failed and refused requests).
pub const REQUEST_LOG_SOURCE: &str = "/request";

/// Removes the platform's credentials from a tenant request's headers: the portal's session cookie,
/// a bearer personal API token or admin token, and the CSRF token. Tenant code (scripts, their logs
/// and outbound requests) never sees them, whatever a browser or a CLI sent along.
pub fn strip_platform_credentials(headers: &mut HeaderMap, admin_token: &str) {
    let cookies: Vec<HeaderValue> = headers.get_all(header::COOKIE).iter().cloned().collect();
    if !cookies.is_empty() {
        headers.remove(header::COOKIE);
        for c in cookies {
            let Ok(text) = c.to_str() else { continue };
            let kept: Vec<&str> = text
                .split(';')
                .map(str::trim)
                .filter(|pair| !pair.is_empty() && !pair.split('=').next().unwrap_or("").trim().eq_ignore_ascii_case(SESSION_COOKIE))
                .collect();
            if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
                if !kept.is_empty() {
                    headers.append(header::COOKIE, v);
                }
            }
        }
    }
    let platform_token = |v: &HeaderValue| {
        let text = v.to_str().unwrap_or("").trim();
        let token = match text.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
            _ => text,
        };
        token.starts_with("roost_pat_") || (!admin_token.is_empty() && auth::secrets_equal(token, admin_token))
    };
    if headers.get_all(header::AUTHORIZATION).iter().any(platform_token) {
        headers.remove(header::AUTHORIZATION);
    }
    headers.remove("x-csrf-token");
}

async fn handle(
    state: &AppState,
    surface: &Router,
    tenant: Arc<Tenant>,
    base: Base,
    rest: String,
    mut parts: axum::http::request::Parts,
    body: Body,
) -> Result<(Response, u64), ApiError> {
    use tower::ServiceExt as _;
    strip_platform_credentials(&mut parts.headers, state.admin_token.expose_secret());
    let path = normalised_path(&rest);
    let first = path[1..].split('/').next().unwrap_or_default();
    let query = parse_query(parts.uri.query().unwrap_or(""));
    // Both proxy headers are anyone's to send: they count only behind a trusted proxy.
    let forwarded_https = state.trust_forwarded_proto
        && (parts.headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.eq_ignore_ascii_case("https"))
            || parts.headers.contains_key("x-arr-ssl"));
    // §1.1 step 1: a tenant may require HTTPS (behind a TLS proxy: X-Forwarded-Proto or x-arr-ssl).
    if tenant.record.settings.require_https && !forwarded_https {
        return Err(ApiError::HttpsRequired);
    }
    // §1.1 step 2: v2 clients are refused on /tables and /api.
    if (first == "tables" || first == "api")
        && (parts.headers.contains_key("zumo-api-version") || query.iter().any(|(k, _)| k.eq_ignore_ascii_case("zumo-api-version")))
    {
        return Err(ApiError::VersionRejected);
    }
    // §1.6: body limit, checked on Content-Length first, then while reading.
    let limit = usize::try_from(tenant.record.settings.max_body_kb.min(state.maxima.max_body_kb).saturating_mul(1024)).unwrap_or(usize::MAX);
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let bytes = read_body(body, limit, declared).await?;
    let bytes_in = bytes.len() as u64;
    let mut method = parts.method.clone();
    if let Some(m) = parts.headers.get("x-http-method-override").and_then(|v| v.to_str().ok()) {
        if let Ok(m) = Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes()) {
            method = m;
        }
    }
    // §1.1 step 3: GET/DELETE bodies with a Content-Type are never parsed.
    let has_type = parts.headers.contains_key(header::CONTENT_TYPE);
    let mut body = if (parts.method == Method::GET || parts.method == Method::DELETE) && has_type { None } else { Some(bytes) };
    // §1.1 step 5: a `_method` member of a JSON object body also overrides the method, and is removed.
    if let Some((m, rest)) = body.as_ref().and_then(method_member) {
        method = m;
        body = Some(rest);
    }
    let call = TenantCall(Arc::new(TenantRequest {
        tenant,
        method: method.clone(),
        raw_path: parts.uri.path().to_string(),
        query,
        headers: std::mem::take(&mut parts.headers),
        body,
        scheme: if forwarded_https { "https" } else { "http" },
    }));
    // The surface routes on `/t/{tenant}` and the normalised path; a path already in that form (the
    // usual case) keeps its URI.
    match base {
        Base::Path(_) if path == rest => {}
        Base::Path(raw) => parts.uri = format!("/t/{raw}{path}").parse().map_err(|_| ApiError::not_found())?,
        Base::Host => parts.uri = format!("/t/-{path}").parse().map_err(|_| ApiError::not_found())?,
    }
    parts.method = method;
    parts.extensions.insert(call);
    Ok((surface.clone().oneshot(Request::from_parts(parts, Body::empty())).await.unwrap_or_else(|never| match never {}), bytes_in))
}

/// The path the tenant surface routes on, from the path below the tenant's base (empty, or
/// starting with `/`): one trailing slash dropped, the resource segment (the protocol's
/// case-insensitive one) lower-cased, every segment decoded and encoded again (so that a route's
/// parameters decode to exactly the decoded segments, and `%74ables` is `tables`). A path without
/// `%` is already in that form but for the case of its first segment.
fn normalised_path(rest: &str) -> String {
    let trimmed = rest.strip_suffix('/').unwrap_or(rest);
    if trimmed.is_empty() {
        return "/".into();
    }
    if !trimmed.contains('%') {
        let end = trimmed[1..].find('/').map_or(trimmed.len(), |i| i + 1);
        let mut path = String::with_capacity(trimmed.len());
        path.push_str(&trimmed[..end].to_ascii_lowercase());
        path.push_str(&trimmed[end..]);
        return path;
    }
    let mut path = String::with_capacity(trimmed.len() + 8);
    for (i, raw) in trimmed.split('/').skip(1).enumerate() {
        let mut segment = percent_decode_str(raw).decode_utf8_lossy().into_owned();
        if i == 0 {
            segment.make_ascii_lowercase();
        }
        path.push('/');
        path.extend(percent_encoding::utf8_percent_encode(&segment, percent_encoding::NON_ALPHANUMERIC));
    }
    path
}

/// Reads a body of at most `limit` bytes. A larger one is answered with 413, but only after reading
/// (and discarding) the rest of it, up to 16 times the limit: a client still writing its body would
/// otherwise meet a closed connection and never see the 413. Beyond that the connection is cut.
async fn read_body(body: Body, limit: usize, declared: Option<u64>) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt as _;
    let drain_limit = limit.saturating_mul(16) as u64;
    if declared.is_some_and(|n| n > drain_limit) {
        return Err(ApiError::TooLarge);
    }
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ApiError::TooLarge)?;
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len() as u64;
        if seen > drain_limit {
            return Err(ApiError::TooLarge);
        }
        if seen <= limit as u64 && declared.is_none_or(|n| n <= limit as u64) {
            buf.extend_from_slice(&data);
        }
    }
    if seen > limit as u64 || declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::TooLarge);
    }
    Ok(buf.freeze())
}

/// The `_method` member of a JSON object body: the method it names and the body without it.
fn method_member(body: &Bytes) -> Option<(Method, Bytes)> {
    // Cheap test first: almost no body carries it.
    if !body.windows(9).any(|w| w == b"\"_method\"") {
        return None;
    }
    let mut obj = match serde_json::from_slice::<serde_json::Value>(body).ok()? {
        serde_json::Value::Object(o) => o,
        _ => return None,
    };
    let m = obj.remove("_method")?;
    let m = Method::from_bytes(m.as_str()?.trim().to_ascii_uppercase().as_bytes()).ok()?;
    Some((m, Bytes::from(serde_json::Value::Object(obj).to_string())))
}

/// Adds the headers of §1.4 to every tenant response, and the isolation headers.
fn finish(mut r: Response, cors: Option<HeaderMap>) -> Response {
    // Roost's own pages (the cross-domain bridge) carry a policy of their own, marked by a response
    // extension, which nothing a script answers can set.
    let own_page = r.extensions().get::<OwnPage>().is_some();
    let h = r.headers_mut();
    // A policy a script sets is kept (browsers enforce every policy given), but never replaces this.
    if !own_page {
        h.append(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(TENANT_CSP));
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let cookies: Vec<HeaderValue> = h.get_all(header::SET_COOKIE).iter().cloned().collect();
    if !cookies.is_empty() {
        h.remove(header::SET_COOKIE);
        for c in cookies {
            let name = c.to_str().ok().and_then(|c| c.split('=').next()).map(str::trim).unwrap_or("");
            if !name.eq_ignore_ascii_case(SESSION_COOKIE) {
                h.append(header::SET_COOKIE, c);
            }
        }
    }
    h.insert("x-zumo-version", HeaderValue::from_static(concat!("roost-", env!("CARGO_PKG_VERSION"))));
    h.insert("x-zumo-server-version", HeaderValue::from_static("nodev1-1.0.1"));
    if !h.contains_key(header::CONTENT_TYPE) {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    if let Some(cors) = cors {
        for (k, v) in cors.iter() {
            if !h.contains_key(k) {
                h.insert(k.clone(), v.clone());
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::parse_query;

    #[test]
    fn paths_normalise_the_same_with_and_without_escapes() {
        use super::normalised_path as n;
        for (rest, want) in [
            ("", "/"),
            ("/", "/"),
            ("//", "/"),
            ("/Tables/Items/", "/tables/Items"),
            ("/TABLES/x/abc-1", "/tables/x/abc-1"),
            ("/api/a//b", "/api/a//b"),
            ("/%54ables/items", "/tables/items"),
            ("/tables/a%20b/", "/tables/a%20b"),
            ("/tables/x/%C3%A9-1", "/tables/x/%C3%A9%2D1"),
        ] {
            assert_eq!(n(rest), want, "{rest}");
        }
    }

    #[test]
    fn query_strings_decode_as_forms_do() {
        let q = parse_query("$filter=title%20eq%20'a+b%2Bc'&&$top=5&flag&%24skip=2&bad=%ZZ&utf=%C3%A9%FF");
        let pairs: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(pairs, [("$filter", "title eq 'a b+c'"), ("$top", "5"), ("flag", ""), ("$skip", "2"), ("bad", "%ZZ"), ("utf", "é\u{fffd}")]);
    }
}
