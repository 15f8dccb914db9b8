//! `/healthz` (the process answers) and `/readyz` (this node should get traffic: the catalog answers,
//! this binary's migrations are applied, and the node is not draining). Neither is a tenant request, so
//! neither counts in tenant metrics; both answer on every listener.

use crate::AppState;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How long `/readyz` waits for the catalog.
const CATALOG_WAIT: Duration = Duration::from_secs(2);

/// `GET /healthz`: 200 while the process serves requests at all.
pub fn healthz() -> Response {
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(serde_json::json!({ "status": "ok" }))).into_response()
}

/// `GET /readyz`: 200 when the node is ready for traffic, else 503 with the reason.
pub async fn readyz(state: &AppState) -> Response {
    let draining = state.draining.load(Ordering::Acquire);
    let binary = roost_storage::schema_version();
    let (database, applied) = match tokio::time::timeout(CATALOG_WAIT, state.storage.applied_schema_version()).await {
        Ok(Ok(v)) => ("ok".to_string(), Some(v)),
        Ok(Err(e)) => (format!("unreachable: {e}"), None),
        Err(_) => ("unreachable: no answer within 2 s".to_string(), None),
    };
    // This binary's migrations are applied. A newer schema is fine for a node already running: a
    // rolling upgrade's first new node migrates, and migrations are expand/contract, so the older
    // nodes go on serving (a newer schema only stops an older binary from starting).
    let schema_ok = applied.is_some_and(|a| a >= binary);
    let ready = !draining && database == "ok" && schema_ok;
    let body = serde_json::json!({
        "status": if ready { "ready" } else if draining { "draining" } else { "unavailable" },
        "draining": draining,
        "database": database,
        "schema": { "applied": applied, "binary": binary },
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, [(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
}
