//! `GET /diagnostics` (protocol.md §1.8): service status and a timed database round trip; master key.

use super::extract::{Master, TenantCall};
use crate::error::Result;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use roost_odata::sql::{ColType, Sql};

/// Answers 200 with the status document, or 503 when the tenant's database does not answer.
pub async fn get_diagnostics(State(state): State<AppState>, _: Master, r: TenantCall) -> Result<Response> {
    let up = state.started.elapsed().as_secs();
    let uptime = format!("{:02}.{:02}:{:02}:{:02}", up / 86_400, (up / 3600) % 24, (up / 60) % 60, up % 60);
    let started = std::time::Instant::now();
    let ping = r.tenant.db.fetch(&Sql { text: "SELECT CAST(1 AS bigint)".into(), params: vec![] }, &[ColType::Integer]).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    let mut sql_status = serde_json::json!({ "statusCode": 200, "latencyMS": latency_ms });
    let mut status = StatusCode::OK;
    if let Err(e) = ping {
        tracing::warn!(tenant.name = %r.tenant.record.name, error = %e, "Diagnostics: the database did not answer");
        sql_status = serde_json::json!({ "statusCode": 503, "latencyMS": latency_ms, "error": "The database did not answer." });
        status = StatusCode::SERVICE_UNAVAILABLE;
    }
    let body = serde_json::json!({
        "service": {
            "description": "Windows Azure Mobile Services Node.js",
            "status": { "runtimeVersion": concat!("roost-", env!("CARGO_PKG_VERSION")), "serviceName": r.tenant.record.name, "uptime": uptime }
        },
        "tables.sql": { "description": "Windows Azure Mobile Services SQL Azure Tables", "status": sql_status }
    });
    Ok((status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.to_string()).into_response())
}
