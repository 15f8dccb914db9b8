//! The monitoring routes of `/manage/v1` (dashboards, usage, tiers, the platform view, the live
//! log tail) and `GET /metrics` for Prometheus. Access is decided by `manage::access` like every
//! other `/manage/v1` route: support staff read these, never a tenant's data, scripts, keys or settings.

use crate::accounts::Principal;
use crate::manage::{self, ManageError};
use crate::{AppState, ExposeSecret};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use roost_api::{DashboardOut, LogQuery, PlatformOut, Role, TierIn, TierOut, UsageOut};
use std::sync::atomic::Ordering;
use std::time::Duration;

type R<T> = Result<T, ManageError>;

fn internal(e: impl std::fmt::Display) -> ManageError {
    ManageError::Internal(e.to_string())
}

async fn record(s: &AppState, tenant: &str) -> R<roost_storage::TenantRecord> {
    Ok(s.storage.tenant(tenant).await.map_err(internal)?.ok_or_else(|| ManageError::NotFound(format!("Tenant '{tenant}'")))?.record.clone())
}

/// `?range=1h|24h|7d|30d`.
#[derive(serde::Deserialize)]
pub struct RangeQuery {
    #[serde(default)]
    range: Option<String>,
}

/// `GET /tenants/{t}/dashboard`.
pub async fn dashboard(State(s): State<AppState>, Path(tenant): Path<String>, Query(q): Query<RangeQuery>) -> R<Json<DashboardOut>> {
    let range = q.range.unwrap_or_else(|| "1h".into());
    if !crate::monitor::dashboard::valid_range(&range) {
        return Err(ManageError::BadInput(format!("range must be 1h, 24h, 7d or 30d, not '{range}'.")));
    }
    let r = record(&s, &tenant).await?;
    let url = manage::show_tenant(&s.storage, &r.name).await.map(|t| t.url).unwrap_or_default();
    Ok(Json(crate::monitor::dashboard::dashboard(&s, &r, url, &range).await.map_err(internal)?))
}

/// `GET /tenants/{t}/usage`: the tier and today's use (owners see it; only an admin changes it).
pub async fn usage(State(s): State<AppState>, Path(tenant): Path<String>) -> R<Json<UsageOut>> {
    let r = record(&s, &tenant).await?;
    Ok(Json(crate::monitor::dashboard::usage(&s, &r).await.map_err(internal)?))
}

/// `PUT /tenants/{t}/tier` (admin only).
pub async fn put_tier(State(s): State<AppState>, Path(tenant): Path<String>, super::manage::AppJson(t): super::manage::AppJson<TierIn>) -> R<Json<UsageOut>> {
    set_tier(&s, &tenant, &t.tier).await?;
    usage(State(s), Path(tenant)).await
}

/// Puts a tenant on a configured tier (the CLI's `tenant tier` too).
pub async fn set_tier(s: &AppState, tenant: &str, tier: &str) -> R<()> {
    if !s.tiers.tiers.contains_key(tier) {
        let names: Vec<&str> = s.tiers.tiers.keys().map(String::as_str).collect();
        return Err(ManageError::BadInput(format!("'{tier}' is not a tier; the tiers are {}.", names.join(", "))));
    }
    record(s, tenant).await?;
    s.storage.set_tier(tenant, tier).await.map_err(|e| ManageError::from_storage(e, || format!("Tenant '{tenant}'")))?;
    tracing::info!(tenant.name = %tenant, tier.name = %tier, "Put tenant `{tenant}` on tier `{tier}`");
    Ok(())
}

/// `GET /tiers`.
pub async fn tiers(State(s): State<AppState>) -> Json<Vec<TierOut>> {
    Json(s.tiers.tiers.iter().map(|(name, t)| TierOut { name: name.clone(), tier: t.clone(), default: *name == s.tiers.default }).collect())
}

/// `GET /monitor`: every tenant and node (admin and support).
pub async fn platform(State(s): State<AppState>, Extension(who): Extension<Principal>) -> R<Json<PlatformOut>> {
    if !matches!(who.role, Role::Admin | Role::Support) {
        return Err(ManageError::Forbidden(format!("The {} role may not do this.", who.role.as_str())));
    }
    let tenants = s.storage.list_tenants().await.map_err(internal)?;
    Ok(Json(crate::monitor::dashboard::platform(&s, &tenants).await.map_err(internal)?))
}

/// Live tails one node serves at once.
const MAX_TAILS: usize = 64;
/// How long one tail lasts before the browser reconnects (with `Last-Event-ID`).
const TAIL_LIFETIME: Duration = Duration::from_secs(3600);

/// Counts a live tail while it is open.
struct TailSlot(AppState);

impl Drop for TailSlot {
    fn drop(&mut self) {
        self.0.log_tails.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `GET /tenants/{t}/logs/stream`: new log lines as server-sent events (`id` the line's id, `data`
/// its JSON), from `after` or `Last-Event-ID` (else from now), with the filters of `/logs`. Lines
/// other nodes store arrive within a second; each event is one bounded line.
pub async fn log_stream(State(s): State<AppState>, Path(tenant): Path<String>, headers: HeaderMap, Query(q): Query<LogQuery>) -> R<Response> {
    let r = record(&s, &tenant).await?;
    if s.log_tails.fetch_add(1, Ordering::Relaxed) >= MAX_TAILS {
        s.log_tails.fetch_sub(1, Ordering::Relaxed);
        return Err(ManageError::Busy(format!("{MAX_TAILS} live log tails are open on this node; close one or try again later.")));
    }
    let slot = TailSlot(s.clone());
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok());
    let after = match resume.or(Some(q.after).filter(|a| *a > 0)) {
        Some(a) => a,
        None => s.storage.newest_log_id(&r.name).await.map_err(internal)?,
    };
    let query = LogQuery { after, order: None, before: None, limit: Some(200), ..q };
    // Checks the filters once, before the stream starts.
    manage::logs(&s.storage, &r.name, &LogQuery { limit: Some(1), ..query.clone() }).await?;
    let until = tokio::time::Instant::now() + TAIL_LIFETIME;
    let mut changed = s.logs.stored.subscribe();
    changed.borrow_and_update();
    let state = (s, r.name, query, slot, changed);
    let stream = futures::stream::unfold(state, move |(s, tenant, mut query, slot, mut changed)| {
        async move {
            loop {
                if tokio::time::Instant::now() >= until || s.tasks.is_stopping() {
                    return None;
                }
                match manage::logs(&s.storage, &tenant, &query).await {
                    Ok(lines) if !lines.is_empty() => {
                        query.after = lines.last().map(|l| l.id).unwrap_or(query.after);
                        let events: Vec<Result<Event, std::convert::Infallible>> = lines
                            .iter()
                            .map(|l| Ok(Event::default().id(l.id.to_string()).event("line").data(serde_json::to_string(l).unwrap_or_default())))
                            .collect();
                        return Some((futures::stream::iter(events), (s, tenant, query, slot, changed)));
                    }
                    Ok(_) => {}
                    Err(_) => return None,
                }
                // This node's writer stored lines, or a second passed (lines from other nodes).
                let _ = tokio::time::timeout(Duration::from_secs(1), changed.changed()).await;
            }
        }
    });
    use futures::StreamExt as _;
    Ok(Sse::new(stream.flatten()).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

/// `GET /metrics`: this node's metrics in the Prometheus text format, with the bearer token of
/// `metrics_token` (the route is off when it is empty), or on the `metrics_listen` listener.
pub async fn prometheus(s: &AppState, headers: &HeaderMap, trusted_listener: bool) -> Response {
    let token = s.metrics_token.expose_secret();
    if !trusted_listener {
        if token.is_empty() {
            return StatusCode::NOT_FOUND.into_response();
        }
        let sent = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
        if !crate::auth::secrets_equal(sent.trim(), token) {
            return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")]).into_response();
        }
    }
    if !s.metrics.enabled {
        return (StatusCode::NOT_FOUND, "metrics are off on this node (metrics = false)").into_response();
    }
    let text = s.metrics.exporter.render(&s.metrics, s.started.elapsed());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}
