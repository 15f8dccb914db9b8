//! Telemetry: the log subscriber, one span per HTTP request (request id, method, route template,
//! tenant, status, latency), and the one place that logs a 500's cause.
//!
//! The request id is the client's `x-zumo-request-id` when it sent one, else a new UUID; it is
//! answered in the same header. Handlers never log a 500 themselves: [`ApiError`](crate::error::ApiError)
//! puts the cause in an [`InternalCause`] response extension, and [`layer`]'s response hook logs it
//! inside the request's span (the client sees only "Internal Server Error").

use axum::http::{HeaderName, Request, Response};
use std::time::Duration;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{MakeSpan, OnResponse, TraceLayer};
use tracing::field::Empty;
use tracing::Span;

/// The request id header (Mobile Services clients send it with each request).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-zumo-request-id");

/// The cause of a 500, carried by the response to the one place that logs it.
#[derive(Clone, Debug)]
pub struct InternalCause(pub String);

/// Installs the log subscriber (once per process).
pub fn init(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(std::io::stderr).with_ansi(ansi).try_init();
}

/// Records the tenant on the current request's span.
pub fn record_tenant(name: &str) {
    Span::current().record("tenant.name", name);
}

/// Records the route template (`/tables/{table}/{id}`, `/manage/v1/tenants/{tenant}`) on the
/// current request's span.
pub fn record_route(template: &str) {
    Span::current().record("route", template);
}

#[derive(Clone, Copy)]
struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, req: &Request<B>) -> Span {
        let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
        let route = req.extensions().get::<axum::extract::MatchedPath>().map(|m| m.as_str()).unwrap_or("");
        tracing::info_span!("request", request.id = %id, method = %req.method(), route = %route, tenant.name = Empty, status = Empty, latency_ms = Empty)
    }
}

#[derive(Clone, Copy)]
struct Finished;

impl<B> OnResponse<B> for Finished {
    fn on_response(self, res: &Response<B>, latency: Duration, span: &Span) {
        span.record("status", res.status().as_u16());
        span.record("latency_ms", latency.as_millis() as u64);
        if let Some(InternalCause(cause)) = res.extensions().get::<InternalCause>() {
            tracing::error!(error.cause = %cause, "Request failed with an internal error");
        } else {
            tracing::debug!("Request finished");
        }
    }
}

/// The request-id and trace layers of a router (outermost first).
pub fn layer<S>(router: axum::Router<S>) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let trace = TraceLayer::new_for_http().make_span_with(RequestSpan).on_request(()).on_response(Finished).on_failure(());
    // Layers added last run first: the id is set, then the span opens with it, then it is answered.
    router.layer(PropagateRequestIdLayer::new(REQUEST_ID)).layer(trace).layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Middleware of the tenant surface: its route template replaces the outer `/t/{tenant}/{*rest}`.
pub async fn record_matched(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    if let Some(m) = req.extensions().get::<axum::extract::MatchedPath>() {
        record_route(m.as_str());
    }
    next.run(req).await
}
